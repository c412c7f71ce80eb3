"""`Cluster`: several node daemons on this machine forming one cluster, for tests — Ray's
`ray.cluster_utils.Cluster`, with the same names.

Each node is a real `quanta_node` process with its own session directory, object store,
resources and TCP port, joined to the head over authenticated TCP on 127.0.0.1, exactly as a
node on another host would be. The daemons are tied to this process: they exit if it dies.

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    worker = cluster.add_node(num_cpus=2, resources={"gpu_box": 1})
    cluster.wait_for_nodes()
    quanta.init(address=cluster.address)
    ...
    cluster.remove_node(worker, allow_graceful=False)   # SIGKILL, like a crashed host
    cluster.shutdown()
"""

from __future__ import annotations

import atexit
import os
import secrets
import signal
import time

from quanta._private import auth_token, runtime_dir, services

_NODE_ARGS = {"num_cpus", "num_gpus", "memory", "resources", "object_store_memory", "labels", "temp_dir",
              "_system_config", "heartbeat_timeout_ms", "object_spilling_directory",
              "include_dashboard", "dashboard_host", "dashboard_port"}


class ClusterNode:
    """One node daemon of a Cluster."""

    def __init__(self, session: services.Session, head: bool, args: dict):
        self._session = session
        self.head = head
        self.args = args
        self.session_dir = session.session_dir
        self.node_index = session.node_index
        self.node_id = session.node_id
        self.address = session.control_address
        self.dashboard_url = session.dashboard_url

    @property
    def pids(self) -> list:
        return self._session.pids()

    def __repr__(self):
        return f"ClusterNode(index={self.node_index}, head={self.head}, session={self.session_dir})"


class Cluster:
    """Several node daemons on this machine, one cluster (Ray's ray.cluster_utils.Cluster)."""

    def __init__(self, initialize_head: bool = False, connect: bool = False, head_node_args: dict | None = None,
                 shutdown_at_exit: bool = True):
        self.head_node: ClusterNode | None = None
        self.worker_nodes: list[ClusterNode] = []
        self._token = self._ensure_token()
        if shutdown_at_exit:
            atexit.register(self.shutdown)
        if initialize_head:
            self.add_node(**(head_node_args or {}))
            if connect:
                self.connect()
        elif connect:
            raise ValueError("connect=True needs initialize_head=True")

    @staticmethod
    def _ensure_token() -> str:
        try:
            return auth_token.load()[0]
        except auth_token.TokenError:
            # A throwaway token for this process's clusters; it never touches the disk.
            token = secrets.token_hex(32)
            os.environ["QUANTA_AUTH_TOKEN"] = token
            return token

    @property
    def address(self) -> str:
        if self.head_node is None:
            raise RuntimeError("the cluster has no head yet: create it with initialize_head=True or add_node()")
        return self.head_node.address

    def add_node(self, wait: bool = True, **node_args) -> ClusterNode:
        """Starts a node daemon (the head if there is none yet) and returns it."""
        unknown = set(node_args) - _NODE_ARGS
        if unknown:
            raise ValueError(f"unsupported node arguments {sorted(unknown)}; supported: {sorted(_NODE_ARGS)}")
        resources = dict(node_args.get("resources") or {})
        resources["CPU"] = node_args.get("num_cpus", 1)
        if node_args.get("num_gpus") is not None:  # else detected, as in Ray
            resources["GPU"] = node_args["num_gpus"]
        if node_args.get("memory") is not None:
            resources["memory"] = node_args["memory"]
        from quanta._private import system_config as sysconf

        system_config = sysconf.validate(node_args.get("_system_config"))
        store = {"object_store_memory": node_args.get("object_store_memory") or 128 << 20,
                 "inline_threshold": system_config.get("max_direct_call_object_size"),
                 "spill_dir": node_args.get("object_spilling_directory") or system_config.get("object_spilling_directory"),
                 "node_flags": sysconf.node_flags(system_config)}
        head = self.head_node is None
        session = services.Session(runtime_dir.new_session(node_args.get("temp_dir")))
        dashboard = None
        if head and node_args.get("include_dashboard"):  # off unless asked for: tests start many clusters
            from quanta.dashboard import launch

            dashboard = launch.options(True, node_args.get("dashboard_host") or "127.0.0.1",
                                       node_args.get("dashboard_port"), self._token, session.session_dir)
        session.start(head=head, tied_to_driver=True, resources=resources, store=store,
                      control_address=None if head else self.address, host="127.0.0.1", port=0 if head else None,
                      labels=node_args.get("labels"), token=self._token,
                      heartbeat_timeout_ms=node_args.get("heartbeat_timeout_ms"), dashboard=dashboard)
        session.write_record(head=head, started_by="cluster_utils")
        node = ClusterNode(session, head, node_args)
        if head:
            self.head_node = node
        else:
            self.worker_nodes.append(node)
        if wait:
            self.wait_for_nodes()
        return node

    def remove_node(self, node: ClusterNode, allow_graceful: bool = True) -> None:
        """Stops a node: cleanly (SIGTERM, workers stopped first), or, with
        allow_graceful=False, SIGKILL of its daemon as if its host had crashed."""
        if allow_graceful:
            node._session.stop()
        else:
            for role, proc in node._session._procs:
                if proc.poll() is None:
                    proc.send_signal(signal.SIGKILL)
            for role, proc in node._session._procs:
                proc.wait()
            node._session.stop()
        if node is self.head_node:
            self.head_node = None
        elif node in self.worker_nodes:
            self.worker_nodes.remove(node)

    def list_all_nodes(self) -> list:
        return ([self.head_node] if self.head_node else []) + list(self.worker_nodes)

    def wait_for_nodes(self, timeout: float = 30) -> None:
        """Waits until the control service counts every node of this Cluster alive."""
        from quanta import _core

        want = len(self.list_all_nodes())
        deadline = time.monotonic() + timeout
        while True:
            nodes = _core.query_cluster(self.address, 5000)
            alive = sum(1 for n in nodes if n["alive"] and not n["is_driver_node"])
            if alive >= want:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"only {alive} of {want} nodes are alive after {timeout} s")
            time.sleep(0.05)

    def connect(self, namespace: str | None = None, **kwargs):
        import quanta

        return quanta.init(address=self.address, namespace=namespace, **kwargs)

    def shutdown(self) -> None:
        import quanta

        if quanta.is_initialized():
            from quanta._private import session

            core = session.current_core()
            if core is not None and any(n.session_dir == core.session_dir for n in self.list_all_nodes()):
                quanta.shutdown()
        for node in reversed(self.list_all_nodes()):
            node._session.stop()
        self.worker_nodes = []
        self.head_node = None
