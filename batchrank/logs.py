"""Where the command line's own lines go: batchrank's to stderr, results alone to stdout. The engine's and other
libraries' lines go to OUTPUT/logs/engine.log (engine_log.py, opened by run_job for each job); -v shows them too.
Every console line has the environment's credentials masked (redact.py).
"""

from __future__ import annotations

import logging
import os
import sys

from batchrank.redact import RedactingFormatter


def configure_console(verbosity: int) -> None:
    """batchrank's own lines on stderr: -q errors only (verbosity -1), default info, -v debug (1)."""
    level = {-1: logging.ERROR, 0: logging.INFO, 1: logging.DEBUG}[max(-1, min(verbosity, 1))]
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(RedactingFormatter("%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S"))
    own = logging.getLogger("batchrank")
    own.handlers[:] = [handler]
    own.setLevel(level)
    own.propagate = False
    # Other libraries' records (vLLM's import-time notes, torch's warnings) never reach the console by Python's
    # last-resort handler: a run keeps them in OUTPUT/logs/engine.log (EngineLog), -v shows them.
    root = logging.getLogger()
    root.handlers[:] = [h for h in root.handlers if not getattr(h, "_batchrank_console", False)]
    sink = logging.StreamHandler(sys.stderr) if verbosity > 0 else logging.NullHandler()
    sink.setFormatter(RedactingFormatter())
    sink._batchrank_console = True  # type: ignore[attr-defined]
    root.addHandler(sink)
    root.setLevel(logging.DEBUG if verbosity > 0 else logging.WARNING)
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "DEBUG" if verbosity > 0 else "INFO")
    if verbosity <= 0:
        # torch's C++ warnings (the CPU build's "NUMA binding" note at every engine start) bypass Python's logging
        # and write to stderr directly; libc10 reads this when torch is imported, which happens later, at the engine.
        os.environ.setdefault("TORCH_CPP_LOG_LEVEL", "ERROR")
