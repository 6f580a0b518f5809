"""Where a run's log lines go: batchrank's own to stderr, everything the engine and other libraries say to
OUTPUT/logs/engine.log, and results alone to stdout.

vLLM logs to stdout by default, in the driver, its engine-core process and its workers; a logging config named by
VLLM_LOGGING_CONFIG_PATH (read by every one of those processes) sends it to the file instead. Python warnings and
other libraries' records go there through the root logger. With -v the engine's lines go to stderr as well.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import tempfile
from pathlib import Path

from batchrank.storage import StoragePath

_FORMAT = "%(asctime)s %(processName)s %(process)d %(name)s %(levelname)s %(message)s"


def configure_console(verbosity: int) -> None:
    """batchrank's own lines on stderr: -q errors only (verbosity -1), default info, -v debug (1)."""
    level = {-1: logging.ERROR, 0: logging.INFO, 1: logging.DEBUG}[max(-1, min(verbosity, 1))]
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S"))
    own = logging.getLogger("batchrank")
    own.handlers[:] = [handler]
    own.setLevel(level)
    own.propagate = False
    # Other libraries' records (vLLM's import-time notes, torch's warnings) never reach the console by Python's
    # last-resort handler: a run keeps them in OUTPUT/logs/engine.log (EngineLog), -v shows them.
    root = logging.getLogger()
    root.handlers[:] = [h for h in root.handlers if not getattr(h, "_batchrank_console", False)]
    sink = logging.StreamHandler(sys.stderr) if verbosity > 0 else logging.NullHandler()
    sink._batchrank_console = True  # type: ignore[attr-defined]
    root.addHandler(sink)
    root.setLevel(logging.DEBUG if verbosity > 0 else logging.WARNING)
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "DEBUG" if verbosity > 0 else "INFO")
    if verbosity <= 0:
        # torch's C++ warnings (the CPU build's "NUMA binding" note at every engine start) bypass Python's logging
        # and write to stderr directly; libc10 reads this when torch is imported, which happens later, at the engine.
        os.environ.setdefault("TORCH_CPP_LOG_LEVEL", "ERROR")


class EngineLog:
    """Send the engine's and other libraries' log lines to a local file for one run; `close` appends it to
    OUTPUT/logs/engine.log (uploads it, in an object store) once the run has an output directory, so a run refused
    before it writes anything leaves nothing behind."""

    def __init__(self, echo: bool):
        self._scratch = tempfile.TemporaryDirectory(prefix="batchrank-logs-")
        self.local = Path(self._scratch.name) / "engine.log"
        handlers: dict[str, dict[str, str]] = {
            "file": {"class": "logging.FileHandler", "filename": str(self.local), "mode": "a", "formatter": "plain"}}
        if echo:
            handlers["stderr"] = {"class": "logging.StreamHandler", "stream": "ext://sys.stderr", "formatter": "plain"}
        level = os.environ.get("VLLM_LOGGING_LEVEL", "INFO")
        config = {"version": 1, "disable_existing_loggers": False, "formatters": {"plain": {"format": _FORMAT}},
                  "handlers": handlers,
                  "loggers": {"vllm": {"handlers": list(handlers), "level": level, "propagate": False}}}
        config_path = Path(self._scratch.name) / "vllm-logging.json"
        config_path.write_text(json.dumps(config))
        self._saved = {name: os.environ.get(name) for name in ("VLLM_CONFIGURE_LOGGING", "VLLM_LOGGING_CONFIG_PATH")}
        os.environ["VLLM_CONFIGURE_LOGGING"] = "1"
        os.environ["VLLM_LOGGING_CONFIG_PATH"] = str(config_path)
        self.handler = logging.FileHandler(self.local, mode="a")
        self.handler.setFormatter(logging.Formatter(_FORMAT))
        logging.getLogger().addHandler(self.handler)
        logging.captureWarnings(True)

    def close(self, destination: StoragePath | None) -> None:
        """Stop collecting; append what was collected to `destination` (None: drop it)."""
        logging.getLogger().removeHandler(self.handler)
        self.handler.close()
        logging.captureWarnings(False)
        for name, value in self._saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        try:
            collected = self.local.read_bytes() if self.local.exists() else b""
            if destination is not None and collected:
                earlier = destination.read_bytes() if destination.exists() else b""
                destination.write_bytes(earlier + collected)
        except OSError:
            pass  # the log of a run on a full disk or an unreachable store stays unsaved; the run's result stands
        finally:
            self._scratch.cleanup()
