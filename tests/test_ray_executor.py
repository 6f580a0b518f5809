"""The Ray executor as Ray users run it, on clusters these tests start and stop themselves (tests/ray_cluster.py: own
temporary directory, own ports; nothing else on the machine is touched): a job spread over three nodes, a node lost
mid-run, killed and silent workers, a cluster too small, SIGTERM and `ray job stop`, a job's own runtime env with a
canary secret, and `ray job submit` of the real engine.

Most tests run actors with tests/fake_scorer.py's FakeScorer, shipped to them through the scorer factory (no engine
start per actor; deterministic scores, so the output must equal the local one exactly); the `ray job submit` smoke
test runs the real vLLM engine in its actor."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import polars as pl
import psutil
import pytest

from batchrank.execute.ray_executor import worker_processes
from conftest import BATCHRANK, REPO, make_pairs, scored_parts, wait_for_parts, write_job, write_parquet
from ray_cluster import LocalRayCluster, remove_cluster

RAY = str(Path(sys.executable).with_name("ray"))
FAKE_BATCHRANK = [sys.executable, str(Path(__file__).with_name("fake_scorer.py"))]
TEST_PATH = os.pathsep.join([str(Path(__file__).parent), str(REPO)])  # fake_scorer, in the driver and the actors
NO_MODEL = "/nonexistent/model"
CANARY = "canary-" + os.urandom(12).hex()  # an AWS secret that must appear in no file, log line or status


@pytest.fixture(scope="module")
def cluster() -> LocalRayCluster:
    """Three nodes of 2 CPUs (the head declares a GPU too, so that `auto` places engines by it), with Ray's job
    server for `ray job submit`."""
    with LocalRayCluster([{"num_cpus": 2, "num_gpus": 1}, {"num_cpus": 2}, {"num_cpus": 2}], dashboard=True) as ray:
        yield ray


@pytest.fixture(scope="module")
def pairs_and_local_output(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("ray-fake-input")
    source = write_parquet(make_pairs(60, 25, seed=21), root / "pairs.parquet")  # 1,500 pairs, 20 chunks
    job = write_job(root / "local.yaml", source, NO_MODEL, root / "local", run={"chunk_size": 75, "executor": "local"})
    done = subprocess.run(FAKE_BATCHRANK + ["run", str(job), "--preview", "0"], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "PYTHONPATH": TEST_PATH})
    assert done.returncode == 0, done.stderr
    return source, root / "local"


def ray_job(tmp_path: Path, source: Path, name: str = "job", **run: object) -> Path:
    """A Ray job of 2 workers (2 CPUs each) writing tmp_path/out (tmp_path/NAME-out for another name)."""
    settings = {"chunk_size": 75, "executor": "ray", "num_workers": 2,
                "worker_resources": {"num_cpus": 2, "num_gpus": 0}, **run}
    out = tmp_path / ("out" if name == "job" else f"{name}-out")
    return write_job(tmp_path / f"{name}.yaml", source, NO_MODEL, out, run=settings)


def start(job: Path, log: Path, cluster: LocalRayCluster, *args: str, **env: str) -> subprocess.Popen:
    """`batchrank run JOB` (FakeScorer in the driver and in every actor) against `cluster`."""
    with open(log, "w") as handle:
        return subprocess.Popen(FAKE_BATCHRANK + ["run", str(job), "--preview", "0", *args], stdout=handle,
                                stderr=subprocess.STDOUT, text=True,
                                env=cluster.environment(PYTHONPATH=TEST_PATH, **env))


def run(job: Path, cluster: LocalRayCluster, *args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(FAKE_BATCHRANK + ["run", str(job), "--preview", "0", *args], capture_output=True, text=True,
                          timeout=300, env=cluster.environment(PYTHONPATH=TEST_PATH, **env))


def wait_for_workers(process: subprocess.Popen, log: Path, count: int, timeout: float = 300) -> None:
    """Until `count` workers have said they are ready (or the process ends, or the timeout passes)."""
    deadline = time.monotonic() + timeout
    while log.read_text().count(" ready: scoring on node ") < count and process.poll() is None and \
            time.monotonic() < deadline:
        time.sleep(0.05)


def status(out: Path) -> tuple[int, dict, str]:
    done = subprocess.run([BATCHRANK, "status", str(out), "--json"], capture_output=True, text=True, timeout=60)
    return done.returncode, json.loads(done.stdout), done.stdout


def read(out: Path) -> pl.DataFrame:
    return pl.read_parquet(str(out / "scores" / "*.parquet")).sort("query_id", "doc_id")


def execution(out: Path) -> dict:
    return json.loads((out / "run.json").read_text())["execution"]


def assert_no_canary(*texts: str, directories: tuple[Path, ...] = ()) -> None:
    for text in texts:
        assert CANARY not in text
    for directory in directories:
        for path in directory.rglob("*"):
            assert not path.is_file() or CANARY.encode() not in path.read_bytes(), f"the secret is in {path}"


def test_a_cluster_that_holds_fewer_workers_than_asked_says_so_and_scores_with_them(
        cluster, pairs_and_local_output, tmp_path) -> None:
    source, local = pairs_and_local_output
    done = run(ray_job(tmp_path, source, num_workers=4), cluster)  # 2 CPUs each, on nodes of 2 CPUs: 3 fit
    assert done.returncode == 0, done.stderr
    assert "the cluster can hold 3 of the 4 worker(s) with {num_gpus: 0, num_cpus: 2} each (3 node(s) with 6 CPUs" \
        in done.stderr and "scoring with 3" in done.stderr
    assert read(tmp_path / "out").equals(read(local))
    assert len(execution(tmp_path / "out")["worker_nodes"]) == 3


def test_no_worker_that_can_be_placed_stops_the_job_naming_the_resources(cluster, pairs_and_local_output,
                                                                          tmp_path) -> None:
    source, _ = pairs_and_local_output
    job = ray_job(tmp_path, source, worker_resources={"num_cpus": 3, "num_gpus": 0}, worker_start_timeout=5)
    done = run(job, cluster)
    assert done.returncode == 1, done.stderr
    assert "no node of the cluster can hold one of the 2 worker(s) with {num_gpus: 0, num_cpus: 3} each" in done.stderr
    message = [line for line in done.stderr.splitlines() if line.startswith("error: ")][-1]
    assert message.startswith("error: no Ray worker could start within 5 s (run.worker_start_timeout 5 s): 2 asked for, "
                              "each with {num_gpus: 0, num_cpus: 3} (0 placed and starting their engines, 2 not "
                              "placed); the cluster has 3 node(s) with 6 CPUs, 1 GPUs in all (the largest: 2 CPUs, 1 "
                              "GPUs)"), message
    assert "run the same command again" not in done.stderr and "fix the cause above first" in done.stderr
    code, state, _ = status(tmp_path / "out")
    assert code == 4 and state["state"] == "failed" and state["last_error"]["rerun_helps"] is False
    assert "no Ray worker could start" in state["last_error"]["message"] and state["chunks_done"] == 0


def test_an_engine_that_cannot_start_stops_the_job_with_its_error(cluster, pairs_and_local_output, tmp_path) -> None:
    source, _ = pairs_and_local_output
    done = run(ray_job(tmp_path, source, num_workers=1), cluster, FAKE_SCORER_START_FAILS="CUDA out of memory (test)")
    assert done.returncode == 1, done.stderr
    message = [line for line in done.stderr.splitlines() if line.startswith("error: ")][-1]
    assert message == "error: worker-0 could not start its engine: RuntimeError: CUDA out of memory (test)", message
    assert "fix the cause above first" in done.stderr


def test_a_killed_worker_does_not_use_up_its_chunks_attempts(cluster, pairs_and_local_output, tmp_path) -> None:
    """Two workers killed while holding the chunk of q010 (as preemptions would), with one attempt per chunk."""
    source, local = pairs_and_local_output
    job = ray_job(tmp_path, source, max_attempts=1)
    done = run(job, cluster, FAKE_EXIT_QUERY="q010", FAKE_EXIT_TIMES="2",
               FAKE_EXIT_COUNT_FILE=str(tmp_path / "exits"))
    assert done.returncode == 0, done.stderr
    assert done.stderr.count(" lost: ") == 2 and "does not count against a chunk's attempts" in done.stderr
    assert read(tmp_path / "out").equals(read(local))
    lost = execution(tmp_path / "out")["lost_workers"]
    assert len(lost) == 2 and all(3 in entry["chunks"] for entry in lost), lost  # q010 is in chunk 3


def test_workers_that_die_in_a_loop_stop_the_job_and_a_rerun_resumes(cluster, pairs_and_local_output,
                                                                      tmp_path) -> None:
    source, local = pairs_and_local_output
    job = ray_job(tmp_path, source, max_lost_workers=2)
    done = run(job, cluster, FAKE_EXIT_QUERY="q010")
    assert done.returncode == 1, done.stderr
    message = [line for line in done.stderr.splitlines() if line.startswith("error: ")][-1]
    assert message.startswith("error: 3 workers were lost (killed, preempted, out of memory or their node gone), more "
                              "than run.max_lost_workers 2: workers die in a loop; the chunks they held most often: "
                              ), message
    assert "chunk 3 (3 times)" in message and "Worker exit type: SYSTEM_ERROR" in message
    assert "run the same command again" not in done.stderr
    parts = scored_parts(tmp_path / "out")
    assert parts and "part-000003.parquet" not in {p.name for p in parts}
    code, state, _ = status(tmp_path / "out")
    assert code == 4 and "workers die in a loop" in state["last_error"]["message"]
    rerun = run(job, cluster)
    assert rerun.returncode == 0 and "resuming:" in rerun.stderr, rerun.stderr
    assert read(tmp_path / "out").equals(read(local))


def test_a_worker_that_stops_answering_is_replaced_after_stall_timeout(cluster, pairs_and_local_output,
                                                                       tmp_path) -> None:
    source, local = pairs_and_local_output
    job = ray_job(tmp_path, source, num_workers=2, stall_timeout=4)
    started = time.time()
    process = start(job, tmp_path / "run.log", cluster, FAKE_SCORER_SLEEP="0.5")
    wait_for_workers(process, tmp_path / "run.log", 2)
    wait_for_parts(process, tmp_path / "out", 3)
    frozen = [p for p in cluster.processes("ScoringWorker") if p.create_time() >= started - 1][0]
    frozen.send_signal(signal.SIGSTOP)  # alive, holding its chunks, answering nothing
    assert process.wait(timeout=300) == 0, (tmp_path / "run.log").read_text()
    log = (tmp_path / "run.log").read_text()
    assert f"(pid {frozen.pid} on " in log and "lost: answered nothing for " in log, log
    assert "(run.stall_timeout 4 s): killed" in log
    # ray.kill reaches a stopped process through its raylet (SIGKILL after a grace period): after the driver has
    # exited, within a deadline, not necessarily before.
    assert gone_within(frozen, 60), f"the frozen worker (pid {frozen.pid}) is still there 60 s after the job"
    assert read(tmp_path / "out").equals(read(local))


def gone_within(process: psutil.Process, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if not process.is_running() or process.status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.5)
    return False


def test_sigterm_is_stopped_with_exit_130_and_a_killed_driver_resumes(cluster, pairs_and_local_output,
                                                                      tmp_path) -> None:
    """ray.init installs a SIGTERM handler of its own (SystemExit 15): the job's stays in place. Then the driver of
    the next run is SIGKILLed (Ray ends a dead driver's actors itself), and a third run finishes the job."""
    source, local = pairs_and_local_output
    job = ray_job(tmp_path, source)
    process = start(job, tmp_path / "run.log", cluster, FAKE_SCORER_SLEEP="0.5")
    wait_for_parts(process, tmp_path / "out", 2)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 130, (tmp_path / "run.log").read_text()
    assert "interrupted; finished parts are kept" in (tmp_path / "run.log").read_text()
    failure = json.loads((tmp_path / "out" / "_FAILED.json").read_text())
    assert failure["exit_code"] == 130 and failure["error"] == "KeyboardInterrupt", failure
    code, state, _ = status(tmp_path / "out")
    assert code == 5 and state["state"] == "stopped"
    assert 2 <= state["chunks_done"] < state["chunks"]
    killed = start(job, tmp_path / "killed.log", cluster, FAKE_SCORER_SLEEP="0.3")
    wait_for_parts(killed, tmp_path / "out", state["chunks_done"] + 2)
    os.kill(killed.pid, signal.SIGKILL)
    killed.wait()
    assert len(scored_parts(tmp_path / "out")) < state["chunks"], "the kill must land mid-job"
    rerun = run(job, cluster)
    assert rerun.returncode == 0 and "resuming:" in rerun.stderr, rerun.stderr
    assert read(tmp_path / "out").equals(read(local))


def submit(cluster: LocalRayCluster, job: Path, env_vars: dict[str, str], *options: str) -> subprocess.CompletedProcess:
    """`ray job submit` of `batchrank run JOB` (the fake scorer's) with the job's own runtime env."""
    runtime_env = json.dumps({"env_vars": env_vars})
    return subprocess.run([RAY, "job", "submit", "--runtime-env-json", runtime_env, *options, "--", *FAKE_BATCHRANK,
                           "run", str(job), "--preview", "0"], capture_output=True, text=True, timeout=300,
                          env=cluster.environment())


def test_ray_job_submit_keeps_its_runtime_env_leaks_no_secret_and_ray_job_stop_is_stopped(
        cluster, pairs_and_local_output, tmp_path) -> None:
    """The job's runtime env sets variables batchrank needs too (before: "Failed to merge the Job's runtime env",
    with the secret in the message, in _FAILED.json and in `status`), and S3 credentials the way Ray documents.
    (The smoke test below submits a job with its own runtime env that succeeds.)"""
    source, _ = pairs_and_local_output
    job = ray_job(tmp_path, source)
    own = {"HF_HUB_OFFLINE": "1", "AWS_REGION": "eu-west-1", "AWS_DEFAULT_REGION": "eu-west-1",
           "VLLM_CPU_KVCACHE_SPACE": "1", "PYTHONPATH": TEST_PATH, "AWS_ACCESS_KEY_ID": "AKIA" + CANARY[7:23],
           "AWS_SECRET_ACCESS_KEY": CANARY}
    # a library error that quotes the credentials it was given
    # (q040 is in chunk 13, handed out only once 10 chunks are done: 2 workers hold 2 chunks each)
    failing = submit(cluster, job, {**own, "FAKE_FAIL_QUERY": "q040", "FAKE_FAIL_DETAIL": f" (secret {CANARY})"})
    assert failing.returncode != 0, failing.stdout
    assert "Failed to merge" not in failing.stdout + failing.stderr
    assert "injected engine failure for query q040 (secret ***)" in failing.stdout, failing.stdout[-3000:]
    code, state, status_text = status(tmp_path / "out")
    assert code == 4 and "(secret ***)" in state["last_error"]["message"]
    assert state["chunks_done"] >= 10, "what was scored before the failure is kept"
    engine_log = (tmp_path / "out" / "logs" / "engine.log").read_text()
    assert re.search(r" worker-\d \d+ vllm.fake_engine INFO fake engine started", engine_log), engine_log
    assert "fake engine started" not in failing.stdout, "engine lines stay off the console"
    # `ray job stop`: SIGTERM to the driver, then SIGKILL 3 s later
    stopped_job, stopped_out = ray_job(tmp_path, source, name="stopped"), tmp_path / "stopped-out"
    submitted = submit(cluster, stopped_job, {**own, "FAKE_SCORER_SLEEP": "1.5"}, "--no-wait",
                       "--submission-id", f"stopped-{os.getpid()}-{time.monotonic_ns()}")
    assert submitted.returncode == 0, submitted.stderr
    job_id = submitted.stdout.split("Job '")[1].split("'")[0]
    deadline = time.monotonic() + 240
    while len(scored_parts(stopped_out)) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert subprocess.run([RAY, "job", "stop", job_id], capture_output=True, text=True, timeout=120,
                          env=cluster.environment()).returncode == 0
    logs = subprocess.run([RAY, "job", "logs", job_id], capture_output=True, text=True, timeout=60,
                          env=cluster.environment()).stdout
    assert "interrupted; finished parts are kept" in logs, logs[-2000:]
    code, state, stopped_status = status(stopped_out)
    assert code == 5 and state["state"] == "stopped" and state["last_error"]["exit_code"] == 130, stopped_status
    assert_no_canary(failing.stdout, failing.stderr, status_text, logs, stopped_status,
                     directories=(tmp_path / "out", stopped_out))


def test_auto_puts_two_engines_on_each_gpu_of_a_cluster_for_a_small_model(cluster, pairs_and_local_output,
                                                                           tmp_path) -> None:
    """The head's GPU is a declared resource: `auto` picks Ray (RAY_ADDRESS), two actors with half a GPU each."""
    source, local = pairs_and_local_output
    job = write_job(tmp_path / "job.yaml", source, NO_MODEL, tmp_path / "out", run={"chunk_size": 75})
    done = run(job, cluster)
    assert done.returncode == 0, done.stderr
    info = execution(tmp_path / "out")
    assert info["executor"] == "ray" and info["engines_per_gpu"] == 2
    assert info["workers"] == 2 and info["worker_resources"] == {"num_gpus": 0.5, "num_cpus": 1}
    assert read(tmp_path / "out").equals(read(local))


def test_a_job_spreads_over_three_nodes_and_a_node_lost_mid_run_loses_nothing(cluster, pairs_and_local_output,
                                                                              tmp_path) -> None:
    """Last in this module: it takes a node away from the shared cluster."""
    source, local = pairs_and_local_output
    job = ray_job(tmp_path, source, num_workers=3, max_attempts=1)
    process = start(job, tmp_path / "run.log", cluster, FAKE_SCORER_SLEEP="1")  # work left once all 3 are up
    wait_for_workers(process, tmp_path / "run.log", 3)
    wait_for_parts(process, tmp_path / "out", 4)
    cluster.remove_node(2)  # its raylet and its worker die, as when a machine is lost
    assert process.wait(timeout=300) == 0, (tmp_path / "run.log").read_text()
    assert " lost: " in (tmp_path / "run.log").read_text()
    assert read(tmp_path / "out").equals(read(local)), "every pair once, the same scores"
    info = execution(tmp_path / "out")
    assert len(set(info["worker_nodes"].values())) == 3, info["worker_nodes"]
    assert len(info["lost_workers"]) == 1 and info["lost_workers"][0]["chunks"], info["lost_workers"]


def test_a_ray_that_batchrank_starts_itself_survives_a_killed_actor(pairs_and_local_output, tmp_path) -> None:
    """No cluster named: the driver starts a local Ray (in a temporary directory of this test's, which it stops)."""
    source, local = pairs_and_local_output
    job = ray_job(tmp_path, source, worker_resources={"num_cpus": 1, "num_gpus": 0}, chunks_in_flight_per_worker=3)
    ray_tmp = tempfile.mkdtemp(prefix="br-ray-", dir="/tmp")
    environment = {**os.environ, "PYTHONPATH": TEST_PATH, "RAY_TMPDIR": ray_tmp, "FAKE_SCORER_SLEEP": "0.5"}
    environment.pop("RAY_ADDRESS", None)
    try:
        with open(tmp_path / "run.log", "w") as handle:
            process = subprocess.Popen(FAKE_BATCHRANK + ["run", str(job), "--preview", "0"], stdout=handle,
                                       stderr=subprocess.STDOUT, env=environment)
        wait_for_workers(process, tmp_path / "run.log", 2)
        wait_for_parts(process, tmp_path / "out", 4)
        ours = [p for p in worker_processes() if p.environ().get("RAY_TMPDIR") == ray_tmp]
        assert len(ours) == 2, "two actors, each hosting an engine"
        ours[0].send_signal(signal.SIGKILL)
        assert process.wait(timeout=300) == 0, (tmp_path / "run.log").read_text()
        assert " lost: " in (tmp_path / "run.log").read_text(), "the driver notices the lost actor"
        assert read(tmp_path / "out").equals(read(local)), "the same scores, to the bit"
    finally:
        remove_cluster(ray_tmp)


def test_ray_job_submit_to_a_local_cluster(tiny_model: str, tmp_path: Path) -> None:
    """scripts/ray_submit_smoke.sh, the real engine in a Ray actor: its own head (own ports and temporary directory,
    stopped by the script), a runtime env of the job's own with a secret in it; the workers' vLLM lines in
    OUTPUT/logs/engine.log, none on the job's console."""
    runtime_env = {"HF_HUB_OFFLINE": "1", "AWS_REGION": "eu-west-1", "AWS_SECRET_ACCESS_KEY": CANARY}
    result = subprocess.run(["bash", str(REPO / "scripts/ray_submit_smoke.sh"), tiny_model, str(tmp_path)],
                            capture_output=True, text=True, timeout=900, cwd=REPO,
                            env={**os.environ, "RUNTIME_ENV_VARS": json.dumps(runtime_env)})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = tmp_path / "out"
    assert pl.read_parquet(str(out / "scores" / "*.parquet")).height == 60 and (out / "_SUCCESS").exists()
    engine_log = (out / "logs" / "engine.log").read_text()
    assert "worker-0" in engine_log and " vllm" in engine_log, engine_log[:2000]
    console = [line for line in result.stdout.splitlines() if "vllm" in line.lower() or "(ScoringWorker" in line]
    assert not console, console[:10]
    assert_no_canary(result.stdout, result.stderr, directories=(out,))


def test_workers_get_batchrank_variables_the_job_does_not_set_and_never_a_credential() -> None:
    from batchrank.execute.ray_env import worker_environment

    driver = {"PYTHONPATH": "/opt/app", "AWS_REGION": "eu-west-1", "AWS_ENDPOINT_URL": "http://minio:9000",
              "AWS_SECRET_ACCESS_KEY": CANARY, "HF_TOKEN": CANARY, "VLLM_CPU_KVCACHE_SPACE": "4"}
    job = {"HF_HUB_OFFLINE": "0", "AWS_REGION": "us-east-1", "AWS_SECRET_ACCESS_KEY": CANARY}
    assert worker_environment(job, driver) == {"PYTHONPATH": "/opt/app", "AWS_ENDPOINT_URL": "http://minio:9000",
                                               "VLLM_CPU_KVCACHE_SPACE": "4", "VLLM_LOGGING_LEVEL": "INFO"}


def test_a_ray_that_never_shuts_down_does_not_hold_the_job() -> None:
    """ray.shutdown was seen waiting for ever in its core worker on the GPU machine: the job goes on after a deadline,
    says so, and the process's exit does not wait for it again (Ray's atexit hook)."""
    program = textwrap.dedent("""
        import atexit, logging, threading, time
        from batchrank.execute.ray_env import shut_down

        class StuckRay:
            def shutdown(self):
                threading.Event().wait()

        logging.basicConfig(level=logging.ERROR)
        stuck = StuckRay()
        atexit.register(stuck.shutdown)  # as ray registers its shutdown for the interpreter's exit
        started = time.monotonic()
        shut_down(stuck, timeout_s=1.0)
        print(f"returned after {time.monotonic() - started:.0f} s")
    """)
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=60, cwd=REPO)
    assert done.returncode == 0, done.stderr
    assert "returned after 1 s" in done.stdout
    assert "Ray did not shut down within 1 s; going on without waiting for it" in done.stderr


