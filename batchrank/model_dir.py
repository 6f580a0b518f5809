"""A local model directory: its config, its files, their fingerprint, and the facts batchrank derives from them.

The one place that reads a model directory before an engine starts: the kind of model (detected from config.json),
the longest sequence it takes, the bytes of its weights (for placing engines on a GPU), the size of its KV cache per
token, and a fingerprint of every file the engine or the tokenizer reads, so a changed checkpoint or tokenizer is
noticed on resume while a copy of the same files under another path is not.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from batchrank.errors import SpecError
from batchrank.storage import StoragePath

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf")
# Files that no engine or tokenizer reads: documentation, pictures, version-control metadata.
_IGNORED_SUFFIXES = (".md", ".png", ".jpg", ".jpeg", ".gif", ".svg")
_IGNORED_PREFIXES = (".", "LICENSE", "NOTICE")
# Files up to this size are hashed whole; larger ones (weights) by their size and evenly spaced samples, which any
# re-training or fine-tuning changes, at the cost of a few reads instead of reading gigabytes on every start.
_WHOLE_HASH_BYTES = 16 << 20
_SAMPLES, _SAMPLE_BYTES = 64, 64 << 10
# config.json keys a model's longest sequence may be under (the ones vLLM reads); the smallest wins.
_LENGTH_KEYS = ("max_position_embeddings", "n_positions", "max_seq_len", "seq_length", "max_sequence_length",
                "max_seq_length", "seq_len")


@dataclass
class ModelDirectory:
    path: Path
    config: dict[str, Any] = field(repr=False)

    @classmethod
    def open(cls, path: str | Path) -> ModelDirectory:
        """Check that `path` is a model directory (exists, a config.json that parses, weights); SpecError if not."""
        if StoragePath.is_uri(str(path)):
            raise SpecError(f"model.path {path}: an object-store URI; vLLM loads a model from a local directory: copy "
                            "it to the same local path on every machine that scores")
        root = Path(path)
        if not root.exists():
            raise SpecError(f"model.path {path}: no such directory; model.path must be a local model directory "
                            "(batchrank never downloads from a hub)")
        if not root.is_dir():
            raise SpecError(f"model.path {path}: a file, not a directory; give the directory that holds config.json")
        config_path = root / "config.json"
        if not config_path.is_file():
            raise SpecError(f"model.path {path}: no config.json there; model.path must be a local model directory")
        try:
            config = json.loads(config_path.read_text())
        except (ValueError, UnicodeDecodeError) as error:
            raise SpecError(f"{config_path}: not valid JSON ({error})") from None
        if not isinstance(config, dict):
            raise SpecError(f"{config_path}: not a JSON object")
        directory = cls(root, config)
        if not directory.weight_files:
            raise SpecError(f"model.path {path}: no weight files ({', '.join('*' + s for s in WEIGHT_SUFFIXES)}) "
                            "next to config.json")
        return directory

    @property
    def text_config(self) -> dict[str, Any]:
        """The language model's part of config.json (multimodal configs nest it under text_config)."""
        return self.config.get("text_config", self.config)

    @property
    def architectures(self) -> list[str]:
        return list(self.config.get("architectures") or [])

    @cached_property
    def files(self) -> list[Path]:
        """Every file an engine or tokenizer may read, relative to the directory, sorted."""
        found = []
        for path in sorted(self.path.rglob("*")):
            relative = path.relative_to(self.path)
            if any(part.startswith(_IGNORED_PREFIXES) for part in relative.parts):
                continue
            if path.is_file() and path.suffix.lower() not in _IGNORED_SUFFIXES:
                found.append(relative)
        return found

    @property
    def weight_files(self) -> list[Path]:
        return [f for f in self.files if f.suffix in WEIGHT_SUFFIXES]

    @property
    def weight_bytes(self) -> int:
        """Bytes of the checkpoint's weight files (what the engine loads, give or take a dtype conversion)."""
        return sum((self.path / f).stat().st_size for f in self.weight_files)

    def is_sentence_transformer(self) -> bool:
        return (self.path / "modules.json").is_file()

    def max_length(self) -> int | None:
        """The longest sequence the model takes, derived as vLLM's pooling runner derives it: the config's length
        keys; for absolute position embeddings (BERT, XLM-R) no more than the tokenizer's model_max_length; and a
        sentence-transformers max_seq_length in place of both (None when nothing names one)."""
        sentence = self._json("sentence_bert_config.json")
        if isinstance(sentence.get("max_seq_length"), int):
            return int(sentence["max_seq_length"])
        config = self.text_config
        lengths = [int(config[key]) for key in _LENGTH_KEYS if isinstance(config.get(key), int) and config[key] > 0]
        if not lengths:
            return None
        scaling = config.get("rope_scaling") or {}
        factor = scaling.get("factor") if scaling.get("rope_type", scaling.get("type")) in ("yarn", "dynamic") else None
        length = int(min(lengths) * factor) if factor else min(lengths)
        tokenizer_limit = self._json("tokenizer_config.json").get("model_max_length")
        if config.get("position_embedding_type") == "absolute" and isinstance(tokenizer_limit, int):
            length = min(length, tokenizer_limit)
        return length

    def _json(self, name: str) -> dict[str, Any]:
        """A JSON object next to config.json ({} when absent or unreadable: vLLM then ignores it too)."""
        try:
            value = json.loads((self.path / name).read_text())
        except (OSError, ValueError, UnicodeDecodeError):
            return {}
        return value if isinstance(value, dict) else {}

    def kv_cache_bytes_per_token(self, dtype_bytes: int = 2) -> int:
        """Keys and values of every layer for one token (bf16/fp16 cache by default)."""
        config = self.text_config
        heads = config["num_attention_heads"]
        head_dim = config.get("head_dim") or config["hidden_size"] // heads
        kv_heads = config.get("num_key_value_heads", heads)
        return 2 * config["num_hidden_layers"] * kv_heads * head_dim * dtype_bytes

    def fingerprint(self) -> str:
        """A digest of every file's name, size and content (sampled for large files): the same files anywhere give
        the same digest; a changed weight, tokenizer or config file gives another."""
        digest = hashlib.sha256()
        for relative in self.files:
            path = self.path / relative
            size = path.stat().st_size
            digest.update(f"{relative.as_posix()}\0{size}\0".encode())
            digest.update(_content_digest(path, size))
        return digest.hexdigest()


def _content_digest(path: Path, size: int) -> bytes:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        if size <= _WHOLE_HASH_BYTES:
            digest.update(handle.read())
            return digest.digest()
        step = (size - _SAMPLE_BYTES) // (_SAMPLES - 1)
        for i in range(_SAMPLES):
            handle.seek(i * step)
            digest.update(handle.read(_SAMPLE_BYTES))
    return digest.digest()
