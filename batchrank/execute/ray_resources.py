"""What a Ray cluster has and what a job's workers ask of it, in the words of the messages that say why workers
cannot be placed: the live nodes' CPUs and GPUs, the largest node, what is free now, and whether Ray gave an actor
a process yet."""

from __future__ import annotations

import logging
import math
from typing import Any

log = logging.getLogger("batchrank")

RAY_RESOURCE = {"num_cpus": "CPU", "num_gpus": "GPU"}


def actor_is_placed(ray: Any, actor: Any) -> bool | None:
    """Whether Ray gave the actor a process (None: unknown). Ray's GCS actor table; no public API says it."""
    try:
        return bool(ray._private.state.actors(actor._actor_id.hex()).get("Pid"))
    except Exception:  # noqa: BLE001 - a private table: when it moves, the message says less
        return None


def cluster_facts(ray: Any) -> dict[str, Any]:
    """The live nodes' resources and what is free now."""
    try:
        nodes = [node.get("Resources", {}) for node in ray.nodes() if node.get("Alive")]
        free = ray.available_resources()
    except Exception as error:  # noqa: BLE001 - the message says less
        log.debug("cluster resources unknown: %s", error)
        nodes, free = [], {}
    return {"nodes": nodes, "free": free}


def workers_fitting(node: dict[str, float], ask: dict[str, float]) -> int:
    counts = [math.floor(node.get(RAY_RESOURCE[key], 0) / amount + 1e-9) for key, amount in ask.items()
              if key in RAY_RESOURCE and amount > 0]
    return min(counts) if counts else 1


def describe_ask(ask: dict[str, float]) -> str:
    return "{" + ", ".join(f"{key}: {value:g}" for key, value in ask.items()) + "}"


def describe_cluster(cluster: dict[str, Any]) -> str:
    nodes = cluster["nodes"]
    if not nodes:
        return "no live node that Ray reports"

    def amounts(resources: dict[str, float]) -> str:
        return f"{resources.get('CPU', 0):g} CPUs, {resources.get('GPU', 0):g} GPUs"

    total = {key: sum(node.get(key, 0) for node in nodes) for key in ("CPU", "GPU")}
    largest = max(nodes, key=lambda node: (node.get("GPU", 0), node.get("CPU", 0)))
    return (f"{len(nodes)} node(s) with {amounts(total)} in all (the largest: {amounts(largest)}), "
            f"{amounts(cluster['free'])} free now")
