"""The state API (Ray's ray.util.state, same names): what the cluster holds and runs, now.

    from quanta.util.state import list_actors, list_nodes, summarize_objects
    list_actors(filters=[("state", "=", "ALIVE")], limit=10, detail=True)

Each `list_*` returns rows (dicts whose keys also read as attributes: `row.state`), filtered by
Ray's `filters=[(column, "=" | "!=", value)]` (compared as case-insensitive text), at most
`limit` of them (default 100; a warning says when more matched), with the detail columns only
when `detail=True`. `address` names the cluster: None (this driver's cluster, else "auto": the
one started on this host), a session directory, or the head's HOST:PORT when this host runs a
node of it. Per-node data (objects, workers, logs) is asked of every alive node; a node that
cannot answer raises QuantaStateApiException naming it, or with raise_on_missing_output=False
is skipped with a warning.

Tasks come from the head's task table, which the nodes fill with the events they record
(submitted, placed, running, finished or failed), shipped about once a second.
The same tables are on the command line (`quanta list|get|summary|logs`) and the dashboard.
"""

from __future__ import annotations

import time
import warnings

from quanta.util.state import _tables
from quanta.util.state._query import DEFAULT_LIMIT, StateRecord, select
from quanta.util.state._source import (LOG_FILES, LOG_READ, HOST_STATS, NodeUnavailable, QuantaStateApiException,
                                       Source)

RayStateApiException = QuantaStateApiException  # Ray's name for the same failure
DEFAULT_TIMEOUT = 30

__all__ = ["list_nodes", "list_actors", "list_jobs", "list_placement_groups", "list_objects", "list_workers",
           "list_tasks", "get_node", "get_actor", "get_job", "get_placement_group", "get_worker", "get_task",
           "get_objects", "summarize_actors", "summarize_objects", "summarize_tasks", "list_logs", "get_log",
           "node_host_stats", "QuantaStateApiException", "RayStateApiException", "StateRecord", "DEFAULT_LIMIT"]


def _partial(errors, raise_on_missing_output, what):
    if not errors:
        return
    text = f"{what} are missing from {len(errors)} node(s): " + "; ".join(errors)
    if raise_on_missing_output:
        raise QuantaStateApiException(text + " (pass raise_on_missing_output=False to get the rest)")
    warnings.warn(text, stacklevel=3)


def _list(schema, build, address, filters, limit, timeout, detail, raise_on_missing_output):
    with Source.open(address) as source:
        got = build(source, timeout)
    rows, errors = got if isinstance(got, tuple) else (got, [])
    _partial(errors, raise_on_missing_output, schema.resource)
    return select(schema, rows, filters, limit, detail)


def list_nodes(address=None, filters=None, limit=DEFAULT_LIMIT, timeout=DEFAULT_TIMEOUT, detail=False,
               raise_on_missing_output=True, _explain=False) -> list:
    """Every node of the cluster, alive or dead."""
    return _list(_tables.NODES, _tables.node_rows, address, filters, limit, timeout, detail, raise_on_missing_output)


def list_actors(address=None, filters=None, limit=DEFAULT_LIMIT, timeout=DEFAULT_TIMEOUT, detail=False,
                raise_on_missing_output=True, _explain=False) -> list:
    """Every actor the control service knows, with the pid of its worker while it is alive."""
    return _list(_tables.ACTORS, _tables.actor_rows, address, filters, limit, timeout, detail, raise_on_missing_output)


def list_jobs(address=None, filters=None, limit=DEFAULT_LIMIT, timeout=DEFAULT_TIMEOUT, detail=False,
              raise_on_missing_output=True, _explain=False) -> list:
    """Every driver that connected (type DRIVER) and every job submitted through the jobs API
    (type SUBMISSION, with its submission_id; its drivers are linked to it), oldest first. The
    supervisor of a job that asked for entrypoint resources holds them as a driver of its own
    (type SUPERVISOR, with the job's submission_id)."""
    return _list(_tables.JOBS, _tables.job_rows, address, filters, limit, timeout, detail, raise_on_missing_output)


def list_placement_groups(address=None, filters=None, limit=DEFAULT_LIMIT, timeout=DEFAULT_TIMEOUT, detail=False,
                          raise_on_missing_output=True, _explain=False) -> list:
    return _list(_tables.PLACEMENT_GROUPS, _tables.placement_group_rows, address, filters, limit, timeout, detail,
                 raise_on_missing_output)


