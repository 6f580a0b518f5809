"""The robustness battery (issue 6): what an unattended run does with bad rows, bad files, kills, full disks, a
second run, changed input, untrusted specs and a failing engine.

Most cases run the job machinery with tests/fake_scorer.py's deterministic FakeScorer in place of vLLM (in this
process through the CLI, or as `python tests/fake_scorer.py run JOB` in a subprocess that can be SIGKILLed), so
none of them starts an engine; the length cases use the tiny model on the shared in-process engine.
"""

from __future__ import annotations

import ctypes
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from batchrank.model_dir import ModelDirectory
from batchrank.scoring.engine_args import engine_arguments
from conftest import make_pairs, run_cli, write_job, write_parquet
from fake_scorer import MAX_QUERY_CHARS, fake_score

FAKE_BATCHRANK = [sys.executable, str(Path(__file__).with_name("fake_scorer.py"))]
BATCHRANK = str(Path(sys.executable).with_name("batchrank"))  # the installed command, as a user runs it
NO_MODEL = "/nonexistent/model"  # FakeScorer needs none
LOCAL = {"chunk_size": 50, "executor": "local"}  # `auto` would import torch to count GPUs


def fake_job(tmp_path: Path, rows_or_path: Any, out: str = "out", name: str = "job.yaml", **sections: Any) -> Path:
    source = rows_or_path if isinstance(rows_or_path, Path) else write_parquet(rows_or_path, tmp_path / "in.parquet")
    sections["run"] = {**LOCAL, **sections.get("run", {})}
    return write_job(tmp_path / name, source, NO_MODEL, tmp_path / out, **sections)


def scores(out: Path) -> pl.DataFrame:
    return pl.read_parquet(str(out / "scores" / "part-*.parquet")).sort("query_id", "doc_id")


def temporaries(out: Path) -> list[Path]:
    return [p for p in out.rglob(".*") if ".tmp" in p.name]


def expected_scores(rows: list[dict[str, Any]]) -> dict[tuple[str, str], float]:
    return {(r["qid"], r["pid"]): fake_score(r["query_text"], r["passage"]) for r in rows}


# --- schema: exit 2 before any model is loaded, one message naming file and column ----------------------------


def expect_exit(job: Path, code: int, *fragments: str, extra: tuple[str, ...] = ()) -> str:
    result = run_cli("run", str(job), *extra)
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in result.output, f"{fragment!r} not in {result.output!r}"
    return result.output


@pytest.mark.parametrize("column, value, expected", [("query_text", 7, "'query_text' (query) has type int64"),
                                                     ("passage", ["a", "b"], "'passage' (document) has type list")])
def test_wrong_column_types_name_file_and_column(tmp_path: Path, column: str, value: Any, expected: str) -> None:
    rows = make_pairs(2, 3)
    for row in rows:
        row[column] = value
    expect_exit(fake_job(tmp_path, rows), 2, "in.parquet", expected, "expected string")
    assert not (tmp_path / "out").exists(), "nothing may be written before the input is known to be good"


def test_files_written_by_different_tools_are_one_input(tmp_path: Path, fake_engine: None) -> None:
    """string (pyarrow, Spark), large_string (polars), dictionary strings (pandas category) and integer widths are
    all read as one schema; a real mismatch (text ids in one file, integer ids in another) names file and column."""
    rows = make_pairs(6, 2, seed=5)
    write_parquet(rows[:4], tmp_path / "data" / "part-a.parquet")
    table = pa.Table.from_pylist(rows[4:8])
    table = table.set_column(3, "passage", table["passage"].cast(pa.large_string()))
    table = table.set_column(1, "query_text", table["query_text"].dictionary_encode())
    table = table.set_column(4, "bm25_rank", table["bm25_rank"].cast(pa.int32()))
    pq.write_table(table, tmp_path / "data" / "part-b.parquet")
    pl.DataFrame(rows[8:]).with_columns(pl.col("passage").cast(pl.Categorical)).write_parquet(
        tmp_path / "data" / "part-c.parquet")
    job = fake_job(tmp_path, Path(str(tmp_path / "data" / "part-*.parquet")))
    result = run_cli("run", str(job), "--preview", "0")
    assert result.exit_code == 0, result.output
    assert dict(zip(zip(scores(tmp_path / "out")["query_id"], scores(tmp_path / "out")["doc_id"]),
                    scores(tmp_path / "out")["score"])) == expected_scores(rows)
    mixed = pa.Table.from_pylist(make_pairs(1, 2, seed=6)).set_column(0, "qid", pa.array([7, 7]))
    pq.write_table(mixed, tmp_path / "data" / "part-d.parquet")
    output = expect_exit(fake_job(tmp_path, Path(str(tmp_path / "data" / "part-*.parquet")), out="out2"), 2,
                         "part-d.parquet: column 'qid' is read as Int64 but as String in", "part-a.parquet")
    assert len(output.strip().splitlines()) == 1, "one line, not a schema dump"


