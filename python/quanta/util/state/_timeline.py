"""`quanta.timeline()`: the execution of the tasks the head's task table holds as a Chrome trace
(load it in chrome://tracing or https://ui.perfetto.dev): one complete ("X") event per task that
ran, on a row per worker ("tid") within a group per node ("pid"), from when its worker started it
to when it ended (still running: until now); and one complete event per object transfer the
head keeps (a completed pull of an object's bytes into a node's store), on a "transfers" row of
the receiving node, from when the node asked for the bytes to when its copy was sealed.
"""

from __future__ import annotations

import json
import time

from quanta.util.state import _tables
from quanta.util.state._source import Source

_COLOURS = {"FINISHED": "thread_state_running", "FAILED": "terrible", "RUNNING": "thread_state_runnable"}


def _node_name(index: int, by_index: dict) -> str:
    n = by_index.get(index)
    return f"Node {(n or {}).get('node_ip') or '?'} (index {index})"


def events(address=None, timeout: float = 30) -> list:
    with Source.open(address) as source:
        return events_from(source, timeout)


def events_from(source, timeout: float = 30) -> list:
    """The trace's events, read through an open state Source (the dashboard's)."""
    rows, _, _ = _tables.task_rows(source, timeout)
    transfers, _ = source.core.transfer_rows(timeout_ms=max(1, int(timeout * 1000)))
    by_index = {n["node_index"]: n for n in _tables.node_rows(source, timeout)}
    now_us = int(time.time() * 1e6)
    out, named = [], set()
    for r in rows:
        start = r["_running_us"]
        if not start:
            continue  # never ran (pending, or failed before a worker took it)
        end = r["_end_us"] if r["_end_us"] and r["_end_us"] >= start else now_us
        node = f"Node {r['node_ip'] or '?'} (index {r['node_index']})"
        worker = f"worker {r['worker_pid']}"
        if node not in named:
            named.add(node)
            out.append({"name": "process_name", "ph": "M", "pid": node, "tid": worker, "args": {"name": node}})
        out.append({
            "cat": "task" if r["type"] == "NORMAL_TASK" else "actor_task",
            "name": r["name"], "pid": node, "tid": worker, "ph": "X", "ts": start, "dur": max(0, end - start),
            "cname": _COLOURS.get(r["state"], "generic_work"),
            "args": {"task_id": r["task_id"], "state": r["state"], "attempt_number": r["attempt_number"],
                     "job_id": r["job_id"], "actor_id": r["actor_id"], "error_type": r["error_type"]},
        })
    for t in transfers:
        node = _node_name(t["to_node"], by_index)
        if node not in named:
            named.add(node)
            out.append({"name": "process_name", "ph": "M", "pid": node, "tid": "transfers", "args": {"name": node}})
        source_node = by_index.get(t["from_node"]) or {}
        out.append({
            "cat": "transfer", "name": f"transfer {t['object_id'][:12]}", "pid": node, "tid": "transfers",
            "ph": "X", "ts": t["start_us"], "dur": max(0, t["end_us"] - t["start_us"]), "cname": "rail_load",
            "args": {"object_id": t["object_id"], "bytes": t["bytes"],
                     "from_node_index": t["from_node"], "from_node_id": source_node.get("node_id", ""),
                     "from_node_ip": source_node.get("node_ip", ""), "to_node_index": t["to_node"],
                     "to_node_id": (by_index.get(t["to_node"]) or {}).get("node_id", "")},
        })
    return out


def timeline(filename=None, address=None):
    """Writes the Chrome trace to `filename` (and returns None), or returns its events."""
    trace = events(address)
    if filename is None:
        return trace
    with open(filename, "w") as f:
        json.dump(trace, f)
    return None
