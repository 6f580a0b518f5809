"""Requests of many chunks in one running vLLM engine: added one chunk at a time, finished in any order.

EngineRequests talks to the engine (add a prompt's token ids, step, collect finished outputs); ChunkRequests keeps
which request belongs to which chunk, so that a chunk is handed back as soon as its last request is done.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from batchrank.scoring import engine as vllm_engine


@dataclass
class _OpenChunk:
    values: list[Any]
    remaining: int
    finish: Callable[[list[Any]], np.ndarray]


@dataclass
class ChunkRequests:
    """Request ids `KEY-POSITION`, and the values of each chunk's requests as they come back."""

    _open: dict[int, _OpenChunk] = field(default_factory=dict)

    def open(self, key: int, count: int, finish: Callable[[list[Any]], np.ndarray]) -> None:
        """Expect `count` requests for chunk `key`; `finish` turns their values (by position) into its scores."""
        self._open[key] = _OpenChunk([None] * count, count, finish)

    @staticmethod
    def request_id(key: int, position: int) -> str:
        return f"{key}-{position}"

    def has_open(self) -> bool:
        return bool(self._open)

    def collect(self, results: Iterable[tuple[str, Any]]) -> list[tuple[int, np.ndarray | BaseException]]:
        """Record finished requests; the chunks now complete, with their scores (or the error of a failed one)."""
        finished: list[tuple[int, np.ndarray | BaseException]] = []
        for request_id, value in results:
            key_text, _, position_text = request_id.partition("-")
            key, position = int(key_text), int(position_text)
            chunk = self._open.get(key)
            if chunk is None:
                continue  # a chunk already failed: its late requests are dropped
            if isinstance(value, BaseException):
                del self._open[key]
                finished.append((key, value))
                continue
            chunk.values[position] = value
            chunk.remaining -= 1
            if chunk.remaining == 0:
                del self._open[key]
                try:
                    finished.append((key, chunk.finish(chunk.values)))
                except Exception as error:  # noqa: BLE001 - this chunk's own failure
                    finished.append((key, error))
        return finished


class EngineRequests:
    """One started vLLM engine, driven request by request (see vllm_loop for the version-specific calls)."""

    def __init__(self, arguments: dict[str, Any], task: str, keep_engine: bool):
        from batchrank.scoring import vllm_loop

        self.arguments, self.task, self.keep_engine = arguments, task, keep_engine
        self.llm, self.start_seconds = vllm_engine.start_engine(arguments)
        self.max_model_len = int(self.llm.model_config.max_model_len)
        self.loop = vllm_loop.RequestLoop(self.llm, task)
        self.cached_tokens = 0
        self.prompt_tokens = 0

    def add_many(self, request_ids: list[str], token_ids: list[list[int]],
                 token_type_starts: list[int] | None = None) -> None:
        self.prompt_tokens += sum(len(ids) for ids in token_ids)
        self.loop.add_many(request_ids, token_ids, token_type_starts)

    def step(self) -> list[tuple[str, Any]]:
        """Finished requests since the last step: (request id, its output data, or the error that failed it)."""
        finished = []
        for output in self.loop.step():
            self.cached_tokens += output.cached_tokens
            finished.append((output.request_id, output.error if output.error is not None else output.data))
        return finished

    def describe(self) -> dict[str, Any]:
        return {
            "max_model_len": self.max_model_len,
            "engine_arguments": self.arguments,
            "engine_start_seconds": round(self.start_seconds, 2),
            # Prompt tokens served from the prefix cache (whole cache blocks only), over all prompt tokens sent.
            "prefix_cache_hit_share": round(self.cached_tokens / self.prompt_tokens, 4) if self.prompt_tokens else 0.0,
            "prefix_cache_hit_tokens": self.cached_tokens,
            "prompt_tokens_sent": self.prompt_tokens,
        }

    def close(self) -> None:
        self.loop.abort_all()
        if not self.keep_engine:
            vllm_engine.release_engine(self.arguments)


class EngineScorer:
    """What the vLLM scorers share: a chunk's prompts become requests of the one running engine, and the chunk is
    finished (its `finish` turns the request values into its scores) when the last of them is back. Subclasses
    prepare chunks and say how a request's output becomes a value (`value_of`)."""

    def __init__(self, requests: EngineRequests, description: dict[str, Any]):
        self.requests, self.description = requests, description
        self.chunks = ChunkRequests()

    def submit_requests(self, key: int, token_ids: list[list[int]], finish: Callable[[list[Any]], np.ndarray],
                        token_type_starts: list[int] | None = None) -> None:
        self.chunks.open(key, len(token_ids), finish)
        ids = [ChunkRequests.request_id(key, position) for position in range(len(token_ids))]
        self.requests.add_many(ids, token_ids, token_type_starts)

    @staticmethod
    def value_of(output: Any) -> Any:
        return output

    def step(self) -> list[tuple[int, np.ndarray | BaseException]]:
        return self.chunks.collect(
            (rid, data if isinstance(data, BaseException) else self.value_of(data)) for rid, data in self.requests.step()
        )

    def has_unfinished(self) -> bool:
        return self.chunks.has_open()

    def describe(self) -> dict[str, Any]:
        return {**self.description, **self.requests.describe()}

    def close(self) -> None:
        self.requests.close()
