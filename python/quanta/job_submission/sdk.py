"""JobSubmissionClient: Ray's client for the jobs API, under the same names.

    client = JobSubmissionClient("http://127.0.0.1:8265")
    sid = client.submit_job(entrypoint="python script.py", runtime_env={"working_dir": "./"})
    client.get_job_status(sid)          # JobStatus.RUNNING, ...
    print(client.get_job_logs(sid))

The token: `token=` or an `Authorization` header in `headers=`, else the cluster token as
`quanta` finds it (QUANTA_AUTH_TOKEN, QUANTA_AUTH_TOKEN_PATH, ~/.quanta/auth_token), else, for a
dashboard of a cluster started on this host with quanta.init(), that session's own token.
address None: QUANTA_DASHBOARD_ADDRESS, else the dashboard of the newest cluster on this host.
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.parse
import urllib.request

from quanta.job_submission import package
from quanta.job_submission.common import JobInfo, JobStatus


class JobSubmissionError(RuntimeError):
    """The jobs API refused a request or could not be reached (the message says which)."""


def _local_dashboards() -> list:
    from quanta._private import services

    return [r for r in services.running_sessions() if r.get("dashboard_url")]


def _session_token(address: str) -> str | None:
    """The token of a local cluster's dashboard at `address` (<session>/dashboard_token)."""
    from quanta._private import runtime_dir
    from quanta.dashboard.launch import TOKEN_FILE

    want = urllib.parse.urlparse(address)
    for r in _local_dashboards():
        have = urllib.parse.urlparse(r["dashboard_url"])
        if have.port == want.port and have.hostname in (want.hostname, "127.0.0.1"):
            path = os.path.join(r["session_dir"], TOKEN_FILE)
            if os.path.exists(path):
                try:
                    return runtime_dir.read_private(path).strip()
                except (OSError, runtime_dir.UnsafePathError):
                    return None
    return None


def resolve_address(address: str | None) -> str:
    address = address or os.environ.get("QUANTA_DASHBOARD_ADDRESS") or os.environ.get("RAY_ADDRESS")
    if not address or address == "auto":
        found = _local_dashboards()
        if not found:
            raise JobSubmissionError("no dashboard address: pass address='http://HEAD:8265' (the head prints it), "
                                     "or set QUANTA_DASHBOARD_ADDRESS")
        return found[0]["dashboard_url"]
    if not address.startswith(("http://", "https://")):
        if ":" in address and address.rsplit(":", 1)[1].isdigit():
            address = "http://" + address
        else:
            raise JobSubmissionError(f"the jobs API is at the dashboard's http://HOST:PORT (8265 by default), "
                                     f"not {address!r}")
    return address.rstrip("/")


def resolve_token(address: str, token: str | None = None) -> str:
    if token:
        return token
    from quanta._private import auth_token

    try:
        return auth_token.load()[0]
    except (auth_token.TokenError, OSError) as e:
        local = _session_token(address)
        if local:
            return local
        raise JobSubmissionError(f"no token for the dashboard at {address}: {e}") from None