def list_objects(address=None, filters=None, limit=DEFAULT_LIMIT, timeout=DEFAULT_TIMEOUT, detail=False,
                 raise_on_missing_output=True, _explain=False) -> list:
    """Every object each alive node holds (one row per node holding it), with where it is
    (SHARED_MEMORY, SPILLED, INLINE, PENDING, ...), what pins it (reference_count: processes,
    pending tasks and containing objects; readers: buffers mapped right now) and who owns it."""
    return _list(_tables.OBJECTS, _tables.object_rows, address, filters, limit, timeout, detail,
                 raise_on_missing_output)


def list_workers(address=None, filters=None, limit=DEFAULT_LIMIT, timeout=DEFAULT_TIMEOUT, detail=False,
                 raise_on_missing_output=True, _explain=False) -> list:
    """The drivers and workers connected to each alive node, with what they run now."""
    return _list(_tables.WORKERS, _tables.worker_rows, address, filters, limit, timeout, detail,
                 raise_on_missing_output)


def _task_drops(stats) -> None:
    lost_head, lost_nodes = stats.get("dropped_on_head", 0), stats.get("dropped_on_nodes", 0)
    if lost_head or lost_nodes:
        warnings.warn(f"some tasks are missing: the head dropped {lost_head} task rows (it keeps "
                      f"{stats.get('capacity')}, QUANTA_TASK_EVENTS_MAX_TASKS, oldest finished first) and the "
                      f"nodes dropped {lost_nodes} task events (QUANTA_TASK_EVENTS_BUFFER)", stacklevel=3)


def list_tasks(address=None, filters=None, limit=DEFAULT_LIMIT, timeout=DEFAULT_TIMEOUT, detail=False,
               raise_on_missing_output=True, _explain=False) -> list:
    """Tasks and actor tasks the head's task table holds (each task's latest attempt), oldest
    first: where each ran (node_id, worker_id, worker_pid), its state (PENDING_ARGS_AVAIL,
    SUBMITTED_TO_WORKER, RUNNING, FINISHED, FAILED) and, failed, why (error_type; detail:
    error_message with the traceback). The nodes ship their events about once a second, so a
    task shows up, and changes state, up to a second late."""
    from quanta.util.state._query import check_filters

    filters = check_filters(_tables.TASKS, filters)
    if limit is None:
        limit = DEFAULT_LIMIT
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
        raise ValueError(f"limit must be an int >= 0, got {limit!r}")
    with Source.open(address) as source:
        rows, matched, stats = _tables.task_rows(source, timeout, filters, limit)
    _task_drops(stats)
    if matched is not None and matched > len(rows) and len(rows) >= limit:
        warnings.warn(f"{matched} tasks matched; showing the first {limit} (pass a larger limit to see more)",
                      stacklevel=2)
    return select(_tables.TASKS, rows, filters, limit, detail)


def get_task(id, address=None, timeout=DEFAULT_TIMEOUT, _explain=False):
    """The task with this task_id (detail columns, with its error's traceback), or None."""
    return _get(list_tasks, "task_id", id, address, timeout)


def summarize_tasks(address=None, timeout=DEFAULT_TIMEOUT, raise_on_missing_output=True, _explain=False) -> dict:
    """Tasks per function (or actor method) with their state counts, as Ray lays it out:
    {"cluster": {"summary": {name: {"func_or_class_name", "type", "state_counts"}}, "total_tasks",
    "total_actor_tasks", "total_actor_scheduled", "summary_by": "func_name"}}."""
    with Source.open(address) as source:
        rows, stats = source.core.task_summary(timeout_ms=max(1, int(timeout * 1000)))
    _task_drops(stats)
    summary = {}
    totals = {"NORMAL_TASK": 0, "ACTOR_TASK": 0, "ACTOR_CREATION_TASK": 0}
    for r in rows:
        entry = summary.setdefault(r["name"], {"func_or_class_name": r["name"], "type": r["type"], "state_counts": {}})
        for state, n in r["state_counts"].items():
            entry["state_counts"][state] = entry["state_counts"].get(state, 0) + n
            totals[r["type"]] = totals.get(r["type"], 0) + n
    return {"cluster": {"summary": summary, "total_tasks": totals["NORMAL_TASK"],
                        "total_actor_tasks": totals["ACTOR_TASK"],
                        "total_actor_scheduled": totals["ACTOR_CREATION_TASK"], "summary_by": "func_name"}}


def _get(lister, key, id, address, timeout):
    if not isinstance(id, str) or not id:
        raise ValueError(f"pass the {key} as a hex string, got {id!r}")
    rows = lister(address=address, filters=[(key, "=", id)], limit=10 ** 9, timeout=timeout, detail=True)
    return rows[0] if rows else None


def get_node(id, address=None, timeout=DEFAULT_TIMEOUT, _explain=False):
    """The node with this node_id (detail columns), or None."""
    return _get(list_nodes, "node_id", id, address, timeout)