def test_a_worker_killed_by_rays_memory_monitor_is_lost_not_a_crash() -> None:
    """Ray's memory monitor kills actors (seen while engines started on a full machine): ray.get then raises
    OutOfMemoryError, not RayActorError. The worker is lost, with a one-line reason, and its chunks go back to the
    queue; the job did not stop with "unexpected failure (a bug in batchrank)"."""
    from ray.exceptions import OutOfMemoryError

    from batchrank.execute.ray_pool import WorkerPool

    killed = OutOfMemoryError("Task was killed due to the node running low on memory.\nMemory on the node "
                              "(IP: 10.0.0.7, ID: 1f) where the lease was running was 23.10GB / 24.00GB (0.96)...")

    class Reference:
        pass

    class FakeActor:
        class where:  # noqa: N801 - Ray's method.remote() form
            @staticmethod
            def remote() -> Reference:
                return Reference()

    class FakeRay:
        def wait(self, references, num_returns, timeout):  # noqa: ANN001, ANN201
            return list(references), []

        def get(self, reference):  # noqa: ANN001, ANN201
            raise killed

    pool = WorkerPool(FakeRay(), lambda name: FakeActor(), {"CPU": 1.0}, stall_timeout=600, start_timeout=600)
    pool.request(2)
    events = pool.poll([], timeout=0)
    assert [slot.name for slot, _ in events.lost] == ["worker-0", "worker-1"]
    assert all(reason.startswith("lost while starting: killed by Ray's memory monitor: its node ran low on host memory")
               for _, reason in events.lost), events.lost
