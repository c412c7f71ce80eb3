"""Where the state API reads from: a connection to one node of the cluster.

In a driver (after quanta.init()) that is the driver's own connection. Anywhere else (the
`quanta list` CLI, the dashboard) it is an *observer* connection to a node of the cluster on this
host: a client that may only read, is no job, and goes away with the caller. The cluster-wide
tables (nodes, actors, jobs, placement groups) come from the control service through that
node; each node's processes, objects and logs come from the node itself, which relays questions
about other nodes to them over the peer channel (src/node/state_service.h).
"""

from __future__ import annotations

import os
import threading

from quanta._private import runtime_dir, services, session

# Control-service ops (src/protocol/cluster_messages.h, ControlOp).
GET_JOBS, GET_ACTORS = 20, 21
# Node-state kinds (src/protocol/state_messages.h, StateKind).
PROCESSES, OBJECTS, LOG_FILES, LOG_READ, HOST_STATS = 1, 2, 3, 4, 5


class QuantaStateApiException(Exception):
    """The state API could not get (all of) what was asked: the message says what is missing."""


class NodeUnavailable(QuantaStateApiException):
    """One node could not answer (dead, unreachable, or too slow)."""


def _observer_socket(address: str | None) -> str:
    """The node socket of a running node of the cluster named by `address` on this host."""
    address = address or os.environ.get("QUANTA_ADDRESS") or "auto"
    if address.startswith(("http://", "https://")):
        raise QuantaStateApiException(
            f"{address!r} is a dashboard address; the state API talks to the cluster itself: pass "
            "the head's HOST:PORT, a session directory, or 'auto'")
    if ":" in address and not os.path.exists(address):
        record = services.find_local_node(address)
        if record is None:
            raise QuantaStateApiException(
                f"no node of the cluster at {address} runs on this host, so its state cannot be read "
                f"from here; run this on a host of the cluster (or read the dashboard at "
                f"http://{address.rpartition(':')[0]}:8265)")
        address = record["session_dir"]
    try:
        return services.resolve_address(address)
    except ConnectionError as e:
        raise QuantaStateApiException(str(e)) from None


class Source:
    """One connection to a node, and the requests the state API makes over it. Thread-safe
    (the core client serialises requests)."""

    def __init__(self, core, owned: bool):
        self.core = core
        self._owned = owned
        self._lock = threading.Lock()

    @classmethod
    def open(cls, address: str | None = None) -> "Source":
        """The driver's connection when this process is a driver (and no other cluster is
        named), else an observer connection to this host's node of the cluster."""
        core = session.current_core()
        if core is not None and address in (None, "auto") and not session.is_worker():
            return cls(core, owned=False)
        if core is not None and session.is_worker() and address is None:
            return cls(core, owned=False)
        from quanta import _core

        sock = _observer_socket(address)
        runtime_dir.check_private(sock, want_socket=True)
        try:
            client = _core.CoreClient.connect(sock, log_to_driver=False, observer=True)
        except ConnectionError as e:
            raise QuantaStateApiException(f"cannot connect to the Quanta node at {sock}: {e}") from None
        return cls(client, owned=True)

    def close(self) -> None:
        if self._owned and self.core is not None:
            self.core.disconnect()
        self.core = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ------------------------------------------------------------------ cluster tables

    def nodes(self, timeout_s: float) -> list:
        return self.core.cluster_info(_ms(timeout_s))

    def control(self, op: int, key=b"", value=b"", arg=b"", timeout_s: float = 10.0):
        def b(x):
            return x.encode() if isinstance(x, str) else bytes(x)

        ok, flag, count, blob, error, items = self.core.control_call(op, b(key), b(value), b(arg), b"", False,
                                                                      _ms(timeout_s))
        if not ok:
            raise QuantaStateApiException(f"the control service refused the request: {error}")
        return flag, blob, items

    def actors(self, timeout_s: float, actor_id: bytes = b"") -> list:
        from quanta import _core

        _, _, items = self.control(GET_ACTORS, arg=actor_id, timeout_s=timeout_s)
        return [_core.decode_actor(i) for i in items]

    def jobs(self, timeout_s: float) -> list:
        from quanta import _core

        _, _, items = self.control(GET_JOBS, timeout_s=timeout_s)
        return [_core.decode_job(i) for i in items]

    def placement_groups(self, timeout_s: float) -> list:
        return self.core.placement_groups(b"", "", "", _ms(timeout_s))

    # ------------------------------------------------------------------ one node's state

    def node_state(self, node_index: int, kind: int, arg: str = "", offset: int = 0, limit: int = 0,
                   timeout_s: float = 10.0):
        """The node's answer; NodeUnavailable if it could not be asked, ValueError (with the
        node's reason) if it refused (e.g. a log file name that is not one)."""
        try:
            _, value = self.core.node_state(node_index, kind, arg, offset, limit, _ms(timeout_s))
        except TimeoutError as e:
            raise NodeUnavailable(f"node {node_index}: {e}") from None
        return value


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))
