"""The output directory as a checkpoint: which chunks are done, whether a resume is allowed, and the lock.

Layout of OUTPUT/:
  job.json              the plan (chunks) and the fingerprint of inputs, spec and model, written before any part
  scores/part-*.parquet one part per finished chunk, renamed into place when complete: a part that exists is done
  run.json, _SUCCESS    written when every part exists
  .lock                 the host and pid of the run that holds the directory
"""

from __future__ import annotations

import json
import os
import shutil
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from batchrank.errors import CheckpointError
from batchrank.plan import Chunk

MANIFEST_VERSION = 1


@dataclass(frozen=True)
class Manifest:
    fingerprint: dict[str, Any]
    chunks: list[Chunk]
    total_rows: int
    staged_input: str | None  # the grouped copy the chunks index into, when the input was not grouped

    def to_json(self) -> dict[str, Any]:
        return {
            "version": MANIFEST_VERSION,
            "fingerprint": self.fingerprint,
            "total_rows": self.total_rows,
            "staged_input": self.staged_input,
            "chunks": [[c.start, c.num_rows] for c in self.chunks],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Manifest:
        chunks = [Chunk(i, start, rows) for i, (start, rows) in enumerate(data["chunks"])]
        return cls(data["fingerprint"], chunks, data["total_rows"], data.get("staged_input"))


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

    def __init__(self, path: str | Path):
        self.root = Path(path)
        self.scores = self.root / "scores"
        self.manifest_path = self.root / "job.json"
        self.success_path = self.root / "_SUCCESS"
        self.run_info_path = self.root / "run.json"
        self.lock_path = self.root / ".lock"

    def part_path(self, chunk: Chunk) -> Path:
        return self.scores / chunk.part_name

    def read_manifest(self) -> Manifest | None:
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

    def finished_chunks(self, manifest: Manifest) -> set[int]:
        """Chunks whose part exists with the planned number of rows; anything else is scored again."""
        done = set()
        for chunk in manifest.chunks:
            path = self.part_path(chunk)
            if not path.exists():
                continue
            try:
                rows = pq.read_metadata(path).num_rows
            except Exception:  # noqa: BLE001 - any unreadable part is redone, whatever the reader raised
                rows = -1
            if rows == chunk.num_rows:
                done.add(chunk.chunk_id)
            else:
                path.unlink()
        return done

    def clear(self) -> None:
        """Remove what batchrank wrote (for --overwrite); other files in the directory are left alone."""
        for name in ("scores", "staging"):
            shutil.rmtree(self.root / name, ignore_errors=True)
        for path in (self.manifest_path, self.success_path, self.run_info_path):
            path.unlink(missing_ok=True)

    def remove_temporaries(self) -> None:
        if self.scores.exists():
            for stale in self.scores.glob(".*.tmp*"):
                stale.unlink(missing_ok=True)

    def acquire_lock(self) -> None:
        """Hold the directory for this process; a lock whose process is gone on this host is taken over."""
        self.root.mkdir(parents=True, exist_ok=True)
        me = {"host": socket.gethostname(), "pid": os.getpid()}
        for _ in range(2):
            try:
                descriptor = os.open(self.lock_path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder = self._lock_holder()
                if holder and not _holder_is_gone(holder):
                    raise CheckpointError(
                        f"{self.root} is in use by another batchrank run (host {holder.get('host')}, "
                        f"pid {holder.get('pid')}); wait for it, or remove {self.lock_path} if that run is dead"
                    ) from None
                self.lock_path.unlink(missing_ok=True)
                continue
            with os.fdopen(descriptor, "w") as handle:
                json.dump(me, handle)
            return
        raise CheckpointError(f"{self.lock_path}: could not take the lock")

    def release_lock(self) -> None:
        holder = self._lock_holder()
        if holder and holder.get("pid") == os.getpid() and holder.get("host") == socket.gethostname():
            self.lock_path.unlink(missing_ok=True)

    def _lock_holder(self) -> dict[str, Any] | None:
        try:
            return json.loads(self.lock_path.read_text())
        except (OSError, ValueError):
            return None


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


def write_text_atomically(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    temporary.write_text(text)
    os.replace(temporary, path)
