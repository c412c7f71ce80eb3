"""Rows of each resource, built from what the control service and the nodes report.

Every function takes a Source and returns (rows, errors): the rows it could build and, for
per-node data, one message per node that could not answer.
"""

from __future__ import annotations

from quanta._private import services
from quanta.util.state import _source
from quanta.util.state._query import Schema

UNIT = services.RESOURCE_UNIT

NODES = Schema(
    "nodes",
    ["node_id", "node_ip", "node_index", "is_head_node", "state", "node_name", "resources_total", "labels"],
    ["resources_available", "state_message", "is_driver_node", "start_time_ms", "port", "session_dir"],
    ["node_id", "node_ip", "node_index", "is_head_node", "state", "node_name", "is_driver_node"])
ACTORS = Schema(
    "actors",
    ["actor_id", "class_name", "state", "job_id", "name", "node_id", "pid", "ray_namespace"],
    ["is_detached", "num_restarts", "death_cause", "node_index", "owner_node_id", "worker_id"],
    ["actor_id", "class_name", "state", "job_id", "name", "node_id", "pid", "ray_namespace", "is_detached"])
JOBS = Schema(
    "jobs",
    ["job_id", "submission_id", "status", "type", "entrypoint", "start_time", "end_time"],
    ["driver_pid", "driver_node_id", "message", "metadata", "entrypoint_num_cpus"],
    ["job_id", "submission_id", "status", "type", "driver_pid"])
PLACEMENT_GROUPS = Schema(
    "placement groups",
    ["placement_group_id", "name", "creator_job_id", "state", "strategy", "is_detached"],
    ["bundles", "message", "ray_namespace"],
    ["placement_group_id", "name", "creator_job_id", "state", "strategy", "is_detached"])
OBJECTS = Schema(
    "objects",
    ["object_id", "object_size", "node_id", "node_ip", "storage", "reference_count", "readers", "owner_pid",
     "owner_type"],
    ["owner_id", "owner_node_id", "node_index"],
    ["object_id", "node_id", "node_ip", "storage", "owner_pid", "owner_type", "owner_id"])
WORKERS = Schema(
    "workers",
    ["worker_id", "is_alive", "worker_type", "node_id", "ip", "pid", "state", "actor_id", "job_id"],
    ["task_id", "task_name", "queued_tasks", "stdout_log", "stderr_log", "node_index"],
    ["worker_id", "is_alive", "worker_type", "node_id", "ip", "pid", "state", "actor_id", "job_id"])


def job_hex(job_id: int) -> str:
    return f"{job_id:016x}" if job_id else None


def client_hex(client_id: int) -> str:
    return f"{client_id:016x}"


def creator_of(object_hex: str) -> int:
    """The client that minted an object id (its first 8 bytes, little-endian)."""
    try:
        return int.from_bytes(bytes.fromhex(object_hex[:16]), "little")
    except ValueError:
        return 0


def _float_map(pairs) -> dict:
    return {name: amount / UNIT for name, amount in pairs}


def node_rows(source, timeout) -> list:
    rows = []
    for n in source.nodes(timeout):
        ip = n["address"] or "127.0.0.1"
        rows.append({
            "node_id": n["node_id"], "node_ip": ip, "node_index": n["node_index"], "is_head_node": n["is_head"],
            "state": "ALIVE" if n["alive"] else "DEAD", "node_name": ip,
            "resources_total": _float_map(n["total"]), "labels": dict(n["labels"]),
            "resources_available": _float_map(n["available"]), "state_message": n["death_reason"] or None,
            "is_driver_node": n["is_driver_node"], "start_time_ms": n["start_time_ms"], "port": n["port"],
            "session_dir": n["session_dir"],
        })
    return sorted(rows, key=lambda r: r["node_index"])


def _node_ids(nodes) -> dict:
    return {n["node_index"]: n for n in nodes}


def processes_by_node(source, nodes, timeout, only=None) -> tuple[dict, list]:
    """{node_index: [process dicts]} of the alive nodes (or of `only`), and errors."""
    out, errors = {}, []
    for n in nodes:
        if n["state"] != "ALIVE" or (only is not None and n["node_index"] not in only):
            continue
        try:
            out[n["node_index"]] = source.node_state(n["node_index"], _source.PROCESSES, timeout_s=timeout)
        except _source.NodeUnavailable as e:
            errors.append(str(e))
    return out, errors


