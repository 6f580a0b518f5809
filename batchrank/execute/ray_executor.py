"""The Ray executor: a pool of actors, each hosting one vLLM engine, fed chunks as they free up.

The driver hands out chunk descriptors only; each actor reads its chunk from the shared input, scores it and writes
the part itself (atomically, to the shared output path), so no text or scores cross the object store. A chunk whose
actor died goes back to the queue and the actor is replaced; a chunk whose scoring raised is retried up to
`run.max_attempts` times, then the job stops after the parts already written are safe.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections import Counter, deque
from dataclasses import asdict, dataclass
from typing import Any

from batchrank.checkpoint import Manifest, OutputDir
from batchrank.errors import BatchrankError, RunFailure
from batchrank.execute.engine_batcher import EngineBatcher
from batchrank.execute.placement import resolve_engines_per_gpu, resolve_worker_count, worker_options
from batchrank.plan import Chunk
from batchrank.progress import Progress
from batchrank.spec import JobSpec

log = logging.getLogger("batchrank")


class RayUnavailable(RuntimeError):
    """Ray could not start or reach its cluster (before any chunk was handed out)."""


class ScoringWorker:
    """One engine. Several calls run at once (a threaded actor): chunks tokenize while another holds the engine,
    and with run.engine_batch_pairs the chunks waiting for the engine share one engine call."""

    def __init__(self, spec_json: dict[str, Any], engines_per_gpu: int = 1):
        from batchrank.execute.chunk_io import ChunkIO
        from batchrank.io.input import open_input
        from batchrank.scoring.vllm_scorer import VllmScorer
        from batchrank.spec import JobSpec

        spec = JobSpec.model_validate(spec_json)
        self.out = OutputDir(spec.output.path)
        manifest = self.out.read_manifest()
        assert manifest is not None, "the driver writes job.json before starting workers"
        self.scorer = VllmScorer(spec, engines_per_gpu)
        self.io = ChunkIO(spec, open_input(spec.input, spec.output.keep_columns), manifest, self.out, self.scorer)
        self.batcher = EngineBatcher(self.scorer, spec.run.engine_batch_pairs)

    def pid(self) -> int:
        return os.getpid()

    def shutdown(self) -> None:
        """Stop the engine before the actor is killed: ray.kill alone would orphan vLLM's engine processes."""
        from batchrank.scoring.vllm_scorer import shutdown_engines

        shutdown_engines()

    def describe(self) -> dict[str, Any]:
        return self.scorer.describe()

    def score_chunk(self, chunk: Chunk) -> dict[str, Any]:
        from batchrank.io.parts import read_part_stats

        path = self.out.part_path(chunk)
        if path.exists():  # written by an attempt whose reply was lost with its actor: done is done
            return asdict(read_part_stats(path))
        started = time.perf_counter()
        work = self.io.load(chunk)
        scores = self.batcher.score(work.prepared)
        return asdict(self.io.finish(work, scores, time.perf_counter() - started))


def worker_processes() -> list[Any]:
    """This machine's Ray actor processes that host batchrank engines (Ray names each after its actor class), as
    psutil.Process objects: for operators and tests that need to find, watch or kill one."""
    import psutil

    found = []
    for process in psutil.process_iter(["cmdline"]):
        if any(ScoringWorker.__name__ in part for part in process.info["cmdline"] or []):
            found.append(process)
    return found


@dataclass
class _Slot:
    """A live actor and the chunks it holds."""

    actor: Any
    name: str
    in_flight: int = 0
    pairs: int = 0


def run_ray_job(spec: JobSpec, manifest: Manifest, out: OutputDir, pending: list[Chunk], progress: Progress) -> dict[str, Any]:
    import ray

    address = spec.run.ray_address or os.environ.get("RAY_ADDRESS")
    started_here = not ray.is_initialized()
    if started_here:
        # The driver's own logging stays ours; workers inherit the environment (HF offline, vLLM log level).
        try:
            ray.init(address=address, log_to_driver=True, runtime_env={"env_vars": _forwarded_environment()})
        except Exception as error:  # noqa: BLE001 - nothing has run yet: the caller decides what to do instead
            raise RayUnavailable(_short(error)) from error
    try:
        return _dispatch(ray, spec, manifest, out, pending, progress)
    finally:
        if started_here:
            ray.shutdown()


def chunks_in_flight(spec: JobSpec) -> int:
    """Chunks each actor holds: enough for one engine call of engine_batch_pairs and the next being prepared."""
    if not spec.run.engine_batch_pairs:
        return spec.run.chunks_in_flight_per_worker
    group = math.ceil(spec.run.engine_batch_pairs / spec.run.chunk_size)
    return max(spec.run.chunks_in_flight_per_worker, 2 * group)


def _forwarded_environment() -> dict[str, str]:
    names = ("HF_HUB_OFFLINE", "VLLM_LOGGING_LEVEL", "VLLM_USE_FLASHINFER_SAMPLER", "PYTHONPATH", "VLLM_CPU_KVCACHE_SPACE")
    # Where the object store is, so workers read and write the driver's s3:// paths; never the secrets, which
    # would sit in the job's runtime_env (each node needs its own credentials: README, object-store paths).
    names += ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_REGION", "AWS_DEFAULT_REGION")
    environment = {name: os.environ[name] for name in names if name in os.environ}
    environment.setdefault("HF_HUB_OFFLINE", "1")
    return environment


