"""batchrank as an unattended pipeline step (issue 16): model mistakes caught before anything is written, a status a
scheduler can branch on, results alone on stdout, a Python API that runs many jobs in one process, reruns that write
nothing, and commands that work from any directory."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest
import yaml

from conftest import BATCHRANK, REPO, make_pairs, run_cli, write_job, write_parquet

FAKE_BATCHRANK = [sys.executable, str(Path(__file__).with_name("fake_scorer.py"))]
NO_MODEL = "/nonexistent/model"


def one_line_error(result, code: int, *fragments: str) -> str:
    assert result.exit_code == code, result.output
    message = result.stderr.strip()
    assert "Traceback" not in result.output and len(message.splitlines()) == 1, message
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    return message


# --- model mistakes: exit 2 with one line, from `validate` and `run`, before anything is written -----------------


@pytest.fixture(scope="module")
def pairs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_parquet(make_pairs(4, 5), tmp_path_factory.mktemp("ops") / "pairs.parquet")


@pytest.mark.parametrize("case, change, fragments", [
    ("missing", {"path": "/nope/model"}, ["model.path /nope/model: no such directory"]),
    ("no config", {"path": "EMPTY_DIR"}, ["no config.json there"]),
    ("dtype", {"dtype": "float17"}, ["model.dtype 'float17': not a dtype vLLM takes"]),
    ("too long", {"max_model_len": 100000}, ["model.max_model_len 100000 is more than the model's own limit of 40960"]),
    ("engine key", {"engine": {"max_num_seq": 8}},
     ["model.engine.max_num_seq: not an argument of this vLLM's engine; did you mean max_num_seqs?"]),
    ("clash", {"engine": {"dtype": "half"}}, ["model.engine.dtype: set it with model.dtype instead"]),
])
def test_model_mistakes_stop_validate_and_run_with_one_line(pairs: Path, tiny_model: str, tmp_path: Path, case: str,
                                                           change: dict, fragments: list[str]) -> None:
    if change.get("path") == "EMPTY_DIR":
        (tmp_path / "empty").mkdir()
        change = {"path": str(tmp_path / "empty")}
    job = write_job(tmp_path / "job.yaml", pairs, tiny_model, tmp_path / "out")
    tree = yaml.safe_load(job.read_text())
    tree["model"].update(change)
    job.write_text(yaml.safe_dump(tree))
    for command in ("validate", "run"):
        one_line_error(run_cli(command, str(job)), 2, *fragments)
    assert not (tmp_path / "out").exists(), "a model mistake is found before the output is touched"


def test_validate_says_what_the_model_is_fed(pairs: Path, tiny_model: str, tmp_path: Path) -> None:
    job = write_job(tmp_path / "job.yaml", pairs, tiny_model, tmp_path / "out")
    result = run_cli("validate", str(job))
    assert result.exit_code == 0, result.output
    assert "model: qwen3-yes-no, max_model_len 256" in result.stdout and "template: qwen3" in result.stdout
    assert "<Instruct>: {instruction}" in result.stdout and "input OK" in result.stdout


# --- status: complete, running, failed, stopped; exit codes a scheduler branches on --------------------------------


def status(out: Path) -> tuple[int, dict, str]:
    text = run_cli("status", str(out)).output
    result = run_cli("status", str(out), "--json")
    return result.exit_code, json.loads(result.stdout), text


def test_status_tells_running_from_stopped_from_failed_from_complete(tmp_path: Path, fake_engine: None,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    job = write_job(tmp_path / "job.yaml", write_parquet(make_pairs(20, 10), tmp_path / "in.parquet"), NO_MODEL,
                    tmp_path / "out", run={"chunk_size": 50, "executor": "local"})
    out, marker = tmp_path / "out", tmp_path / "paused"
    process = subprocess.Popen(FAKE_BATCHRANK + ["run", str(job)], env={
        **os.environ, "FAKE_PAUSE_AT": "part-write", "FAKE_PAUSE_AFTER_PARTS": "2", "FAKE_PAUSE_MARKER": str(marker)},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    code, state, text = status(out)
    assert code == 3 and state["state"] == "running" and state["run"]["pid"] == process.pid, text
    assert f"running (host {state['run']['host']}, pid {process.pid}, since " in text
    assert state["chunks_done"] == 2 and state["chunks"] == 4 and "chunks: 2/4" in text
    process.send_signal(signal.SIGKILL)
    process.wait()
    code, state, text = status(out)
    assert code == 5 and state["state"] == "stopped" and state["last_error"] is None
    assert "stopped (no run holds it and none recorded an error" in text
    monkeypatch.setenv("FAKE_FAIL_QUERY", "q015")
    assert run_cli("run", str(job)).exit_code == 1
    code, state, text = status(out)
    assert code == 4 and state["state"] == "failed" and state["last_error"]["exit_code"] == 1
    assert "injected engine failure for query q015" in state["last_error"]["message"] and "failed: chunk 3" in text
    monkeypatch.delenv("FAKE_FAIL_QUERY")
    assert run_cli("run", str(job), "--preview", "0").exit_code == 0
    code, state, text = status(out)
    assert code == 0 and state["state"] == "complete" and state["rows_scored"] == 200 and state["last_error"] is None
    assert not (out / "_FAILED.json").exists(), "a run that finishes clears the last failure"
    assert run_cli("status", str(tmp_path)).exit_code == 2


def test_an_interrupted_run_is_stopped_not_failed(tmp_path: Path) -> None:
    """A scheduler's SIGTERM stops the run (exit 130); status says stopped, with why, and a rerun resumes."""
    job = write_job(tmp_path / "job.yaml", write_parquet(make_pairs(20, 10), tmp_path / "in.parquet"), NO_MODEL,
                    tmp_path / "out", run={"chunk_size": 50, "executor": "local"})
    process = subprocess.Popen(FAKE_BATCHRANK + ["run", str(job)], env={**os.environ, "FAKE_SCORER_SLEEP": "0.5"},
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not list((tmp_path / "out" / "scores").glob("part-*.parquet")) and time.monotonic() < deadline:
        time.sleep(0.02)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert "interrupted; finished parts are kept" in stderr
    code, state, text = status(tmp_path / "out")
    assert code == 5 and state["state"] == "stopped" and state["last_error"]["exit_code"] == 130, text
    assert "stopped: interrupted (Ctrl-C or SIGTERM)" in text
    rerun = subprocess.run(FAKE_BATCHRANK + ["run", str(job), "--preview", "0"], capture_output=True, text=True,
                           timeout=120)
    assert rerun.returncode == 0 and "resuming:" in rerun.stderr, rerun.stderr
    assert status(tmp_path / "out")[0] == 0


def test_a_secret_quoted_by_an_error_reaches_no_output_file_log_or_status(tmp_path: Path, fake_engine: None,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """An engine error that quotes the job's credentials (as Ray quoted a job's whole runtime env): masked on the
    console, in _FAILED.json, in `status` and in every file of the output."""
    canary = "canary-" + os.urandom(12).hex()
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", canary)
    monkeypatch.setenv("FAKE_FAIL_QUERY", "q010")
    monkeypatch.setenv("FAKE_FAIL_DETAIL", f" with credentials {canary}")
    out = tmp_path / "out"
    job = write_job(tmp_path / "job.yaml", write_parquet(make_pairs(20, 10), tmp_path / "in.parquet"), NO_MODEL, out,
                    run={"chunk_size": 50, "executor": "local", "chunks_in_flight_per_worker": 1})
    result = run_cli("run", str(job), "--preview", "0")
    assert result.exit_code == 1 and "injected engine failure for query q010 with credentials ***" in result.output
    assert "run the same command again to resume" in result.output, "a rerun can fix an engine error"
    code, state, text = status(out)
    assert code == 4 and state["last_error"]["message"].endswith("with credentials ***")
    assert canary not in result.output + text + json.dumps(state)
    leaks = [path for path in out.rglob("*") if path.is_file() and canary.encode() in path.read_bytes()]
    assert not leaks and len(list(out.rglob("*"))) > 5


def test_a_secret_in_the_spec_reaches_no_output_file(tmp_path: Path, fake_engine: None,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """A credential the spec takes from the environment (model.engine.hf_token: ${HF_TOKEN}, for a gated model) is
    the engine's, never the output's: run.json, job.json and report.html record it masked."""
    canary = "hf_" + os.urandom(12).hex()
    monkeypatch.setenv("HF_TOKEN", canary)
    out = tmp_path / "out"
    job = write_job(tmp_path / "job.yaml", write_parquet(make_pairs(10, 5), tmp_path / "in.parquet"), NO_MODEL, out,
                    run={"chunk_size": 50, "executor": "local"})
    spec = yaml.safe_load(job.read_text())
    spec["model"]["engine"] = {"hf_token": "${HF_TOKEN}"}
    job.write_text(yaml.safe_dump(spec))
    result = run_cli("run", str(job), "--preview", "0")
    assert result.exit_code == 0, result.output
    assert json.loads((out / "run.json").read_text())["spec"]["model"]["engine"]["hf_token"] == "***"
    leaks = [path for path in out.rglob("*") if path.is_file() and canary.encode() in path.read_bytes()]
    assert not leaks and canary not in result.output
    monkeypatch.setenv("HF_TOKEN", "hf_" + os.urandom(12).hex())  # a rotated token is not a changed job
    rerun = run_cli("run", str(job), "--preview", "0")
    assert rerun.exit_code == 0 and "nothing to do" in rerun.output, rerun.output


# --- logs: results on stdout, batchrank on stderr, the engine's lines in OUTPUT/logs/engine.log -------------------


def test_stdout_holds_results_only_and_the_engine_log_keeps_the_rest(pairs: Path, tiny_model: str,
                                                                    tmp_path: Path) -> None:
    job = write_job(tmp_path / "job.yaml", pairs, tiny_model, tmp_path / "out")
    done = subprocess.run([BATCHRANK, "run", str(job), "--preview", "1"], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert lines[0].startswith("scored 20 pairs in 1 chunks (1 this run, ") and "report:" in done.stdout
    assert not [line for line in lines if "vllm" in line.lower() or " WARNING " in line or " INFO " in line], lines
    engine_log = (tmp_path / "out" / "logs" / "engine.log").read_text()
    assert " vllm" in engine_log and "INFO" in engine_log, "vLLM's lines are kept, in the output directory"
    rate = json.loads((tmp_path / "out" / "run.json").read_text())["pairs_per_second_this_run"]
    assert f"{rate:.1f} pairs/s" in lines[0], "one pairs/s figure: the summary is run.json's"
    # -q: a run that starts its engine and scores writes nothing to stderr (torch's C++ notes included)
    quiet = subprocess.run([BATCHRANK, "-q", "run", str(job), "--preview", "0", "--overwrite"], capture_output=True,
                           text=True, timeout=600)
    assert quiet.returncode == 0 and quiet.stderr == "", quiet.stderr
    assert quiet.stdout.startswith("scored 20 pairs in 1 chunks")


# --- the Python API: what a pipeline task writes; many jobs in one process -----------------------------------------


API_JOBS = """
import json, os, sys
import psutil
import batchrank
from batchrank.scoring import engine

job, root = sys.argv[1], sys.argv[2]
environment = dict(os.environ)
report = []
for length in (200, 224, 256):  # three engines of different settings, one after another, in one process
    spec = batchrank.load_spec(job, [f"model.max_model_len={length}", f"output.path={root}/{length}"])
    result = batchrank.run_job(spec)
    report.append({"pairs": result.total_pairs, "output": result.output, "engines_held": len(engine._ENGINES),
                   "type": type(result).__name__})
try:
    batchrank.run_job(batchrank.load_spec(job, ["model.path=/nope"]))
except batchrank.SpecError as error:
    report.append({"error": str(error)})
from batchrank.reaper import process_reaper
changed = sorted(k for k in set(os.environ) | set(environment) if os.environ.get(k) != environment.get(k))
# multiprocessing's resource tracker (started by the first spawn, ends with this process) is the standard library's
left = [p.cmdline() for p in psutil.Process().children(recursive=True)
        if p.pid != process_reaper().pid and p.status() != psutil.STATUS_ZOMBIE
        and "resource_tracker" not in " ".join(p.cmdline())]
report.append({"environment_changed": changed, "processes_left": left})
print(json.dumps(report), flush=True)
raise RuntimeError("the caller's own error")
"""


def test_the_python_api_runs_jobs_back_to_back_and_releases_each_engine(pairs: Path, tiny_model: str,
                                                                        tmp_path: Path) -> None:
    """A pipeline task's process: several jobs through the API, each engine released when its job ends (before, the
    third job of a process failed for the memory the first two still held), and the process left as it was: no
    engine process, no environment variable set or changed, and its own errors printed without a "[rank0]:" prefix
    (the engine core runs in a process of its own, on the CPU build too); each job's vLLM lines in its own
    OUTPUT/logs/engine.log and none on the caller's stdout (before: 72 lines a job)."""
    job = write_job(tmp_path / "job.yaml", pairs, tiny_model, tmp_path / "out")
    done = subprocess.run([sys.executable, "-c", API_JOBS, str(job), str(tmp_path)], capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 1 and "\nRuntimeError: the caller's own error\n" in done.stderr, done.stderr[-3000:]
    assert "[rank0]" not in done.stderr
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1, f"vLLM's lines stay off the caller's stdout: {lines[:5]}"
    report = json.loads(lines[0])
    for length, entry in zip((200, 224, 256), report[:3], strict=True):
        assert entry == {"pairs": 20, "output": str(tmp_path / str(length)), "engines_held": 0, "type": "JobResult"}
        assert pl.read_parquet(f"{entry['output']}/scores/part-000000.parquet").height == 20
        engine_log = (Path(entry["output"]) / "logs" / "engine.log").read_text()
        assert " vllm" in engine_log and "INFO" in engine_log, "each job's own engine.log, as from the CLI"
    assert report[3]["error"].startswith("model.path /nope: no such directory")
    assert report[4] == {"environment_changed": [], "processes_left": []}


def test_the_readme_example_runs_as_written(tmp_path: Path, fake_engine: None) -> None:
    """The README's Python API example, executed as a pipeline task would run it."""
    readme = (REPO / "README.md").read_text()
    example = readme.split("<!-- python-api-example -->")[1].split("```python")[1].split("```")[0]
    write_parquet(make_pairs(3, 4), tmp_path / "candidates.parquet")
    job = write_job(tmp_path / "job.yaml", tmp_path / "candidates.parquet", NO_MODEL, tmp_path / "out",
                    run={"executor": "local"})
    assert '"jobs/msmarco.yaml"' in example
    namespace: dict = {}
    exec(compile(example.replace('"jobs/msmarco.yaml"', repr(str(job))), "README.md", "exec"), namespace)
    result = namespace["result"]
    assert result.total_pairs == 12 and str(result.output) == str(tmp_path / "out")


HOLD_THE_OUTPUT = """
import sys
from batchrank.output.layout import OutputLayout
from batchrank.output.lock import OutputLock
OutputLock(OutputLayout(sys.argv[1])).acquire()
print("held", flush=True)
sys.stdin.read()
"""


def test_a_spec_built_in_python_runs_and_a_held_output_says_wait(tmp_path: Path, fake_engine: None) -> None:
    """load_spec(dict) + run_job; while another process holds the output, run_job raises OutputInUse (the CLI's exit
    75: a scheduler waits) and writes nothing; once it is released, the same call scores every pair."""
    import batchrank

    write_parquet(make_pairs(3, 4), tmp_path / "candidates.parquet")
    tree = {"input": {"path": str(tmp_path / "candidates.parquet"),
                      "columns": {"query_id": "qid", "query": "query_text", "doc_id": "pid", "document": "passage"}},
            "model": {"path": NO_MODEL}, "run": {"executor": "local"}, "output": {"path": str(tmp_path / "out")}}
    spec = batchrank.load_spec(tree)
    holder = subprocess.Popen([sys.executable, "-c", HOLD_THE_OUTPUT, str(tmp_path / "out")], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(batchrank.OutputInUse, match=f"in use by another batchrank run .*pid {holder.pid}") as info:
            batchrank.run_job(spec)
        assert info.value.exit_code == 75 and isinstance(info.value, batchrank.CheckpointError)
        assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [".lock"], "a refused run writes nothing"
    finally:
        holder.communicate("")
    result = batchrank.run_job(spec)
    assert result.total_pairs == 12 and result.chunks_scored == 1


def test_progress_lines_name_chunks_by_id_and_count_them_apart(tmp_path: Path) -> None:
    """`chunk N` is always the chunk's id, whether it is done or failed; the counts say `of`. A num_workers the
    local executor cannot use is said, not silently ignored."""
    rows = make_pairs(20, 10, seed=1)  # 4 chunks of 5 queries; q007 is in chunk 1
    job = write_job(tmp_path / "job.yaml", write_parquet(rows, tmp_path / "in.parquet"), NO_MODEL, tmp_path / "out",
                    run={"executor": "local", "chunk_size": 50, "num_workers": 3})
    done = subprocess.run(FAKE_BATCHRANK + ["run", str(job), "--preview", "0"], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "FAKE_FAIL_QUERY": "q007", "FAKE_FAIL_TIMES": "1"})
    assert done.returncode == 0, done.stderr
    assert "run.num_workers: 3 is ignored: the local executor (run.executor: local) runs one engine in this " \
           "process; set run.executor: ray for 3 workers" in done.stderr
    assert "chunk 1 failed (attempt 1/2): RuntimeError: injected engine failure for query q007; retrying" \
        in done.stderr
    finished = re.findall(r"chunk (\d+) done: (\d+) of 4 chunks, (\d+) of 200 pairs", done.stderr)
    assert sorted(int(chunk) for chunk, _, _ in finished) == [0, 1, 2, 3]
    assert [(int(count), int(pairs)) for _, count, pairs in finished] == [(1, 50), (2, 100), (3, 150), (4, 200)]
    assert pl.read_parquet(str(tmp_path / "out" / "scores" / "*.parquet")).height == 200


# --- reruns and directories ------------------------------------------------------------------------------------------


def test_a_rerun_of_a_finished_job_writes_nothing(tmp_path: Path, fake_engine: None) -> None:
    rows = make_pairs(6, 5)
    rows = rows[1::2] + rows[::2]  # scattered: a staged copy is made, and removed once the job is complete
    qrels = tmp_path / "qrels.txt"
    qrels.write_text("q000 0 d000-001 1\nq001 0 d001-003 1\n")
    job = write_job(tmp_path / "job.yaml", write_parquet(rows, tmp_path / "in.parquet"), NO_MODEL, tmp_path / "out",
                    run={"executor": "local"}, eval={"qrels": str(qrels)})
    assert run_cli("run", str(job), "--preview", "0").exit_code == 0
    out = tmp_path / "out"
    assert not (out / "staging").exists(), "the staged copy of the input is gone after _SUCCESS"
    written = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
    time.sleep(0.05)
    os.utime(tmp_path / "in.parquet")  # touched, not changed: the same input
    rerun = run_cli("run", str(job), "--preview", "0")
    assert rerun.exit_code == 0 and rerun.stdout.startswith("nothing to do:") and "nDCG@10" in rerun.stdout
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()} == written, "nothing rewritten"
    kept = write_job(tmp_path / "kept.yaml", tmp_path / "in.parquet", NO_MODEL, tmp_path / "kept",
                     run={"executor": "local"}, output={"keep_staged_input": True})
    assert run_cli("run", str(kept), "--preview", "0").exit_code == 0
    assert (tmp_path / "kept" / "staging" / "input-grouped-by-query.parquet").exists()


def test_report_from_another_directory_keeps_the_metrics(tmp_path: Path, fake_engine: None,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    write_parquet([{**row, "first_stage_rank": row["bm25_rank"]} for row in make_pairs(4, 5)], tmp_path / "in.parquet")
    Path("qrels.txt").write_text("q000 0 d000-001 1\nq001 0 d001-003 1\n")
    job = write_job(tmp_path / "job.yaml", Path("in.parquet"), NO_MODEL, Path("out"), run={"executor": "local"},
                    eval={"qrels": "qrels.txt"},  # relative paths, as a user writes them
                    output={"keep_columns": ["first_stage_rank"]})
    assert run_cli("run", str(job), "--preview", "0").exit_code == 0
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    result = run_cli("report", str(tmp_path / "out"))
    assert result.exit_code == 0, result.output
    assert f"qrels from the job spec: {tmp_path / 'qrels.txt'}" in result.stderr and "nDCG@10" in result.stdout
    assert (tmp_path / "out" / "report" / "ndcg-delta.png").exists()
    assert "No qrels given" not in (tmp_path / "out" / "report.html").read_text()
    run_info = json.loads((tmp_path / "out" / "run.json").read_text())
    assert run_info["spec"]["input"]["path"] == str(tmp_path / "in.parquet")
    assert run_info["spec"]["output"]["path"] == str(tmp_path / "out")


def test_the_model_may_move_without_invalidating_its_checkpoint(tmp_path: Path, tiny_model: str) -> None:
    """A checkpoint depends on the model's files, not on where they are: a copy elsewhere resumes; a changed file
    is refused, naming what changed."""
    copy = tmp_path / "model-copy"
    shutil.copytree(tiny_model, copy)
    job = write_job(tmp_path / "job.yaml", write_parquet(make_pairs(2, 5), tmp_path / "in.parquet"), tiny_model,
                    tmp_path / "out")
    assert run_cli("run", str(job), "--preview", "0").exit_code == 0
    moved = run_cli("run", str(job), "--set", f"model.path={copy}", "--preview", "0")
    assert moved.exit_code == 0 and moved.stdout.startswith("nothing to do:"), moved.output
    (copy / "tokenizer_config.json").write_text((copy / "tokenizer_config.json").read_text().replace("}", ' }', 1))
    changed = run_cli("run", str(job), "--set", f"model.path={copy}")
    one_line_error(changed, 2, "the model's files changed since the checkpoint", "--overwrite")
    dtype = run_cli("run", str(job), "--set", "model.dtype=bfloat16")
    one_line_error(dtype, 2, "model.dtype changed since the checkpoint: 'float32' -> 'bfloat16'")
    instruction = one_line_error(run_cli("run", str(job), "--set", "prompt.instruction=find recipes"), 2,
                                 "model.input_format.instruction changed since the checkpoint: 'Given a web search "
                                 "query, retrieve relevant passages that answer the query' -> 'find recipes'")
    assert "<|im_start|>" not in instruction  # the field that changed, not the whole input format twice
