"""The Ray actors of one job as the driver sees them: asked for, placed and starting, working, lost.

Nothing here waits for ever:
- An actor joins the dispatch as soon as its engine is up, so what the cluster can place starts scoring while the
  rest wait for room. When the cluster as it is cannot hold every worker, the job says so at once; when no worker at
  all is working for run.worker_start_timeout (none could be placed, or none started its engine), the job stops
  with the resources asked for and what the cluster has.
- A working actor is sent a heartbeat every few seconds (it returns the actor's new log lines, which go to the job's
  engine.log); one that answers nothing for run.stall_timeout is killed and reported lost, naming it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from batchrank.engine_log import forward_worker_lines
from batchrank.errors import RunFailure
from batchrank.execute.base import short_error
from batchrank.execute.ray_resources import (
    actor_is_placed,
    cluster_facts,
    describe_ask,
    describe_cluster,
    workers_fitting,
)

log = logging.getLogger("batchrank")

HEARTBEAT_EVERY_S = 5.0  # at most; a third of stall_timeout when that is shorter
NOT_PLACED_NOTICE_S = 30.0  # workers still not placed after this long are reported once (at most stall_timeout)


@dataclass(eq=False)
class ActorSlot:
    """One actor of the job. Its str names it as messages do: worker-1 (pid 4242 on 10.0.0.7)."""

    name: str
    actor: Any
    asked_at: float
    ready: Any = None  # a reference that resolves once its engine is up
    where: dict[str, Any] = field(default_factory=dict)
    heartbeat: Any = None
    heartbeat_sent: float = 0.0
    next_heartbeat: float = 0.0

    def __str__(self) -> str:
        if not self.where:
            return self.name
        return f"{self.name} (pid {self.where.get('pid')} on {self.where.get('ip')})"


@dataclass
class PoolEvents:
    """What changed during one wait: chunk references that finished, actors that joined, actors lost (and why)."""

    finished: list[Any] = field(default_factory=list)
    joined: list[ActorSlot] = field(default_factory=list)
    lost: list[tuple[ActorSlot, str]] = field(default_factory=list)


class WorkerPool:
    """The job's actors: `request` asks for one more, `poll` waits for chunks and for the actors' own news."""

    def __init__(self, ray: Any, new_actor: Callable[[str], Any], ask: dict[str, float], stall_timeout: float,
                 start_timeout: float):
        self.ray, self.new_actor, self.ask = ray, new_actor, ask
        self.stall_timeout, self.start_timeout = stall_timeout, start_timeout
        self.heartbeat_every = min(HEARTBEAT_EVERY_S, stall_timeout / 3)
        self.starting: list[ActorSlot] = []
        self.working: list[ActorSlot] = []
        self.retired: list[ActorSlot] = []
        self.asked = 0
        self.no_worker_since = time.monotonic()
        self._noticed_not_placed = False

    def request(self, count: int = 1) -> None:
        for _ in range(count):
            name = f"worker-{self.asked}"
            self.asked += 1
            slot = ActorSlot(name, self.new_actor(name), time.monotonic())
            slot.ready = slot.actor.where.remote()  # answered once __init__ (the engine's start) is done
            self.starting.append(slot)

    def say_what_fits(self, wanted: int) -> None:
        """Say at once when the cluster as it is cannot hold `wanted` workers (none: how long the job waits)."""
        cluster = cluster_facts(self.ray)
        fits = sum(workers_fitting(node, self.ask) for node in cluster["nodes"])
        if fits >= wanted:
            return
        asked = f"{wanted} worker(s) with {describe_ask(self.ask)} each"
        if fits == 0:
            log.warning("no node of the cluster can hold one of the %s (%s); waiting up to %g s "
                        "(run.worker_start_timeout) for one to join", asked, describe_cluster(cluster),
                        self.start_timeout)
        else:
            log.warning("the cluster can hold %d of the %s (%s): scoring with %d; the others start if the cluster "
                        "grows", fits, asked, describe_cluster(cluster), fits)

    def poll(self, chunk_refs: list[Any], timeout: float) -> PoolEvents:
        """Wait up to `timeout` s for a chunk to finish or an actor's news; then check every bound."""
        now = time.monotonic()
        self._send_heartbeats(now)
        news = [slot.ready for slot in self.starting] + [slot.heartbeat for slot in self.working if slot.heartbeat]
        references = chunk_refs + news
        events = PoolEvents()
        if references:
            ready, _ = self.ray.wait(references, num_returns=1, timeout=timeout)
            if ready:
                ready, _ = self.ray.wait(references, num_returns=len(references), timeout=0)
            done = set(ready)
            events.finished = [ref for ref in chunk_refs if ref in done]
            self._read_news(done, events)
        else:
            time.sleep(timeout)
        self._check_silence(events)
        self._check_nobody_working()
        return events

    def retire(self, slot: ActorSlot) -> None:
        """Stop using `slot` (lost): kill its actor, in case it is alive but silent."""
        for group in (self.starting, self.working):
            if slot in group:
                group.remove(slot)
        self.retired.append(slot)
        self._kill(slot)

    def stop(self, deadline_s: float) -> list[dict[str, Any]]:
        """Stop every engine (waiting up to `deadline_s`), forward the last log lines, kill every actor; the
        descriptions of the engines that answered."""
        # A heartbeat still on its way holds lines the actor has handed over already: they are read first.
        news = [slot.heartbeat for slot in self.working if slot.heartbeat is not None]
        replies = {slot.actor.finish.remote(): slot for slot in self.working}
        every = news + list(replies)
        ready, _ = self.ray.wait(every, num_returns=len(every), timeout=deadline_s) if every else ([], [])
        for reference in [ref for ref in news if ref in ready]:
            try:
                forward_worker_lines(self.ray.get(reference))
            except Exception as error:  # noqa: BLE001 - lost with its actor
                log.debug("a last heartbeat: %s", error)
        descriptions = []
        for reference in [ref for ref in replies if ref in ready]:
            try:
                reply = self.ray.get(reference)
            except Exception as error:  # noqa: BLE001 - a worker lost at the very end: its parts are written
                log.warning("%s did not stop its engine cleanly: %s", replies[reference], short_error(error))
                continue
            forward_worker_lines(reply["log"])
            descriptions.append(reply["description"])
        unanswered = len([ref for ref in replies if ref not in ready])
        if unanswered:
            log.warning("%d worker(s) did not stop their engines within %g s; killed", unanswered, deadline_s)
        for slot in self.starting + self.working:
            self._kill(slot)
        return descriptions

    def _read_news(self, done: set[Any], events: PoolEvents) -> None:
        for slot in [s for s in self.starting if s.ready in done]:
            self.starting.remove(slot)
            try:
                slot.where = self.ray.get(slot.ready)
            except gone_errors() as error:
                if getattr(error, "actor_init_failed", False):
                    self._failed_to_start(slot, error)
                else:
                    events.lost.append((slot, f"lost while starting: {lost_reason(error)}"))
                continue
            slot.next_heartbeat = time.monotonic()
            self.working.append(slot)
            events.joined.append(slot)
        for slot in [s for s in self.working if s.heartbeat is not None and s.heartbeat in done]:
            reference, slot.heartbeat = slot.heartbeat, None
            try:
                forward_worker_lines(self.ray.get(reference))
            except gone_errors() as error:
                events.lost.append((slot, lost_reason(error)))
                continue
            except Exception as error:  # noqa: BLE001 - it answered: alive; its lines are lost, not its chunks
                log.debug("%s: heartbeat: %s", slot, short_error(error))
            slot.next_heartbeat = time.monotonic() + self.heartbeat_every

    def _failed_to_start(self, slot: ActorSlot, error: BaseException) -> None:
        """An engine that raised while starting is not replaced (it would fail the same way, on that node or all);
        the others score on, and the job stops only when it was the last worker."""
        reason = init_failure(error)
        self.retired.append(slot)
        if not self.working and not self.starting:
            raise RunFailure(f"{slot.name} could not start its engine: {reason}", rerun_helps=False) from None
        log.warning("%s could not start its engine: %s; scoring with the other workers", slot, reason)

    def _send_heartbeats(self, now: float) -> None:
        for slot in self.working:
            if slot.heartbeat is None and now >= slot.next_heartbeat:
                slot.heartbeat, slot.heartbeat_sent = slot.actor.heartbeat.remote(), now

    def _check_silence(self, events: PoolEvents) -> None:
        now = time.monotonic()
        for slot in self.working:
            if slot.heartbeat is not None and now - slot.heartbeat_sent > self.stall_timeout:
                events.lost.append((slot, f"answered nothing for {now - slot.heartbeat_sent:.0f} s "
                                          f"(run.stall_timeout {self.stall_timeout:g} s): killed"))

    def _check_nobody_working(self) -> None:
        if self.working:
            self.no_worker_since = time.monotonic()
            self._notice_not_placed()
            return
        waited = time.monotonic() - self.no_worker_since
        if waited > self.start_timeout:
            raise RunFailure(self._nobody_working(waited), rerun_helps=False)

    def _notice_not_placed(self) -> None:
        if self._noticed_not_placed or not self.starting:
            return
        oldest = min(slot.asked_at for slot in self.starting)
        if time.monotonic() - oldest < min(NOT_PLACED_NOTICE_S, self.start_timeout):
            return
        self._noticed_not_placed = True
        log.warning("scoring with %d worker(s); %d more not started after %.0f s (%s): each asks for %s; the cluster "
                    "has %s; they join when there is room", len(self.working), len(self.starting),
                    time.monotonic() - oldest, self._placement_states(), describe_ask(self.ask),
                    describe_cluster(cluster_facts(self.ray)))

    def _nobody_working(self, waited: float) -> str:
        return (f"no Ray worker could start within {waited:.0f} s (run.worker_start_timeout {self.start_timeout:g} s): "
                f"{len(self.starting)} asked for, each with {describe_ask(self.ask)} ({self._placement_states()}); "
                f"the cluster has {describe_cluster(cluster_facts(self.ray))}. Lower run.worker_resources or "
                "run.num_workers, add nodes, or raise run.worker_start_timeout for engines that start slowly")

    def _placement_states(self) -> str:
        placed = [actor_is_placed(self.ray, slot.actor) for slot in self.starting]
        if None in placed:
            return "not placed, or still starting their engines"
        return f"{sum(placed)} placed and starting their engines, {len(placed) - sum(placed)} not placed"

    def _kill(self, slot: ActorSlot) -> None:
        try:
            self.ray.kill(slot.actor, no_restart=True)
        except Exception as error:  # noqa: BLE001 - already gone
            log.debug("ray.kill %s: %s", slot, error)