def actor_rows(source, timeout, actor_id: bytes = b"") -> tuple[list, list]:
    nodes = node_rows(source, timeout)
    by_index = _node_ids(nodes)
    actors = source.actors(timeout, actor_id)
    hosting = {a["node_index"] for a in actors if a["state"] == "ALIVE" and a["node_index"]}
    procs, errors = processes_by_node(source, nodes, timeout, only=hosting)
    worker_of = {}
    for index, plist in procs.items():
        for p in plist:
            if p["actor_id"]:
                worker_of[p["actor_id"]] = p
    rows = []
    for a in actors:
        node = by_index.get(a["node_index"])
        w = worker_of.get(a["actor_id"]) if a["state"] == "ALIVE" else None
        owner = by_index.get(a["owner_node"])
        rows.append({
            "actor_id": a["actor_id"], "class_name": a["class_name"], "state": a["state"],
            "job_id": job_hex(a["job_id"]), "name": a["name"] or "", "node_id": node["node_id"] if node else None,
            "pid": w["pid"] if w else None, "ray_namespace": a["namespace"], "is_detached": a["detached"],
            "num_restarts": a["restarts"], "death_cause": a["death_reason"] or None, "node_index": a["node_index"],
            "owner_node_id": owner["node_id"] if owner else None,
            "worker_id": client_hex(w["client_id"]) if w else None,
        })
    return rows, errors


def submissions(nodes) -> list:
    """Jobs submitted through the jobs API, as their supervisors record them in the head's
    session folder (readable where the head runs; elsewhere only their drivers are listed)."""
    import os

    from quanta._private import runtime_dir
    from quanta.job_submission import common

    out = []
    for n in nodes:
        if not n["is_head_node"] or n["state"] != "ALIVE" or not n["session_dir"]:
            continue
        folder = common.jobs_dir(n["session_dir"])
        if not os.path.isdir(folder):
            continue
        try:
            runtime_dir.check_private(folder, want_dir=True)
        except Exception:  # another user's or a loose folder: not ours to read
            continue
        out += [i.to_dict() for i in common.list_infos(n["session_dir"])]
    return out


def job_rows(source, timeout) -> list:
    node_list = node_rows(source, timeout)
    nodes = _node_ids(node_list)
    subs = submissions(node_list)
    by_driver = {(s.get("node_index"), pid): s for s in subs for pid in s.get("driver_pids") or []}
    # A supervisor that holds a job's entrypoint resources does so as a driver of its own.
    by_supervisor = {(s.get("node_index"), s.get("supervisor_pid")): s for s in subs if s.get("supervisor_pid")}
    rows, linked = [], set()
    for j in source.jobs(timeout):
        node = nodes.get(j["node_index"])
        key = (j["node_index"], j["driver_pid"])
        sub = by_driver.get(key)
        supervised = by_supervisor.get(key) if sub is None else None
        if sub:
            linked.add(sub["submission_id"])
        kind = "SUBMISSION" if sub else "SUPERVISOR" if supervised else "DRIVER"
        sub = sub or supervised
        rows.append({
            "job_id": job_hex(j["job_id"]), "submission_id": sub["submission_id"] if sub else None,
            "status": j["status"], "type": kind, "entrypoint": j["entrypoint"],
            "start_time": j["start_time"], "end_time": j["end_time"] or None, "driver_pid": j["driver_pid"],
            "driver_node_id": node["node_id"] if node else None, "message": sub.get("message") if sub else None,
            "metadata": sub.get("metadata") if sub else None,
            "entrypoint_num_cpus": sub.get("entrypoint_num_cpus") if sub else None,
        })
    for s in subs:
        if s["submission_id"] in linked:
            continue
        # A submission whose driver never connected (still starting, or failed before quanta.init).
        rows.append({
            "job_id": None, "submission_id": s["submission_id"], "status": s.get("status"), "type": "SUBMISSION",
            "entrypoint": s.get("entrypoint"), "start_time": s.get("start_time"), "end_time": s.get("end_time"),
            "driver_pid": s.get("entrypoint_pid"), "driver_node_id": None, "message": s.get("message"),
            "metadata": s.get("metadata"), "entrypoint_num_cpus": s.get("entrypoint_num_cpus"),
        })
    for r in rows:  # a submission's own status wins: the driver may succeed while the job was stopped
        if r["type"] == "SUBMISSION":
            sub = next(s for s in subs if s["submission_id"] == r["submission_id"])
            r["status"] = sub.get("status") or r["status"]
    return sorted(rows, key=lambda r: r["start_time"] or 0)


