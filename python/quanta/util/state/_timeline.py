"""`quanta.timeline()`: the execution of the tasks the head's task table holds as a Chrome trace
(load it in chrome://tracing or https://ui.perfetto.dev): one complete ("X") event per task that
ran, on a row per worker ("tid") within a group per node ("pid"), from when its worker started it
to when it ended (still running: until now).
"""

from __future__ import annotations

import json
import time

from quanta.util.state import _tables
from quanta.util.state._source import Source

_COLOURS = {"FINISHED": "thread_state_running", "FAILED": "terrible", "RUNNING": "thread_state_runnable"}


def events(address=None, timeout: float = 30) -> list:
    with Source.open(address) as source:
        rows, _, _ = _tables.task_rows(source, timeout)
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
    return out


def timeline(filename=None, address=None):
    """Writes the Chrome trace to `filename` (and returns None), or returns its events."""
    trace = events(address)
    if filename is None:
        return trace
    with open(filename, "w") as f:
        json.dump(trace, f)
    return None
