"""Shared test fixtures: a tiny random-weight Qwen3 reranker, two small cross-encoders, synthetic pairs, and job
specs.

Every in-process job with the same engine settings reuses one vLLM engine (batchrank.scoring.engine.start_engine
keeps one per settings when the job keeps its engine, as the CLI does), so the suite pays the ~10-40 s engine start
once per model and settings.
"""

from __future__ import annotations

import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from click.testing import CliRunner, Result

from batchrank.cli import main

REPO = Path(__file__).resolve().parents[1]
TINY_MAX_MODEL_LEN = 256
WORDS = (
    "water boils at one hundred degrees sea level pressure vaccine immune system trains cells python list sort "
    "method returns new key function photosynthesis plants convert light energy sugar tower paris iron height "
    "meters bread flour yeast dough oven revolution france king taxes debt people"
).split()


@pytest.fixture(scope="session", autouse=True)
def _stop_engines_at_the_end():
    """Stop the shared engines while pytest still captures output (vLLM logs as they shut down)."""
    yield
    from batchrank.scoring.engine import shutdown_engines

    shutdown_engines()


@pytest.fixture
def fake_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    """`batchrank run` and `validate` in this process score with the deterministic FakeScorer (tests/fake_scorer.py)
    through the default scorer factory: no model is read."""
    import batchrank.scoring as scoring
    from fake_scorer import FakeScorer, FakeScorerFactory

    monkeypatch.setattr(scoring, "default_scorer_factory", lambda keep_engine=False: FakeScorerFactory())
    monkeypatch.setattr(FakeScorer, "calls_failed", {})
    for name in ("FAKE_SCORER_SLEEP", "FAKE_FAIL_QUERY", "FAKE_FAIL_TIMES", "FAKE_STALL_QUERY"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The project's own builder, as a user would run it: python -m batchrank.models.random_qwen3 DIR."""
    out = tmp_path_factory.mktemp("models") / "tiny-qwen3"
    subprocess.run([sys.executable, "-m", "batchrank.models.random_qwen3", str(out)], check=True)
    return str(out)


def make_pairs(
    n_queries: int, docs_per_query: int, seed: int = 0, doc_words: tuple[int, int] = (5, 40)
) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    rows = []
    for q in range(n_queries):
        query = " ".join(rng.choices(WORDS, k=rng.randint(2, 6)))
        for d in range(docs_per_query):
            rows.append(
                {
                    "qid": f"q{q:03d}",
                    "query_text": query,
                    "pid": f"d{q:03d}-{d:03d}",
                    "passage": " ".join(rng.choices(WORDS, k=rng.randint(*doc_words))),
                    "bm25_rank": d + 1,
                }
            )
    return rows


def write_parquet(rows: list[dict[str, Any]], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def write_job(path: Path, input_path: Path | str, model: str, output_dir: Path | str, **sections: Any) -> Path:
    """A job spec for the synthetic pairs (columns qid, query_text, pid, passage, bm25_rank)."""
    spec: dict[str, Any] = {
        "input": {
            "path": str(input_path),
            "columns": {"query_id": "qid", "query": "query_text", "doc_id": "pid", "document": "passage"},
        },
        "model": {"path": model, "dtype": "float32", "max_model_len": TINY_MAX_MODEL_LEN},
        "run": {"chunk_size": 50},
        "output": {"path": str(output_dir), "keep_columns": ["bm25_rank"]},
    }
    for section, values in sections.items():
        spec.setdefault(section, {}).update(values)
    path.write_text(yaml.safe_dump(spec))
    return path


BATCHRANK = str(Path(sys.executable).with_name("batchrank"))  # the installed command, as a user runs it


def scored_parts(out: Path) -> list[Path]:
    return sorted((out / "scores").glob("part-*.parquet")) if (out / "scores").exists() else []


def start_batchrank(job: Path, log: Path) -> subprocess.Popen:
    """`batchrank run JOB` in the background, its output in a file (a pipe nobody reads would stall it)."""
    with open(log, "w") as handle:
        return subprocess.Popen([BATCHRANK, "run", str(job)], stdout=handle, stderr=subprocess.STDOUT, text=True)


def wait_for_parts(process: subprocess.Popen, out: Path, count: int, timeout: float = 400) -> None:
    """Until `count` parts exist under `out` (or the process ends, or the timeout passes)."""
    deadline = time.monotonic() + timeout
    while len(scored_parts(out)) < count and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)


def run_cli(*args: str) -> Result:
    """batchrank in this process (the engine is shared with other tests)."""
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


@pytest.fixture(scope="session")
def minilm_cross_encoder(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A BERT cross-encoder from the demo package's real MiniLM weights (batchrank.models.cross_encoders)."""
    from batchrank.models.cross_encoders import build_minilm_cross_encoder

    return str(build_minilm_cross_encoder(tmp_path_factory.mktemp("models") / "minilm-ce"))


@pytest.fixture(scope="session")
def xlmr_cross_encoder(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A random-weight XLM-R cross-encoder with a sentencepiece tokenizer trained here."""
    from batchrank.models.cross_encoders import build_xlmr_cross_encoder

    return str(build_xlmr_cross_encoder(tmp_path_factory.mktemp("models") / "xlmr-ce"))


def run_pairs(root: Path, model_path: str, pairs: list[dict[str, Any]], **sections: Any) -> tuple[list[float], dict]:
    """`batchrank run` on (query_id, query, doc_id, document) rows through the CLI and the real engine: the scores
    in the rows' order, and run.json."""
    import json

    import polars as pl

    root.mkdir(parents=True, exist_ok=True)
    source = write_parquet(pairs, root / "pairs.parquet")
    spec: dict[str, Any] = {"input": {"path": str(source)}, "model": {"path": model_path, "dtype": "float32"},
                            "run": {"chunk_size": 40}, "output": {"path": str(root / "out")}}
    for section, values in sections.items():
        spec.setdefault(section, {}).update(values)
    job = root / "job.yaml"
    job.write_text(yaml.safe_dump(spec))
    result = run_cli("run", str(job), "--preview", "0")
    assert result.exit_code == 0, result.output
    scored = pl.read_parquet(str(root / "out" / "scores" / "*.parquet"))
    by_pair = {(row["query_id"], row["doc_id"]): row["score"] for row in scored.iter_rows(named=True)}
    run_info = json.loads((root / "out" / "run.json").read_text())
    return [by_pair[row["query_id"], row["doc_id"]] for row in pairs], run_info


def demo_pairs(lengthen_every: int = 4) -> list[dict[str, Any]]:
    """The demo's 96 real English (query_id, query, doc_id, document) rows; every `lengthen_every`-th document made
    six times longer (beyond 128 tokens)."""
    import polars as pl

    rows = pl.read_parquet(REPO / "jobs/data/demo/candidates.parquet").drop("first_stage_rank").to_dicts()
    for row in rows[::lengthen_every]:
        row["document"] = " ".join([row["document"]] * 6)
    return rows
