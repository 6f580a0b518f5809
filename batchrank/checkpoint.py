"""The output directory as a checkpoint: which chunks are done, whether a resume is allowed, and the lock.

Layout of OUTPUT/:
  job.json              the plan (chunks) and the fingerprint of inputs, spec and model, written before any part
  scores/part-*.parquet one part per finished chunk, renamed into place when complete: a part that exists is done
  rejects/              with input.on_bad_rows: skip: plan.parquet (rows rejected before scoring) and
                        part-*.parquet (rows of a chunk rejected while scoring, written before its scores part)
  rejects.parquet       with input.on_bad_rows: skip: every rejected row with its reason, merged at the end
  run.json, _SUCCESS    written when every part exists
  .lock                 the host and pid of the run that holds the directory, locked with fcntl.lockf while it runs
  _lock.json            instead of .lock in an object store (s3://, gs://): a lease with a heartbeat (lease.py)

OUTPUT may be an object-store URI: the same layout, each file an object written in one upload (storage.py).
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from batchrank import storage
from batchrank.errors import CheckpointError, RunFailure
from batchrank.io import parquet_files
from batchrank.io.parts import read_part_stats
from batchrank.lease import STALE_SECONDS, Lease
from batchrank.plan import Chunk
from batchrank.storage import Location, ObjectPath

MANIFEST_VERSION = 1


@dataclass(frozen=True)
class Manifest:
    fingerprint: dict[str, Any]
    chunks: list[Chunk]
    total_rows: int  # rows planned for scoring (rows rejected before scoring are not among them)
    staged_input: str | None  # the grouped copy the chunks index into, when the input was not grouped
    rejected_rows: int = 0  # rows rejected before scoring (input.on_bad_rows: skip), in rejects/plan.parquet

    def to_json(self) -> dict[str, Any]:
        return {
            "version": MANIFEST_VERSION,
            "fingerprint": self.fingerprint,
            "total_rows": self.total_rows,
            "rejected_rows": self.rejected_rows,
            "staged_input": self.staged_input,
            "chunks": [[c.start, c.num_rows] for c in self.chunks],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Manifest:
        # Chunk ids (and so part names) are positions in this list, never strings read from the file.
        chunks = [Chunk(i, int(start), int(rows)) for i, (start, rows) in enumerate(data["chunks"])]
        return cls(
            data["fingerprint"], chunks, int(data["total_rows"]), data.get("staged_input"),
            int(data.get("rejected_rows", 0)),
        )


def describe_fingerprint_change(old: dict[str, Any], new: dict[str, Any]) -> str:
    if old.get("inputs") != new.get("inputs"):
        old_files = {entry[0]: entry[1:] for entry in old.get("inputs", [])}
        new_files = {entry[0]: entry[1:] for entry in new.get("inputs", [])}
        changed = sorted(p for p in old_files.keys() | new_files.keys() if old_files.get(p) != new_files.get(p))
        return f"input file(s) changed since the checkpoint: {', '.join(changed[:3])}"
    if old.get("spec") != new.get("spec"):
        return "the job spec's input, model, prompt, chunk_size or output settings changed since the checkpoint"
    return "the model's files changed since the checkpoint"


class OutputDir:
    """One job's output directory."""

    def __init__(self, path: str | Path | ObjectPath):
        self.root = storage.as_location(path)
        self.scores = self.root / "scores"
        self.manifest_path = self.root / "job.json"
        self.success_path = self.root / "_SUCCESS"
        self.run_info_path = self.root / "run.json"
        self.remote = isinstance(self.root, ObjectPath)
        self.lock_path = self.root / ("_lock.json" if self.remote else ".lock")
        self.rejects = self.root / "rejects"
        self.plan_rejects_path = self.rejects / "plan.parquet"
        self.rejects_path = self.root / "rejects.parquet"
        self._lock_descriptor: int | None = None
        self._lease: Lease | None = None

    def part_path(self, chunk: Chunk) -> Location:
        return self.scores / chunk.part_name

    def rejects_part_path(self, chunk: Chunk) -> Location:
        return self.rejects / chunk.part_name

    def read_manifest(self) -> Manifest | None:
        with storage.reaching(self.manifest_path):  # a missing bucket or no credentials: one clear line
            if not self.manifest_path.exists():
                return None
            try:
                data = json.loads(self.manifest_path.read_text())
                return Manifest.from_json(data)
            except (ValueError, KeyError, TypeError) as error:
                raise CheckpointError(
                    f"{self.manifest_path}: unreadable checkpoint manifest ({error}); rerun with --overwrite"
                ) from None

    def write_manifest(self, manifest: Manifest) -> None:
        self.scores.mkdir(parents=True, exist_ok=True)
        write_text_atomically(self.manifest_path, json.dumps(manifest.to_json(), indent=1))

    def check_resumable(self, manifest: Manifest, fingerprint: dict[str, Any]) -> None:
        if manifest.fingerprint != fingerprint:
            raise CheckpointError(
                f"{self.root}: {describe_fingerprint_change(manifest.fingerprint, fingerprint)}; "
                "refusing to mix results. Rerun with --overwrite to start over, or choose another output.path"
            )
        if manifest.rejected_rows:  # written before job.json, so only damage from outside can spoil it
            try:
                rows = parquet_files.read_metadata(self.plan_rejects_path).num_rows
            except Exception as error:  # noqa: BLE001 - missing or unreadable: the same answer
                rows, why = -1, f"unreadable: {error}"
            else:
                why = f"{rows} rows, the plan says {manifest.rejected_rows}"
            if rows != manifest.rejected_rows:
                raise CheckpointError(
                    f"{self.plan_rejects_path}: the rows rejected before scoring are damaged ({why}); "
                    "rerun with --overwrite to start over"
                )

    def finished_chunks(self, manifest: Manifest) -> set[int]:
        """Chunks whose part is readable and, with the rows its footer says were rejected (and whose rejects part
        holds exactly those), accounts for every planned row; anything else is removed and scored again."""
        done = set()
        for chunk in manifest.chunks:
            path = self.part_path(chunk)
            if not path.exists():
                continue
            try:
                rows = parquet_files.read_metadata(path).num_rows
                rejected = read_part_stats(path).rejected_pairs
                if rejected and parquet_files.read_metadata(self.rejects_part_path(chunk)).num_rows != rejected:
                    rows = -1
            except Exception:  # noqa: BLE001 - any unreadable part is redone, whatever the reader raised
                rows, rejected = -1, 0
            if rows >= 0 and rows + rejected == chunk.num_rows:
                done.add(chunk.chunk_id)
            else:
                path.unlink()
        return done

    def clear(self) -> None:
        """Remove what batchrank wrote (for --overwrite); other files in the directory are left alone."""
        for name in ("scores", "staging", "rejects"):
            storage.delete_tree(self.root / name)
        for path in (self.manifest_path, self.success_path, self.run_info_path, self.rejects_path):
            path.unlink(missing_ok=True)

    def remove_temporaries(self) -> None:
        """Temporary files of a killed run (a part, run.json, rejects being written); never read as results."""
        if self.remote:  # an object is written in one upload: there are no temporaries
            return
        for folder in (self.root, self.scores, self.rejects):
            if folder.exists():
                for stale in folder.glob(".*.tmp*"):
                    stale.unlink(missing_ok=True)

    def acquire_lock(self) -> None:
        """Hold the directory for this process, or refuse naming the run that holds it.

        OUTPUT/.lock names the holder's host and pid and is locked with fcntl.lockf while the run lives. The kernel
        drops that lock when the process dies however it dies (SIGKILL, the OOM killer), so a lock file left by a
        killed run is taken over, with no window in which two runs could both take it. lockf locks are not inherited
        by forked children (vLLM's engine processes) and reach across NFS clients. A lock file naming another host
        is never taken over (a file system whose locks do not reach across hosts cannot tell a live run from a dead
        one): remove it once that run is known to be dead. Where the file system has no locks at all, a holder whose
        pid is gone on this host is taken over, as before.

        In an object store, OUTPUT/_lock.json is a lease kept alive by a heartbeat instead (lease.py: best effort).
        """
        if self.remote:
            return self._acquire_lease()
        self.root.mkdir(parents=True, exist_ok=True)
        key = str(self.lock_path.resolve())
        if key in _LOCKS_HELD_HERE:  # lockf locks are per process: a second run in this process would get it too
            raise CheckpointError(f"{self.root} is in use by another batchrank run in this process (pid {os.getpid()})")
        me = {"host": socket.gethostname(), "pid": os.getpid()}
        for _ in range(5):
            descriptor = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                locked = _try_lockf(descriptor)
                holder = _read_holder(descriptor)
                if locked is False or (locked is None and holder and not _holder_is_gone(holder)):
                    raise self._in_use(holder)
                if not _same_file(descriptor, self.lock_path):  # removed by a run that finished meanwhile
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
            self._lock_descriptor = descriptor
            _LOCKS_HELD_HERE.add(key)
            return
        raise CheckpointError(f"{self.lock_path}: could not take the lock; another run keeps replacing it")

    def _acquire_lease(self) -> None:
        assert isinstance(self.lock_path, ObjectPath)
        key = str(self.lock_path)
        if key in _LOCKS_HELD_HERE:
            raise CheckpointError(f"{self.root} is in use by another batchrank run in this process (pid {os.getpid()})")

        def in_use(holder: dict[str, Any], age: float) -> CheckpointError:
            return CheckpointError(f"{self._in_use(holder)} (its lease was renewed {age:.0f} s ago; one older than "
                                   f"{STALE_SECONDS:.0f} s is taken over)")

        lease = Lease(self.lock_path, in_use)
        with storage.reaching(self.lock_path):  # the first write to the output: a missing bucket shows here
            lease.acquire()
        self._lease = lease
        _LOCKS_HELD_HERE.add(key)

    def _in_use(self, holder: dict[str, Any] | None) -> CheckpointError:
        holder = holder or {}
        return CheckpointError(
            f"{self.root} is in use by another batchrank run (host {holder.get('host', '?')}, pid "
            f"{holder.get('pid', '?')}); wait for it to finish, or remove {self.lock_path} if that run is dead"
        )

    def release_lock(self) -> None:
        """Remove the lock file (if it is still ours) and drop the lock. Never opens the file a second time: closing
        any descriptor of a lockf-locked file releases the process's lock."""
        lease, self._lease = self._lease, None
        if lease is not None:
            lease.release()
            _LOCKS_HELD_HERE.discard(str(self.lock_path))
            return
        descriptor, self._lock_descriptor = self._lock_descriptor, None
        if descriptor is None:
            return
        try:
            if _same_file(descriptor, self.lock_path):
                self.lock_path.unlink(missing_ok=True)
        finally:
            os.close(descriptor)
            _LOCKS_HELD_HERE.discard(str(self.lock_path.resolve()))


_LOCKS_HELD_HERE: set[str] = set()


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


def _same_file(descriptor: int, path: Path) -> bool:
    try:
        return os.fstat(descriptor).st_ino == os.stat(path).st_ino
    except FileNotFoundError:
        return False


def _holder_is_gone(holder: dict[str, Any]) -> bool:
    if holder.get("host") != socket.gethostname():
        return False  # another host's process cannot be checked from here; only its owner may clear it
    try:
        os.kill(int(holder["pid"]), 0)
    except ProcessLookupError:
        return True
    except (PermissionError, KeyError, ValueError, TypeError):
        return False
    return False


def write_text_atomically(path: Location, text: str) -> None:
    """Write a temporary file and rename it into place (an object: one upload); a write error (a full disk) is a
    RunFailure naming the path, and leaves the previous file, if any, as it was."""
    try:
        storage.write_bytes_atomically(path, text.encode())
    except OSError as error:
        raise RunFailure(f"{path}: cannot write: {error}") from error