def get_actor(id, address=None, timeout=DEFAULT_TIMEOUT, _explain=False):
    """The actor with this actor_id (detail columns), or None."""
    return _get(list_actors, "actor_id", id, address, timeout)


def get_job(id, address=None, timeout=DEFAULT_TIMEOUT, _explain=False):
    """The job with this job_id or submission_id, or None."""
    for key in ("job_id", "submission_id"):
        row = _get(list_jobs, key, id, address, timeout)
        if row is not None:
            return row
    return None


def get_placement_group(id, address=None, timeout=DEFAULT_TIMEOUT, _explain=False):
    return _get(list_placement_groups, "placement_group_id", id, address, timeout)


def get_worker(id, address=None, timeout=DEFAULT_TIMEOUT, _explain=False):
    return _get(list_workers, "worker_id", id, address, timeout)


def get_objects(id, address=None, timeout=DEFAULT_TIMEOUT, _explain=False) -> list:
    """Every copy of the object with this id (one row per node holding it)."""
    return list_objects(address=address, filters=[("object_id", "=", id)], limit=10 ** 9, timeout=timeout, detail=True)


def summarize_actors(address=None, timeout=DEFAULT_TIMEOUT, raise_on_missing_output=True, _explain=False) -> dict:
    """Actors per class with their state counts (Ray's layout: {"cluster": {"summary": ...}})."""
    rows = list_actors(address=address, limit=10 ** 9, timeout=timeout, raise_on_missing_output=raise_on_missing_output)
    summary = {}
    for a in rows:
        entry = summary.setdefault(a["class_name"], {"class_name": a["class_name"], "state_counts": {}})
        entry["state_counts"][a["state"]] = entry["state_counts"].get(a["state"], 0) + 1
    return {"cluster": {"summary": summary, "total_actors": len(rows), "summary_by": "class"}}


def summarize_objects(address=None, timeout=DEFAULT_TIMEOUT, raise_on_missing_output=True, _explain=False) -> dict:
    """Objects per storage kind (shared memory, spilled, inline, ...) with counts, MB and the
    nodes and owners involved; and totals."""
    rows = list_objects(address=address, limit=10 ** 9, timeout=timeout, detail=True,
                        raise_on_missing_output=raise_on_missing_output)
    summary = {}
    for o in rows:
        e = summary.setdefault(o["storage"], {"total_objects": 0, "total_size_mb": 0.0, "nodes": set(),
                                              "owners": set(), "reference_count": 0, "readers": 0})
        e["total_objects"] += 1
        e["total_size_mb"] += o["object_size"] / (1 << 20)
        e["nodes"].add(o["node_id"])
        if o["owner_id"]:
            e["owners"].add(o["owner_id"])
        e["reference_count"] += o["reference_count"]
        e["readers"] += o["readers"]
    out = {}
    for storage, e in summary.items():
        out[storage] = {"total_objects": e["total_objects"], "total_size_mb": round(e["total_size_mb"], 3),
                        "total_num_nodes": len(e["nodes"]), "total_num_owners": len(e["owners"]),
                        "reference_count": e["reference_count"], "readers": e["readers"]}
    total_mb = sum(o["object_size"] for o in rows) / (1 << 20)
    return {"cluster": {"summary": out, "total_objects": len(rows), "total_size_mb": round(total_mb, 3),
                        "summary_by": "storage"}}


# ---------------------------------------------------------------------- logs


def _node_index(source, node_id, node_ip, timeout) -> int:
    nodes = [n for n in _tables.node_rows(source, timeout) if n["state"] == "ALIVE"]
    if node_id is not None:
        nodes = [n for n in nodes if n["node_id"] == node_id]
    elif node_ip is not None:
        nodes = [n for n in nodes if n["node_ip"] == node_ip and not n["is_driver_node"]]
    else:
        nodes = [n for n in nodes if n["is_head_node"]]
    if not nodes:
        raise ValueError(f"no alive node with {'node_id ' + node_id if node_id else 'node_ip ' + str(node_ip)}"
                         if node_id or node_ip else "the cluster has no alive head node")
    return nodes[0]["node_index"]