# --- rows: a policy, input.on_bad_rows: error | skip --------------------------------------------------------------


def bad_rows() -> list[dict[str, Any]]:
    """Six queries of eight candidates, with one row of each kind of problem, and text with control characters."""
    rows = make_pairs(6, 8, seed=3)
    rows[1]["query_text"] = None
    rows[2]["query_text"] = " \t\n"
    rows[9]["passage"] = None
    rows[10]["passage"] = "\x00 \x1b\u200b\ufeff"  # nothing but control and invisible characters: blank
    rows[11]["pid"] = None
    rows.append(dict(rows[20]))  # a duplicate (query_id, doc_id): the first is scored, the repeat rejected
    rows[30]["passage"] = "boiling\x00point \x1b[31mred\x1b[0m"  # control characters inside text: kept as is
    return rows


def test_bad_rows_stop_the_job_by_default(tmp_path: Path, fake_engine: None) -> None:
    expect_exit(fake_job(tmp_path, bad_rows()), 2, "in.parquet row 11", "doc_id is null", "other kind(s) of problem")
    rows = make_pairs(2, 3)
    rows[4]["passage"] = "\x00\x1b "
    expect_exit(fake_job(tmp_path, rows), 2, "in.parquet row 4", "doc_id 'd001-001'", "document is empty")


def test_skip_puts_bad_rows_in_rejects_with_reasons_and_scores_the_rest_once(tmp_path: Path, fake_engine: None) -> None:
    rows = bad_rows()
    job = fake_job(tmp_path, rows, input={"on_bad_rows": "skip"})
    check = run_cli("validate", str(job))
    assert check.exit_code == 0, check.output
    assert "a run would skip 6 of 49 rows" in check.output and "input OK: 43 rows to score" in check.output

    result = run_cli("run", str(job))
    assert result.exit_code == 0, result.output
    assert "skipped 6 bad rows" in result.output and "rejects.parquet" in result.output
    out = tmp_path / "out"
    rejects = pl.read_parquet(out / "rejects.parquet")
    assert rejects.columns == ["query_id", "doc_id", "reason", "file", "row"]
    assert sorted(zip(rejects["row"], rejects["reason"])) == [
        (1, "query is null"), (2, "query is empty"), (9, "document is null"), (10, "document is empty"),
        (11, "doc_id is null"), (48, "duplicate (query_id, doc_id) pair"),
    ]
    assert set(rejects["file"]) == {str(tmp_path / "in.parquet")}
    got = scores(out)
    assert got.height == 43 and got.select("query_id", "doc_id").is_unique().all()
    good = [r for i, r in enumerate(rows) if i not in (1, 2, 9, 10, 11, 48)]
    assert dict(zip(zip(got["query_id"], got["doc_id"]), got["score"])) == expected_scores(good)
    info = json.loads((out / "run.json").read_text())
    assert info["pairs"] == 43 and info["rejected_pairs"] == 6
    assert info["rejected_by_reason"]["duplicate (query_id, doc_id) pair"] == 1

    (out / "_SUCCESS").unlink()
    plan = out / "rejects" / "plan.parquet"
    plan.write_bytes(plan.read_bytes()[:100])
    expect_exit(job, 2, f"{plan}: the rows rejected before scoring are damaged", "--overwrite")


def test_skip_with_every_row_bad_stops(tmp_path: Path, fake_engine: None) -> None:
    rows = make_pairs(1, 3)
    for row in rows:
        row["passage"] = ""
    expect_exit(fake_job(tmp_path, rows, input={"on_bad_rows": "skip"}), 2, "all 3 rows are bad", "document is empty")


