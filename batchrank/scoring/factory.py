"""The vLLM scorer factory: checks a job's model before any engine starts, and builds the scorer for its kind."""

from __future__ import annotations

import dataclasses
import difflib
import inspect
from functools import lru_cache
from typing import Any

from batchrank.errors import SpecError
from batchrank.model_dir import ModelDirectory
from batchrank.prompts import PromptEncoder, Template, parse_template, resolve_instruction
from batchrank.scoring.base import EnginePlacement, ModelFacts, Scorer
from batchrank.scoring.kinds import default_template, detect_model_kind
from batchrank.spec import JobSpec, ModelKind

DTYPES = ("auto", "float32", "float", "float16", "half", "bfloat16")
_SET_ELSEWHERE = {"model": "model.path", "dtype": "model.dtype", "max_model_len": "model.max_model_len",
                  "trust_remote_code": "model.trust_remote_code", "runner": "model.kind"}


@lru_cache(maxsize=1)
def vllm_engine_keys() -> frozenset[str]:
    """Every keyword vllm.LLM takes: its own parameters and the engine arguments it passes on."""
    from vllm import LLM
    from vllm.engine.arg_utils import EngineArgs

    own = set(inspect.signature(LLM.__init__).parameters) - {"self", "kwargs"}
    return frozenset(own | {f.name for f in dataclasses.fields(EngineArgs)})


def _template_of(spec: JobSpec, kind: ModelKind) -> Template | None:
    if kind == "embedding":
        if spec.prompt.template:
            raise SpecError("prompt.template: an embedding model embeds query and document apart; remove it")
        return None
    return parse_template(spec.prompt.template or default_template(kind) or "sep")


def input_format(spec: JobSpec, kind: ModelKind, template: Template | None) -> dict[str, Any]:
    """What the model is fed, in words a user can check against the model card (run.json, `batchrank validate`)."""
    if template is None:
        instruction = spec.prompt.instruction
        query = "Instruct: {instruction}\\nQuery: {query}" if instruction else "{query}"
        return {"kind": kind, "query": query, "document": "{document}", "instruction": instruction,
                "truncation": "each side cut at its end to fit max_model_len"}
    described = {"kind": kind, "template": template.name, "prompt": template.text(),
                 "truncation": "document tokens only, from the end, to fit max_model_len"}
    if template.uses_instruction:
        described["instruction"] = resolve_instruction(spec.prompt.instruction)
    return described


class VllmScorerFactory:
    """Scorers on an in-process vLLM engine. `keep_engine`: leave the engine running after the job for the next one
    in this process (the CLI, whose process ends with its job, and test sessions); a Python caller gets it released."""

    def __init__(self, keep_engine: bool = False):
        self.keep_engine = keep_engine

    def inspect(self, spec: JobSpec) -> ModelFacts:
        directory = ModelDirectory.open(spec.model.path)
        kind = detect_model_kind(spec.model, directory)
        template = _template_of(spec, kind)
        if spec.model.dtype not in DTYPES:
            raise SpecError(f"model.dtype {spec.model.dtype!r}: not a dtype vLLM takes; use one of "
                            f"{', '.join(DTYPES)}")
        limit = directory.max_length()
        if spec.model.max_model_len and limit and spec.model.max_model_len > limit:
            raise SpecError(f"model.max_model_len {spec.model.max_model_len} is more than the model's own limit of "
                            f"{limit} tokens ({directory.path / 'config.json'}); lower it, or leave it out to use "
                            "the model's limit")
        self._check_engine_keys(spec.model.engine)
        return ModelFacts(kind, input_format(spec, kind, template), spec.model.max_model_len or limit,
                          directory.fingerprint(), directory.weight_bytes)

    @staticmethod
    def _check_engine_keys(engine: dict[str, Any]) -> None:
        for key in sorted(engine):
            if key in _SET_ELSEWHERE:
                raise SpecError(f"model.engine.{key}: set it with {_SET_ELSEWHERE[key]} instead")
        try:
            known = vllm_engine_keys()
        except ImportError:  # no vLLM here (a driver that only plans): the engine checks its own arguments
            return
        for key in sorted(engine):
            if key not in known:
                close = difflib.get_close_matches(key, known, n=1)
                hint = f"; did you mean {close[0]}?" if close else ""
                raise SpecError(f"model.engine.{key}: not an argument of this vLLM's engine{hint}")

    def too_long_queries(self, spec: JobSpec, facts: ModelFacts, queries: list[str]) -> list[int]:
        template = _template_of(spec, facts.kind)
        if template is None or not facts.max_model_len:
            return []
        encoder = PromptEncoder(_tokenizer(spec), template, spec.prompt.instruction, facts.max_model_len)
        return encoder.too_long_queries(queries)

    def create(self, spec: JobSpec, placement: EnginePlacement) -> Scorer:
        from batchrank.scoring import engine
        from batchrank.scoring.embedding_scorer import EmbeddingScorer
        from batchrank.scoring.pair_scorer import PairScorer
        from batchrank.scoring.requests import EngineRequests

        directory = ModelDirectory.open(spec.model.path)
        kind = detect_model_kind(spec.model, directory)
        template = _template_of(spec, kind)
        arguments = engine.engine_arguments(spec, kind, directory, placement.engines_per_gpu)
        engine.use_batch_invariant_kernels(spec.model.batch_invariant)
        requests = EngineRequests(arguments, "embed" if kind == "embedding" else "classify", self.keep_engine)
        described = {"kind": kind, "input_format": input_format(spec, kind, template),
                     "template": template.name if template else "embedding",
                     "batch_invariant": spec.model.batch_invariant}
        encoder = PromptEncoder(_tokenizer(spec), template or parse_template("sep"), spec.prompt.instruction,
                                requests.max_model_len)
        if kind == "embedding":
            return EmbeddingScorer(encoder, spec.prompt.instruction, requests, described)
        return PairScorer(kind, encoder, requests, described)


def _tokenizer(spec: JobSpec) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(spec.model.path, trust_remote_code=spec.model.trust_remote_code)