def list_logs(address=None, node_id=None, node_ip=None, glob_filter=None, timeout=DEFAULT_TIMEOUT) -> dict:
    """The log files of one node (the head by default), by kind: {"worker_out": [...],
    "worker_err": [...], "worker_core": [...], "node": [...], "dashboard": [...], "driver": [...], "other": [...]}."""
    import fnmatch

    with Source.open(address) as source:
        index = _node_index(source, node_id, node_ip, timeout)
        files = source.node_state(index, LOG_FILES, timeout_s=timeout)
    out = {}
    for f in files:
        name = f["name"]
        if glob_filter and not fnmatch.fnmatch(name, glob_filter):
            continue
        kind = ("worker_out" if name.startswith("worker-") and ".out" in name else
                "worker_err" if name.startswith("worker-") and ".err" in name else
                "worker_core" if name.startswith("worker-") and ".log" in name else
                "node" if name.startswith(("node.", "control.")) else
                "dashboard" if name.startswith("dashboard.") else
                "driver" if name.startswith("driver-") else "other")
        out.setdefault(kind, []).append(name)
    return out


def _find_worker_log(source, actor_id, pid, suffix, timeout):
    rows, _ = _tables.worker_rows(source, timeout)
    for w in rows:
        if (actor_id and w["actor_id"] == actor_id) or (pid and w["pid"] == pid):
            name = w["stdout_log"] if suffix == "out" else w["stderr_log"]
            if not name:
                break
            return w["node_index"], name
    raise ValueError(f"no live worker with {'actor_id ' + actor_id if actor_id else 'pid ' + str(pid)} "
                     f"(drivers' output is in their own terminal)")


def get_log(address=None, node_id=None, node_ip=None, filename=None, actor_id=None, task_id=None, pid=None,
            follow=False, tail=1000, timeout=DEFAULT_TIMEOUT, suffix="out", encoding="utf-8", errors="strict",
            _interval=0.5):
    """Yields the text of a log file: by node and `filename`, or the stdout (suffix="out") or
    stderr ("err") of the worker hosting `actor_id` or with `pid`. The last `tail` lines
    (tail < 0: all), then, with follow=True, what is appended until the caller stops iterating
    or the node goes away."""
    if task_id is not None:  # the worker that ran it (its whole output, not only this task's)
        row = get_task(task_id, address=address, timeout=timeout)
        if row is None:
            raise ValueError(f"no task with task_id {task_id} in the head's task table")
        if not row["worker_pid"]:
            raise ValueError(f"task {task_id} has not run on a worker yet (state {row['state']})")
        pid = row["worker_pid"]
    if suffix not in ("out", "err"):
        raise ValueError(f"suffix must be 'out' or 'err', got {suffix!r}")
    source = Source.open(address)
    try:
        if filename is None:
            if actor_id is None and pid is None:
                raise ValueError("name the log: filename= (with node_id/node_ip), actor_id= or pid=")
            index, filename = _find_worker_log(source, actor_id, pid, suffix, timeout)
        else:
            index = _node_index(source, node_id, node_ip, timeout)
        offset = yield from _tail(source, index, filename, tail, timeout, encoding, errors)
        while follow:
            data, start, size = source.node_state(index, LOG_READ, filename, offset, 0, timeout_s=timeout)
            if size < offset:  # rotated: start over in the new file
                offset = 0
                continue
            if data:
                offset = start + len(data)
                yield data.decode(encoding, errors)
            else:
                time.sleep(_interval)
    finally:
        source.close()


def _tail(source, index, filename, tail, timeout, encoding, errors):
    """Yields the last `tail` lines (all if tail < 0); returns the offset after them."""
    if tail is None:
        tail = 1000
    if tail is not None and tail < 0:
        offset = 0
        while True:
            data, start, size = source.node_state(index, LOG_READ, filename, offset, 4 << 20, timeout_s=timeout)
            if data:
                yield data.decode(encoding, errors)
                offset = start + len(data)
            if not data or offset >= size:
                return offset
    want = 64 * 1024
    while True:
        data, start, size = source.node_state(index, LOG_READ, filename, -want, want, timeout_s=timeout)
        if data.count(b"\n") > tail or start == 0 or want >= 4 << 20:
            break
        want *= 4
    lines = data.splitlines(keepends=True)
    if start > 0 and lines:
        lines = lines[1:]  # the first line is cut
    text = b"".join(lines[-tail:] if tail else [])
    if text:
        yield text.decode(encoding, errors)
    return start + len(data)


def node_host_stats(address=None, timeout=DEFAULT_TIMEOUT) -> dict:
    """{node_id: counters} of every alive node: host CPU time (busy and total, ms since boot),
    host memory (total, available), load, object store use, processes. The dashboard samples
    these for its charts."""
    out = {}
    with Source.open(address) as source:
        for n in _tables.node_rows(source, timeout):
            if n["state"] != "ALIVE":
                continue
            try:
                out[n["node_id"]] = source.node_state(n["node_index"], HOST_STATS, timeout_s=timeout)
            except NodeUnavailable:
                continue
    return out