def _dispatch(ray: Any, spec: JobSpec, manifest: Manifest, out: OutputDir, pending: list[Chunk], progress: Progress) -> dict[str, Any]:
    from ray.exceptions import RayActorError, RayTaskError

    cluster_gpus = float(ray.cluster_resources().get("GPU", 0))
    engines_per_gpu = resolve_engines_per_gpu(spec, cluster_gpus)
    workers = min(resolve_worker_count(spec, cluster_gpus, engines_per_gpu), len(pending))
    options = worker_options(spec, cluster_gpus, engines_per_gpu)
    in_flight_per_worker = chunks_in_flight(spec)
    remote_worker = ray.remote(ScoringWorker).options(max_concurrency=max(2, in_flight_per_worker), max_restarts=0,
                                                     **options)
    spec_json = spec.model_dump(mode="json")
    every_slot: list[_Slot] = []  # replaced actors too, for the per-worker summary

    def new_slot() -> _Slot:
        slot = _Slot(remote_worker.remote(spec_json, engines_per_gpu), f"worker-{len(every_slot)}")
        every_slot.append(slot)
        return slot

    slots = [new_slot() for _ in range(workers)]
    log.info("ray: %d worker(s) with %s each (%d engine(s) per GPU), %d chunk(s) to score", workers, options,
             engines_per_gpu, len(pending))
    queue: deque[Chunk] = deque(pending)
    attempts: Counter[int] = Counter()
    retried: Counter[int] = Counter()
    in_flight: dict[Any, tuple[_Slot, Chunk]] = {}
    description: dict[str, Any] = {}
    try:
        ray.get([slot.actor.pid.remote() for slot in slots])  # engines started: throughput counts from here
    except (RayActorError, RayTaskError) as error:
        raise RunFailure(f"the Ray workers could not start their engines: {_short(error)}") from None
    progress.restart_clock()

    def submit(slot: _Slot) -> None:
        while queue and slot.in_flight < in_flight_per_worker:
            chunk = queue.popleft()
            in_flight[slot.actor.score_chunk.remote(chunk)] = (slot, chunk)
            slot.in_flight += 1

    def requeue(chunk: Chunk, error: BaseException) -> None:
        attempts[chunk.chunk_id] += 1
        if attempts[chunk.chunk_id] >= spec.run.max_attempts:
            raise RunFailure(
                f"chunk {chunk.chunk_id} (rows {chunk.start}..{chunk.start + chunk.num_rows - 1}) failed "
                f"{attempts[chunk.chunk_id]} time(s); last error: {_short(error)}"
            )
        retried[chunk.chunk_id] += 1
        log.warning("chunk %d failed (%s); queued again", chunk.chunk_id, _short(error))
        queue.appendleft(chunk)

    try:
        for slot in slots:
            submit(slot)
        while in_flight:
            ready, _ = ray.wait(list(in_flight), num_returns=1)
            reference = ready[0]
            slot, chunk = in_flight.pop(reference)
            slot.in_flight -= 1
            try:
                stats = ray.get(reference)
            except RayActorError as error:
                # The actor is gone (killed, OOM, GPU fault): every chunk it held goes back, a new actor replaces it.
                log.warning("%s died: %s", slot.name, _short(error))
                requeue(chunk, error)
                for other, (other_slot, other_chunk) in list(in_flight.items()):
                    if other_slot is slot:
                        del in_flight[other]
                        requeue(other_chunk, error)
                slots[slots.index(slot)] = slot = new_slot()
            except RayTaskError as error:
                cause = error.cause if error.cause is not None else error
                if isinstance(cause, BatchrankError):
                    raise cause from None  # bad input is the user's to fix; retrying cannot help
                requeue(chunk, cause)
            else:
                slot.pairs += stats["pairs"]
                progress.chunk_done(stats["pairs"])
                if not description:
                    description = ray.get(slot.actor.describe.remote())
            submit(slot)
            for other in slots:
                submit(other)
    finally:
        _stop_workers(ray, slots)
    return _summary(workers, options, engines_per_gpu, every_slot, retried, progress, description)


def _stop_workers(ray: Any, slots: list[_Slot]) -> None:
    from ray.exceptions import GetTimeoutError, RayActorError, RayTaskError

    stopping = [slot.actor.shutdown.remote() for slot in slots]
    for reference in stopping:
        try:
            ray.get(reference, timeout=120)
        except (GetTimeoutError, RayActorError, RayTaskError) as error:
            log.warning("a worker did not stop its engine cleanly: %s", _short(error))
    for slot in slots:
        ray.kill(slot.actor)


def _summary(workers: int, options: dict[str, Any], engines_per_gpu: int, slots: list[_Slot], retried: Counter[int],
             progress: Progress, description: dict[str, Any]) -> dict[str, Any]:
    scoring_seconds = max(progress.last_chunk_at - progress.started, 1e-9)
    per_worker = {s.name: {"pairs": s.pairs, "pairs_per_second": round(s.pairs / scoring_seconds, 2)} for s in slots if s.pairs}
    for name, numbers in per_worker.items():
        log.info("%s: %d pairs, %.1f pairs/s", name, numbers["pairs"], numbers["pairs_per_second"])
    log.info("ray: %.1f pairs/s in total, %d chunk(s) retried", progress.pairs_per_second, len(retried))
    return {
        "executor": "ray",
        "workers": workers,
        "worker_resources": options,
        "engines_per_gpu": engines_per_gpu,
        "per_worker": per_worker,
        "chunks_retried": sorted(retried),
        "scorer": description,
    }


def _short(error: BaseException) -> str:
    text = f"{type(error).__name__}: {error}"
    return text.splitlines()[0][:300] if text else type(error).__name__
