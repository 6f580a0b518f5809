"""docs/architecture.md's layers are the code's: every module of the package is on the map, and no import (at the
top of a module, inside a function or under TYPE_CHECKING) runs up it."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "batchrank"


def layers_of_the_map() -> dict[str, int]:
    """Top-level name (package or module, without .py) -> its line in the map, 0 at the top."""
    text = (ROOT / "docs" / "architecture.md").read_text()
    block = text.split("## Layers", 1)[1].split("```", 2)[1]
    block = re.sub(r"\([^)]*\)", "", block, flags=re.DOTALL)  # the parenthesized lists only describe
    names: dict[str, int] = {}
    lines: list[str] = []
    for line in block.splitlines():
        if line[:1].isspace() and lines:  # an indented line goes on with the layer above it
            lines[-1] += line
        elif line.strip():
            lines.append(line)
    for depth, line in enumerate(lines):
        for name in re.findall(r"([a-z_]+)(?:/|\.py)", line):
            names[name] = depth
    return names


def top_name(module: str) -> str:
    """batchrank.io.input -> io; batchrank.cli -> cli."""
    return module.split(".")[1]


def imports_of(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every batchrank import in the file, `from batchrank import x` as batchrank.x."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names if alias.name.startswith("batchrank.")]
        elif isinstance(node, ast.ImportFrom) and node.module == "batchrank":
            found += [(node.lineno, f"batchrank.{alias.name}") for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("batchrank."):
            found.append((node.lineno, node.module))
    return found


def test_every_module_is_on_the_map_and_imports_run_down_it() -> None:
    layers = layers_of_the_map()
    missing, upward = [], []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(ROOT)
        if relative == Path("batchrank/__init__.py"):  # the public API imports what it exposes, lazily
            continue
        name = relative.parts[1].removesuffix(".py")
        if name not in layers:
            missing.append(str(relative))
            continue
        for line, module in imports_of(path):
            target = top_name(module)
            if target != name and target in layers and layers[target] < layers[name]:
                upward.append(f"{relative}:{line} imports {module}, from a layer above {name}")
    problems = [f"{path}: not on the map of docs/architecture.md's Layers" for path in missing] + upward
    assert not problems, "\n".join(problems)


def test_the_map_is_read_as_written() -> None:
    layers = layers_of_the_map()
    assert layers["cli"] < layers["job"] < layers["planning"] < layers["execute"] < layers["scoring"]
    assert layers["scoring"] < layers["output"] < layers["io"] < layers["storage"] == layers["errors"]
    assert "background" not in layers, "names inside parentheses describe a package's modules; they are not layers"
    assert layers["training"] == layers["results"] and layers["reaper"] == layers["storage"], "indented: same layer"
