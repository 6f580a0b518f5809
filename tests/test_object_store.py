"""Input and output in an object store (s3://), against moto's S3 server: a real S3 endpoint over HTTP, so pyarrow's
S3 client, listings, uploads and errors are the real ones; nothing is mocked in Python.

The server (moto.server.ThreadedMotoServer) runs in a child process: it imports Flask, whose context-local proxies
raise on attribute access outside a request, and vLLM's engine start walks every loaded module's attributes, so a
Flask loaded in this process would break every later engine start of the test session.

storage.py and the lease are tested without an engine; `batchrank run` end to end with FakeScorer (staging, rejects,
local and remote paths mixed), and once with the tiny model on the shared engine, against a local-path run.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

import batchrank.output.lease as lease_module
from batchrank import storage
from batchrank.errors import CheckpointError, SpecError
from batchrank.output import holder as holders
from batchrank.output.lease import Lease
from batchrank.planning.preflight import check_output_outside_input
from batchrank.spec import parse_spec
from batchrank.storage import StoragePath
from conftest import BATCHRANK, make_pairs, run_cli, write_job, write_parquet

NO_MODEL = "/nonexistent/model"  # FakeScorer needs none
LOCAL = {"chunk_size": 50, "executor": "local"}


MOTO_SERVER = """
import sys
from moto.server import ThreadedMotoServer
server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
server.start()
print(server.get_host_and_port()[1], flush=True)
sys.stdin.read()  # until the test process closes the pipe (or dies)
server.stop()
"""


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    """moto's S3 server on a free port, and the environment batchrank reads S3 settings from."""
    server = subprocess.Popen([sys.executable, "-c", MOTO_SERVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, text=True)
    assert server.stdout is not None and server.stdin is not None
    port = server.stdout.readline().strip()
    assert port.isdigit(), f"moto's server did not start (exit code {server.poll()})"
    endpoint = f"http://127.0.0.1:{port}"
    with pytest.MonkeyPatch.context() as patch:
        for name in ("AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_S3", "AWS_DEFAULT_REGION", "AWS_PROFILE"):
            patch.delenv(name, raising=False)
        patch.setenv("AWS_ENDPOINT_URL", endpoint)
        patch.setenv("AWS_ACCESS_KEY_ID", "testing")
        patch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        patch.setenv("AWS_REGION", "us-east-1")
        patch.setenv("AWS_EC2_METADATA_DISABLED", "true")
        yield endpoint
    server.stdin.close()
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


@pytest.fixture(scope="module")
def raw(s3_endpoint: str) -> pafs.S3FileSystem:
    """A client of its own (not batchrank's) to set buckets up and check what batchrank wrote."""
    return pafs.S3FileSystem(access_key="testing", secret_key="testing", region="us-east-1", scheme="http",
                             endpoint_override=s3_endpoint.removeprefix("http://"), allow_bucket_creation=True)


@pytest.fixture
def bucket(raw: pafs.S3FileSystem) -> str:
    name = f"batchrank-{uuid.uuid4().hex[:12]}"
    raw.create_dir(name)
    return f"s3://{name}"


def key(uri: str) -> str:
    return uri.removeprefix("s3://")


def put(raw: pafs.S3FileSystem, uri: str, data: bytes) -> None:
    with raw.open_output_stream(key(uri), compression=None) as stream:  # the bytes as given, even for a .gz key
        stream.write(data)


def get(raw: pafs.S3FileSystem, uri: str) -> bytes:
    with raw.open_input_stream(key(uri), compression=None) as stream:
        return stream.read()


def listing(raw: pafs.S3FileSystem, uri: str) -> list[str]:
    """Every object under a prefix, relative to it."""
    selector = pafs.FileSelector(key(uri), recursive=True, allow_not_found=True)
    return sorted(info.path.removeprefix(key(uri) + "/") for info in raw.get_file_info(selector) if info.is_file)


def put_parquet(raw: pafs.S3FileSystem, uri: str, rows: list[dict[str, Any]]) -> None:
    buffer = io.BytesIO()
    pl.DataFrame(rows).write_parquet(buffer)
    put(raw, uri, buffer.getvalue())


def read_scores(raw: pafs.S3FileSystem | None, out: str | Path) -> pl.DataFrame:
    """The scored rows of an output, read with the test's own client (or from disk)."""
    if raw is None:
        return pl.read_parquet(str(Path(out) / "scores" / "part-*.parquet")).sort("query_id", "doc_id")
    parts = [p for p in listing(raw, f"{out}/scores") if p.startswith("part-")]
    tables = [pq.read_table(f"{key(str(out))}/scores/{p}", filesystem=raw) for p in parts]
    return pl.concat([pl.from_arrow(t) for t in tables]).sort("query_id", "doc_id")


def read_rejects(raw: pafs.S3FileSystem | None, out: str | Path) -> pl.DataFrame:
    if raw is None:
        frame = pl.read_parquet(Path(out) / "rejects.parquet")
    else:
        frame = pl.from_arrow(pq.read_table(f"{key(str(out))}/rejects.parquet", filesystem=raw))
    # The file column names where each row came from: a path or a URI, compared by file name.
    return frame.with_columns(pl.col("file").str.split("/").list.last()).sort("query_id", "doc_id", "reason")


def read_lease(raw: pafs.S3FileSystem, uri: str) -> dict[str, Any]:
    """A lease as the test reads it while its heartbeat rewrites it: moto (not S3) rewrites an object's bytes in
    place without a lock, so a read at that moment can return old and new bytes mixed; read again then."""
    for _ in range(20):
        try:
            return json.loads(get(raw, uri))
        except ValueError:
            time.sleep(0.01)
    return json.loads(get(raw, uri))


def lease_json(host: str, pid: int, age: float) -> bytes:
    now = time.time()
    return json.dumps({"host": host, "pid": pid, "started": now - age - 60, "heartbeat": now - age}).encode()


# --- storage.py, no engine ----------------------------------------------------------------------------------------


def test_an_atomic_write_is_one_whole_object_and_leaves_nothing_else(bucket: str, raw, tmp_path: Path) -> None:
    target = StoragePath.of(f"{bucket}/out/job.json")
    target.write_bytes(b"first")
    target.write_bytes(b"second version")
    assert get(raw, str(target)) == b"second version" and target.read_text() == "second version"
    assert listing(raw, f"{bucket}/out") == ["job.json"], "no temporary object, no directory marker"
    assert target.exists() and target.is_file() and target.parent.exists() and not target.parent.is_file()
    big = os.urandom(12 << 20)  # over one upload part: a multipart upload, still one object at the end
    StoragePath.of(f"{bucket}/out/big.bin").write_bytes(big)
    assert get(raw, f"{bucket}/out/big.bin") == big
    with pytest.raises(RuntimeError), StoragePath.of(f"{bucket}/out/failed.bin").atomic_writer() as handle:
        handle.write(b"half")
        raise RuntimeError("the writer failed")
    assert "failed.bin" not in listing(raw, f"{bucket}/out"), "a failed write leaves no object"
    target.unlink()
    target.unlink(missing_ok=True)
    assert not target.exists()
    with pytest.raises(FileNotFoundError):
        target.unlink()
    StoragePath.of(f"{bucket}/out").delete_tree()
    StoragePath.of(f"{bucket}/out").delete_tree()  # a missing prefix is fine
    assert listing(raw, bucket) == []
    local = StoragePath.of(tmp_path / "job.json")
    local.write_bytes(b"local")
    assert local.read_bytes() == b"local" and [p.name for p in tmp_path.iterdir()] == ["job.json"]


def test_object_paths_compose_like_pathlib() -> None:
    root = StoragePath.of("s3://bucket/runs/msmarco/")
    assert StoragePath.is_uri(str(root)) and str(root) == "s3://bucket/runs/msmarco"
    part = root / "scores" / "part-000001.parquet"
    assert str(part) == "s3://bucket/runs/msmarco/scores/part-000001.parquet"
    assert part.name == "part-000001.parquet" and part.suffix == ".parquet" and part.parent == root / "scores"
    assert str(part.with_name("x")) == "s3://bucket/runs/msmarco/scores/x"
    assert str(StoragePath.of("s3://bucket/a").parent) == "s3://bucket"
    assert StoragePath.of("out/local") == StoragePath.of(Path("out/local")) and not StoragePath.is_uri("out/s3://x")
    assert str(StoragePath.of("out/local")) == "out/local" and StoragePath.of("out/local").supports_posix_locks
    assert part.is_relative_to(root) and not StoragePath.of("s3://bucket/runs/msmarco2").is_relative_to(root)
    assert not root.supports_posix_locks and StoragePath.of("gcs://b/x") == StoragePath.of("gs://b/x")
    with pytest.raises(ValueError):
        root / "../escaped"


GLOB_NAMES = ["data/a.parquet", "data/b.parquet", "data/sub/c.parquet", "data/sub/deeper/d.parquet",
              "data/.hidden.parquet", "data/notes.txt", "database/e.parquet", "f.parquet", "data/_SUCCESS",
              "data/_temporary/0/g.parquet", "data/sub/_SUCCESS", "data/sub/.c.parquet.crc",
              "data/date=2026-12-01/h.parquet", "data/date=2026-12-02/i.parquet", "data/date=2026-12-02/_SUCCESS"]
PARTITIONS = ["data/date=2026-12-01/h.parquet", "data/date=2026-12-02/i.parquet"]
UNDER_DATA = ["data/a.parquet", "data/b.parquet", *PARTITIONS, "data/sub/c.parquet", "data/sub/deeper/d.parquet"]
GLOBS = {  # the glob module's rules; names starting with '_' or '.' hidden; a matched directory: its data files
    "data/*.parquet": ["data/a.parquet", "data/b.parquet"],
    "data/**/*.parquet": UNDER_DATA,
    "**/*.parquet": [*UNDER_DATA, "database/e.parquet", "f.parquet"],
    "data/?.parquet": ["data/a.parquet", "data/b.parquet"],
    "data/[ab].parquet": ["data/a.parquet", "data/b.parquet"],
    "data/*/*.parquet": [*PARTITIONS, "data/sub/c.parquet"],
    "*.parquet": ["f.parquet"],
    "data/*": [*UNDER_DATA[:4], "data/notes.txt", *UNDER_DATA[4:]],
    "data/**": [*UNDER_DATA[:4], "data/notes.txt", *UNDER_DATA[4:]],
    "data/**/": UNDER_DATA,
    "data/date=*": PARTITIONS,
    "data/date=2026-12-0[12]/*.parquet": PARTITIONS,
    "nothing/*.parquet": [],
    "data/.*.parquet": ["data/.hidden.parquet"],
    "data/_temporary/**/*.parquet": ["data/_temporary/0/g.parquet"],
    "data/_*/**/*.parquet": ["data/_temporary/0/g.parquet"],
}


@pytest.mark.parametrize("pattern", GLOBS)
def test_a_glob_picks_the_same_files_locally_and_in_the_store(bucket: str, raw, tmp_path: Path, pattern: str) -> None:
    for name in GLOB_NAMES:
        put(raw, f"{bucket}/{name}", b"x")
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    expected = sorted(GLOBS[pattern])
    assert [str(p).removeprefix(bucket + "/") for p in storage.glob(f"{bucket}/{pattern}")] == expected
    assert [os.path.relpath(str(p), tmp_path) for p in storage.glob(f"{tmp_path}/{pattern}")] == expected
    written = [StoragePath.of(f"{bucket}/{name}") for name in GLOB_NAMES]
    assert sorted(str(p).removeprefix(bucket + "/") for p in written if p.matches(f"{bucket}/{pattern}")) == expected
    on_disk = [StoragePath.of(tmp_path / name) for name in GLOB_NAMES]
    assert sorted(os.path.relpath(str(p), tmp_path) for p in on_disk if p.matches(f"{tmp_path}/{pattern}")) == expected
    data = sorted(set(UNDER_DATA))
    assert [str(p).removeprefix(bucket + "/") for p in storage.data_files(StoragePath.of(f"{bucket}/data"))] == data
    assert [os.path.relpath(str(p), tmp_path) for p in storage.data_files(StoragePath.of(tmp_path / "data"))] == data


def test_output_inside_input_is_refused_for_uris() -> None:
    def check(source: str, output: str) -> None:
        check_output_outside_input(parse_spec({"input": {"path": source}, "model": {"path": NO_MODEL},
                                               "output": {"path": output}}))

    for source, output in [("s3://b/data", "s3://b/data/out"), ("s3://b/data/", "s3://b/data"),
                           ("s3://b/data/**/*.parquet", "s3://b/data/out"), ("gs://b/data", "gcs://b/data/x"),
                           ("s3://b/data/*", "s3://b/data/out"), ("/tmp/data/o*", "/tmp/data/out")]:  # directories
        with pytest.raises(SpecError, match="lies inside input.path"):
            check(source, output)
    for source, output in [("s3://b/data", "s3://b/database"), ("s3://b/data/*.parquet", "s3://b/data/out"),
                           ("s3://b/data", "s3://other/data/out"), ("s3://b/data", "/tmp/data/out")]:
        check(source, output)  # parts under data/out/scores/ never match data/*.parquet


def test_errors_name_the_uri(bucket: str, raw, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                             fake_engine: None) -> None:
    put_parquet(raw, f"{bucket}/in/pairs.parquet", make_pairs(2, 3))

    def run(source: str, output: str) -> str:
        job = write_job(tmp_path / "job.yaml", source, NO_MODEL, output, run=LOCAL)
        result = run_cli("run", str(job))
        assert result.exit_code == 2, result.output
        assert "Traceback" not in result.output
        return result.output

    assert f"input.path {bucket}/in/*.txt: the glob matches no object" in run(f"{bucket}/in/*.txt", f"{bucket}/o")
    assert f"input.path {bucket}/none: no such object" in run(f"{bucket}/none", f"{bucket}/o")
    assert "the bucket 'no-such-bucket-x' does not exist" in run("s3://no-such-bucket-x/in/*.parquet", f"{bucket}/o")
    output = run(f"{bucket}/in/pairs.parquet", "s3://no-such-bucket-y/out")
    assert "s3://no-such-bucket-y/out/_lock.json: the bucket 'no-such-bucket-y' does not exist" in output
    qrels = tmp_path / "qrels.txt"
    qrels.write_text("q000 0 d000-000 1\n")
    for command in ("status", "eval"):
        extra = ("--qrels", str(qrels)) if command == "eval" else ()
        result = run_cli(command, "s3://no-such-bucket-y/out", *extra)
        assert result.exit_code == 2 and "the bucket 'no-such-bucket-y' does not exist" in result.output, result.output
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:1")  # nothing listens there
    assert "cannot reach the object store" in run(f"{bucket}/in/pairs.parquet", f"{bucket}/o")


# --- the lease ----------------------------------------------------------------------------------------------------


def test_the_lease_is_renewed_while_held_refuses_others_and_is_removed(bucket: str, raw, monkeypatch) -> None:
    monkeypatch.setattr(lease_module, "HEARTBEAT_SECONDS", 0.2)
    location = StoragePath.of(f"{bucket}/out/_lock.json")

    def in_use(holder: dict[str, Any], age: float) -> Exception:
        return CheckpointError(f"held by {holder['host']} pid {holder['pid']}, {age:.0f} s")

    first = Lease(location, in_use)
    first.acquire()
    try:
        taken = read_lease(raw, str(location))
        assert taken["host"] == socket.gethostname() and taken["pid"] == os.getpid()
        time.sleep(1.0)
        renewed = read_lease(raw, str(location))
        assert renewed["heartbeat"] > taken["heartbeat"] and renewed["started"] == taken["started"]
        with pytest.raises(CheckpointError, match=f"held by {socket.gethostname()} pid {os.getpid()}"):
            Lease(location, in_use).acquire()
    finally:
        first.release()
    assert listing(raw, f"{bucket}/out") == []
    put(raw, str(location), lease_json("gpu-node-7", 4242, age=500))  # stale: taken over
    second = Lease(location, in_use)
    second.acquire()
    second.release()
    assert listing(raw, f"{bucket}/out") == []


# --- `batchrank run` with FakeScorer: staging, rejects, local and remote paths mixed ------------------------------


def scattered_rows() -> list[dict[str, Any]]:
    """Queries whose rows are scattered (a staged copy is needed) and bad rows (skip: rejects)."""
    rows = make_pairs(20, 10, seed=4)
    rows = rows[1::2] + rows[::2]
    rows[3]["passage"] = "   "
    rows[7] = dict(rows[6])  # a duplicate pair
    return rows


@pytest.mark.parametrize("remote_input, remote_output", [(True, True), (True, False), (False, True)])
def test_a_job_in_the_object_store_equals_the_same_job_on_disk(
    bucket: str, raw, tmp_path: Path, fake_engine: None, remote_input: bool, remote_output: bool
) -> None:
    rows = scattered_rows()
    halves = [write_parquet(rows[:90], tmp_path / "in" / "a.parquet"), write_parquet(rows[90:], tmp_path / "in" / "b.parquet")]
    for half in halves:
        put(raw, f"{bucket}/in/{half.name}", half.read_bytes())
    skip = {"on_bad_rows": "skip"}
    reference = write_job(tmp_path / "ref.yaml", tmp_path / "in" / "*.parquet", NO_MODEL, tmp_path / "ref", run=LOCAL,
                          input=skip)
    assert run_cli("run", str(reference), "--preview", "0").exit_code == 0
    source = f"{bucket}/in/*.parquet" if remote_input else tmp_path / "in" / "*.parquet"
    out = f"{bucket}/out" if remote_output else tmp_path / "out"
    job = write_job(tmp_path / "job.yaml", source, NO_MODEL, out, run=LOCAL, input=skip)
    result = run_cli("run", str(job), "--preview", "1")
    assert result.exit_code == 0, result.output
    assert f"scores: {out}/scores" in result.output
    client = raw if remote_output else None
    assert read_scores(client, out).equals(read_scores(None, tmp_path / "ref"))
    assert read_rejects(client, out).equals(read_rejects(None, tmp_path / "ref"))
    assert read_rejects(client, out).height == 2
    if remote_output:
        written = listing(raw, out)
        assert {"job.json", "run.json", "_SUCCESS", "rejects.parquet", "rejects/plan.parquet", "report.html"} <= set(written)
        assert not [name for name in written if name.startswith("staging/")], "the staged copy goes at the end"
        assert "_lock.json" not in written and not [name for name in written if ".tmp" in name]
        manifest = json.loads(get(raw, f"{out}/job.json"))
        assert manifest["staged_input"] == f"{out}/staging/input-grouped-by-query.parquet"
    if remote_input:
        run_info = json.loads(get(raw, f"{out}/run.json")) if remote_output else json.loads((out / "run.json").read_text())
        assert run_info["spec"]["input"]["path"] == f"{bucket}/in/*.parquet"


@pytest.mark.parametrize("scattered", [False, True])
def test_a_spark_dataset_in_the_store_with_its_partition_column(bucket: str, raw, tmp_path: Path, fake_engine: None,
                                                                scattered: bool) -> None:
    """`s3://.../data/**` skips Spark's `_SUCCESS` and `.crc` objects, and `date` comes from `date=.../` prefixes,
    read by row range (whole queries per file) or through the staged copy (queries scattered)."""
    rows = make_pairs(12, 10, seed=9)
    rows = rows[1::2] + rows[::2] if scattered else rows
    for number, date in enumerate(("2026-12-01", "2026-12-02")):
        put_parquet(raw, f"{bucket}/data/date={date}/part-00000.snappy.parquet", rows[number * 60:(number + 1) * 60])
        put(raw, f"{bucket}/data/date={date}/_SUCCESS", b"")
        put(raw, f"{bucket}/data/date={date}/.part-00000.snappy.parquet.crc", b"crc")
        write_parquet(rows[number * 60:(number + 1) * 60], tmp_path / "data" / f"date={date}" / "part.parquet")
    put(raw, f"{bucket}/data/_SUCCESS", b"")
    keep = {"keep_columns": ["bm25_rank", "date"]}
    reference = write_job(tmp_path / "ref.yaml", tmp_path / "data", NO_MODEL, tmp_path / "ref", run=LOCAL,
                          output=keep)
    assert run_cli("run", str(reference), "--preview", "0").exit_code == 0
    for pattern in ("data/**", "data/date=*"):
        out = f"{bucket}/out-{pattern.replace('*', 'x').replace('/', '-')}"
        job = write_job(tmp_path / "job.yaml", f"{bucket}/{pattern}", NO_MODEL, out, run=LOCAL, output=keep)
        result = run_cli("run", str(job), "--preview", "0")
        assert result.exit_code == 0, result.output
        got = read_scores(raw, out)
        assert got.equals(read_scores(None, tmp_path / "ref")) and got["date"].n_unique() == 2


def test_resume_redoes_a_damaged_part_and_input_changes_are_refused(bucket: str, raw, tmp_path: Path,
                                                                    fake_engine: None) -> None:
    put_parquet(raw, f"{bucket}/in/pairs.parquet", make_pairs(20, 10, seed=2))  # 4 chunks of 50, no staging
    job = write_job(tmp_path / "job.yaml", f"{bucket}/in/pairs.parquet", NO_MODEL, f"{bucket}/out", run=LOCAL)
    result = run_cli("validate", str(job))
    assert result.exit_code == 0 and "rows: 200" in result.output and "input OK" in result.output
    assert run_cli("run", str(job), "--preview", "0").exit_code == 0
    reference = read_scores(raw, f"{bucket}/out")
    part = f"{bucket}/out/scores/part-000002.parquet"
    put(raw, part, get(raw, part)[:300])  # an object cut short (written by something else): redone, not read
    raw.delete_file(key(f"{bucket}/out/_SUCCESS"))
    result = run_cli("run", str(job), "--preview", "0")
    assert result.exit_code == 0, result.output
    assert "resuming: 3 of 4 chunks already scored" in result.output and "1 this run" in result.output
    assert read_scores(raw, f"{bucket}/out").equals(reference)
    time.sleep(1.1)  # S3's last-modified time has one-second resolution
    put_parquet(raw, f"{bucket}/in/pairs.parquet", make_pairs(20, 10, seed=3))
    result = run_cli("run", str(job))
    assert result.exit_code == 2 and "input file(s) changed since the checkpoint" in result.output
    assert f"{bucket}/in/pairs.parquet" in result.output


def test_a_fresh_lease_refuses_the_run_and_a_stale_one_is_taken_over(bucket: str, raw, tmp_path: Path,
                                                                      fake_engine: None) -> None:
    put_parquet(raw, f"{bucket}/in/pairs.parquet", make_pairs(4, 5))
    job = write_job(tmp_path / "job.yaml", f"{bucket}/in/pairs.parquet", NO_MODEL, f"{bucket}/out", run=LOCAL)
    put(raw, f"{bucket}/out/_lock.json", lease_json("gpu-node-7", 4242, age=5))
    result = run_cli("run", str(job))
    assert result.exit_code == 75, result.output  # in use: a scheduler waits and retries
    assert "is in use by another batchrank run (host gpu-node-7, pid 4242)" in result.output
    assert f"remove {bucket}/out/_lock.json if that run is dead" in result.output
    assert listing(raw, f"{bucket}/out") == ["_lock.json"], "a refused run writes nothing"
    put(raw, f"{bucket}/out/_lock.json", lease_json("gpu-node-7", 4242, age=600))
    result = run_cli("run", str(job), "--preview", "0")
    assert result.exit_code == 0, result.output
    assert "taking over the lease of host gpu-node-7, pid 4242" in result.output
    assert "_lock.json" not in listing(raw, f"{bucket}/out")


def test_every_path_a_command_takes_may_be_a_uri(bucket: str, raw, tmp_path: Path, fake_engine: None) -> None:
    """The job spec, the qrels (text and Parquet) and the export file in the store, for every command."""
    rows = make_pairs(6, 5)
    put_parquet(raw, f"{bucket}/in/pairs.parquet", rows)
    judged = "".join(f"q{q:03d} 0 d{q:03d}-001 1\n" for q in range(6))
    put(raw, f"{bucket}/qrels.txt", judged.encode())
    put(raw, f"{bucket}/qrels.txt.gz", gzip.compress(judged.encode()))
    put(raw, f"{bucket}/broken.txt.gz", gzip.compress(judged.encode())[:20])
    qrels_frame = pl.DataFrame({"query_id": [f"q{q:03d}" for q in range(6)],
                                "doc_id": [f"d{q:03d}-001" for q in range(6)], "relevance": [1] * 6})
    buffer = io.BytesIO()
    qrels_frame.write_parquet(buffer)
    put(raw, f"{bucket}/qrels.parquet", buffer.getvalue())
    out = f"{bucket}/out"
    job = write_job(tmp_path / "job.yaml", f"{bucket}/in/pairs.parquet", NO_MODEL, out, run=LOCAL,
                    eval={"qrels": f"{bucket}/qrels.txt"})
    put(raw, f"{bucket}/jobs/job.yaml", job.read_bytes())

    result = run_cli("validate", f"{bucket}/jobs/job.yaml")
    assert result.exit_code == 0 and f"qrels: 6 judgments in {bucket}/qrels.txt" in result.output, result.output
    result = run_cli("run", f"{bucket}/jobs/job.yaml", "--preview", "0")
    assert result.exit_code == 0 and "queries judged: 6 of 6" in result.output, result.output
    assert json.loads(get(raw, f"{out}/eval.json"))["qrels"] == f"{bucket}/qrels.txt"
    assert read_scores(raw, out).height == 30
    for qrels in (f"{bucket}/qrels.txt", f"{bucket}/qrels.txt.gz", f"{bucket}/qrels.parquet"):
        result = run_cli("eval", out, "--qrels", qrels, "--json")
        assert result.exit_code == 0, result.output
        assert json.loads(result.output.splitlines()[-1])["queries_judged"] == 6
    result = run_cli("report", out, "--qrels", f"{bucket}/qrels.parquet")
    assert result.exit_code == 0 and f"report: {out}/report.html" in result.output, result.output
    result = run_cli("report", out)  # the spec's eval.qrels, a URI, as run.json keeps it
    assert result.exit_code == 0 and f"qrels from the job spec: {bucket}/qrels.txt" in result.output, result.output
    result = run_cli("export", out, "-o", f"{bucket}/exports/run.trec")
    assert result.exit_code == 0, result.output
    assert len(get(raw, f"{bucket}/exports/run.trec").decode().splitlines()) == 30
    for destination in (f"{bucket}/exports/run.trec.gz", str(tmp_path / "run.trec.gz")):
        assert run_cli("export", out, "-o", destination).exit_code == 0
    assert get(raw, f"{bucket}/exports/run.trec.gz") == (tmp_path / "run.trec.gz").read_bytes(), \
        "the same bytes as a local file: the store's client does not compress a .gz name on its own"

    for command in (("eval", out, "--qrels"), ("report", out, "--qrels")):
        result = run_cli(*command, f"{bucket}/none.txt")
        assert result.exit_code == 2 and f"qrels {bucket}/none.txt: no such file" in result.output, result.output
        result = run_cli(*command, "s3://no-such-bucket-q/qrels.txt")
        assert result.exit_code == 2 and "the bucket 'no-such-bucket-q' does not exist" in result.output
    result = run_cli("eval", out, "--qrels", f"{bucket}/broken.txt.gz")
    assert result.exit_code == 2 and f"qrels {bucket}/broken.txt.gz: not a readable gzip file" in result.output
    result = run_cli("run", f"{bucket}/jobs/none.yaml")
    assert result.exit_code == 2 and f"{bucket}/jobs/none.yaml: job spec not found" in result.output, result.output
    result = run_cli("run", str(job), "--set", f"eval.qrels={bucket}/missing.txt")
    assert result.exit_code == 2 and f"qrels {bucket}/missing.txt: no such file" in result.output, result.output


def test_a_model_path_in_the_store_is_refused_naming_it(bucket: str, raw, tmp_path: Path) -> None:
    put_parquet(raw, f"{bucket}/in/pairs.parquet", make_pairs(2, 3))
    job = write_job(tmp_path / "job.yaml", f"{bucket}/in/pairs.parquet", f"{bucket}/models/m", f"{bucket}/out")
    result = run_cli("validate", str(job))
    assert result.exit_code == 2, result.output
    assert f"model.path {bucket}/models/m: an object-store URI; vLLM loads a model from a local directory" \
        in result.output
    assert listing(raw, f"{bucket}/out") == []


def start_fake_run(job: Path, **env: str) -> subprocess.Popen[str]:
    """`batchrank run` with FakeScorer in a process of its own (it reaches the store through this environment)."""
    command = [sys.executable, str(Path(__file__).with_name("fake_scorer.py")), "run", str(job), "--preview", "0"]
    return subprocess.Popen(command, env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)


def test_a_run_killed_on_this_host_is_stopped_and_its_lease_taken_over_at_once(bucket: str, raw, tmp_path: Path,
                                                                               fake_engine: None) -> None:
    rows = make_pairs(20, 10, seed=8)  # 4 chunks of 50
    write_parquet(rows, tmp_path / "pairs.parquet")
    reference = write_job(tmp_path / "ref.yaml", tmp_path / "pairs.parquet", NO_MODEL, tmp_path / "ref", run=LOCAL)
    assert run_cli("run", str(reference), "--preview", "0").exit_code == 0
    put_parquet(raw, f"{bucket}/in/pairs.parquet", rows)
    out = f"{bucket}/out"
    job = write_job(tmp_path / "job.yaml", f"{bucket}/in/pairs.parquet", NO_MODEL, out,
                    run={**LOCAL, "chunks_in_flight_per_worker": 1})
    first = start_fake_run(job, FAKE_SCORER_SLEEP="2")
    deadline = time.monotonic() + 120
    while first.poll() is None and time.monotonic() < deadline and \
            not [p for p in listing(raw, out) if p.startswith("scores/part-")]:
        time.sleep(0.1)
    try:
        assert first.poll() is None, first.communicate()[0]
        result = run_cli("status", out)
        assert result.exit_code == 3, result.output
        assert f"running (host {socket.gethostname()}, pid {first.pid}" in result.output
        result = run_cli("run", str(job), "--preview", "0")  # a second run while the first lives: wait and retry
        assert result.exit_code == 75, result.output
        assert f"is in use by another batchrank run (host {socket.gethostname()}, pid {first.pid})" in result.output
    finally:
        first.kill()
        first.communicate()
    assert json.loads(get(raw, f"{out}/_lock.json"))["pid"] == first.pid, "a SIGKILLed run leaves its lease"
    result = run_cli("status", out, "--json")
    assert result.exit_code == 5, result.output
    state = json.loads(result.output)
    assert state["state"] == "stopped" and state["run"] is None and 1 <= state["chunks_done"] < 4
    result = run_cli("run", str(job), "--preview", "0")  # at once, not after the lease's 120 s
    assert result.exit_code == 0, result.output
    assert f"taking over the lease of host {socket.gethostname()}, pid {first.pid}: its process is gone" \
        in result.output
    assert f"resuming: {state['chunks_done']} of 4 chunks already scored" in result.output
    assert read_scores(raw, out).equals(read_scores(None, tmp_path / "ref")), "nothing lost, nothing scored twice"
    assert "_lock.json" not in listing(raw, out)


def test_a_lease_this_host_cannot_judge_waits_for_its_heartbeat(bucket: str, raw, monkeypatch) -> None:
    """A fresh lease naming this host's name but another boot or pid namespace (another container) is not taken
    over, nor is one whose pid is alive; a reused pid (a process started later) is."""
    location = StoragePath.of(f"{bucket}/out/_lock.json")

    def in_use(holder: dict[str, Any], age: float) -> Exception:
        return CheckpointError(f"held by pid {holder['pid']}")

    me = holders.this_process()
    live = {**me, "pid": os.getpid(), "heartbeat": time.time()}
    for holder in ({**live, "boot": "another-boot"}, {**live, "pid_namespace": "pid:[1]"}, live):
        put(raw, str(location), json.dumps(holder).encode())
        with pytest.raises(CheckpointError, match=f"held by pid {os.getpid()}"):
            Lease(location, in_use).acquire()
    if "process_start" in me:
        put(raw, str(location), json.dumps({**live, "process_start": me["process_start"] - 1}).encode())
        taken = Lease(location, in_use)
        taken.acquire()
        taken.release()


# --- the real engine, once ----------------------------------------------------------------------------------------


def test_the_tiny_model_scores_the_same_in_s3_as_on_disk(tiny_model: str, bucket: str, raw, tmp_path: Path) -> None:
    rows = make_pairs(12, 10, seed=5)  # 120 pairs, chunks of 5 queries: the second spans both input files
    write_parquet(rows, tmp_path / "pairs.parquet")
    put_parquet(raw, f"{bucket}/in/pairs-0.parquet", rows[:60])
    put_parquet(raw, f"{bucket}/in/pairs-1.parquet", rows[60:])
    local_job = write_job(tmp_path / "local.yaml", tmp_path / "pairs.parquet", tiny_model, tmp_path / "local")
    result = run_cli("run", str(local_job), "--preview", "0")
    assert result.exit_code == 0, result.output
    reference = read_scores(None, tmp_path / "local")
    out = f"{bucket}/out"
    job = write_job(tmp_path / "job.yaml", f"{bucket}/in/*.parquet", tiny_model, out)
    result = run_cli("run", str(job), "--preview", "1")
    assert result.exit_code == 0, result.output

    def assert_same_scores(got: pl.DataFrame) -> None:
        assert got.columns == ["query_id", "doc_id", "score", "rank", "bm25_rank", "input_row"] and got.height == 120
        assert got.drop("score").equals(reference.drop("score"))
        assert (got["score"] - reference["score"]).abs().max() < 1e-6  # float32 noise from prefix-cache reuse

    assert_same_scores(read_scores(raw, out))
    written = listing(raw, out)
    assert [p for p in written if p.startswith("scores/")] == [f"scores/part-00000{i}.parquet" for i in range(3)]
    assert {"_SUCCESS", "job.json", "run.json", "report.html"} <= set(written) and "_lock.json" not in written
    assert json.loads(get(raw, f"{out}/run.json"))["pairs"] == 120

    result = run_cli("status", out)
    assert result.exit_code == 0 and "complete" in result.output and "chunks: 3/3  rows scored: 120/120" in result.output
    qrels = tmp_path / "qrels.txt"
    qrels.write_text("".join(f"q{q:03d} 0 d{q:03d}-00{q % 3} 1\n" for q in range(12)))
    result = run_cli("eval", out, "--qrels", str(qrels))
    assert result.exit_code == 0 and "nDCG@10" in result.output and "queries judged: 12 of 12" in result.output
    result = run_cli("export", out, "--top", "1")
    assert result.exit_code == 0 and len(result.output.splitlines()) == 12

    raw.delete_file(key(f"{out}/scores/part-000001.parquet"))
    raw.delete_file(key(f"{out}/_SUCCESS"))
    put(raw, f"{out}/_lock.json", lease_json("lost-node", 77, age=3600))  # a killed run's lease
    result = run_cli("run", str(job), "--preview", "0")
    assert result.exit_code == 0, result.output
    assert "taking over the lease of host lost-node, pid 77" in result.output and "1 this run" in result.output
    assert_same_scores(read_scores(raw, out))
    result = run_cli("run", str(job), "--preview", "0")
    assert result.exit_code == 0 and "nothing to do" in result.output

    put(raw, f"{out}/_lock.json", lease_json("gpu-node-7", 4242, age=1))
    result = run_cli("run", str(job), "--preview", "0")
    assert result.exit_code == 75 and "(host gpu-node-7, pid 4242)" in result.output


def test_ray_workers_read_and_write_the_object_store(tiny_model: str, bucket: str, raw, tmp_path: Path) -> None:
    """Ray actors (other processes, as on other nodes) read chunks from s3:// and upload their parts there."""
    rows = make_pairs(12, 10, seed=6)
    write_parquet(rows, tmp_path / "pairs.parquet")
    put_parquet(raw, f"{bucket}/in/pairs.parquet", rows)
    local_job = write_job(tmp_path / "local.yaml", tmp_path / "pairs.parquet", tiny_model, tmp_path / "local")
    assert run_cli("run", str(local_job), "--preview", "0").exit_code == 0
    run = {"chunk_size": 20, "executor": "ray", "num_workers": 2, "chunks_in_flight_per_worker": 1}
    job = write_job(tmp_path / "job.yaml", f"{bucket}/in/pairs.parquet", tiny_model, f"{bucket}/out", run=run)
    # The workers get the S3 settings from the environment of the Ray they run in, as on a cluster. The job starts
    # its own Ray and shuts it down: nothing to stop here (a `ray stop` would end every Ray on the machine).
    done = subprocess.run([BATCHRANK, "run", str(job), "--preview", "0"], capture_output=True, text=True,
                          timeout=900, env=dict(os.environ))
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    execution = json.loads(get(raw, f"{bucket}/out/run.json"))["execution"]
    # Workers join as their engines come up: on a busy machine the first one may score all 6 chunks.
    assert execution["executor"] == "ray" and 1 <= len(execution["per_worker"]) <= 2
    assert sum(worker["pairs"] for worker in execution["per_worker"].values()) == 120
    got, reference = read_scores(raw, f"{bucket}/out"), read_scores(None, tmp_path / "local")
    assert got.drop("score").equals(reference.drop("score"))
    assert (got["score"] - reference["score"]).abs().max() < 1e-6
