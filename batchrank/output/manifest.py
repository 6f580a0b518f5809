"""job.json: the plan of a job (its chunks) and the fingerprint of everything its parts depend on."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from batchrank import storage
from batchrank.errors import CheckpointError, RunFailure
from batchrank.output.layout import OutputLayout
from batchrank.plan import Chunk

# 2: the fingerprint is a flat mapping of named settings; input files by size and Parquet footer, not mtime.
MANIFEST_VERSION = 2


@dataclass(frozen=True)
class Manifest:
    fingerprint: dict[str, Any]
    chunks: list[Chunk]
    total_rows: int  # rows planned for scoring (rows rejected before scoring are not among them)
    staged_input: str | None  # the grouped copy the chunks index into, when the input was not grouped
    rejected_rows: int = 0  # rows rejected before scoring (input.on_bad_rows: skip), in rejects/plan.parquet
    on_bad_rows: str = "error"  # the setting the plan was made with
    queries: int = 0
    extra: dict[str, Any] = field(default_factory=dict)  # facts of the plan for status and run.json

    def to_json(self) -> dict[str, Any]:
        return {
            "version": MANIFEST_VERSION,
            "fingerprint": self.fingerprint,
            "total_rows": self.total_rows,
            "rejected_rows": self.rejected_rows,
            "on_bad_rows": self.on_bad_rows,
            "queries": self.queries,
            "staged_input": self.staged_input,
            "extra": self.extra,
            "chunks": [[c.start, c.num_rows] for c in self.chunks],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Manifest:
        # Chunk ids (and so part names) are positions in this list, never strings read from the file.
        chunks = [Chunk(i, int(start), int(rows)) for i, (start, rows) in enumerate(data["chunks"])]
        return cls(data["fingerprint"], chunks, int(data["total_rows"]), data["staged_input"],
                   int(data["rejected_rows"]), str(data["on_bad_rows"]), int(data["queries"]), dict(data["extra"]))


def read_manifest(layout: OutputLayout) -> Manifest | None:
    """The manifest in OUTPUT/job.json; None when the directory holds none (a new job)."""
    path = layout.manifest
    with storage.reaching(path):  # a missing bucket or no credentials: one clear line
        if not path.exists():
            return None
        try:
            data = json.loads(path.read_text())
        except (ValueError, UnicodeDecodeError) as error:
            raise CheckpointError(f"{path}: unreadable checkpoint manifest ({error}); rerun with --overwrite") from None
    version = data.get("version") if isinstance(data, dict) else None
    if version != MANIFEST_VERSION:
        raise CheckpointError(
            f"{path}: a checkpoint of manifest version {version}, and this batchrank reads version "
            f"{MANIFEST_VERSION}; finish it with the batchrank that started it, or rerun with --overwrite"
        )
    try:
        return Manifest.from_json(data)
    except (KeyError, TypeError, ValueError) as error:
        raise CheckpointError(f"{path}: unreadable checkpoint manifest ({error!r}); rerun with --overwrite") from None


def write_text_or_fail(path: storage.StoragePath, text: str) -> None:
    """Write atomically; a write error (a full disk) is a RunFailure naming the path, the old file left as it was."""
    try:
        path.write_text(text)
    except OSError as error:
        raise RunFailure(f"{path}: cannot write: {error}") from error


def manifest_text(manifest: Manifest) -> str:
    """job.json: indented, but one line per chunk (a billion pairs in 50,000 chunks: about 1 MB, not 5)."""
    placeholder = "\0chunks\0"
    text = json.dumps({**manifest.to_json(), "chunks": placeholder}, indent=1)
    chunks = ",\n".join(f"  [{chunk.start},{chunk.num_rows}]" for chunk in manifest.chunks)
    return text.replace(json.dumps(placeholder), f"[\n{chunks}\n ]" if chunks else "[]")


def write_manifest(layout: OutputLayout, manifest: Manifest) -> None:
    layout.scores.mkdir()
    write_text_or_fail(layout.manifest, manifest_text(manifest))
