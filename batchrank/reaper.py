"""Engine processes end with the process that started them, however it ends.

vLLM runs its engine core (and, with tensor parallelism, its workers) as child processes. When the process that
started them is SIGKILLed (the OOM killer, a preemption, `kill -9`, a Ray worker killed with its node), nothing
tells them: they wait on their sockets for ever, holding GBs of memory (the GPU's, on a GPU), and a scheduler's
retry fails for lack of it. So a process that starts engines also starts one small guardian,
`python -m batchrank.reaper`, in a session of its own (a signal to the job's process group does not reach it),
that reads a pipe whose write end only the starting process holds. The kernel closes that end when the process
dies, for any reason; the guardian reads end-of-file and kills every process it was told to watch, with their
children (checked by pid and start time, so a reused pid is never hit). A normal exit tells it to leave quietly.

The guardian imports nothing but psutil and needs ~15 MB.
"""

from __future__ import annotations

import atexit
import os
import subprocess
import sys
import threading
from typing import Any

KILL_WAIT_SECONDS = 10.0


class Reaper:
    """This process's guardian: `watch` a process (an engine core) and it is killed if this process dies first."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._watched: set[int] = set()
        self._guardian = subprocess.Popen(
            [sys.executable, "-m", "batchrank.reaper"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, start_new_session=True, text=True, close_fds=True)
        atexit.register(self.close)

    @property
    def pid(self) -> int:
        return self._guardian.pid

    def watch(self, pid: int) -> None:
        """Kill `pid` (and its children) when this process dies; a process already gone is ignored."""
        import psutil

        try:
            created = psutil.Process(pid).create_time()
        except psutil.Error:
            return
        self._send(f"watch {pid} {created!r}", pid, add=True)

    def forget(self, pid: int) -> None:
        self._send(f"forget {pid}", pid, add=False)

    def watched(self) -> set[int]:
        with self._lock:
            return set(self._watched)

    def close(self) -> None:
        """This process ends normally (its engines were stopped): the guardian leaves without killing anything."""
        try:
            self._guardian.stdin.write("exit\n")  # type: ignore[union-attr]
            self._guardian.stdin.close()  # type: ignore[union-attr]
            self._guardian.wait(timeout=5)
        except (OSError, ValueError, subprocess.TimeoutExpired):
            pass

    def _send(self, line: str, pid: int, add: bool) -> None:
        with self._lock:
            try:
                self._guardian.stdin.write(line + "\n")  # type: ignore[union-attr]
                self._guardian.stdin.flush()  # type: ignore[union-attr]
            except (OSError, ValueError):
                return  # the guardian is gone (this process is ending): nothing left to tell it
            (self._watched.add if add else self._watched.discard)(pid)


_REAPER: Reaper | None = None
_REAPER_LOCK = threading.Lock()


def process_reaper() -> Reaper:
    """This process's one guardian, started on first use (again in a forked child: it belongs to one parent)."""
    global _REAPER
    with _REAPER_LOCK:
        if _REAPER is None or getattr(_REAPER, "_owner", None) != os.getpid():
            _REAPER = Reaper()
            _REAPER._owner = os.getpid()  # type: ignore[attr-defined]
        return _REAPER


def _reap(watched: dict[int, float]) -> None:
    import psutil

    doomed: list[Any] = []
    for pid, created in watched.items():
        try:
            process = psutil.Process(pid)
            if abs(process.create_time() - created) > 0.01:
                continue  # the pid was reused: not ours
            doomed += process.children(recursive=True) + [process]
        except psutil.Error:
            continue
    for process in doomed:
        try:
            process.kill()  # an orphaned engine has nothing worth saving; SIGKILL frees its memory soonest
        except psutil.Error:
            pass
    psutil.wait_procs(doomed, timeout=KILL_WAIT_SECONDS)


def main() -> None:
    """The guardian: follow the parent's `watch`/`forget` lines; at end-of-file (the parent died) kill them."""
    watched: dict[int, float] = {}
    for line in sys.stdin:
        verb, *rest = line.split()
        if verb == "watch":
            watched[int(rest[0])] = float(rest[1])
        elif verb == "forget":
            watched.pop(int(rest[0]), None)
        elif verb == "exit":
            return
    _reap(watched)


if __name__ == "__main__":
    main()
