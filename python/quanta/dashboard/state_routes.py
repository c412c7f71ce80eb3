"""The dashboard's JSON endpoints over the state API (quanta.util.state), and its pages.

The state API is blocking, so each request runs it on a worker thread, over the dashboard's one
observer connection to the head's node. Per-node data that a node could not give is reported
in the answer's "errors" rather than silently left out.
"""

from __future__ import annotations

import asyncio
import os

from aiohttp import web

from quanta.util.state import _source, _tables
from quanta.util.state._query import select

PAGES = ("overview", "actors", "objects", "workers", "logs", "jobs", "placement-groups", "tasks", "timeline")
STATIC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")
TIMEOUT = 10.0
MAX_ROWS = 10000
LOG_READ_LIMIT = 1 << 20


def _source_of(request) -> _source.Source:
    return request.app["source"]


async def _blocking(fn, *args):
    return await asyncio.get_running_loop().run_in_executor(None, fn, *args)


def _query_args(request):
    filters = []
    for text in request.query.getall("filter", []):
        for predicate in ("!=", "="):
            if predicate in text:
                key, value = text.split(predicate, 1)
                filters.append((key, predicate, value))
                break
    detail = request.query.get("detail", "1") not in ("0", "false")
    try:
        limit = min(int(request.query.get("limit", MAX_ROWS)), MAX_ROWS)
    except ValueError:
        raise web.HTTPBadRequest(text="limit must be an integer")
    return filters, limit, detail


def _table_handler(schema, build):
    async def handler(request):
        filters, limit, detail = _query_args(request)

        def run():
            got = build(_source_of(request), TIMEOUT)
            rows, errors = got if isinstance(got, tuple) else (got, [])
            return select(schema, rows, filters, limit, detail), errors

        try:
            rows, errors = await _blocking(run)
        except ValueError as e:
            return web.json_response({"error": str(e)}, status=400)
        return web.json_response({"result": rows, "errors": errors}, dumps=_dumps)

    return handler


def _dumps(value):
    import json

    return json.dumps(value, default=str)


async def tasks(request):
    """The head's task table: ?filter=state=FAILED&limit=N&detail=0, newest first here (the
    page shows the latest). A task_id filter gives that task with its error's traceback."""
    filters, limit, detail = _query_args(request)

    def run():
        from quanta.util.state._query import check_filters

        checked = check_filters(_tables.TASKS, filters)
        rows, matched, stats = _tables.task_rows(_source_of(request), TIMEOUT, checked, 0)
        rows = select(_tables.TASKS, rows[::-1], checked, limit, detail)
        return {"result": rows, "matched": matched, "stats": stats, "errors": []}

    try:
        body = await _blocking(run)
    except ValueError as e:
        return web.json_response({"error": str(e)}, status=400)
    return web.json_response(body, dumps=_dumps)


async def summary(request):
    def run():
        source = _source_of(request)
        nodes = _tables.node_rows(source, TIMEOUT)
        objects, errors = _tables.object_rows(source, TIMEOUT)
        actors, errors2 = _tables.actor_rows(source, TIMEOUT)
        by_storage = {}
        for o in objects:
            e = by_storage.setdefault(o["storage"], {"objects": 0, "bytes": 0})
            e["objects"] += 1
            e["bytes"] += o["object_size"]
        states = {}
        for a in actors:
            states[a["state"]] = states.get(a["state"], 0) + 1
        return {"nodes_alive": sum(n["state"] == "ALIVE" for n in nodes), "nodes_dead": sum(n["state"] == "DEAD" for n in nodes),
                "objects_by_storage": by_storage, "actors_by_state": states, "errors": errors + errors2}

    return web.json_response(await _blocking(run))


async def metrics(request):
    return web.json_response({"interval_s": request.app["sample_interval"], "nodes": request.app["sampler"].snapshot()})


async def log_files(request):
    node_id = request.query.get("node_id")

    def run():
        source = _source_of(request)
        out = {}
        for n in _tables.node_rows(source, TIMEOUT):
            if n["state"] != "ALIVE" or (node_id and n["node_id"] != node_id):
                continue
            try:
                out[n["node_id"]] = source.node_state(n["node_index"], _source.LOG_FILES, timeout_s=TIMEOUT)
            except _source.NodeUnavailable as e:
                out[n["node_id"]] = {"error": str(e)}
        return out

    return web.json_response({"result": await _blocking(run)})


async def log_file(request):
    node_id = request.query.get("node_id", "")
    name = request.query.get("name", "")
    try:
        offset = int(request.query.get("offset", -LOG_READ_LIMIT))
        limit = min(int(request.query.get("limit", LOG_READ_LIMIT)), LOG_READ_LIMIT)
    except ValueError:
        return web.json_response({"error": "offset and limit must be integers"}, status=400)

    def run():
        source = _source_of(request)
        for n in _tables.node_rows(source, TIMEOUT):
            if n["node_id"] == node_id and n["state"] == "ALIVE":
                return source.node_state(n["node_index"], _source.LOG_READ, name, offset, limit, timeout_s=TIMEOUT)
        raise _source.NodeUnavailable(f"no alive node with id {node_id!r}")

    try:
        data, start, size = await _blocking(run)
    except _source.NodeUnavailable as e:
        return web.json_response({"error": str(e)}, status=404)
    return web.json_response({"node_id": node_id, "name": name, "offset": start, "size": size,
                              "text": data.decode("utf-8", "replace")})


async def timeline(request):
    """The Chrome trace of quanta.timeline(): every event, as a file with ?download=1; else the
    newest `limit` spans (default 2000) and their rows' names, for the timeline page."""
    from quanta.util.state import _timeline

    try:
        limit = int(request.query.get("limit", 2000))
    except ValueError:
        return web.json_response({"error": "limit must be an integer"}, status=400)
    trace = await _blocking(_timeline.events_from, _source_of(request), TIMEOUT)
    if request.query.get("download") in ("1", "true"):
        return web.json_response(trace, headers={"Content-Disposition": 'attachment; filename="timeline.json"'})
    spans = sorted((e for e in trace if e.get("ph") == "X"), key=lambda e: e["ts"])
    total = len(spans)
    if limit >= 0:
        spans = spans[-limit:] if limit else []
    return web.json_response({"result": spans, "total": total})


def page_handler(page):
    async def handler(request):
        with open(os.path.join(STATIC, "page.html"), encoding="utf-8") as f:
            text = f.read()
        return web.Response(text=text.replace("{{PAGE}}", page), content_type="text/html")

    return handler


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/", page_handler("overview"))
    for page in PAGES[1:]:
        r.add_get(f"/{page}", page_handler(page))
    r.add_get("/api/summary", summary)
    r.add_get("/api/metrics", metrics)
    r.add_get("/api/nodes", _table_handler(_tables.NODES, _tables.node_rows))
    r.add_get("/api/actors", _table_handler(_tables.ACTORS, _tables.actor_rows))
    r.add_get("/api/objects", _table_handler(_tables.OBJECTS, _tables.object_rows))
    r.add_get("/api/workers", _table_handler(_tables.WORKERS, _tables.worker_rows))
    r.add_get("/api/placement_groups", _table_handler(_tables.PLACEMENT_GROUPS, _tables.placement_group_rows))
    r.add_get("/api/state/jobs", _table_handler(_tables.JOBS, _tables.job_rows))
    r.add_get("/api/tasks", tasks)
    r.add_get("/api/timeline", timeline)
    r.add_get("/api/logs", log_files)
    r.add_get("/api/logs/file", log_file)
    r.add_static("/static/", STATIC, show_index=False, follow_symlinks=False)
