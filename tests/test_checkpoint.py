"""Finding what is done (output/checkpoint.py) and the ledger that makes it cheap (output/ledger.py).

The ledger may spare reads, never vouch for a part that is not done: every way a part or a ledger file can be
damaged, missing or stale is tried here, and each must end in the part being opened (and redone when bad).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pyarrow.fs as pafs
import pytest
from checkpoint_fixtures import ROWS, FooterReads, fabricate, write_chunk_part

from batchrank.output import ledger as ledger_module
from batchrank.output.checkpoint import find_finished, finished_chunks
from batchrank.output.ledger import read_ledger
from batchrank.output.manifest import Manifest
from batchrank.plan import Chunk
from conftest import make_pairs, run_cli, write_job, write_parquet


def ledger_files(root: Path) -> list[Path]:
    return sorted((root / "ledger").glob("*.json"))


def test_the_ledger_vouches_for_every_part_so_none_is_opened(tmp_path, monkeypatch):
    layout, manifest = fabricate(tmp_path / "out", 10, monkeypatch=monkeypatch)
    assert len(ledger_files(tmp_path / "out")) == 3  # batches of 4, 4 and 2
    reads = FooterReads(monkeypatch)
    found = find_finished(layout, manifest)
    assert sorted(found.done) == list(range(10)) and found.opened == 0 and reads.parts == 0
    assert all(part.stats.pairs == ROWS for part in found.done.values())


def test_parts_written_after_the_last_batch_are_opened(tmp_path, monkeypatch):
    layout, manifest = fabricate(tmp_path / "out", 10, recorded=7, monkeypatch=monkeypatch)
    reads = FooterReads(monkeypatch)
    found = find_finished(layout, manifest)
    assert sorted(found.done) == list(range(10)) and found.opened == 3 and reads.parts == 3


def damage(path: Path, how: str) -> None:
    data = path.read_bytes()
    if how == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif how == "footer overwritten, same size":
        path.write_bytes(data[:-40] + b"\0" * 40)
    elif how == "emptied":
        path.write_bytes(b"")
    elif how == "garbage, same size":
        path.write_bytes(os.urandom(len(data)))


@pytest.mark.parametrize("how", ["truncated", "footer overwritten, same size", "emptied", "garbage, same size"])
def test_a_damaged_part_is_not_done_whatever_the_ledger_says(tmp_path, monkeypatch, how):
    layout, manifest = fabricate(tmp_path / "out", 6, monkeypatch=monkeypatch)
    part = tmp_path / "out" / "scores" / "part-000003.parquet"
    damage(part, how)
    assert 3 not in finished_chunks(layout, manifest, repair=False)
    assert part.exists()  # without repair (batchrank status) nothing is touched
    found = find_finished(layout, manifest)
    assert sorted(found.done) == [0, 1, 2, 4, 5] and found.removed == 1 and not part.exists()


def test_a_part_replaced_by_another_chunks_part_is_not_done(tmp_path, monkeypatch):
    layout, manifest = fabricate(tmp_path / "out", 4, monkeypatch=monkeypatch)
    scores = tmp_path / "out" / "scores"
    shutil.copyfile(scores / "part-000001.parquet", scores / "part-000002.parquet")
    assert sorted(finished_chunks(layout, manifest)) == [0, 1, 3]


def test_a_ledger_entry_without_its_part_is_not_done(tmp_path, monkeypatch):
    layout, manifest = fabricate(tmp_path / "out", 4, monkeypatch=monkeypatch)
    (tmp_path / "out" / "scores" / "part-000002.parquet").unlink()
    assert sorted(finished_chunks(layout, manifest)) == [0, 1, 3]


def test_an_entry_for_another_plan_does_not_vouch(tmp_path, monkeypatch):
    """The ledger's rows must account for the chunk of this plan (one row more: the part is opened, and fails)."""
    layout, manifest = fabricate(tmp_path / "out", 3, monkeypatch=monkeypatch)
    plan = [Chunk(0, 0, ROWS), Chunk(1, ROWS, ROWS + 1), Chunk(2, 2 * ROWS + 1, ROWS)]
    other = Manifest(manifest.fingerprint, plan, 3 * ROWS + 1, None)
    reads = FooterReads(monkeypatch)
    assert sorted(finished_chunks(layout, other, repair=False)) == [0, 2] and reads.parts == 1


