"""ChunkPipeline: read -> prepare -> score -> write for one chunk, on the calling thread (the engine's work on its
own thread), shared by every executor."""

from __future__ import annotations

from batchrank.io.parts import PartWritten
from batchrank.output.checkpoint import verify_part
from batchrank.pipeline.context import JobContext
from batchrank.pipeline.prepare import ChunkPreparer
from batchrank.pipeline.read import ChunkReader
from batchrank.pipeline.score import EngineLoop
from batchrank.pipeline.write import ChunkWriter
from batchrank.plan import Chunk
from batchrank.scoring.base import Scorer


class ChunkPipeline:
    def __init__(self, context: JobContext, scorer: Scorer, worker: str):
        self.context = context
        self.reader = ChunkReader(context)
        self.preparer = ChunkPreparer(scorer, context.files, context.spec.input.on_bad_rows)
        self.engine = EngineLoop(scorer, worker, context.spec.run.stall_timeout)
        # A checkpoint planned before parts carried input_row goes on without it: its parts stay alike.
        row_id = bool(context.manifest.fingerprint.get("output.input_row"))
        self.writer = ChunkWriter(context.layout, context.spec.output.keep_columns, worker, row_id)

    def process(self, chunk: Chunk, retry: bool = False) -> PartWritten:
        """Score one chunk and write its part. On a retry, a part already there (written by an attempt whose
        reply was lost with its worker) is done: done is done."""
        if retry:
            existing = verify_part(self.context.layout, chunk)
            if existing is not None:
                return existing
        work = self.preparer.prepare(self.reader.read(chunk))
        scores = self.engine.submit(work.prepared, f"chunk {chunk.chunk_id} ({chunk.rows})").result()
        return self.writer.write(work, scores)

    def close(self) -> None:
        self.engine.stop()
