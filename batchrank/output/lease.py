"""A lease on an output directory in an object store, where no file lock exists.

OUTPUT/_lock.json names the holder ({host, pid, started, heartbeat, token}, and what holder.py records to tell a
dead process on this host); a daemon thread rewrites it every HEARTBEAT_SECONDS while the run lives. A lease whose
heartbeat is younger than STALE_SECONDS refuses a second run; an older one (a run that was killed, or lost its
machine) is taken over with a warning, and so is a fresh one whose holder ran on this host and is gone (a run
killed here is taken over at once, not after STALE_SECONDS).

Best effort only: an object store offers no atomic create-if-absent through pyarrow, so two runs that start within
the same moment can both take the lease (the loser usually notices when it reads the lease back, but not always),
and the holder's heartbeat is compared with this machine's clock, so clocks must roughly agree. A local or shared
POSIX file system (NFS, a mounted bucket) keeps lock.py's fcntl lock, which has neither gap.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from batchrank.output import holder as holders
from batchrank.storage import StoragePath

log = logging.getLogger("batchrank")

HEARTBEAT_SECONDS = 30.0
STALE_SECONDS = 120.0  # four missed heartbeats: the holder is gone


class Lease:
    """Hold `location` for this process; `in_use(holder, age)` builds the error that refuses a second run."""

    def __init__(self, location: StoragePath, in_use: Callable[[dict[str, Any], float], Exception]):
        self.location, self.in_use = location, in_use
        self.token = uuid.uuid4().hex
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._started = 0.0

    def read(self) -> dict[str, Any] | None:
        """The current holder, or None when there is no lease (an unreadable one counts as none)."""
        try:
            holder = json.loads(self.location.read_bytes())
        except FileNotFoundError:
            return None
        except ValueError:
            return None
        return holder if isinstance(holder, dict) else None

    @staticmethod
    def age(holder: dict[str, Any]) -> float:
        """Seconds since the holder's last heartbeat (by this machine's clock)."""
        return time.time() - _number(holder.get("heartbeat"))

    @staticmethod
    def is_live(holder: dict[str, Any]) -> bool:
        """Whether the holder still holds the lease: a recent heartbeat, and not a process known gone on this host."""
        return Lease.age(holder) < STALE_SECONDS and not holders.is_gone(holder)

    def acquire(self) -> None:
        holder = self.read()
        if holder is not None:
            age = self.age(holder)
            if self.is_live(holder):
                raise self.in_use(holder, age)
            why = (f"its last heartbeat was {age:.0f} s ago (more than {STALE_SECONDS:.0f} s)" if age >= STALE_SECONDS
                   else "its process is gone from this host")
            log.warning("%s: taking over the lease of host %s, pid %s: %s", self.location, holder.get("host", "?"),
                        holder.get("pid", "?"), why)
        self._started = time.time()
        self._write()
        current = self.read()  # another run that wrote at the same moment: whoever wrote last holds it
        if current is None or current.get("token") != self.token:
            raise self.in_use(current or {}, 0.0)
        self._thread = threading.Thread(target=self._beat, name="batchrank-lease", daemon=True)
        self._thread.start()

    def _write(self) -> None:
        me = {**holders.this_process(), "started": self._started, "heartbeat": time.time(), "token": self.token}
        self.location.write_bytes(json.dumps(me).encode())

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT_SECONDS):
            try:
                current = self.read()
                if current is not None and current.get("token") != self.token:
                    log.warning("%s: the lease was taken over by host %s, pid %s (this run's heartbeat was late); "
                                "two runs may now write this output", self.location, current.get("host", "?"),
                                current.get("pid", "?"))
                    return
                self._write()
            except OSError as error:  # a passing network error: the next beat tries again
                log.warning("%s: cannot refresh the lease (%s); retrying in %.0f s", self.location, error,
                            HEARTBEAT_SECONDS)

    def release(self) -> None:
        """Stop the heartbeat and remove the lease if it is still ours."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=60)
        try:
            current = self.read()
            if current is not None and current.get("token") == self.token:
                self.location.unlink(missing_ok=True)
        except OSError as error:  # it goes stale by itself
            log.warning("%s: cannot remove the lease (%s); the next run takes it over after %.0f s",
                        self.location, error, STALE_SECONDS)


def _number(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return 0.0  # a lease without a readable heartbeat is stale