class JobSubmissionClient:
    """Talks to the jobs API of a head's dashboard (Ray's names and return values)."""

    def __init__(self, address: str | None = None, create_cluster_if_needed: bool = False, cookies=None,
                 metadata: dict | None = None, headers: dict | None = None, verify=True, *,
                 token: str | None = None, timeout: float = 30.0):
        self._address = resolve_address(address)
        self._headers = dict(headers or {})
        if not any(k.lower() == "authorization" for k in self._headers):
            self._headers["Authorization"] = "Bearer " + resolve_token(self._address, token)
        self._default_metadata = dict(metadata or {})
        self._timeout = timeout
        self._request("GET", "/api/version")  # fail now, clearly, if it is not reachable or refuses us

    @property
    def address(self) -> str:
        return self._address

    # ------------------------------------------------------------------ HTTP

    def _open(self, method, path, body=None, content_type="application/json", timeout=None):
        data = None
        headers = dict(self._headers)
        if body is not None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            headers["Content-Type"] = content_type
        req = urllib.request.Request(self._address + path, data=data, method=method, headers=headers)
        try:
            return urllib.request.urlopen(req, timeout=timeout or self._timeout)
        except urllib.error.HTTPError as e:
            try:
                detail = json.loads(e.read()).get("error") or e.reason
            except ValueError:
                detail = e.reason
            if e.code == 401:
                detail = f"the dashboard refused the token (401): {detail}"
            raise JobSubmissionError(f"{method} {path}: {detail}") from None
        except (urllib.error.URLError, OSError) as e:
            raise JobSubmissionError(
                f"cannot reach the dashboard at {self._address} ({e}): is a cluster running there? "
                "`quanta start --head` starts one with its dashboard; or pass --address "
                "http://HEAD_IP:8265 (or set QUANTA_DASHBOARD_ADDRESS)") from None

    def _request(self, method, path, body=None, content_type="application/json"):
        with self._open(method, path, body, content_type) as r:
            return json.loads(r.read() or b"null")

    # ------------------------------------------------------------------ Ray's API

    def submit_job(self, *, entrypoint: str, job_id: str | None = None, runtime_env: dict | None = None,
                   metadata: dict | None = None, submission_id: str | None = None,
                   entrypoint_num_cpus: float | None = None, entrypoint_num_gpus: float | None = None,
                   entrypoint_memory: int | None = None, entrypoint_resources: dict | None = None) -> str:
        """Starts `entrypoint` (a shell command) on the head under a supervisor; returns the
        submission id. A local runtime_env["working_dir"] is zipped and uploaded first."""
        if entrypoint_memory:
            raise JobSubmissionError("entrypoint_memory is not supported; use entrypoint_resources")
        runtime_env = dict(runtime_env or {})
        wd = runtime_env.get("working_dir")
        if wd and not str(wd).startswith(package.SCHEME):
            runtime_env["working_dir"] = self._upload_working_dir(str(wd))
        body = {"entrypoint": entrypoint, "submission_id": submission_id or job_id,
                "runtime_env": runtime_env or None, "metadata": {**self._default_metadata, **(metadata or {})} or None,
                "entrypoint_num_cpus": entrypoint_num_cpus, "entrypoint_num_gpus": entrypoint_num_gpus,
                "entrypoint_resources": entrypoint_resources}
        return self._request("POST", "/api/jobs/", {k: v for k, v in body.items() if v is not None})["submission_id"]

    def _upload_working_dir(self, path: str) -> str:
        try:
            data = package.zip_folder(path)
        except package.PackageError as e:
            raise JobSubmissionError(str(e)) from None
        name = package.package_name(data)
        try:
            self._request("GET", f"/api/packages/{name}")
        except JobSubmissionError:
            self._request("PUT", f"/api/packages/{name}", data, content_type="application/zip")
        return package.SCHEME + name

    def get_job_info(self, job_id: str) -> JobInfo:
        return JobInfo.from_dict(self._request("GET", f"/api/jobs/{urllib.parse.quote(job_id)}"))

    def get_job_status(self, job_id: str) -> JobStatus:
        return self.get_job_info(job_id).status

    def list_jobs(self) -> list:
        return [JobInfo.from_dict(d) for d in self._request("GET", "/api/jobs/")]

    def get_job_logs(self, job_id: str) -> str:
        return self._request("GET", f"/api/jobs/{urllib.parse.quote(job_id)}/logs")["logs"]

    def stop_job(self, job_id: str) -> bool:
        return self._request("POST", f"/api/jobs/{urllib.parse.quote(job_id)}/stop")["stopped"]

    def delete_job(self, job_id: str) -> bool:
        return self._request("DELETE", f"/api/jobs/{urllib.parse.quote(job_id)}")["deleted"]

    def follow_job_logs(self, job_id: str):
        """Yields the job's output as it is written, from the start, until the job ends."""
        with self._open("GET", f"/api/jobs/{urllib.parse.quote(job_id)}/logs/tail", timeout=3600) as r:
            while True:
                chunk = r.read1(65536) if hasattr(r, "read1") else r.read(65536)
                if not chunk:
                    return
                yield chunk.decode("utf-8", "replace")

    async def tail_job_logs(self, job_id: str):
        """Ray's async generator of the job's output as it is written, until the job ends."""
        import aiohttp

        url = f"{self._address}/api/jobs/{urllib.parse.quote(job_id)}/logs/tail"
        async with aiohttp.ClientSession(headers=self._headers) as s:
            async with s.get(url, timeout=aiohttp.ClientTimeout(total=None, sock_read=None)) as r:
                if r.status != 200:
                    raise JobSubmissionError(f"GET {url}: HTTP {r.status}: {await r.text()}")
                async for chunk in r.content.iter_any():
                    yield chunk.decode("utf-8", "replace")

    def wait_until_finished(self, job_id: str, timeout: float = 300, poll: float = 0.2) -> JobStatus:
        deadline = time.monotonic() + timeout
        while True:
            status = self.get_job_status(job_id)
            if status.is_terminal():
                return status
            if time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} is still {status} after {timeout} s")
            time.sleep(poll)