def test_a_single_candidate_and_ten_thousand_candidates(tmp_path: Path, fake_engine: None) -> None:
    rows = make_pairs(3, 5)
    rows += [{"qid": "solo", "query_text": "one doc", "pid": "s-0", "passage": "alone", "bm25_rank": 1}]
    rows += [{"qid": "big", "query_text": "many docs", "pid": f"b-{i:05d}", "passage": f"passage {i}",
              "bm25_rank": i + 1} for i in range(10_000)]
    for row in rows:
        row["unused_extra"] = 1.5  # extra input columns are ignored unless kept
    result = run_cli("run", str(fake_job(tmp_path, rows)))
    assert result.exit_code == 0, result.output
    got = scores(tmp_path / "out")
    assert got.columns == ["query_id", "doc_id", "score", "rank", "bm25_rank", "input_row"]
    assert got.filter(pl.col("query_id") == "solo")["rank"].to_list() == [1]
    big = got.filter(pl.col("query_id") == "big").sort("rank")
    assert big["rank"].to_list() == list(range(1, 10_001)) and big["score"].is_sorted(descending=True)
    big_part = [p for p in (tmp_path / "out" / "scores").glob("part-*") if pq.read_metadata(p).num_rows == 10_000]
    assert len(big_part) == 1, "a query larger than chunk_size is a chunk of its own"


def test_text_that_is_not_utf8_names_the_file_and_column(tmp_path: Path, fake_engine: None) -> None:
    """Parquet writers check UTF-8, but a broken one can store other bytes; such a file is unreadable, not a row."""
    rows = make_pairs(1, 2)
    table = pa.Table.from_pylist(rows)
    invalid = pa.StringArray.from_buffers(2, pa.py_buffer(bytes([0, 0, 0, 0, 2, 0, 0, 0, 4, 0, 0, 0])),
                                          pa.py_buffer(b"ok\xff\xfe"))
    table = table.set_column(table.schema.get_field_index("passage"), "passage", invalid)
    pq.write_table(table, tmp_path / "latin1.parquet")
    for policy in ("error", "skip"):
        job = fake_job(tmp_path, tmp_path / "latin1.parquet", input={"on_bad_rows": policy})
        expect_exit(job, 2, "latin1.parquet", "column 'passage'", "not UTF-8")


# --- length: documents cut on the document side; a query that cannot fit is a bad row -----------------------------


def test_huge_document_is_truncated_and_an_unfittable_query_is_a_bad_row(tiny_model: str, tmp_path: Path) -> None:
    rows = make_pairs(3, 4, seed=8)
    rows[1]["passage"] = " ".join(["sugar tower paris oven"] * 25_000)  # about 100k tokens, max_model_len is 256
    for row in rows[8:]:
        row["query_text"] = "water boils " * 200  # the query alone is longer than max_model_len
    source = write_parquet(rows, tmp_path / "in.parquet")
    job = write_job(tmp_path / "job.yaml", source, tiny_model, tmp_path / "out")
    result = run_cli("run", str(job))
    assert result.exit_code == 2, result.output
    assert "in.parquet row 8" in result.output and "query_id 'q002'" in result.output
    assert "does not fit model.max_model_len" in result.output and "on_bad_rows: skip" in result.output

    result = run_cli("run", str(job), "--set", "input.on_bad_rows=skip", "--overwrite")
    assert result.exit_code == 0, result.output
    out = tmp_path / "out"
    info = json.loads((out / "run.json").read_text())
    assert info["pairs"] == 8 and info["truncated_pairs"] >= 1 and info["rejected_pairs"] == 4
    rejects = pl.read_parquet(out / "rejects.parquet")
    assert rejects["row"].to_list() == [8, 9, 10, 11] and set(rejects["query_id"]) == {"q002"}
    assert rejects["reason"].str.contains("does not fit model.max_model_len").all()
    assert scores(out).filter(pl.col("doc_id") == "d000-001")["score"].is_between(0, 1).all()
    status = run_cli("status", str(out))
    # The unfittable query is found by the plan, before anything is scored (each distinct query tokenized once).
    assert "rows scored: 8/8  rejected before scoring: 4" in status.output, status.output


