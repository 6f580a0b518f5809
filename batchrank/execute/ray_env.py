"""Ray as a Ray user runs it: connect to (or start) Ray without touching the job's runtime env, and give the workers
what batchrank needs on top of whatever runtime env the job or cluster already has.

Ray refuses a `ray.init(runtime_env=...)` whose keys overlap the submitted job's runtime env ("Failed to merge the
Job's runtime env", ray/_private/worker.py), but merges an actor's own runtime env into the job's, env_vars key by
key. So batchrank passes nothing to ray.init and sets its variables on its actors only, leaving out every variable
the job's runtime env already sets: the job's value wins, and no combination conflicts. No credential is ever
forwarded: workers get credentials the way the cluster provides them (the nodes' environment, an instance role) or
from the job's own runtime env, which Ray hands to every worker itself.
"""

from __future__ import annotations

import atexit
import logging
import os
import signal
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from batchrank.execute.base import short_error
from batchrank.redact import is_secret_name

log = logging.getLogger("batchrank")

RAY_SHUTDOWN_TIMEOUT_S = 60.0  # a healthy shutdown takes a second or two; an engine stop has its own deadline before

# What workers need from the driver's environment: hub off, vLLM's settings, the import path, and where the object
# store is (never its secrets).
FORWARDED_ENVIRONMENT = (
    "HF_HUB_OFFLINE", "VLLM_USE_FLASHINFER_SAMPLER", "PYTHONPATH", "VLLM_CPU_KVCACHE_SPACE", "VLLM_LOGGING_LEVEL",
    "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_REGION", "AWS_DEFAULT_REGION",
)


class RayUnavailable(RuntimeError):
    """Ray could not start or reach its cluster (before any chunk was handed out)."""


def worker_environment(job_variables: Mapping[str, str], environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The variables batchrank sets on its actors: its needs from `environ` (this process's), less every variable
    the job's runtime env sets itself, and never a credential."""
    environ = os.environ if environ is None else environ
    wanted = {name: environ[name] for name in FORWARDED_ENVIRONMENT if name in environ}
    wanted.setdefault("HF_HUB_OFFLINE", "1")  # models are local paths; never reach for a hub
    wanted.setdefault("VLLM_LOGGING_LEVEL", "INFO")  # the workers' lines go to the job's engine.log, as the local's
    return {name: value for name, value in wanted.items() if name not in job_variables and not is_secret_name(name)}


def job_environment_variables(ray: Any) -> dict[str, str]:
    """The env_vars of the runtime env this driver runs in (`ray job submit --runtime-env-json`, ray.init's)."""
    try:
        runtime_env = ray.get_runtime_context().runtime_env or {}
        return dict(runtime_env.get("env_vars") or {})
    except Exception as error:  # noqa: BLE001 - without it, batchrank's own values are all the workers get
        log.debug("the job's runtime env is unknown: %s", error)
        return {}


@contextmanager
def ray_session(address: str | None) -> Iterator[Any]:
    """Ray, connected: the caller's if it initialized Ray itself (left running), or one this job connects to (or
    starts, without an address) and shuts down at the end. Raises RayUnavailable when Ray cannot start.

    ray.init replaces the process's SIGTERM handler with its own, which raises SystemExit(15): a `ray job stop` or a
    scheduler's SIGTERM would then be a failure with message "15". The handler in place before is put back."""
    import ray

    if ray.is_initialized():
        yield ray
        return
    previous = signal.getsignal(signal.SIGTERM) if threading.current_thread() is threading.main_thread() else None
    try:
        # The workers' output stays off the job's console: their engine lines reach OUTPUT/logs/engine.log through
        # the driver (ray_pool.py), like the local engine's.
        ray.init(address=address, log_to_driver=False)
    except SystemExit as stop:  # Ray's own SIGTERM handler, while Ray was starting
        shut_down(ray)
        if stop.code != signal.SIGTERM:
            raise
        raise KeyboardInterrupt from None
    except Exception as error:  # noqa: BLE001 - nothing has run yet: the caller decides what to do instead
        raise RayUnavailable(short_error(error)) from error
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    try:
        yield ray
    finally:
        shut_down(ray)


def shut_down(ray: Any, timeout_s: float | None = None) -> None:
    """ray.shutdown with a deadline. It waits in Ray's core worker for the driver's last messages to its cluster
    (seen not returning on the GPU machine after a job failed); a job must not hang there. Past the deadline the
    shutdown goes on in the background and this process's exit does not wait for it again (Ray's atexit hook is
    removed); the Ray processes ray.init started share this process's fate."""
    timeout_s = RAY_SHUTDOWN_TIMEOUT_S if timeout_s is None else timeout_s
    finished = threading.Event()

    def shutdown() -> None:
        try:
            ray.shutdown()
        except Exception as error:  # noqa: BLE001 - the job's outcome is decided already
            log.warning("ray.shutdown: %s", short_error(error))
        finally:
            finished.set()

    threading.Thread(target=shutdown, name="batchrank-ray-shutdown", daemon=True).start()
    if not finished.wait(timeout_s):
        log.error("Ray did not shut down within %g s; going on without waiting for it", timeout_s)
        atexit.unregister(ray.shutdown)
