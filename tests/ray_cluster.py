"""A Ray cluster of one or more nodes on this machine, for the tests: its own temporary directory and its own ports,
hosted by a helper process of its own (this file run as a script, ray.cluster_utils.Cluster inside), so that a test
stops exactly the cluster it started and nothing else on the machine.

    with LocalRayCluster(tmp, nodes=[{"num_cpus": 1}, {"num_cpus": 1}]) as cluster:
        subprocess.run([...batchrank run...], env=cluster.environment())
        cluster.remove_node(1)      # a node lost mid-run: its raylet and workers are killed

`stop` asks the helper to shut the cluster down, then ends any process still running under the cluster's own
temporary directory (found by that unique path in its command line or environment, never by a process name) and
deletes the directory.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

START_TIMEOUT_S = 180
STOP_TIMEOUT_S = 60


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def processes_under(directory: str) -> list[Any]:
    """Processes of the cluster whose temporary directory is `directory`: those that name it on their command line
    (the raylets, the GCS) or carry it in their environment (Ray's workers, which rename themselves ray::...)."""
    import psutil

    found = []
    for process in psutil.process_iter(["cmdline"]):
        try:
            if process.pid == os.getpid():
                continue
            if any(directory in part for part in process.info["cmdline"] or []) or \
                    process.environ().get("RAY_TMPDIR") == directory:
                found.append(process)
        except psutil.Error:
            continue
    return found


def stop_processes_under(directory: str, grace_s: float = 10) -> int:
    """End what still runs under `directory` (SIGTERM, then SIGKILL after `grace_s`); how many there were."""
    import psutil

    left = processes_under(directory)
    for process in left:
        try:
            process.terminate()
        except psutil.Error:
            pass
    _, alive = psutil.wait_procs(left, timeout=grace_s)
    for process in alive:
        try:
            process.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(alive, timeout=grace_s)
    return len(left)


def remove_cluster(directory: str) -> int:
    """End what still runs of the cluster under `directory`, then delete the directory; how many processes were
    left."""
    left = stop_processes_under(directory)
    shutil.rmtree(directory, ignore_errors=True)
    return left


class LocalRayCluster:
    """A Ray cluster on this machine: `nodes[0]` is the head, each a dict of ray.cluster_utils.Cluster node
    arguments (num_cpus, num_gpus, resources)."""

    def __init__(self, nodes: list[dict[str, Any]], dashboard: bool = False):
        # Short: Ray's unix socket paths live under it and may not exceed 107 characters.
        self.temp_dir = tempfile.mkdtemp(prefix="br-ray-", dir="/tmp")
        self.nodes, self.dashboard = nodes, dashboard
        self.address = ""
        self.dashboard_url = ""
        self._helper: subprocess.Popen | None = None

    def __enter__(self) -> LocalRayCluster:
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def start(self) -> None:
        config = {"temp_dir": self.temp_dir, "nodes": self.nodes, "dashboard": self.dashboard}
        log = open(Path(self.temp_dir) / "helper.log", "w")  # noqa: SIM115 - the helper writes to it until it ends
        self._helper = subprocess.Popen([sys.executable, __file__, json.dumps(config)], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, stderr=log, text=True,
                                        env={**os.environ, "RAY_TMPDIR": self.temp_dir})
        reply = self._read_reply(START_TIMEOUT_S)
        self.address, self.dashboard_url = reply["address"], reply.get("dashboard_url", "")

    def environment(self, **extra: str) -> dict[str, str]:
        """The environment of a process that uses this cluster (a batchrank driver, `ray job submit`)."""
        environment = {**os.environ, "RAY_ADDRESS": self.address, "RAY_TMPDIR": self.temp_dir, **extra}
        if self.dashboard_url:
            environment["RAY_API_SERVER_ADDRESS"] = self.dashboard_url
        return environment

    def processes(self, name: str) -> list[Any]:
        """This cluster's processes whose command line holds `name` (Ray titles an actor's process
        ray::ClassName)."""
        import psutil

        found = []
        for process in processes_under(self.temp_dir):
            try:
                if any(name in part for part in process.cmdline()):
                    found.append(process)
            except psutil.Error:
                continue
        return found

    def remove_node(self, index: int) -> None:
        """Kill node `index` (not the head) and every process on it, as when a machine is lost."""
        self._command({"remove": index})

    def add_node(self, **arguments: Any) -> None:
        self._command({"add": arguments})

    def stop(self) -> None:
        helper, self._helper = self._helper, None
        if helper is not None and helper.poll() is None:
            try:
                helper.stdin.write(json.dumps({"stop": True}) + "\n")  # type: ignore[union-attr]
                helper.stdin.flush()  # type: ignore[union-attr]
                helper.wait(timeout=STOP_TIMEOUT_S)
            except (OSError, subprocess.TimeoutExpired):
                helper.send_signal(signal.SIGKILL)
                helper.wait(timeout=STOP_TIMEOUT_S)
        remove_cluster(self.temp_dir)

    def _command(self, command: dict[str, Any]) -> dict[str, Any]:
        assert self._helper is not None and self._helper.stdin is not None
        self._helper.stdin.write(json.dumps(command) + "\n")
        self._helper.stdin.flush()
        return self._read_reply(STOP_TIMEOUT_S)

    def _read_reply(self, timeout: float) -> dict[str, Any]:
        import selectors

        assert self._helper is not None and self._helper.stdout is not None
        selector = selectors.DefaultSelector()
        selector.register(self._helper.stdout, selectors.EVENT_READ)
        if not selector.select(timeout):
            self.stop()
            raise TimeoutError(f"the Ray cluster helper did not answer in {timeout} s; see {self.temp_dir}/helper.log")
        line = self._helper.stdout.readline()
        if not line:
            log = (Path(self.temp_dir) / "helper.log").read_text()[-3000:]
            self.stop()
            raise RuntimeError(f"the Ray cluster helper ended: {log}")
        return json.loads(line)


def _node_arguments(node: dict[str, Any], head: bool, dashboard: bool, temp_dir: str) -> dict[str, Any]:
    arguments = {"num_cpus": 1, **node, "dashboard_agent_listen_port": free_port(), "metrics_agent_port": free_port(),
                 "metrics_export_port": free_port(), "runtime_env_agent_port": free_port(), "temp_dir": os.path.join(temp_dir, "ray")}
    if head:
        arguments.update(gcs_server_port=free_port(), include_dashboard=dashboard, dashboard_port=free_port(),
                         dashboard_host="127.0.0.1", ray_client_server_port=free_port())
    return arguments


def _serve(config: dict[str, Any]) -> None:
    """The helper process: start the cluster, then obey one JSON command a line on stdin until `stop` or EOF."""
    from ray.cluster_utils import Cluster

    head, *others = config["nodes"]
    cluster = Cluster(initialize_head=True, head_node_args=_node_arguments(head, True, config["dashboard"], config["temp_dir"]))
    nodes = [cluster.head_node]
    for node in others:
        nodes.append(cluster.add_node(**_node_arguments(node, False, False, config["temp_dir"])))
    cluster.wait_for_nodes()
    dashboard = f"http://{cluster.webui_url}" if config["dashboard"] and cluster.webui_url else ""
    print(json.dumps({"address": cluster.address, "dashboard_url": dashboard}), flush=True)
    try:
        for line in sys.stdin:
            command = json.loads(line)
            if command.get("stop"):
                break
            if "remove" in command:
                cluster.remove_node(nodes[command["remove"]], allow_graceful=False)
            if "add" in command:
                nodes.append(cluster.add_node(**_node_arguments(command["add"], False, False, config["temp_dir"])))
                cluster.wait_for_nodes()
            print(json.dumps({"ok": True}), flush=True)
    finally:
        cluster.shutdown()


if __name__ == "__main__":
    if sys.argv[1] == "--remove":  # scripts/ray_submit_smoke.sh: what is left of its own cluster
        print(f"{remove_cluster(sys.argv[2])} process(es) of the cluster under {sys.argv[2]} were left")
    else:
        _serve(json.loads(sys.argv[1]))
