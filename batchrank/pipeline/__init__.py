"""One chunk's way through a job: read -> prepare -> score -> write, the same for every executor.

  read     (read.py)     the chunk's rows of the input (or of its staged copy), canonical columns
  prepare  (prepare.py)  render, truncate and tokenize them; a query too long for max_model_len is rejected
  score    (score.py)    the engine, owned by one thread that keeps it fed across chunk boundaries
  write    (write.py)    ranks, the chunk's rejected rows, then its scores part (which marks it done)

ChunkPipeline (chunk.py) runs the four for one chunk on the calling thread, except the engine's work, so an executor
needs only to call `process(chunk)` from a few threads (local) or actors (Ray).
"""
