"""One thread that runs writes in the order given, while the caller's thread goes on: pyarrow releases the GIL
while it compresses, encodes and writes, so on two cores the next batch is prepared meanwhile."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any


class SerialWriter:
    """Runs `submit`ted calls one after another on its own thread, at most `pending` of them waiting (so the data
    they hold stays bounded). The first error is raised by the next `submit` or by `close`."""

    def __init__(self, pending: int = 4, name: str = "batchrank-writer"):
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self._slots = threading.BoundedSemaphore(pending)
        self._futures: list[Future[Any]] = []

    def submit(self, call: Callable[..., Any], *args: Any) -> None:
        self._raise_errors()
        self._slots.acquire()
        future = self._pool.submit(call, *args)
        future.add_done_callback(lambda _: self._slots.release())
        self._futures.append(future)

    def _raise_errors(self) -> None:
        done = [future for future in self._futures if future.done()]
        self._futures = [future for future in self._futures if not future.done()]
        for future in done:
            future.result()

    def flush(self) -> None:
        """Wait for every call submitted so far; raise the first error, if one failed."""
        futures, self._futures = self._futures, []
        for future in futures:
            future.result()

    def close(self) -> None:
        try:
            self.flush()
        finally:
            self._pool.shutdown(wait=True)
