"""OUTPUT/logs/engine.log: every line the engine and other libraries log during a job, kept off the terminal.

vLLM logs to stdout by default, in the job's process, its engine-core process and Ray workers alike; a logging
config named by VLLM_LOGGING_CONFIG_PATH (read by each of those processes when it imports vLLM) sends it to a file
instead, and a vLLM that this process imported earlier has its logger pointed there directly. Python warnings and
other libraries' records go there through the root logger. `run_job` opens one EngineLog per job (so a pipeline
task calling the Python API gets the same file as the CLI, and nothing on its stdout); each Ray worker opens its own
and ships its lines to the driver, which writes them through the WORKER_LINES logger into the job's. Every line is
written with the environment's credentials masked (redact.py).
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from batchrank.redact import RedactingFormatter, redact
from batchrank.storage import StoragePath

# Lines a Ray worker logged, forwarded by the driver as they are (they carry the worker's own prefix).
WORKER_LINES = "batchrank_workers"
logging.getLogger(WORKER_LINES).setLevel(logging.INFO)
_VLLM_ENVIRONMENT = ("VLLM_CONFIGURE_LOGGING", "VLLM_LOGGING_CONFIG_PATH")


def _line_format(label: str | None) -> str:
    who = label.replace("%", "%%") if label else "%(processName)s"
    return f"%(asctime)s {who} %(process)d %(name)s %(levelname)s %(message)s"


class _EngineLineFormatter(RedactingFormatter):
    def format(self, record: logging.LogRecord) -> str:
        if record.name == WORKER_LINES:
            return redact(record.getMessage())
        return super().format(record)


class EngineLog:
    """Collect the engine's and other libraries' log lines in a local file while a job (or a Ray worker) runs;
    `close` appends this job's lines to OUTPUT/logs/engine.log (uploads them, in an object store), so a job refused
    before it writes anything leaves nothing behind.

    Args:
        echo: the engine's lines on stderr too (`batchrank -v`); None: when the `batchrank` logger is at DEBUG.
        label: the name each line carries in place of the process name (a Ray worker's, e.g. worker-1).
    """

    def __init__(self, echo: bool | None = None, label: str | None = None):
        global _ACTIVE
        if echo is None:
            echo = logging.getLogger("batchrank").isEnabledFor(logging.DEBUG)
        self.echo = echo
        self.local = _process_log_file()
        self._start = self._read_offset = self.local.stat().st_size
        line_format = _line_format(label)
        self._point_vllm_processes_here(line_format, echo)
        self._vllm_saved = _point_vllm_logger_here(self.local, line_format, echo)
        self.handler = logging.FileHandler(self.local, mode="a")
        self.handler.setFormatter(_EngineLineFormatter(line_format))
        logging.getLogger().addHandler(self.handler)
        logging.captureWarnings(True)
        _ACTIVE = self

    def _point_vllm_processes_here(self, line_format: str, echo: bool) -> None:
        """The config vLLM reads when a process imports it (this one, its engine core, a Ray worker's)."""
        handlers: dict[str, dict[str, str]] = {
            "file": {"class": "logging.FileHandler", "filename": str(self.local), "mode": "a", "formatter": "plain"}}
        if echo:
            handlers["stderr"] = {"class": "logging.StreamHandler", "stream": "ext://sys.stderr", "formatter": "plain"}
        config = {"version": 1, "disable_existing_loggers": False,
                  "formatters": {"plain": {"()": "batchrank.redact.RedactingFormatter", "fmt": line_format}},
                  "handlers": handlers,
                  "loggers": {"vllm": {"handlers": list(handlers), "level": _vllm_level(), "propagate": False}}}
        config_path = self.local.with_name("vllm-logging.json")
        config_path.write_text(json.dumps(config))
        self._saved_environment = {name: os.environ.get(name) for name in _VLLM_ENVIRONMENT}
        os.environ["VLLM_CONFIGURE_LOGGING"] = "1"
        os.environ["VLLM_LOGGING_CONFIG_PATH"] = str(config_path)

    def read_new(self, limit: int = 1 << 20) -> str:
        """What was logged since the last call, up to `limit` bytes (a Ray worker hands its lines to the driver)."""
        self.handler.flush()
        try:
            with open(self.local, "rb") as handle:
                handle.seek(self._read_offset)
                data = handle.read(limit)
        except OSError:
            return ""
        cut = data.rfind(b"\n") + 1 if len(data) == limit else len(data)  # whole lines only
        self._read_offset += cut
        return data[:cut].decode("utf-8", errors="replace")

    def close(self, destination: StoragePath | None) -> None:
        """Stop collecting; append what was collected to `destination` (None: drop it)."""
        global _ACTIVE
        if _ACTIVE is self:
            _ACTIVE = None
        logging.getLogger().removeHandler(self.handler)
        self.handler.close()
        logging.captureWarnings(False)
        _restore_vllm_logger(self._vllm_saved)
        for name, value in self._saved_environment.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        try:
            with open(self.local, "rb") as handle:
                handle.seek(self._start)
                collected = handle.read()
            if destination is not None and collected:
                earlier = destination.read_bytes() if destination.exists() else b""
                destination.write_bytes(earlier + collected)
        except OSError:
            pass  # the log of a run on a full disk or an unreachable store stays unsaved; the run's result stands


def forward_worker_lines(text: str) -> None:
    """A Ray worker's log lines (each names the worker), into the job's engine log (and stderr with -v)."""
    text = text.rstrip("\n")
    if text:
        logging.getLogger(WORKER_LINES).info("%s", text)


_PROCESS_LOG: Path | None = None
_ACTIVE: EngineLog | None = None  # the job's EngineLog while one is open in this process


@contextmanager
def child_output_to_log() -> Iterator[None]:
    """Processes started inside the block (vLLM's engine core) write their own stdout and stderr (a library's notes,
    warnings, multiprocessing's resource tracker at their exit) into the job's log file, not onto the terminal: they
    inherit this process's file descriptors 1 and 2 at their start, which point at the file meanwhile. Nothing
    changes without an open EngineLog, or when it echoes (-v)."""
    log = _ACTIVE
    if log is None or log.echo:
        yield
        return
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    target = os.open(log.local, os.O_WRONLY | os.O_APPEND)
    try:
        os.dup2(target, 1)
        os.dup2(target, 2)
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for descriptor in (*saved, target):
            os.close(descriptor)


def _process_log_file() -> Path:
    """The local file this process's jobs collect their lines in, each from where it stood at the job's start: an
    engine core kept for the next job (keep_engine) goes on writing where it was told at its start."""
    global _PROCESS_LOG
    if _PROCESS_LOG is None or not _PROCESS_LOG.exists():
        directory = tempfile.mkdtemp(prefix="batchrank-logs-")
        atexit.register(shutil.rmtree, directory, True)
        _PROCESS_LOG = Path(directory) / "engine.log"
        _PROCESS_LOG.touch()
    return _PROCESS_LOG


def _vllm_level() -> str:
    return os.environ.get("VLLM_LOGGING_LEVEL", "INFO").upper()


def _point_vllm_logger_here(path: Path, line_format: str, echo: bool) -> dict[str, Any]:
    """Send the `vllm` logger's records to `path` now (a vLLM imported before this job configured it already);
    returns its previous state for `_restore_vllm_logger`."""
    logger = logging.getLogger("vllm")
    saved = {"handlers": list(logger.handlers), "level": logger.level, "propagate": logger.propagate}
    handlers: list[logging.Handler] = [logging.FileHandler(path, mode="a")]
    if echo:
        handlers.append(logging.StreamHandler(sys.stderr))
    for handler in handlers:
        handler.setFormatter(RedactingFormatter(line_format))
    logger.handlers[:] = handlers
    logger.setLevel(_vllm_level())
    logger.propagate = False
    return saved


def _restore_vllm_logger(saved: dict[str, Any]) -> None:
    logger = logging.getLogger("vllm")
    for handler in logger.handlers:
        if handler not in saved["handlers"]:
            handler.close()
    logger.handlers[:] = saved["handlers"]
    logger.setLevel(saved["level"])
    logger.propagate = saved["propagate"]
