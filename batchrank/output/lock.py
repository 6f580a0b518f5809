"""One run per output directory: an fcntl lock on a POSIX file system, a heartbeat lease in an object store.

OUTPUT/.lock names the holder's host and pid and is locked with fcntl.lockf while the run lives. The kernel drops
that lock when the process dies however it dies (SIGKILL, the OOM killer), so a lock file left by a killed run is
taken over, with no window in which two runs could both take it. lockf locks are not inherited by forked children
(vLLM's engine processes) and reach across NFS clients. A lock file naming another host is never taken over (a file
system whose locks do not reach across hosts cannot tell a live run from a dead one): remove it once that run is
known to be dead. Where the file system has no locks at all, a holder whose process is gone from this host
(holder.py) is taken over. A refused run raises OutputInUse (exit 75: wait and run again), having written nothing.

In an object store, OUTPUT/_lock.json is a lease kept alive by a heartbeat instead (lease.py: best effort).
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import time
from typing import Any

from batchrank import storage
from batchrank.errors import OutputInUse
from batchrank.output import holder as holders
from batchrank.output.layout import OutputLayout
from batchrank.output.lease import STALE_SECONDS, Lease

_HELD_HERE: set[str] = set()  # lockf locks are per process: a second run in this process would get it too


class OutputLock:
    def __init__(self, layout: OutputLayout):
        self.layout, self.path = layout, layout.lock
        self._descriptor: int | None = None
        self._lease: Lease | None = None

    def acquire(self) -> None:
        """Hold the directory for this process, or refuse (OutputInUse, exit 75) naming the run that holds it."""
        key = str(self.path.absolute())
        if key in _HELD_HERE:
            raise OutputInUse(f"{self.layout.root} is in use by another batchrank run in this process "
                              f"(pid {os.getpid()})")
        if self.path.supports_posix_locks:
            self.layout.root.mkdir()
            self._descriptor = self._take_lockf()
        else:
            lease = Lease(self.path, self._lease_in_use)
            with storage.reaching(self.path):  # the first write to the output: a missing bucket shows here
                lease.acquire()
            self._lease = lease
        _HELD_HERE.add(key)

    def release(self) -> None:
        """Remove the lock file (if it is still ours) and drop the lock. Never opens the file a second time: closing
        any descriptor of a lockf-locked file releases the process's lock."""
        lease, self._lease = self._lease, None
        descriptor, self._descriptor = self._descriptor, None
        try:
            if lease is not None:
                lease.release()
            elif descriptor is not None:
                try:
                    if _same_file(descriptor, self.path.os_path()):
                        self.path.unlink(missing_ok=True)
                finally:
                    os.close(descriptor)
        finally:
            _HELD_HERE.discard(str(self.path.absolute()))

    def _take_lockf(self) -> int:
        me = {**holders.this_process(), "started": time.time()}
        for _ in range(5):
            descriptor = os.open(self.path.os_path(), os.O_RDWR | os.O_CREAT, 0o644)
            try:
                locked = _try_lockf(descriptor)
                holder = _read_holder(descriptor)
                if locked is False or (locked is None and holder and not holders.is_gone(holder)):
                    raise self._in_use(holder)
                if not _same_file(descriptor, self.path.os_path()):  # removed by a run that finished meanwhile
                    os.close(descriptor)
                    continue
                if holder and holder.get("host") != me["host"]:
                    raise self._in_use(holder)
                os.ftruncate(descriptor, 0)
                os.pwrite(descriptor, json.dumps(me).encode(), 0)
                os.fsync(descriptor)
            except BaseException:
                os.close(descriptor)
                raise
            return descriptor
        raise OutputInUse(f"{self.path}: could not take the lock; another run keeps replacing it")

    def _in_use(self, holder: dict[str, Any] | None) -> OutputInUse:
        holder = holder or {}
        return OutputInUse(
            f"{self.layout.root} is in use by another batchrank run (host {holder.get('host', '?')}, pid "
            f"{holder.get('pid', '?')}); wait for it to finish, or remove {self.path} if that run is dead"
        )

    def _lease_in_use(self, holder: dict[str, Any], age: float) -> OutputInUse:
        return OutputInUse(f"{self._in_use(holder)} (its lease was renewed {age:.0f} s ago; one older than "
                           f"{STALE_SECONDS:.0f} s is taken over)")


def read_holder(layout: OutputLayout) -> tuple[dict[str, Any], float | None] | None:
    """Who runs the job in this directory now, without disturbing it: (holder, seconds since its lease was renewed,
    None for a lockf lock), or None when no run holds it."""
    path = layout.lock
    if not path.supports_posix_locks:
        holder = Lease(path, lambda holder, age: OutputInUse("")).read()
        if holder is None or not Lease.is_live(holder):
            return None
        return holder, Lease.age(holder)
    try:
        descriptor = os.open(path.os_path(), os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        holder = _read_holder(descriptor)
        # A read-only descriptor cannot take an exclusive lock; ask whether one is held instead.
        held = _lock_is_held(descriptor)
    finally:
        os.close(descriptor)
    if held is None:  # no locks on this file system: the pid tells
        held = bool(holder) and not holders.is_gone(holder or {})
    return (holder or {}, None) if held else None


def _lock_is_held(descriptor: int) -> bool | None:
    """Whether another process holds an fcntl lock on the file (F_GETLK); None where the file system has no locks."""
    import struct

    request = struct.pack("hhqqi", fcntl.F_WRLCK, 0, 0, 0, 0)  # struct flock: type, whence, start, len, pid
    try:
        answer = fcntl.fcntl(descriptor, fcntl.F_GETLK, request)
    except OSError as error:
        if error.errno in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
            return None
        raise
    return struct.unpack("hhqqi", answer)[0] != fcntl.F_UNLCK


def _try_lockf(descriptor: int) -> bool | None:
    """True: locked; False: another process holds it; None: the file system has no locks."""
    try:
        fcntl.lockf(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except (BlockingIOError, PermissionError):
        return False
    except OSError as error:
        if error.errno in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
            return None
        raise
    return True


def _read_holder(descriptor: int) -> dict[str, Any] | None:
    try:
        holder = json.loads(os.pread(descriptor, 4096, 0) or b"null")
    except (OSError, ValueError):
        return None
    return holder if isinstance(holder, dict) else None


def _same_file(descriptor: int, path: str) -> bool:
    try:
        return os.fstat(descriptor).st_ino == os.stat(path).st_ino
    except FileNotFoundError:
        return False