def placement_group_rows(source, timeout) -> list:
    nodes = _node_ids(node_rows(source, timeout))
    rows = []
    for g in source.placement_groups(timeout):
        bundles = []
        for i, b in enumerate(g["bundles"]):
            where = g["bundle_nodes"][i] if i < len(g["bundle_nodes"]) else 0
            node = nodes.get(where)
            bundles.append({"bundle_id": i, "resources": _float_map(b), "node_id": node["node_id"] if node else None})
        rows.append({
            "placement_group_id": bytes(g["id"]).hex(), "name": g["name"], "creator_job_id": job_hex(g["job_id"]),
            "state": g["state"], "strategy": g["strategy"], "is_detached": g["detached"], "bundles": bundles,
            "message": g["message"] or None, "ray_namespace": g["namespace"],
        })
    return rows


def object_rows(source, timeout) -> tuple[list, list]:
    nodes = node_rows(source, timeout)
    procs, errors = processes_by_node(source, nodes, timeout)
    owners = {p["client_id"]: p for plist in procs.values() for p in plist}
    by_index = _node_ids(nodes)
    rows = []
    for n in nodes:
        if n["state"] != "ALIVE" or n["node_index"] not in procs:
            continue
        try:
            store = source.node_state(n["node_index"], _source.OBJECTS, timeout_s=timeout)
        except _source.NodeUnavailable as e:
            errors.append(str(e))
            continue
        for o in store["objects"]:
            creator = creator_of(o["object_id"])
            owner = owners.get(creator)
            owner_node = by_index.get(creator >> 32)
            rows.append({
                "object_id": o["object_id"], "object_size": o["size"], "node_id": n["node_id"], "node_ip": n["node_ip"],
                "storage": o["where"].upper(), "reference_count": o["references"], "readers": o["readers"],
                "owner_pid": owner["pid"] if owner else None, "owner_type": owner["role"] if owner else None,
                "owner_id": client_hex(creator) if creator else None,
                "owner_node_id": owner_node["node_id"] if owner_node else None, "node_index": n["node_index"],
            })
    return rows, errors


def worker_rows(source, timeout) -> tuple[list, list]:
    nodes = node_rows(source, timeout)
    procs, errors = processes_by_node(source, nodes, timeout)
    by_index = _node_ids(nodes)
    rows = []
    for index, plist in sorted(procs.items()):
        n = by_index[index]
        for p in plist:
            if p["role"] == "OBSERVER":
                continue  # tools reading the state (such as this one) are not workers
            rows.append({
                "worker_id": client_hex(p["client_id"]), "is_alive": True, "worker_type": p["role"],
                "node_id": n["node_id"], "ip": n["node_ip"], "pid": p["pid"], "state": p["state"],
                "actor_id": p["actor_id"] or None, "job_id": job_hex(p["job_id"]), "task_id": p["task_id"] or None,
                "task_name": p["task_name"] or None, "queued_tasks": p["queued"], "stdout_log": p["stdout_log"] or None,
                "stderr_log": p["stderr_log"] or None, "node_index": index,
            })
    return rows, errors


TASKS = Schema(
    "tasks",
    ["task_id", "attempt_number", "name", "state", "job_id", "actor_id", "type", "func_or_class_name", "node_id",
     "worker_id", "worker_pid", "error_type"],
    ["language", "required_resources", "events", "creation_time_ms", "start_time_ms", "end_time_ms",
     "error_message", "node_ip", "node_index", "owner_node_id"],
    ["task_id", "attempt_number", "name", "state", "job_id", "actor_id", "type", "func_or_class_name", "node_id",
     "worker_id", "worker_pid", "error_type", "node_ip"])

