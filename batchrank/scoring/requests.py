"""Requests of many chunks in one running vLLM engine: added one chunk at a time, finished in any order.

EngineRequests talks to the engine (start it, add a prompt's token ids, step, collect finished outputs, stop it);
EngineScorer records each chunk's requests in the shared InEngine record (scoring/in_engine.py), so that a chunk is
handed back as soon as its last request is done and a stalled engine can be named.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np

from batchrank.redact import mask_secret_fields
from batchrank.scoring import engine as vllm_engine
from batchrank.scoring.in_engine import ChunkInEngine, InEngine

log = logging.getLogger(__name__)


class EngineRequests:
    """One started vLLM engine, driven request by request (see vllm_loop for the version-specific calls)."""

    def __init__(self, arguments: dict[str, Any], task: str, keep_engine: bool,
                 environment: dict[str, str] | None = None):
        from batchrank.scoring import vllm_loop

        self.arguments, self.task, self.keep_engine = arguments, task, keep_engine
        self.environment = environment or {}
        self.llm, self.start_seconds = vllm_engine.start_engine(arguments, self.environment)
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

    def settings(self) -> dict[str, Any]:
        """What decides how this engine schedules prompts, as vLLM resolved it."""
        return vllm_engine.scheduling_settings(self.llm)

    def describe(self) -> dict[str, Any]:
        return {
            "max_model_len": self.max_model_len,
            "engine_arguments": mask_secret_fields(self.arguments),  # run.json: hf_token and the like masked
            "engine_start_seconds": round(self.start_seconds, 2),
            # Prompt tokens served from the prefix cache (whole cache blocks only), over all prompt tokens sent.
            "prefix_cache_hit_share": round(self.cached_tokens / self.prompt_tokens, 4) if self.prompt_tokens else 0.0,
            "prefix_cache_hit_tokens": self.cached_tokens,
            "prompt_tokens_sent": self.prompt_tokens,
        }

    def abandon(self) -> None:
        """Stop the engine whatever keep_engine says, and wake a step blocked waiting for its output."""
        vllm_engine.release_engine(self.arguments, self.environment)
        vllm_engine.wake_blocked_step(self.llm, RuntimeError("the engine was stopped: it stalled"))

    def close(self, request_ids: list[str]) -> None:
        """Abort the requests still in the engine; release it unless this process keeps it for another job."""
        try:
            self.loop.abort(request_ids)
        except Exception as error:  # noqa: BLE001 - a dead or stopped engine has nothing left to abort
            log.debug("abort on close: %s", error)
        if not self.keep_engine:
            vllm_engine.release_engine(self.arguments, self.environment)


class EngineScorer:
    """What the vLLM scorers share: a chunk's prompts become requests of the one running engine, and the chunk is
    finished (its `finish` turns the request values into its scores) when the last of them is back. Subclasses
    prepare chunks and say how a request's output becomes a value (`value_of`)."""

    def __init__(self, requests: EngineRequests, description: dict[str, Any]):
        self.requests, self.description = requests, description
        self.in_engine = InEngine()

    def submit_requests(self, chunk: ChunkInEngine, token_ids: list[list[int]],
                        finish: Callable[[list[Any]], np.ndarray], token_type_starts: list[int] | None = None) -> None:
        longest = max((len(ids) for ids in token_ids), default=0)
        request_ids = self.in_engine.add(chunk, len(token_ids), finish, longest)
        self.requests.add_many(request_ids, token_ids, token_type_starts)

    @staticmethod
    def value_of(output: Any) -> Any:
        return output

    def step(self) -> list[tuple[ChunkInEngine, np.ndarray | BaseException]]:
        return self.in_engine.complete(
            (rid, data if isinstance(data, BaseException) else self.value_of(data)) for rid, data in self.requests.step()
        )

    def engine_settings(self) -> dict[str, Any]:
        return self.requests.settings()

    def abandon(self) -> None:
        self.requests.abandon()

    def describe(self) -> dict[str, Any]:
        return {**self.description, **self.requests.describe()}

    def close(self) -> None:
        self.requests.close(self.in_engine.request_ids())
        self.in_engine.remove_all()
