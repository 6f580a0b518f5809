"""The vLLM scorer factory: checks a job's model before any engine starts, and builds the scorer for its kind."""

from __future__ import annotations

import dataclasses
import difflib
import inspect
from functools import lru_cache
from typing import Any

from batchrank.errors import SpecError
from batchrank.model_dir import ModelDirectory
from batchrank.scoring.base import EnginePlacement, ModelFacts, Scorer
from batchrank.scoring.engine import import_vllm
from batchrank.scoring.engine_args import step_budget_warnings
from batchrank.scoring.input_format import InputFormat
from batchrank.scoring.kinds import detect_model_kind
from batchrank.spec import JobSpec

DTYPES = ("auto", "float32", "float", "float16", "half", "bfloat16")
_SET_ELSEWHERE = {"model": "model.path", "dtype": "model.dtype", "max_model_len": "model.max_model_len",
                  "trust_remote_code": "model.trust_remote_code", "runner": "model.kind"}
# What the checks in `inspect` cut prompts to when nothing names a length (vLLM's own default then).
_DEFAULT_MAX_MODEL_LEN = 2048


@lru_cache(maxsize=1)
def vllm_engine_keys() -> frozenset[str]:
    """Every keyword vllm.LLM takes: its own parameters and the engine arguments it passes on."""
    import_vllm()
    from vllm import LLM
    from vllm.engine.arg_utils import EngineArgs

    own = set(inspect.signature(LLM.__init__).parameters) - {"self", "kwargs"}
    return frozenset(own | {f.name for f in dataclasses.fields(EngineArgs)})


class VllmScorerFactory:
    """Scorers on an in-process vLLM engine. `keep_engine`: leave the engine running after the job for the next one
    in this process (the CLI, whose process ends with its job, and test sessions); a Python caller gets it released."""

    def __init__(self, keep_engine: bool = False):
        self.keep_engine = keep_engine

    def inspect(self, spec: JobSpec) -> ModelFacts:
        try:
            import_vllm()  # first, so that what its import sets in the environment is known (scoring/engine.py)
        except ImportError:
            pass  # a driver that only plans: the engine checks its own arguments where it runs
        directory = ModelDirectory.open(spec.model.path)
        kind = detect_model_kind(spec.model, directory)
        form = InputFormat.of(spec, kind, directory)
        if spec.model.dtype not in DTYPES:
            raise SpecError(f"model.dtype {spec.model.dtype!r}: not a dtype vLLM takes; use one of "
                            f"{', '.join(DTYPES)}")
        limit = directory.max_length()
        if spec.model.max_model_len and limit and spec.model.max_model_len > limit:
            raise SpecError(f"model.max_model_len {spec.model.max_model_len} is more than the model's own limit of "
                            f"{limit} tokens ({directory.path / 'config.json'}); lower it, or leave it out to use "
                            "the model's limit")
        self._check_engine_keys(spec.model.engine)
        max_model_len = spec.model.max_model_len or limit
        tokenizer = form.load_tokenizer(spec)
        # Building the encoder checks the format against the tokenizer (a pair encoding it cannot reproduce, a
        # document prefix that fills max_model_len) before anything is written.
        encoder = form.encoder(tokenizer, max_model_len or _DEFAULT_MAX_MODEL_LEN)
        warnings = form.warnings(tokenizer, encoder) + step_budget_warnings(spec.model.engine, max_model_len)
        return ModelFacts(kind, form.describe(tokenizer, encoder), max_model_len, directory.fingerprint(),
                          directory.weight_bytes, warnings=tuple(warnings))

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
        if not facts.max_model_len:
            return []
        form = InputFormat.of(spec, facts.kind, ModelDirectory.open(spec.model.path))
        return form.encoder(form.load_tokenizer(spec), facts.max_model_len).too_long_queries(queries)

    def create(self, spec: JobSpec, placement: EnginePlacement) -> Scorer:
        from batchrank.scoring import engine_args

        import_vllm()
        from batchrank.scoring.embedding_scorer import EmbeddingScorer
        from batchrank.scoring.pair_scorer import PairScorer
        from batchrank.scoring.requests import EngineRequests

        directory = ModelDirectory.open(spec.model.path)
        kind = detect_model_kind(spec.model, directory)
        form = InputFormat.of(spec, kind, directory)
        arguments = engine_args.engine_arguments(spec, kind, directory, placement.engines_per_gpu)
        if form.sentence is not None:  # explicit, so that vLLM 0.26 and 0.32 pool alike (st_config.py)
            arguments["pooler_config"] = form.sentence.pooler_config()
        elif form.score == "logit":  # the classifier's output before its sigmoid/softmax: it never saturates
            arguments["pooler_config"] = {**(arguments.get("pooler_config") or {}), "use_activation": False}
        environment = engine_args.engine_environment(spec.model.batch_invariant)
        tokenizer = form.load_tokenizer(spec)
        requests = EngineRequests(arguments, "embed" if kind == "embedding" else "classify", self.keep_engine,
                                  environment)
        encoder = form.encoder(tokenizer, requests.max_model_len)
        described = {"kind": kind, "input_format": form.describe(tokenizer, encoder), "template": form.template_name,
                     "batch_invariant": spec.model.batch_invariant}
        if form.sentence is not None:
            return EmbeddingScorer(encoder, form.sentence.similarity, requests, described)
        return PairScorer(kind, encoder, requests, described, logit=form.score == "logit")
