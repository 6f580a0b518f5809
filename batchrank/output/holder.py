"""Who holds an output directory, as its lock file or lease records it, and whether that holder is certainly gone.

A record names the host and the pid and, where the system tells them (Linux), the boot, the pid namespace and the
process's start time. A holder is gone only when all of them say so: same host, same boot and same pid namespace
(a container that shares the host name but not the pids is never judged from here), and no process with that pid,
or one started after the holder (the pid was reused), or a zombie. Anything this host cannot check counts as alive:
its lease goes stale by itself, and its lock file is the user's to remove.
"""

from __future__ import annotations

import os
import socket
from typing import Any

_PROC = "/proc"


def this_process() -> dict[str, Any]:
    """This process as a lock file or a lease records it."""
    record: dict[str, Any] = {"host": socket.gethostname(), "pid": os.getpid()}
    optional = {"boot": _boot_id(), "pid_namespace": _pid_namespace(), "process_start": _start_ticks(os.getpid())}
    record.update({key: value for key, value in optional.items() if value is not None})
    return record


def is_gone(holder: dict[str, Any]) -> bool:
    """Whether the recorded holder certainly no longer runs (see the module docstring); False when in doubt."""
    if holder.get("host") != socket.gethostname():
        return False
    for key, mine in (("boot", _boot_id()), ("pid_namespace", _pid_namespace())):
        if key in holder and holder[key] != mine:
            return False  # another machine or container with this host name, or this one before a reboot
    try:
        pid = int(holder["pid"])
    except (KeyError, TypeError, ValueError):
        return False
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass  # another user's process: it exists
    except OSError:
        return False
    stat = _stat_fields(pid)
    if stat is None:
        return False
    if stat[0] == "Z":  # killed, not yet reaped by its parent
        return True
    recorded = holder.get("process_start")
    return isinstance(recorded, int) and int(stat[19]) != recorded


def _boot_id() -> str | None:
    try:
        with open(f"{_PROC}/sys/kernel/random/boot_id") as handle:
            return handle.read().strip() or None
    except OSError:
        return None


def _pid_namespace() -> str | None:
    try:
        return os.readlink(f"{_PROC}/self/ns/pid")
    except OSError:
        return None


def _stat_fields(pid: int) -> list[str] | None:
    """/proc/PID/stat from the state on (field 3): the command name before it may hold spaces and parentheses."""
    try:
        with open(f"{_PROC}/{pid}/stat") as handle:
            text = handle.read()
    except OSError:
        return None
    fields = text[text.rfind(")") + 2 :].split()
    return fields if len(fields) > 19 else None


def _start_ticks(pid: int) -> int | None:
    """The process's start time in clock ticks after boot (field 22 of /proc/PID/stat)."""
    fields = _stat_fields(pid)
    return int(fields[19]) if fields is not None else None
