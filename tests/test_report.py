"""batchrank report: a self-contained report.html with embedded plots, and the same plots as PNG files."""

from __future__ import annotations

import json
import re
from pathlib import Path

import matplotlib.image
import pytest

from conftest import run_cli
from output_fixtures import make_output, ranked, write_lines

ROWS = [row for q in range(12) for row in ranked(f"q{q:02d}", [f"d{q}-{d}" for d in range(8)],
                                                  first_stage=[f"d{q}-{d}" for d in reversed(range(8))])]
QRELS = [f"q{q:02d} 0 d{q}-{q % 8} {1 + q % 2}" for q in range(12)]


@pytest.fixture()
def output(tmp_path: Path) -> Path:
    return make_output(tmp_path / "out", ROWS, queries_per_chunk=2)


def _assert_not_blank(path: Path) -> None:
    pixels = matplotlib.image.imread(path)
    assert pixels.ndim == 3 and pixels.shape[0] > 200 and pixels.shape[1] > 400
    assert pixels[..., :3].std() > 0.05, f"{path} looks blank"
    # Not just white with a frame: a good share of pixels carry colour or ink.
    assert (pixels[..., :3].mean(axis=2) < 0.9).mean() > 0.01


def _assert_self_contained(page: str) -> None:
    assert "http://" not in page and "https://" not in page, "no resource may come from the network"
    assert not re.search(r"""(src|href)\s*=\s*["'](?!data:)""", page), "only data: URIs"


def test_report_with_qrels(output: Path, tmp_path: Path) -> None:
    qrels = write_lines(tmp_path / "qrels.txt", QRELS)
    result = run_cli("report", str(output), "--qrels", str(qrels))
    assert result.exit_code == 0, result.output
    assert f"report: {output / 'report.html'}" in result.stdout and "MRR@10" in result.stdout
    page = (output / "report.html").read_text()
    _assert_self_contained(page)
    assert page.count("src='data:image/png;base64,") == 3
    for text in ("nDCG@10", "MRR@10", "Recall@100", "MAP", "first stage", "12 of 12 queries judged",
                 "Throughput over the run", "Score distribution", "cross-encoder", "/models/tiny"):
        assert text in page, text
    for name in ("ndcg-delta.png", "scores.png", "throughput.png"):
        _assert_not_blank(output / "report" / name)
    assert (output / "eval.json").exists()


def test_report_without_qrels_has_scores_throughput_and_settings(output: Path) -> None:
    (output / "report").mkdir()
    (output / "report" / "ndcg-delta.png").write_bytes(b"stale")  # from an earlier report with qrels
    result = run_cli("report", str(output))
    assert result.exit_code == 0, result.output
    page = (output / "report.html").read_text()
    _assert_self_contained(page)
    assert page.count("src='data:image/png;base64,") == 2 and "No qrels given" in page
    assert "chunk_size" in page and "pairs/s this run" in page
    assert sorted(p.name for p in (output / "report").iterdir()) == ["scores.png", "throughput.png"]
    for name in ("scores.png", "throughput.png"):
        _assert_not_blank(output / "report" / name)


def test_report_takes_qrels_from_the_job_spec(output: Path, tmp_path: Path) -> None:
    qrels = write_lines(tmp_path / "qrels.txt", QRELS)
    info = json.loads((output / "run.json").read_text())
    info["spec"]["eval"]["qrels"] = str(qrels)
    (output / "run.json").write_text(json.dumps(info))
    result = run_cli("report", str(output))
    assert result.exit_code == 0, result.output
    assert f"qrels from the job spec: {qrels}" in result.stderr
    assert (output / "report" / "ndcg-delta.png").exists()


def test_preview_shows_texts_only_where_they_were_kept(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from batchrank.console import print_preview
    from batchrank.storage import StoragePath

    with_texts = [{**row, "query": "boiling point of water", "document": f"passage {row['doc_id']}"}
                  for row in ranked("q1", ["d1", "d2", "d3", "d4"])]
    print_preview(StoragePath.of(str(make_output(tmp_path / "texts", with_texts))), queries=1)
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == "q1: boiling point of water"
    assert [line.split() for line in lines[1:]] == [
        ["1", "1.0000", "d1", "passage", "d1"], ["2", "0.9000", "d2", "passage", "d2"], ["3", "0.8000", "d3", "passage", "d3"],
    ]

    print_preview(StoragePath.of(str(make_output(tmp_path / "ids", ranked("q1", ["d1", "d2", "d3", "d4"])))), queries=1)
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == "q1", "no text kept: the id alone, not twice"
    assert [line.split()[2:] for line in lines[1:]] == [["d1"], ["d2"], ["d3"]]


def test_the_report_gives_the_summarys_pairs_per_second_and_seconds(tmp_path: Path, fake_engine: None) -> None:
    # Issue 25, item 5: report.html said 213.8 pairs/s and 0.4 s of scoring where the summary and its own settings
    # table said 204.3 and 0.491 s. Now one figure, run.json's, everywhere.
    from output_fixtures import DEMO, demo_job

    result = run_cli("run", str(demo_job(tmp_path, DEMO / "qrels.txt")), "--preview", "0")
    assert result.exit_code == 0, result.output
    rate = re.search(r"\(4 this run, ([\d.]+) pairs/s", result.stdout).group(1)
    out = tmp_path / "run-out"
    info = json.loads((out / "run.json").read_text())
    seconds = info["pairs_scored_this_run"] / info["pairs_per_second_this_run"]
    page = (out / "report.html").read_text()
    assert f"This run: {rate} pairs/s over {seconds:.3g} s of scoring" in page
    assert f"<th>pairs/s this run</th><td>{info['pairs_per_second_this_run']}</td>" in page
    assert f"<th>seconds of scoring this run (every engine up to the last part)</th><td>{round(seconds, 3)}</td>" in page
    assert "judged documents in the output: 24 of 24; tied scores in the top 100: none" in page
