"""One system of the throughput bench, in its own process: `python -m batchrank.bench.systems SYSTEM CONFIG.json`.

Each system starts its engine once and scores every dataset named for it in the config, after a warm-up on other
pairs, writing each dataset's scores to WORK/scores/SYSTEM-DATASET.parquet (input order) and printing a result line
(RESULT_MARK + JSON, everything measured so far) after each dataset, so a run cut short keeps what it measured.
batchrank and fp8: batchrank_system.py; vllm and hf: plain_systems.py.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

from batchrank.bench.environment import setdefault_environment
from batchrank.bench.system_common import RESULT_MARK, device_is_cpu

SYSTEMS = ("batchrank", "fp8", "vllm", "hf")


def main(argv: list[str]) -> None:
    """Run SYSTEM on the datasets CONFIG names for it, printing result lines."""
    from batchrank.bench.batchrank_system import run_batchrank
    from batchrank.bench.plain_systems import run_hf, run_vllm

    if len(argv) != 2 or argv[0] not in SYSTEMS:
        raise SystemExit(f"usage: python -m batchrank.bench.systems SYSTEM CONFIG.json; SYSTEM one of "
                         f"{', '.join(SYSTEMS)} (got {' '.join(argv)!r})")
    system, config_path = argv
    setdefault_environment()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s")
    config = json.loads(Path(config_path).read_text())

    def emit(result: dict[str, Any]) -> None:
        versions = {m: str(getattr(sys.modules[m], "__version__", "?")) for m in ("vllm", "torch", "transformers")
                    if m in sys.modules}
        if not device_is_cpu():
            import torch

            result["device"] = torch.cuda.get_device_name(0)
        line = json.dumps({**result, "system": system, "versions": versions}, default=str)
        sys.stdout.write(RESULT_MARK + line + "\n")
        sys.stdout.flush()

    runner = {"batchrank": run_batchrank, "fp8": run_batchrank, "vllm": run_vllm, "hf": run_hf}[system]
    runner(config, system, emit)
    sys.stderr.flush()
    os._exit(0)  # skip interpreter teardown: the engines are shut down, and CUDA builds of vLLM may abort at exit


if __name__ == "__main__":
    main(sys.argv[1:])