# --- files: exit 2 with the path --------------------------------------------------------------------------------


def test_truncated_and_corrupt_parquet_files(tmp_path: Path, fake_engine: None) -> None:
    good = write_parquet(make_pairs(4, 25), tmp_path / "good.parquet")
    data = good.read_bytes()
    (tmp_path / "truncated.parquet").write_bytes(data[: len(data) // 2])
    expect_exit(fake_job(tmp_path, tmp_path / "truncated.parquet"), 2, "truncated.parquet", "not a readable Parquet")
    pq.write_table(pq.read_table(good), tmp_path / "corrupt.parquet", compression="zstd")
    damaged = bytearray((tmp_path / "corrupt.parquet").read_bytes())
    for i in range(8, 64):  # the first data page; the footer stays readable
        damaged[i] ^= 0xFF
    (tmp_path / "corrupt.parquet").write_bytes(bytes(damaged))
    expect_exit(fake_job(tmp_path, tmp_path / "corrupt.parquet"), 2, "corrupt.parquet", "cannot be read")


def _without_file_permission_override() -> None:
    """In the child: drop CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH, so that root obeys file modes like anyone."""
    libc = ctypes.CDLL(None, use_errno=True)
    for capability in (1, 2):
        if libc.prctl(24, capability, 0, 0, 0) != 0:  # PR_CAPBSET_DROP: exec then grants root no such capability
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def test_unreadable_input_file(tmp_path: Path) -> None:
    source = write_parquet(make_pairs(2, 2), tmp_path / "secret.parquet")
    source.chmod(0)
    job = fake_job(tmp_path, source)
    as_root = os.geteuid() == 0
    try:
        result = subprocess.run(FAKE_BATCHRANK + ["run", str(job)], capture_output=True, text=True, timeout=120,
                                preexec_fn=_without_file_permission_override if as_root else None)
    except subprocess.SubprocessError as error:
        pytest.skip(f"root cannot drop its file-permission override here ({error}); chmod 000 binds no root")
    assert result.returncode == 2, result.stderr
    assert f"{source}: permission denied" in result.stderr


# --- crashes: SIGKILL anywhere, then a rerun gives the uninterrupted output ---------------------------------------


def crash_rows() -> list[dict[str, Any]]:
    """Scattered queries, bad rows rejected before scoring, and queries too long for the scorer: every path.

    A query whose first row's text does not fit is found by the plan (qplan); rows whose text differs from their
    query's first one are checked as their chunk is prepared, the prepare stage's safety net (qlong, q010)."""
    rows = make_pairs(24, 10, seed=4)
    rows[3]["passage"] = ""
    rows.append(dict(rows[50]))
    for row in rows[100:110]:  # q010: all but its first row rejected while its chunk is scored
        row["query_text"] = "x" * (MAX_QUERY_CHARS + 1)
    rows += [{"qid": "qlong", "query_text": "y" * (MAX_QUERY_CHARS + 1), "pid": f"l-{i}", "passage": "p",
              "bm25_rank": i + 1} for i in range(30)]  # a chunk of its own, all but one row rejected while scored
    rows += [{"qid": "qplan", "query_text": "z" * (MAX_QUERY_CHARS + 1), "pid": f"z-{i}", "passage": "p",
              "bm25_rank": i + 1} for i in range(5)]  # rejected by the plan: its first row's text does not fit
    random.Random(1).shuffle(rows)
    for position, query in enumerate(("qlong", "q010")):  # the first two chunks reject rows while scoring
        first = next(i for i, row in enumerate(rows) if row["qid"] == query)
        rows.insert(position, rows.pop(first))
        rows[position]["query_text"] = f"{query} fits"  # its first row fits: the plan keeps the query
    return rows


def start(job: Path, *args: str, **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen(FAKE_BATCHRANK + ["run", str(job), "--preview", "0", *args], env={**os.environ, **env},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def kill_when_paused(job: Path, where: str, marker: Path, **env: str) -> None:
    marker.unlink(missing_ok=True)
    process = start(job, FAKE_PAUSE_AT=where, FAKE_PAUSE_MARKER=str(marker), **env)
    deadline = time.monotonic() + 60
    while not marker.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert marker.exists(), f"never reached {where}: {process.communicate()}"
    process.send_signal(signal.SIGKILL)
    process.communicate()


def test_sigkill_at_any_point_then_rerun_gives_the_uninterrupted_output(tmp_path: Path, fake_engine: None) -> None:
    source = write_parquet(crash_rows(), tmp_path / "in.parquet")
    skip = {"on_bad_rows": "skip"}
    reference_job = fake_job(tmp_path, source, "reference", "reference.yaml", input=skip, run={"chunk_size": 30})
    assert run_cli("run", str(reference_job)).exit_code == 0
    # One chunk in flight: the kills below land at known places (parts are written in chunk order).
    job = fake_job(tmp_path, source, input=skip, run={"chunk_size": 30, "chunks_in_flight_per_worker": 1})
    out, marker = tmp_path / "out", tmp_path / "paused"

    kill_when_paused(job, "part-write", marker, FAKE_PAUSE_AFTER_PARTS="1")
    assert [p.name for p in (out / "scores").glob("part-*")] == ["part-000000.parquet"]  # qlong: 1 scored, 29 not
    assert [p.name.split(".tmp-")[0] for p in temporaries(out)] == [".part-000001.parquet"], "killed mid-write"
    kill_when_paused(job, "chunk-rejects", marker)
    assert (out / "rejects" / "plan.parquet").exists() and (out / "rejects" / "part-000001.parquet").exists()
    assert not (out / "scores" / "part-000001.parquet").exists(), "a chunk's rejects are written before its part"
    rng = random.Random(6)
    for _ in range(2):  # at random moments: at most two chunks of 0.5 s each get done before the kill
        process = start(job, FAKE_SCORER_SLEEP="0.5")
        time.sleep(rng.uniform(0.2, 1.0))
        process.send_signal(signal.SIGKILL)
        process.communicate()
    kill_when_paused(job, "part-write", marker, FAKE_PAUSE_AFTER_PARTS="2")  # two more parts, killed in the third
    finished = [p for p in sorted((out / "scores").glob("part-*")) if pq.read_metadata(p).num_rows]
    assert 2 <= len(finished) < 8
    finished[-1].write_bytes(finished[-1].read_bytes()[:300])  # a part cut short on disk must be redone, not read
    (out / "rejects" / "part-000000.parquet").unlink()  # a part whose rejected rows are lost is redone too
    kill_when_paused(job, "finish", marker)
    assert not (out / "rejects.parquet").exists() and not (out / "_SUCCESS").exists()
    kill_when_paused(job, "success", marker)
    assert (out / "run.json").exists() and not (out / "_SUCCESS").exists()

    final = start(job)
    stdout, stderr = final.communicate(timeout=120)
    assert final.returncode == 0, stderr
    assert (out / "_SUCCESS").exists() and not temporaries(out)
    assert scores(out).equals(scores(tmp_path / "reference"))
    assert pl.read_parquet(out / "rejects.parquet").equals(pl.read_parquet(tmp_path / "reference" / "rejects.parquet"))
    info = json.loads((out / "run.json").read_text())
    reference_info = json.loads((tmp_path / "reference" / "run.json").read_text())
    # 1 empty, 1 duplicate, 5 too long found by the plan, 9 + 29 too long found while scoring
    assert info["rejected_pairs"] == reference_info["rejected_pairs"] == 45
    assert info["rejected_by_reason"] == reference_info["rejected_by_reason"]
    assert info["pairs"] == reference_info["pairs"] == 276 - 45


# --- disk full: exit 1 with the path, finished parts intact, the rerun completes ----------------------------------


def test_write_error_on_the_output_then_rerun(tmp_path: Path, fake_engine: None) -> None:
    source = write_parquet(make_pairs(20, 10, seed=2), tmp_path / "in.parquet")  # 4 chunks of 50
    reference_job = fake_job(tmp_path, source, out="reference", name="reference.yaml")
    assert run_cli("run", str(reference_job)).exit_code == 0
    job = fake_job(tmp_path, source)
    out = tmp_path / "out"
    failed = start(job, FAKE_ENOSPC_AFTER="2")
    _, stderr = failed.communicate(timeout=120)
    assert failed.returncode == 1, stderr
    assert f"{out / 'scores' / 'part-000002.parquet'}: cannot write the part" in stderr
    assert "No space left on device" in stderr and "finished parts are kept" in stderr and "Traceback" not in stderr
    kept = sorted((out / "scores").glob("part-*"))
    assert [p.name for p in kept] == ["part-000000.parquet", "part-000001.parquet"] and not temporaries(out)
    reference = scores(tmp_path / "reference")
    assert pl.read_parquet(kept).sort("query_id", "doc_id").equals(reference.head(100))
    rerun = start(job)
    _, stderr = rerun.communicate(timeout=120)
    assert rerun.returncode == 0, stderr
    assert scores(out).equals(reference)


@pytest.fixture
def small_disk(tmp_path: Path):
    """A 64 KiB tmpfs (needs mount privileges: root in a privileged container, as on our CI machines)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(disk)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({mounted.stderr.decode().strip()}); the write-error test covers it")
    yield disk
    subprocess.run(["umount", "-l", str(disk)], check=False)


def test_a_full_tmpfs_then_space_comes_back(tmp_path: Path, small_disk: Path, fake_engine: None) -> None:
    source = write_parquet(make_pairs(200, 10, seed=9), tmp_path / "in.parquet")  # 40 parts: more than 64 KiB
    reference_job = fake_job(tmp_path, source, out="reference", name="reference.yaml")
    assert run_cli("run", str(reference_job)).exit_code == 0
    job = fake_job(tmp_path, source, out="disk/out")
    result = run_cli("run", str(job), "--preview", "0")
    assert result.exit_code == 1, result.output
    assert "No space left on device" in result.output and str(small_disk / "out") in result.output
    kept = sorted((small_disk / "out" / "scores").glob("part-*"))
    assert 0 < len(kept) < 40 and not temporaries(small_disk / "out")
    for part in kept:  # every part left behind is whole
        assert pq.read_metadata(part).num_rows == 50
    subprocess.run(["mount", "-o", "remount,size=16m", str(small_disk)], check=True)
    result = run_cli("run", str(job), "--preview", "0")
    assert result.exit_code == 0, result.output
    assert f"{40 - len(kept)} this run" in result.output
    assert scores(small_disk / "out").equals(scores(tmp_path / "reference"))


# --- concurrency: one run per output directory ---------------------------------------------------------------------


def test_a_second_run_is_refused_and_a_killed_runs_lock_is_taken_over(tmp_path: Path, fake_engine: None) -> None:
    job = fake_job(tmp_path, make_pairs(10, 10))
    out, marker = tmp_path / "out", tmp_path / "paused"
    first = start(job, FAKE_PAUSE_AT="part-write", FAKE_PAUSE_MARKER=str(marker))
    deadline = time.monotonic() + 60
    while not marker.exists() and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert marker.exists(), first.communicate()
    second = subprocess.run(FAKE_BATCHRANK + ["run", str(job)], capture_output=True, text=True, timeout=120)
    assert second.returncode == 75, second.stderr  # in use: a scheduler waits and retries
    assert "is in use by another batchrank run" in second.stderr
    assert f"host {socket.gethostname()}, pid {first.pid}" in second.stderr
    first.send_signal(signal.SIGKILL)
    first.communicate()
    assert json.loads((out / ".lock").read_text())["pid"] == first.pid, "a SIGKILLed run leaves its lock file"
    result = run_cli("run", str(job), "--preview", "0")  # its lock is stale: taken over
    assert result.exit_code == 0, result.output
    assert scores(out).height == 100 and not (out / ".lock").exists()


def test_lock_files_naming_a_dead_process_or_another_host(tmp_path: Path, fake_engine: None) -> None:
    job = fake_job(tmp_path, make_pairs(2, 5))
    out = tmp_path / "out"
    out.mkdir()
    dead = subprocess.Popen(["true"])
    dead.wait()
    (out / ".lock").write_text(json.dumps({"host": socket.gethostname(), "pid": dead.pid}))
    assert run_cli("run", str(job), "--preview", "0").exit_code == 0
    (out / ".lock").write_text(json.dumps({"host": "gpu-node-7", "pid": 4242}))
    expect_exit(job, 75, "host gpu-node-7, pid 4242", "remove", ".lock", extra=("--overwrite",))
    assert (out / "_SUCCESS").exists(), "a refused run touches nothing"


# --- changed input: refuse to resume, --overwrite starts over ------------------------------------------------------


def test_input_changed_after_a_partial_run(tmp_path: Path, fake_engine: None, monkeypatch: pytest.MonkeyPatch) -> None:
    source = write_parquet(make_pairs(20, 10, seed=2), tmp_path / "in.parquet")
    job = fake_job(tmp_path, source)
    monkeypatch.setenv("FAKE_FAIL_QUERY", "q010")  # chunk 2 fails: a partial run
    assert run_cli("run", str(job)).exit_code == 1
    monkeypatch.delenv("FAKE_FAIL_QUERY")
    before = {p.name: p.read_bytes() for p in (tmp_path / "out" / "scores").glob("part-*")}
    rows = make_pairs(20, 10, seed=3)
    write_parquet(rows, source)
    output = expect_exit(job, 2, "input file(s) changed since the checkpoint", str(source), "--overwrite")
    assert "refusing to mix results" in output
    assert {p.name: p.read_bytes() for p in (tmp_path / "out" / "scores").glob("part-*")} == before
    result = run_cli("run", str(job), "--overwrite", "--preview", "0")
    assert result.exit_code == 0, result.output
    got = scores(tmp_path / "out")
    assert dict(zip(zip(got["query_id"], got["doc_id"]), got["score"])) == expected_scores(rows)


# --- untrusted specs and models -----------------------------------------------------------------------------------


def test_yaml_tags_cannot_construct_objects(tmp_path: Path) -> None:
    job = fake_job(tmp_path, make_pairs(1, 2))
    job.write_text(job.read_text() + f"extra: !!python/object/apply:os.system ['touch {tmp_path}/pwned']\n")
    for command in ("run", "validate"):
        result = run_cli(command, str(job))
        assert result.exit_code == 2 and "not valid YAML" in result.output
    assert not (tmp_path / "pwned").exists()


def test_trust_remote_code_is_off_unless_set_and_then_warned(tmp_path: Path, fake_engine: None,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from types import SimpleNamespace

    from batchrank.spec import load_spec

    job = fake_job(tmp_path, make_pairs(1, 2))
    cpu = SimpleNamespace(is_cpu=lambda: True, is_cuda=lambda: False)  # no vLLM import needed
    platform = SimpleNamespace(current_platform=cpu)
    monkeypatch.setitem(sys.modules, "vllm.platforms", platform)
    spec = load_spec(job)
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text(json.dumps({"architectures": ["BertForSequenceClassification"]}))
    (tmp_path / "model" / "model.safetensors").write_bytes(b"0" * 64)
    model = ModelDirectory.open(tmp_path / "model")
    assert engine_arguments(spec, "cross-encoder", model)["trust_remote_code"] is False
    result = run_cli("run", str(job), "--preview", "0")
    assert result.exit_code == 0 and "trust_remote_code is on" not in result.output
    trusted = load_spec(job, ["model.trust_remote_code=true"])
    assert engine_arguments(trusted, "cross-encoder", model)["trust_remote_code"] is True
    result = run_cli("run", str(job), "--set", "model.trust_remote_code=true", "--preview", "0", "--overwrite")
    assert result.exit_code == 0
    assert f"model.trust_remote_code is on: Python code from {NO_MODEL} will run" in result.output


def test_a_template_reaching_for_attributes_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    for template in ("{query.__class__} {document}", "{query} {document.__init__.__globals__}", "{query!r}{document}"):
        job = fake_job(tmp_path, make_pairs(1, 2), prompt={"template": template})
        for command in ("run", "validate"):
            result = run_cli(command, str(job))
            assert result.exit_code == 2 and "prompt.template" in result.output and "is not allowed" in result.output
    job = fake_job(tmp_path, make_pairs(1, 2))
    result = run_cli("run", str(job), "--set", "prompt.template={query.__class__} {document}")  # unquoted YAML
    assert result.exit_code == 2 and "--set" in result.output and "Traceback" not in result.output
    result = run_cli("run", str(job), "--set", "prompt.template='{query.__class__} {document}'")
    assert result.exit_code == 2 and "{query.__class__} is not allowed" in result.output
    assert not (tmp_path / "out").exists()


def test_ids_and_kept_values_never_become_paths(tmp_path: Path, fake_engine: None) -> None:
    hostile = ["../../escaped", "/tmp/absolute", "..", "part-000000.parquet", "a/../../b", "scores/../../x"]
    rows = [{"qid": q, "query_text": "q " + q, "pid": d, "passage": "p " + d, "bm25_rank": 1, "path": d}
            for q in hostile for d in hostile]
    (tmp_path / "work").mkdir()
    job = fake_job(tmp_path / "work", rows, output={"keep_columns": ["path"]})
    before = {p for p in tmp_path.rglob("*")}
    result = run_cli("run", str(job), "--preview", "0")
    assert result.exit_code == 0, result.output
    out = tmp_path / "work" / "out"
    created = {p for p in tmp_path.rglob("*")} - before
    assert created and all(p == out or out in p.parents for p in created), "everything is written under output.path"
    assert sorted(p.name for p in (out / "scores").iterdir()) == ["part-000000.parquet"]
    assert scores(out).height == len(hostile) ** 2


def test_an_output_directory_inside_the_input_directory_is_refused(tmp_path: Path) -> None:
    write_parquet(make_pairs(1, 2), tmp_path / "data" / "a.parquet")
    job = write_job(tmp_path / "job.yaml", tmp_path / "data", NO_MODEL, tmp_path / "data" / "out")
    expect_exit(job, 2, "lies inside input.path")


# --- engine failure: retried, then a clear stop with finished parts intact -----------------------------------------


def test_a_failing_engine_call_is_retried(tmp_path: Path, fake_engine: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_FAIL_QUERY", "q010")
    monkeypatch.setenv("FAKE_FAIL_TIMES", "1")
    result = run_cli("run", str(fake_job(tmp_path, make_pairs(20, 10))), "--preview", "0")
    assert result.exit_code == 0, result.output
    assert "chunk 2 failed (attempt 1/2)" in result.output and "retrying" in result.output
    assert scores(tmp_path / "out").height == 200


def test_an_engine_that_keeps_failing_stops_the_job(tmp_path: Path, fake_engine: None,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_FAIL_QUERY", "q010")
    # One chunk in flight, so the job stops before chunk 3 starts (with two, chunk 3's finished part is kept too).
    job = fake_job(tmp_path, make_pairs(20, 10), run={"chunks_in_flight_per_worker": 1})
    output = expect_exit(job, 1, "chunk 2 (rows 100..149) failed 2 time(s)", "injected engine failure for query q010",
                         "finished parts are kept")
    assert "unexpected" not in output
    out = tmp_path / "out"
    assert sorted(p.name for p in (out / "scores").glob("part-*")) == ["part-000000.parquet", "part-000001.parquet"]
    monkeypatch.delenv("FAKE_FAIL_QUERY")
    result = run_cli("run", str(job), "--preview", "0")
    assert result.exit_code == 0 and "2 this run" in result.output
    assert scores(out).height == 200


def test_auto_falls_back_to_one_local_engine_when_ray_cannot_start(tmp_path: Path, fake_engine: None,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    import ray

    import batchrank.job.run as job_module

    def no_ray(*args: Any, **kwargs: Any) -> None:
        raise ConnectionError("cannot start the raylet: /dev/shm is full")

    # as on a one-GPU machine with a small model
    monkeypatch.setattr(job_module, "choose_executor", lambda spec, gpus, weight_bytes: "ray")
    monkeypatch.setattr(ray, "init", no_ray)
    rows = make_pairs(4, 5)
    auto = fake_job(tmp_path, rows, run={"executor": "auto"})
    result = run_cli("run", str(auto), "--preview", "0")
    assert result.exit_code == 0, result.output
    assert "Ray could not start: ConnectionError: cannot start the raylet" in result.output
    assert "scoring with one local engine instead" in result.output
    assert scores(tmp_path / "out").height == 20
    chosen = fake_job(tmp_path, rows, out="out-ray", name="ray.yaml", run={"executor": "ray"})
    expect_exit(chosen, 1, "Ray could not start: ConnectionError")  # asked for by name: no silent fallback
    assert not list((tmp_path / "out-ray").glob("scores/part-*.parquet"))