def test_an_entry_of_unknown_time_does_not_vouch(tmp_path, monkeypatch):
    layout, manifest = fabricate(tmp_path / "out", 3, monkeypatch=monkeypatch)
    for path in ledger_files(tmp_path / "out"):
        data = json.loads(path.read_text())
        for entry in data["parts"]:
            entry["part_mtime_ns"] = 0
        path.write_text(json.dumps(data))
    reads = FooterReads(monkeypatch)
    assert sorted(finished_chunks(layout, manifest, repair=False)) == [0, 1, 2] and reads.parts == 3


@pytest.mark.parametrize("how", ["missing", "garbage", "cut short", "another version", "one bad entry"])
def test_a_lost_or_damaged_ledger_file_costs_reads_only(tmp_path, monkeypatch, how):
    layout, manifest = fabricate(tmp_path / "out", 10, monkeypatch=monkeypatch)
    batch = ledger_files(tmp_path / "out")[1]  # chunks 4..7
    text = batch.read_text()
    if how == "missing":
        batch.unlink()
    elif how == "garbage":
        batch.write_bytes(os.urandom(200))
    elif how == "cut short":
        batch.write_text(text[: len(text) // 2])
    elif how == "another version":
        batch.write_text(json.dumps({**json.loads(text), "version": 99}))
    else:
        data = json.loads(text)
        del data["parts"][0]["stats"]["pairs"]
        batch.write_text(json.dumps(data))
    reads = FooterReads(monkeypatch)
    found = find_finished(layout, manifest)
    assert sorted(found.done) == list(range(10))
    assert found.opened == reads.parts == (1 if how == "one bad entry" else 4)


def test_rejected_rows_must_be_in_their_piece(tmp_path, monkeypatch):
    layout, manifest = fabricate(tmp_path / "out", 4, rejected={1: 2, 2: 1}, monkeypatch=monkeypatch)
    reads = FooterReads(monkeypatch)
    assert sorted(finished_chunks(layout, manifest, repair=False)) == [0, 1, 2, 3] and reads.parts == 0
    (tmp_path / "out" / "rejects" / "part-000001.parquet").unlink()
    damage(tmp_path / "out" / "rejects" / "part-000002.parquet", "truncated")
    assert sorted(finished_chunks(layout, manifest)) == [0, 3]


def test_compacting_writes_one_file_that_vouches_for_every_part(tmp_path, monkeypatch):
    layout, manifest = fabricate(tmp_path / "out", 10, recorded=6, monkeypatch=monkeypatch)
    found = find_finished(layout, manifest)
    assert found.opened == 4 and not found.ledger_is_compact
    found.ledger(layout).compact()
    assert len(ledger_files(tmp_path / "out")) == 1
    reads = FooterReads(monkeypatch)
    again = find_finished(layout, manifest)
    assert sorted(again.done) == list(range(10)) and again.ledger_is_compact and reads.parts == 0


def test_a_later_file_wins_and_batches_are_merged(tmp_path, monkeypatch):
    layout, manifest = fabricate(tmp_path / "out", 2, monkeypatch=monkeypatch)
    monkeypatch.setattr(ledger_module, "LEDGER_BATCH_PARTS", 1)
    monkeypatch.setattr(ledger_module, "MAX_LEDGER_FILES", 3)
    found = find_finished(layout, manifest)
    ledger = found.ledger(layout)
    rewritten = write_chunk_part(layout, manifest.chunks[0])  # scored again: another time, maybe another size
    ledger.record(rewritten)
    assert read_ledger(layout)[0][0] == rewritten
    for _ in range(6):
        ledger.record(rewritten)
    # the first file, two merges of three batches (their parts only), one batch
    assert len(ledger_files(tmp_path / "out")) == 4 == len(ledger.files)
    assert read_ledger(layout)[0] == {0: rewritten, 1: found.done[1]}
    ledger.compact()
    assert len(ledger_files(tmp_path / "out")) == 1
    assert read_ledger(layout)[0] == {0: rewritten, 1: found.done[1]}


def test_a_killed_run_resumes_and_redoes_a_damaged_part(tmp_path, fake_engine):
    """End to end: a finished job, its end undone as a kill during the final step leaves it, one part damaged in
    place (same size): the rerun scores that chunk again, and the output equals the first."""
    data = write_parquet(make_pairs(12, 5), tmp_path / "in" / "pairs.parquet")
    job = write_job(tmp_path / "job.yaml", data, "/nonexistent/model", tmp_path / "out",
                    run={"chunk_size": 10, "executor": "local"})
    assert run_cli("run", str(job), "--preview", "0").exit_code == 0
    out = tmp_path / "out"
    assert len(ledger_files(out)) == 1  # compacted at the end
    first = pl.read_parquet(out / "scores" / "*.parquet").sort("query_id", "doc_id")
    (out / "_SUCCESS").unlink()
    (out / "run.json").unlink()
    damage(out / "scores" / "part-000002.parquet", "footer overwritten, same size")
    result = run_cli("run", str(job), "--preview", "0")
    assert result.exit_code == 0, result.output
    assert "1 damaged part(s) removed" in result.output
    assert "scored 60 pairs in 6 chunks (1 this run" in result.output
    assert pl.read_parquet(out / "scores" / "*.parquet").sort("query_id", "doc_id").equals(first)


MOTO_SERVER = """
import sys
from moto.server import ThreadedMotoServer
server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=True)  # one log line per request
server.start()
print(server.get_host_and_port()[1], flush=True)
sys.stdin.read()
server.stop()
"""


class Requests:
    """moto's S3 server in a child process, logging each request it serves (as test_object_store.py starts it)."""

    def __init__(self, log: Path):
        self.log = log
        self.server = subprocess.Popen([sys.executable, "-c", MOTO_SERVER], stdin=subprocess.PIPE,
                                       stdout=subprocess.PIPE, stderr=open(log, "w"), text=True)
        assert self.server.stdout is not None
        self.port = ""
        while not self.port.isdigit():  # verbose, it says that it starts before it says its port
            line = self.server.stdout.readline()
            assert line, f"moto's server did not start (exit code {self.server.poll()})"
            self.port = line.strip()

    def count(self) -> int:
        time.sleep(0.2)  # the server logs a request once it has answered it
        return sum(" HTTP/1." in line for line in self.log.read_text(errors="replace").splitlines())

    def stop(self) -> None:
        assert self.server.stdin is not None
        self.server.stdin.close()
        self.server.wait(timeout=30)


@pytest.fixture
def s3_requests(tmp_path, monkeypatch):
    server = Requests(tmp_path / "moto.log")
    for name in ("AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_S3", "AWS_DEFAULT_REGION", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{server.port}")
    for name, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing"),
                        ("AWS_REGION", "us-east-1"), ("AWS_EC2_METADATA_DISABLED", "true")):
        monkeypatch.setenv(name, value)
    pafs.S3FileSystem(access_key="testing", secret_key="testing", region="us-east-1", scheme="http",
                      endpoint_override=f"127.0.0.1:{server.port}", allow_bucket_creation=True).create_dir("bucket")
    yield server
    server.stop()


def test_in_an_object_store_the_check_is_one_listing_not_a_request_per_part(s3_requests, monkeypatch):
    counts = {}
    for parts in (8, 24):
        layout, manifest = fabricate(f"s3://bucket/out{parts}", parts, batch_parts=parts, monkeypatch=monkeypatch)
        before = s3_requests.count()
        found = find_finished(layout, manifest, repair=False)
        counts[parts] = s3_requests.count() - before
        assert len(found.done) == parts and found.opened == 0
    # listings of scores/, rejects/ and ledger/, and the ledger's one file (HEAD + GET): whatever the parts
    assert counts[8] == counts[24] <= 6
    for path, _ in layout.ledger.list_files(".json"):
        path.unlink()
    before = s3_requests.count()
    assert len(finished_chunks(layout, manifest, repair=False)) == 24
    assert s3_requests.count() - before <= 3 + 2 * 24  # without the ledger: a HEAD and one read of each footer