# ObjectKind (src/protocol/messages.h) -> Ray's error_type names.
ERROR_TYPES = {1: "TASK_EXECUTION_EXCEPTION", 2: "WORKER_DIED", 3: "TASK_CANCELLED", 4: "ACTOR_DIED",
               5: "OBJECT_LOST", 7: "OBJECT_STORE_FULL", 8: "OWNER_DIED", 9: "NODE_DIED",
               10: "TASK_UNSCHEDULABLE_ERROR", 11: "TASK_TIMEOUT", 12: "OBJECT_UNRECONSTRUCTABLE_LINEAGE_EVICTED",
               13: "OBJECT_UNRECONSTRUCTABLE_MAX_ATTEMPTS_EXCEEDED"}
# Task states as the head's table names them (its TaskEventKind codes).
TASK_STATES = {"PENDING_ARGS_AVAIL": 1, "SUBMITTED_TO_WORKER": 2, "RUNNING": 3, "FINISHED": 4, "FAILED": 5}


def _ms(us):
    return us // 1000 if us else None


def task_row(t: dict, by_index: dict) -> dict:
    node = by_index.get(t["node_index"]) if t["node_index"] else None
    owner = by_index.get(t["owner_node"]) if t["owner_node"] else None
    events = [{"state": s, "created_ms": _ms(t[k])} for s, k in
              (("PENDING_ARGS_AVAIL", "submitted_us"), ("SUBMITTED_TO_WORKER", "scheduled_us"),
               ("RUNNING", "running_us"), (t["state"] if t["state"] in ("FINISHED", "FAILED") else None, "end_us"))
              if s and t[k]]
    return {
        "task_id": t["task_id"], "attempt_number": t["attempt_number"], "name": t["name"], "state": t["state"],
        "job_id": job_hex(t["job_id"]), "actor_id": t["actor_id"] or None, "type": t["type"],
        "func_or_class_name": t["name"], "node_id": node["node_id"] if node else None,
        "worker_id": client_hex(t["worker_client_id"]) if t["worker_client_id"] else None,
        "worker_pid": t["worker_pid"] or None,
        "error_type": ERROR_TYPES.get(t["error_kind"], "UNKNOWN") if t["state"] == "FAILED" else None,
        "language": "PYTHON", "required_resources": t["required_resources"], "events": events,
        "creation_time_ms": _ms(t["submitted_us"]), "start_time_ms": _ms(t["running_us"]),
        "end_time_ms": _ms(t["end_us"]), "error_message": t["error_message"] or None,
        "node_ip": node["node_ip"] if node else None, "node_index": t["node_index"] or None,
        "owner_node_id": owner["node_id"] if owner else None,
        # For the timeline (microseconds, not columns).
        "_running_us": t["running_us"], "_end_us": t["end_us"],
    }


def task_rows(source, timeout, filters=None, limit=0) -> tuple[list, int, dict]:
    """(rows, matched, stats) from the head's task table. Equality filters on task_id, state,
    job_id, actor_id and node_id are applied by the head (and `limit` with them when nothing
    else filters); the rest by the caller."""
    nodes = node_rows(source, timeout)
    by_index = _node_ids(nodes)
    query, rest = {}, []
    for f in filters or []:
        key, predicate, value = f
        text = "" if value is None else str(value)
        if predicate != "=":
            rest.append(f)
        elif key == "task_id" and "task_id" not in query:
            try:
                raw = bytes.fromhex(text)
            except ValueError:
                return [], 0, {}
            if len(raw) != 16:
                return [], 0, {}
            query["task_id"] = raw
        elif key == "state" and "state" not in query:
            code = TASK_STATES.get(text.upper())
            if code is None:
                return [], 0, {}
            query["state"] = code
        elif key == "job_id" and "job_id" not in query:
            try:
                query["job_id"] = int(text, 16)
            except ValueError:
                return [], 0, {}
        elif key == "actor_id" and "actor_id" not in query:
            try:
                query["actor_id"] = bytes.fromhex(text)
            except ValueError:
                return [], 0, {}
        elif key == "node_id" and "node" not in query:
            match = [n["node_index"] for n in nodes if n["node_id"].lower() == text.lower()]
            if not match:
                return [], 0, {}
            query["node"] = match[0]
        else:
            rest.append(f)
    pushed_limit = min(limit, 0xFFFFFFFF) if not rest else 0
    raw, matched, stats = source.core.task_rows(limit=pushed_limit, timeout_ms=max(1, int(timeout * 1000)), **query)
    rows = [task_row(t, by_index) for t in raw]
    return rows, (matched if not rest else None), stats
