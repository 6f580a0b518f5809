"""Option types the tools' command lines share (argparse types: a bad value exits 2 naming the option)."""

from __future__ import annotations

import argparse
import json
from typing import Any


def json_object(text: str) -> dict[str, Any]:
    """A JSON object, e.g. '{"max_num_seqs": 512}'."""
    try:
        value = json.loads(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"not JSON: {error}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("expected a JSON object")
    return value


def add_model_options(parser: argparse.ArgumentParser, work_holds: str) -> None:
    """--model or --shape (one of them), --device and --work, as the tools that score synthetic pairs take them."""
    model = parser.add_mutually_exclusive_group(required=True)
    model.add_argument("--model", help="a local model directory (a Qwen3-Reranker or a model of its format)")
    model.add_argument("--shape", choices=["tiny", "0.6b", "4b", "8b"],
                       help="build (or reuse) a random-weight Qwen3 reranker of this real shape in --work")
    parser.add_argument("--device", default=None, help="where to build the random model (default: cuda if present)")
    parser.add_argument("--work", default="bench-work", help=work_holds)


def default_device_and_dtype(args: argparse.Namespace, gpu: bool) -> None:
    """--device: cuda when there is a GPU; --dtype: float32 for the tiny shape on a CPU, else bfloat16."""
    args.device = args.device or ("cuda" if gpu else "cpu")
    args.dtype = args.dtype or ("float32" if args.shape == "tiny" and not gpu else "bfloat16")
