"""Build a random-weight Qwen3 reranker-shaped model and a locally trained tokenizer, with no hub.

Tests use the `tiny` shape (CPU, float32); benchmarks use the real Qwen3-Reranker shapes (0.6b, 4b, 8b), whose
throughput equals that of the real weights. Scores from random weights are meaningless but deterministic.

usage: python -m batchrank.models.random_qwen3 OUT_DIR [--shape tiny|0.6b|4b|8b] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import random
from dataclasses import dataclass
from pathlib import Path

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>"]


@dataclass(frozen=True)
class Shape:
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    intermediate: int
    vocab: int | None  # None: the trained tokenizer's size
    tokenizer_vocab: int


SHAPES: dict[str, Shape] = {
    # head_dim 64 is the smallest the CPU attention backend of vLLM supports.
    "tiny": Shape(128, 2, 2, 1, 64, 256, None, 2000),
    "0.6b": Shape(1024, 28, 16, 8, 128, 3072, 151669, 16000),
    "4b": Shape(2560, 36, 32, 8, 128, 9728, 151669, 16000),
    "8b": Shape(4096, 36, 32, 8, 128, 12288, 151669, 16000),
}

COMMON_WORDS = (
    "the of and to in is was for on that with as by at from it an be this are or which have has not but "
    "what how when where who why does do can water boil temperature python list sort vaccine immune cell "
    "plant light energy tower height bread flour yeast body fluid loss revolution france king tax search "
    "query document passage relevant judge instruct yes no answer web retrieve given"
).split()


def synthetic_words(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    letters = "etaoinshrdlcumwfgypbvkjxqz"
    weights = range(26, 0, -1)
    return ["".join(rng.choices(letters, weights=weights, k=rng.randint(2, 9))) for _ in range(n)]


def training_words() -> list[str]:
    """The distinct words the tokenizer is trained on: synthetic text made of them (batchrank.bench.synthetic) gets a
    realistic number of tokens per word from it."""
    return synthetic_words(6000) + list(COMMON_WORDS)


def train_tokenizer(vocab_size: int):
    """A byte-level BPE in which "yes" and "no" are single tokens and Qwen's chat special tokens exist."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    rng = random.Random(1)
    words = synthetic_words(6000) + list(COMMON_WORDS) * 20
    corpus = [" ".join(rng.choices(words, k=40)) for _ in range(20000)]
    corpus += [
        "Judge whether the Document meets the requirements based on the Query and the Instruct provided. "
        'Note that the answer can only be "yes" or "no". <Instruct>: <Query>: <Document>: [SEP] Instruct: Query:'
    ] * 50
    corpus += ["yes", "no"] * 500  # the scored tokens appear bare after the assistant prefix
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tokenizer.train_from_iterator(corpus, trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=SPECIAL_TOKENS[1:],
    )
    for word in ("yes", "no"):
        if len(fast.encode(word, add_special_tokens=False)) != 1:
            raise RuntimeError(f"the trained tokenizer splits {word!r}; the yes/no head needs one token")
    return fast


def build_model(out_dir: str | Path, shape: str = "tiny", device: str = "cpu", seed: int = 0) -> Path:
    """Write a random-weight Qwen3ForCausalLM of `shape` and its tokenizer to `out_dir`; return the path."""
    import torch
    from transformers import Qwen3Config, Qwen3ForCausalLM

    spec = SHAPES[shape]
    out = Path(out_dir)
    tokenizer = train_tokenizer(spec.tokenizer_vocab)
    tokenizer.save_pretrained(out)
    dtype = torch.float32 if shape == "tiny" else torch.bfloat16
    config = Qwen3Config(
        vocab_size=spec.vocab or len(tokenizer),
        hidden_size=spec.hidden,
        intermediate_size=spec.intermediate,
        num_hidden_layers=spec.layers,
        num_attention_heads=spec.heads,
        num_key_value_heads=spec.kv_heads,
        head_dim=spec.head_dim,
        max_position_embeddings=40960,
        rope_theta=1e6,
        tie_word_embeddings=True,
        torch_dtype=str(dtype).removeprefix("torch."),
        eos_token_id=tokenizer.convert_tokens_to_ids("<|im_end|>"),
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    with torch.device(device):
        model = Qwen3ForCausalLM(config)
    if shape == "tiny":
        # Random init at std 0.02 makes every logit near zero and every P(yes) near 0.5; a wider spread of
        # weights gives scores that differ between documents, so ordering and rank tests mean something.
        with torch.no_grad():
            for parameter in model.parameters():
                if parameter.dim() > 1:
                    parameter.normal_(0.0, 0.25)
    model.to(dtype).save_pretrained(out)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir")
    parser.add_argument("--shape", default="tiny", choices=sorted(SHAPES))
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    path = build_model(args.out_dir, args.shape, args.device)
    print(f"wrote a random-weight Qwen3 model of shape {args.shape} to {path}")


if __name__ == "__main__":
    main()
