"""What a job's model is fed, per kind: checked against the spec and the tokenizer before any engine starts,
described in words a user can hold against the model card (run.json, `batchrank validate`), and turned into the
prepare stage's encoder.

- qwen3-yes-no: a text template (default qwen3), rendered and tokenized by prompts.PromptEncoder.
- cross-encoder: the tokenizer's own pair encoding (`pair`, the default: pair_encoding.PairEncoder, with token
  types where the tokenizer has them), or a text template for a model trained on that flat text.
- embedding: each query and document alone, with optional prefixes, pooled and compared as the model's
  sentence-transformers config says (embedding_inputs.TextEncoder, st_config.SentenceConfig).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from batchrank.embedding_inputs import EmbeddingPrompts, TextEncoder, lowercase_like_sentence_transformers
from batchrank.errors import SpecError
from batchrank.model_dir import ModelDirectory
from batchrank.pair_encoding import PairEncoder
from batchrank.prompts import PAIR_TEMPLATE, PromptEncoder, Template, parse_template, resolve_instruction
from batchrank.scoring.kinds import ScoreType, default_template, score_type
from batchrank.spec import JobSpec, ModelKind
from batchrank.st_config import SentenceConfig, read_sentence_config

Encoder = PromptEncoder | PairEncoder | TextEncoder
# Text that looks like a special token: [SEP], [CLS], <|im_start|>, <s>, </s>, <pad>, ...
_SPECIAL_LOOKING = re.compile(r"\[[A-Z][A-Z_]*\]|<\|[^<>|\s]+\|>|</?s>|<(?:pad|unk|mask|cls|sep)>")
_SCORES = {
    ("qwen3-yes-no", "probability"): "P(yes): softmax over the 'no' and 'yes' logits at the last position",
    ("qwen3-yes-no", "logit"): "logit: the 'yes' logit minus the 'no' logit at the last position, log(P(yes)/P(no)) "
                               "(sentence-transformers' LogitScore), float32, never saturated",
    ("cross-encoder", "probability"): "the classifier's probability: sigmoid of its logit (with several labels, the "
                                      "last label's softmax probability)",
    ("cross-encoder", "logit"): "logit: the classifier's raw logit, no sigmoid (with several labels, the last "
                                "label's logit minus the logsumexp of the others: the log-odds of its softmax "
                                "probability), float32, never saturated",
}


@dataclass(frozen=True)
class InputFormat:
    kind: ModelKind
    template: Template | None  # a text template; None for the pair encoding and for embeddings
    instruction: str | None
    prompts: EmbeddingPrompts | None = None  # embedding only
    sentence: SentenceConfig | None = None  # embedding only
    score: ScoreType = "probability"  # what the output's score column holds (model.score)

    @classmethod
    def of(cls, spec: JobSpec, kind: ModelKind, directory: ModelDirectory) -> InputFormat:
        """The format the spec asks for; SpecError (naming the field) for what cannot go together."""
        prompt = spec.prompt
        score = score_type(kind, spec.model.score)
        if kind == "embedding":
            if prompt.template:
                raise SpecError("prompt.template: an embedding model embeds query and document apart; remove it, "
                                "and use prompt.query_prefix / prompt.document_prefix for its prompts")
            if "pooler_config" in spec.model.engine:
                raise SpecError("model.engine.pooler_config: the embedding kind pools as the model's "
                                "sentence-transformers config says (modules.json); remove it")
            sentence = read_sentence_config(directory)
            prompts = EmbeddingPrompts.from_spec(prompt)
            if not sentence.include_prompt and (prompts.query_prefix or prompts.document_prefix):
                raise SpecError(f"prompt: the model's pooling leaves its prompt out ({sentence.source}: "
                                "include_prompt false), which vLLM cannot do; remove the prefixes")
            return cls(kind, None, None, prompts, sentence, score)
        for field in ("query_prefix", "document_prefix"):
            if getattr(prompt, field) is not None:
                raise SpecError(f"prompt.{field}: only the embedding kind takes prefixes; a {kind} model is fed "
                                "its template (prompt.template: a custom one can hold any text)")
        pooler = spec.model.engine.get("pooler_config")
        if isinstance(pooler, dict) and "use_activation" in pooler:
            raise SpecError("model.engine.pooler_config.use_activation: set model.score instead (logit: the raw "
                            "logit; probability, the default: after the activation), so that run.json records "
                            "which one the scores are")
        name = prompt.template or default_template(kind)
        if name == PAIR_TEMPLATE:
            if kind != "cross-encoder":
                raise SpecError(f"prompt.template pair: the tokenizer's pair encoding is for cross-encoders; a "
                                f"{kind} model takes a text template (default {default_template(kind)})")
            return cls(kind, None, prompt.instruction, score=score)
        return cls(kind, parse_template(name), prompt.instruction, score=score)

    @property
    def template_name(self) -> str:
        if self.kind == "embedding":
            return "embedding"
        return self.template.name if self.template else PAIR_TEMPLATE

    def load_tokenizer(self, spec: JobSpec) -> Any:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(spec.model.path, trust_remote_code=spec.model.trust_remote_code)
        if self.sentence is not None and self.sentence.lowercase:
            lowercase_like_sentence_transformers(tokenizer)
        return tokenizer

    def encoder(self, tokenizer: Any, max_model_len: int) -> Encoder:
        if self.prompts is not None:
            return TextEncoder(tokenizer, max_model_len, self.prompts)
        if self.template is None:
            return PairEncoder(tokenizer, max_model_len)
        return PromptEncoder(tokenizer, self.template, self.instruction, max_model_len)

    def describe(self, tokenizer: Any, encoder: Encoder) -> dict[str, Any]:
        """Exactly what the model is fed and how its score is made."""
        if isinstance(encoder, TextEncoder):
            return self._describe_embedding(tokenizer, encoder)
        described: dict[str, Any] = {"kind": self.kind, "template": self.template_name}
        if isinstance(encoder, PairEncoder):
            described.update(encoder.wrapping.describe(tokenizer))
            described["truncation"] = "document tokens only, from the end (only_second); the query is never cut"
        else:
            assert self.template is not None
            described["prompt"] = self.template.text()
            if self.template.uses_instruction:
                described["instruction"] = resolve_instruction(self.instruction)
            lead, trail = (" ".join(tokenizer.convert_ids_to_tokens(ids)) for ids in (encoder.lead, encoder.trail))
            if lead or trail:
                described["encoding"] = f"{lead} {{prompt}} {trail}".strip()
            if self.kind == "cross-encoder":
                described["token_type_ids"] = "none (every token type 0)"
            described["truncation"] = "document tokens only, from the end; the query and instruction are never cut"
        described["score"] = _SCORES[self.kind, self.score]
        return described

    def _describe_embedding(self, tokenizer: Any, encoder: TextEncoder) -> dict[str, Any]:
        assert self.sentence is not None
        sentence = self.sentence
        described: dict[str, Any] = {"kind": self.kind, **encoder.describe(tokenizer), "pooling": sentence.pooling,
                                     "normalize": sentence.normalize, "similarity": sentence.similarity,
                                     "pooling_from": sentence.source}
        if sentence.lowercase:
            described["lowercase"] = True
        if sentence.prompts:
            described["model_prompts"] = sentence.prompts
        described["truncation"] = "documents from the end to fit max_model_len; a query that does not fit is too long"
        described["score"] = f"{sentence.similarity} similarity of the query's and the document's embeddings"
        return described

    def warnings(self, tokenizer: Any, encoder: Encoder) -> list[str]:
        """What is allowed but probably not what the model was trained on."""
        if isinstance(encoder, TextEncoder):
            prompts = self.sentence.prompts if self.sentence else {}
            if prompts and not (encoder.prompts.query_prefix or encoder.prompts.document_prefix):
                return [f"the model names prompts {prompts} (config_sentence_transformers.json) and the spec sets "
                        "none; set prompt.query_prefix / prompt.document_prefix if its model card uses them"]
            return []
        if isinstance(encoder, PairEncoder):
            if self.instruction is not None:
                return ["prompt.instruction is not used: the pair encoding holds only the query and the document"]
            return []
        return self._template_warnings(tokenizer)

    def _template_warnings(self, tokenizer: Any) -> list[str]:
        assert self.template is not None
        name, found = self.template.name, []
        known = set(tokenizer.get_added_vocab()) | set(tokenizer.all_special_tokens)
        for text in sorted(set(_SPECIAL_LOOKING.findall(self.template.text())) - known):
            pieces = len(tokenizer(text, add_special_tokens=False)["input_ids"])
            found.append(f"prompt.template {name}: {text} is not a special token of this model's tokenizer "
                         f"({type(tokenizer).__name__}): it goes into the model as the plain text {text!r} "
                         f"({pieces} tokens), right only for a model trained on that text")
        if self.kind == "cross-encoder":
            pair = _pair_format(tokenizer)
            if pair is not None:
                found.append(f"prompt.template {name}: one flat text, every token type 0; this model's tokenizer "
                             f"encodes a pair as {pair} (template pair, the default), which is what "
                             "sentence-transformers' CrossEncoder feeds it")
        return found


def _pair_format(tokenizer: Any) -> str | None:
    """The tokenizer's pair encoding in words, None when it has none that batchrank can reproduce."""
    try:
        return PairEncoder(tokenizer, 1 << 20).wrapping.describe(tokenizer)["encoding"]
    except SpecError:
        return None
