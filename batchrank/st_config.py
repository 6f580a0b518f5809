"""How a sentence-transformers model turns token vectors into its embedding and compares two embeddings.

Read from the model directory by batchrank itself, not left to vLLM, because vLLM 0.26 recognises only the older
`sentence_transformers.models.*` module names and `pooling_mode_*` keys: a model saved by sentence-transformers 5+
(`sentence_transformers.sentence_transformer.modules.pooling.Pooling`, `"pooling_mode": "mean"`) would get the
architecture's default pooling there and no normalization. The engine is given the result explicitly
(`pooler_config`), so both vLLM versions pool as `SentenceTransformer.encode` does.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from batchrank.errors import SpecError
from batchrank.model_dir import ModelDirectory

# sentence-transformers pooling modes -> vLLM's sequence pooling types (the only ones vLLM has).
POOLING_TYPES = {"cls": "CLS", "mean": "MEAN", "lasttoken": "LAST"}
SIMILARITIES = {"cosine": "cosine", "dot": "dot", "dot_product": "dot", "euclidean": "euclidean",
                "manhattan": "manhattan"}
_MODULES = ("Transformer", "Pooling", "Normalize")  # what vLLM's pooling reproduces


@dataclass(frozen=True)
class SentenceConfig:
    pooling: str  # a key of POOLING_TYPES
    normalize: bool
    similarity: str = "cosine"  # a value of SIMILARITIES
    lowercase: bool = False  # sentence_bert_config.json do_lower_case: the text is lowercased before tokenizing
    include_prompt: bool = True  # False: the prompt's tokens are left out of pooling (vLLM cannot)
    prompts: dict[str, str] = field(default_factory=dict)  # the model's named prompts (used only when asked)
    source: str = "modules.json"

    def pooler_config(self) -> dict[str, Any]:
        """vLLM's `pooler_config` for this model (the same keys in vLLM 0.26 and 0.32)."""
        return {"seq_pooling_type": POOLING_TYPES[self.pooling], "use_activation": self.normalize}


def _json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (ValueError, UnicodeDecodeError) as error:
        raise SpecError(f"{path}: not valid JSON ({error})") from None


def _pooling_mode(path: Path) -> str:
    """The one pooling mode of a Pooling module's config (old `pooling_mode_*_token(s): true` or new keys)."""
    config = _json(path) or {}
    mode = config.get("pooling_mode")
    modes = ([mode] if isinstance(mode, str) else list(mode)) if mode else [
        key.removeprefix("pooling_mode_").removesuffix("_tokens").removesuffix("_token")
        for key, value in config.items() if key.startswith("pooling_mode_") and value is True]
    if len(modes) != 1 or modes[0] not in POOLING_TYPES:
        raise SpecError(f"{path}: pooling {modes or 'unset'} is not one that vLLM pools by; batchrank scores "
                        f"embedding models whose pooling is one of {', '.join(POOLING_TYPES)}")
    return modes[0]


def _module_name(entry: dict[str, Any]) -> str:
    return str(entry.get("type", "")).rsplit(".", 1)[-1]


def read_sentence_config(directory: ModelDirectory) -> SentenceConfig:
    """The model's pooling, normalization, similarity and prompts; without modules.json, mean pooling and no
    normalization (what `SentenceTransformer(path)` builds for a plain transformers model)."""
    root = directory.path
    settings = _json(root / "config_sentence_transformers.json") or {}
    similarity_name = settings.get("similarity_fn_name") or "cosine"
    if similarity_name not in SIMILARITIES:
        raise SpecError(f"{root / 'config_sentence_transformers.json'}: similarity_fn_name {similarity_name!r} is "
                        f"not one batchrank scores with ({', '.join(SIMILARITIES)})")
    prompts = {name: text for name, text in (settings.get("prompts") or {}).items() if text}
    lowercase = bool((_json(root / "sentence_bert_config.json") or {}).get("do_lower_case"))
    modules = _json(root / "modules.json")
    if modules is None:
        return SentenceConfig("mean", False, SIMILARITIES[similarity_name], lowercase, True, prompts,
                              "no modules.json: mean pooling, as SentenceTransformer builds for a plain model")
    unknown = [entry.get("type") for entry in modules if _module_name(entry) not in _MODULES]
    if unknown:
        raise SpecError(f"{root / 'modules.json'}: module(s) {unknown} are not applied by vLLM's pooling, so the "
                        f"scores would not be the model's; batchrank scores models made of {', '.join(_MODULES)}")
    pooling = [entry for entry in modules if _module_name(entry) == "Pooling"]
    if len(pooling) != 1:
        raise SpecError(f"{root / 'modules.json'}: {len(pooling)} Pooling modules; batchrank needs exactly one")
    pooling_path = root / pooling[0].get("path", "") / "config.json"
    include_prompt = (_json(pooling_path) or {}).get("include_prompt", True) is not False
    normalize = any(_module_name(entry) == "Normalize" for entry in modules)
    return SentenceConfig(_pooling_mode(pooling_path), normalize, SIMILARITIES[similarity_name], lowercase,
                          include_prompt, prompts, f"modules.json, {pooling_path.relative_to(root)}")
