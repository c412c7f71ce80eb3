"""The jobs API (Ray's REST paths): submit, list, inspect, stop, delete jobs, read and follow
their output; and the upload of working-directory packages. Served by the dashboard, behind
the same authentication as everything else (auth.py).

    POST   /api/jobs/                      {"entrypoint", "submission_id"?, "runtime_env"?, "metadata"?,
                                            "entrypoint_num_cpus"?, "entrypoint_num_gpus"?, "entrypoint_resources"?}
    GET    /api/jobs/                      every submitted job
    GET    /api/jobs/{id}                  one job
    POST   /api/jobs/{id}/stop             {"stopped": bool}
    DELETE /api/jobs/{id}                  {"deleted": true} (an ended job only)
    GET    /api/jobs/{id}/logs             {"logs": text}
    GET    /api/jobs/{id}/logs/tail        the output as it is written (chunked), until the job ends
    GET|PUT /api/packages/{sha256}.zip     does the head have it / upload it
"""

from __future__ import annotations

import asyncio
import json
import os

from aiohttp import web

import quanta
from quanta.job_submission import package
from quanta.job_submission.manager import JobError, JobManager

TAIL_POLL_S = 0.2


def _manager(request) -> JobManager:
    return request.app["jobs"]


def _public(info, driver_jobs) -> dict:
    d = info.to_dict()
    if d.get("runtime_env"):
        d["runtime_env"] = {k: v for k, v in d["runtime_env"].items() if not k.startswith("_")}
    pids = set(info.driver_pids or [])
    for j in driver_jobs:
        if j["node_index"] == info.node_index and j["driver_pid"] in pids:
            d["job_id"] = f"{j['job_id']:016x}"
            break
    return d


async def _driver_jobs(request) -> list:
    source = request.app["source"]
    try:
        return await asyncio.get_running_loop().run_in_executor(None, source.jobs, 10.0)
    except Exception:  # the jobs table is a nicety here; the submission record is what counts
        return []


def _error(e: JobError) -> web.Response:
    return web.json_response({"error": str(e)}, status=e.status)


async def version(request):
    return web.json_response({"version": quanta.__version__, "api_version": "1", "server": "quanta"})


async def submit(request):
    try:
        body = await request.json()
    except (ValueError, UnicodeDecodeError):
        return web.json_response({"error": "the request body must be a JSON object"}, status=400)
    if not isinstance(body, dict):
        return web.json_response({"error": "the request body must be a JSON object"}, status=400)
    try:
        sid = _manager(request).submit(body)
    except JobError as e:
        return _error(e)
    return web.json_response({"submission_id": sid, "job_id": sid})


async def list_jobs(request):
    drivers = await _driver_jobs(request)
    return web.json_response([_public(i, drivers) for i in _manager(request).list()])


async def get_job(request):
    try:
        _manager(request).reap()
        info = _manager(request).get(request.match_info["id"])
    except JobError as e:
        return _error(e)
    return web.json_response(_public(info, await _driver_jobs(request)))


async def stop_job(request):
    try:
        return web.json_response({"stopped": _manager(request).stop(request.match_info["id"])})
    except JobError as e:
        return _error(e)


async def delete_job(request):
    try:
        return web.json_response({"deleted": _manager(request).delete(request.match_info["id"])})
    except JobError as e:
        return _error(e)


async def job_logs(request):
    try:
        return web.json_response({"logs": _manager(request).logs(request.match_info["id"])})
    except JobError as e:
        return _error(e)


async def tail_logs(request):
    """Streams output.log from its start (and output.log.1 first, if it exists), following
    rotation, until the job has ended and everything written was sent."""
    manager = _manager(request)
    sid = request.match_info["id"]
    try:
        older, current = manager.log_paths(sid)
    except JobError as e:
        return _error(e)
    response = web.StreamResponse(headers={"Content-Type": "text/plain; charset=utf-8"})
    await response.prepare(request)
    if os.path.exists(older):
        with open(older, "rb") as f:
            await response.write(f.read())
    offset, inode = 0, None
    while True:
        manager.reap()
        try:
            ended = manager.get(sid).status.is_terminal()
        except JobError:
            break  # deleted meanwhile
        try:
            st = os.stat(current)
        except FileNotFoundError:
            st = None
        if st is not None:
            if inode is not None and (st.st_ino != inode or st.st_size < offset):
                offset = 0  # rotated: continue in the new file
            inode = st.st_ino
            if st.st_size > offset:
                with open(current, "rb") as f:
                    f.seek(offset)
                    data = f.read(1 << 20)
                offset += len(data)
                await response.write(data)
                continue
        if ended:
            break
        await asyncio.sleep(TAIL_POLL_S)
    await response.write_eof()
    return response


async def has_package(request):
    try:
        path = package.unpacked_path(request.app["session_dir"], request.match_info["name"])
    except package.PackageError as e:
        return web.json_response({"error": str(e)}, status=400)
    return web.json_response({"exists": os.path.isdir(path)}, status=200 if os.path.isdir(path) else 404)


async def upload_package(request):
    name = request.match_info["name"]
    data = await request.read()
    if len(data) > package.MAX_PACKAGE_BYTES:
        return web.json_response({"error": f"packages are limited to {package.MAX_PACKAGE_BYTES >> 20} MiB"}, status=413)
    try:
        await asyncio.get_running_loop().run_in_executor(None, package.store, request.app["session_dir"], name, data)
    except package.PackageError as e:
        return web.json_response({"error": str(e)}, status=400)
    return web.json_response({"stored": name})


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/api/version", version)
    r.add_post("/api/jobs/", submit)
    r.add_get("/api/jobs/", list_jobs)
    r.add_get("/api/jobs/{id}", get_job)
    r.add_post("/api/jobs/{id}/stop", stop_job)
    r.add_delete("/api/jobs/{id}", delete_job)
    r.add_get("/api/jobs/{id}/logs", job_logs)
    r.add_get("/api/jobs/{id}/logs/tail", tail_logs)
    r.add_get("/api/packages/{name}", has_package)
    r.add_put("/api/packages/{name}", upload_package)