def gone_errors() -> tuple[type[BaseException], ...]:
    """What ray.get raises when the actor behind a call is gone, rather than its code having raised: dead or
    unreachable (RayActorError), killed by Ray's memory monitor (OutOfMemoryError), its process crashed, its node
    gone. Each is a lost worker: its chunks go back to the queue."""
    from ray.exceptions import NodeDiedError, OutOfMemoryError, RayActorError, WorkerCrashedError

    return (RayActorError, OutOfMemoryError, WorkerCrashedError, NodeDiedError)


def lost_reason(error: BaseException) -> str:
    """Why Ray says an actor is gone, on one line (its message spreads pid, ip and cause over several)."""
    from ray.exceptions import OutOfMemoryError

    if isinstance(error, OutOfMemoryError):  # Ray's message is a page of memory statistics
        return ("killed by Ray's memory monitor: its node ran low on host memory (Ray's RAY_memory_usage_threshold; "
                "fewer workers or engines on a node, or a node with more memory)")
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    useful = [line for line in lines[1:] if not line.startswith(("class_name:", "actor_id:", "namespace:", "pid:",
                                                                 "ip:", "name:"))]
    reason = "; ".join(useful or lines[:1]) or type(error).__name__
    reason = reason.split(" Some common causes include")[0]  # Ray's list of guesses, the same for every death
    return short_error(RuntimeError(reason), with_type=False) + (" (node preempted)" if getattr(error, "preempted",
                                                                                                False) else "")


def init_failure(error: BaseException) -> str:
    """The exception an actor's __init__ raised, from Ray's message (its traceback ends with that line)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return short_error(RuntimeError(lines[-1] if lines else type(error).__name__), with_type=False)
