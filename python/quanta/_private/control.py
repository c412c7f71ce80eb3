"""Requests the control service answers, through this process's node (names, KV, jobs, actors).

Op numbers as in src/protocol/cluster_messages.h (ControlOp).
"""

from __future__ import annotations

from quanta._private import api

REGISTER_NAME, LOOKUP_NAME, DROP_NAME, LIST_NAMED_ACTORS = 1, 2, 3, 4
KV_PUT, KV_GET, KV_DELETE, KV_LIST, KV_EXISTS = 10, 11, 12, 13, 14
GET_JOBS, GET_ACTORS, GET_FUNCTION = 20, 21, 22


def call(op, key=b"", value=b"", arg=b"", blob=b"", flag=False, timeout_ms=10000):
    """(ok, flag, count, blob, error, items) of the control service's answer."""
    def b(x):
        return x.encode() if isinstance(x, str) else bytes(x)

    return api.ensure_core().control_call(op, b(key), b(value), b(arg), b(blob), bool(flag), timeout_ms)


def decode_job(entry: bytes) -> dict:
    """A GET_JOBS item as a dict (job_id, node_index, driver_pid, entrypoint, start_time and
    end_time in ms since the epoch, status RUNNING|SUCCEEDED|FAILED)."""
    from quanta import _core

    return _core.decode_job(entry)


def decode_actor(entry: bytes) -> dict:
    """A GET_ACTORS item as a dict (actor_id hex, state, node_index, owner_node, job_id,
    class_name, name, namespace, detached, restarts, death_reason)."""
    from quanta import _core

    return _core.decode_actor(entry)
