"""The jobs API end to end: a head's dashboard runs submitted entrypoints under supervisors.

A job submitted with a local working directory runs on the head, joins the cluster, and its
output, status and driver show up through JobSubmissionClient, the CLI and the state API; a
failing job is FAILED with its error, a stopped one STOPPED with its whole process session gone;
entrypoint resources are held on the head while it runs; output is bounded; and without the
cluster token every endpoint answers 401.
"""

import asyncio
import json
import os
import re
import secrets
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request

import pytest

import quanta
from quanta.cluster_utils import Cluster
from quanta.job_submission import JobStatus, JobSubmissionClient, JobSubmissionError
from quanta.util import state

TOKEN = "jobs-test-" + secrets.token_hex(16)
LOG_LIMIT = 64 * 1024


@pytest.fixture(scope="module")
def head():
    if quanta.is_initialized():
        quanta.shutdown()
    saved = {k: os.environ.get(k) for k in ("QUANTA_AUTH_TOKEN", "QUANTA_JOB_LOG_MAX_BYTES")}
    os.environ["QUANTA_AUTH_TOKEN"] = TOKEN  # this module's cluster, not whatever ~/.quanta holds
    os.environ["QUANTA_JOB_LOG_MAX_BYTES"] = str(LOG_LIMIT)  # inherited by the supervisors
    cluster = Cluster(initialize_head=True, shutdown_at_exit=False,
                      head_node_args={"num_cpus": 2, "include_dashboard": True, "dashboard_port": 0})
    try:
        yield cluster
    finally:
        cluster.shutdown()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture(scope="module")
def client(head):
    return JobSubmissionClient(head.head_node.dashboard_url, token=TOKEN)


def until(predicate, timeout=30.0, what="condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def write(folder, name, text):
    path = os.path.join(folder, name)
    with open(path, "w") as f:
        f.write(textwrap.dedent(text))
    return path


def pid_alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


def test_submit_logs_succeeded(client, head, tmp_path):
    write(tmp_path, "helper.py", "GREETING = 'hello from the working dir'\n")
    write(tmp_path, "main.py", """
        import os, quanta, helper
        quanta.init()
        @quanta.remote
        def square(x):
            return x * x
        print(helper.GREETING)
        print("squares", quanta.get([square.remote(i) for i in range(5)]))
        print("in", os.path.basename(os.getcwd()), "job", os.environ["QUANTA_JOB_SUBMISSION_ID"])
    """)
    sid = client.submit_job(entrypoint="python main.py", runtime_env={"working_dir": str(tmp_path)},
                            metadata={"owner": "test"})
    assert client.wait_until_finished(sid, timeout=60) == JobStatus.SUCCEEDED
    logs = client.get_job_logs(sid)
    assert "hello from the working dir" in logs and "squares [0, 1, 4, 9, 16]" in logs and f"job {sid}" in logs
    info = client.get_job_info(sid)
    assert info.driver_exit_code == 0 and info.metadata == {"owner": "test"} and info.end_time >= info.start_time
    assert info.job_id  # the driver it started, linked from the cluster's jobs table
    assert sid in [j.submission_id for j in client.list_jobs()]
    rows = state.list_jobs(address=head.head_node.session_dir, filters=[("submission_id", "=", sid)], detail=True)
    assert [(r.job_id, r.type, r.status) for r in rows] == [(info.job_id, "SUBMISSION", "SUCCEEDED")]
    # The same package is not uploaded twice: a second job names it by its hash.
    sid2 = client.submit_job(entrypoint="python main.py", runtime_env={"working_dir": str(tmp_path)})
    assert client.wait_until_finished(sid2, timeout=60) == JobStatus.SUCCEEDED
    assert client.get_job_info(sid2).runtime_env["working_dir"] == info.runtime_env["working_dir"]
    assert client.delete_job(sid2) and sid2 not in [j.submission_id for j in client.list_jobs()]


def test_a_submitted_jobs_runtime_env_is_the_default_of_its_tasks(client, tmp_path):
    (tmp_path / "shipped.txt").write_text("from the job's working_dir")
    write(tmp_path, "main.py", """
        import os, quanta
        quanta.init()
        @quanta.remote
        def where():
            return open("shipped.txt").read(), os.environ.get("QRT_JOB_VAR"), os.getpid() != PARENT
        PARENT = os.getpid()
        print("task saw", quanta.get(where.remote()))
    """)
    sid = client.submit_job(entrypoint="python main.py", runtime_env={"working_dir": str(tmp_path),
                                                                      "env_vars": {"QRT_JOB_VAR": "set"}})
    assert client.wait_until_finished(sid, timeout=90) == JobStatus.SUCCEEDED, client.get_job_logs(sid)
    assert "task saw (\"from the job's working_dir\", 'set', True)" in client.get_job_logs(sid)


def test_failing_job(client, tmp_path):
    script = write(tmp_path, "fail.py", """
        import quanta
        quanta.init()
        @quanta.remote
        def boom():
            raise ValueError("the task broke on purpose")
        quanta.get(boom.remote())
    """)
    sid = client.submit_job(entrypoint=f"{sys.executable} {script}")
    assert client.wait_until_finished(sid, timeout=60) == JobStatus.FAILED
    info = client.get_job_info(sid)
    assert info.driver_exit_code == 1
    assert "exited with code 1" in info.message and "the task broke on purpose" in info.message
    sid = client.submit_job(entrypoint="exit 7")
    assert client.wait_until_finished(sid, timeout=30) == JobStatus.FAILED
    assert client.get_job_info(sid).driver_exit_code == 7


def test_stop_running_job(client, tmp_path):
    script = write(tmp_path, "forever.py", """
        import subprocess, sys, time
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
        print("child", child.pid, flush=True)
        while True:
            time.sleep(0.1)
    """)
    sid = client.submit_job(entrypoint=f"{sys.executable} {script}")
    # One fetch per try, and the whole line: the pid is read from the same text that matched.
    found = until(lambda: re.search(r"child (\d+)\n", client.get_job_logs(sid)), what="the job's output")
    child = int(found.group(1))
    info = client.get_job_info(sid)
    assert info.status == JobStatus.RUNNING and pid_alive(info.entrypoint_pid) and pid_alive(child)
    with pytest.raises(JobSubmissionError, match="stop it"):
        client.delete_job(sid)
    t0 = time.monotonic()
    assert client.stop_job(sid) is True
    assert client.wait_until_finished(sid, timeout=20) == JobStatus.STOPPED
    assert time.monotonic() - t0 < 10
    until(lambda: not pid_alive(info.entrypoint_pid) and not pid_alive(child), 10, "the job's processes to exit")
    assert client.stop_job(sid) is False  # already ended
    assert client.delete_job(sid)
    with pytest.raises(JobSubmissionError, match="no job"):
        client.get_job_info(sid)


def test_entrypoint_resources_are_held_while_it_runs(client, head, tmp_path):
    marker = tmp_path / "release"
    script = write(tmp_path, "hold.py", f"""
        import os, time
        print("running", flush=True)
        while not os.path.exists({str(marker)!r}):
            time.sleep(0.05)
    """)
    addr = head.head_node.session_dir

    def free_cpus():
        return state.list_nodes(address=addr, detail=True)[0].resources_available.get("CPU", 0)

    assert free_cpus() == 2.0
    sid = client.submit_job(entrypoint=f"{sys.executable} {script}", entrypoint_num_cpus=2)
    until(lambda: "running" in client.get_job_logs(sid), what="the entrypoint to start")
    assert free_cpus() == 0.0
    blocked = client.submit_job(entrypoint="echo never", entrypoint_num_cpus=1)
    time.sleep(1.0)
    assert client.get_job_status(blocked) == JobStatus.PENDING  # no CPU left on the head for it
    marker.write_text("go")
    assert client.wait_until_finished(sid, timeout=30) == JobStatus.SUCCEEDED
    assert client.wait_until_finished(blocked, timeout=30) == JobStatus.SUCCEEDED
    assert "never" in client.get_job_logs(blocked)
    until(lambda: free_cpus() == 2.0, what="the CPUs to come back")


def test_output_is_bounded_and_followed(client, head, tmp_path):
    script = write(tmp_path, "loud.py", """
        import sys, time
        print("first", flush=True)
        time.sleep(1.0)
        for i in range(20000):
            sys.stdout.write(f"line {i:06d} " + "x" * 40 + "\\n")
        print("last line", flush=True)
    """)
    sid = client.submit_job(entrypoint=f"{sys.executable} {script}")

    async def follow():
        chunks = []
        async for text in client.tail_job_logs(sid):
            chunks.append((text, client.get_job_status(sid)))
        return chunks

    chunks = asyncio.run(follow())
    assert chunks[0][1] == JobStatus.RUNNING and "first" in chunks[0][0]  # delivered while it ran
    assert "last line" in "".join(t for t, _ in chunks)
    assert client.get_job_status(sid) == JobStatus.SUCCEEDED
    folder = os.path.join(head.head_node.session_dir, "jobs", sid)
    sizes = [os.path.getsize(os.path.join(folder, n)) for n in ("output.log", "output.log.1")]
    assert all(s <= LOG_LIMIT for s in sizes), sizes  # 1 MB written, two bounded files kept
    logs = client.get_job_logs(sid)
    assert logs.endswith("last line\n") and "line 000000" not in logs and len(logs) <= 2 * LOG_LIMIT


def test_refused_requests(client, tmp_path):
    for body, message in (({"entrypoint": ""}, "entrypoint"),
                          ({"entrypoint": "true", "runtime_env": {"pip": ["requests"]}}, "not supported"),
                          ({"entrypoint": "true", "submission_id": "../escape"}, "invalid submission_id"),
                          ({"entrypoint": "true", "entrypoint_num_cpus": -1}, ">= 0")):
        with pytest.raises(JobSubmissionError, match=message):
            client._request("POST", "/api/jobs/", body)
    sid = client.submit_job(entrypoint="true", submission_id="fixed-id")
    with pytest.raises(JobSubmissionError, match="already exists"):
        client.submit_job(entrypoint="true", submission_id="fixed-id")
    client.wait_until_finished(sid)


def _status(url, method="GET", headers=None, data=None):
    req = urllib.request.Request(url, method=method, headers=headers or {}, data=data)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def test_every_job_endpoint_needs_the_token(client, head):
    url = head.head_node.dashboard_url
    sid = client.submit_job(entrypoint="echo secret-output")
    client.wait_until_finished(sid)
    name = "0" * 64 + ".zip"
    endpoints = [("GET", "/api/version"), ("POST", "/api/jobs/"), ("GET", "/api/jobs/"), ("GET", f"/api/jobs/{sid}"),
                 ("POST", f"/api/jobs/{sid}/stop"), ("DELETE", f"/api/jobs/{sid}"), ("GET", f"/api/jobs/{sid}/logs"),
                 ("GET", f"/api/jobs/{sid}/logs/tail"), ("GET", f"/api/packages/{name}"),
                 ("PUT", f"/api/packages/{name}")]
    for method, path in endpoints:
        body = b"{}" if method in ("POST", "PUT") else None
        for headers in ({}, {"Authorization": "Bearer " + "x" * len(TOKEN)}, {"Authorization": "Basic " + TOKEN},
                        {"Cookie": "quanta_dashboard_session=forged"}):
            assert _status(url + path, method, headers, body) == 401, (method, path, headers)
    assert client.get_job_status(sid) == JobStatus.SUCCEEDED  # none of that changed anything
    assert _status(url + f"/api/jobs/{sid}", headers={"Authorization": "Bearer " + TOKEN}) == 200
    with pytest.raises(JobSubmissionError, match="401"):
        JobSubmissionClient(url, token="not-the-token-at-all")


def test_cli(head, tmp_path):
    url = head.head_node.dashboard_url
    write(tmp_path, "hi.py", "print('hi from the cli job')\n")
    env = dict(os.environ, QUANTA_AUTH_TOKEN=TOKEN)

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "quanta.scripts", "job", *args], capture_output=True, text=True,
                              timeout=120, env=env)

    r = cli("submit", "--address", url, "--working-dir", str(tmp_path), "--", "python", "hi.py")
    assert r.returncode == 0, r.stderr
    assert "hi from the cli job" in r.stdout and "SUCCEEDED" in r.stderr
    r = cli("submit", "--address", url, "--no-wait", "--", "python", "-c", "import sys; sys.exit(3)")
    sid = r.stdout.strip()
    assert r.returncode == 0 and sid.startswith("quantasubmit_")
    until(lambda: cli("status", "--address", url, sid).stdout.strip() == "FAILED", what="FAILED")
    r = cli("list", "--address", url, "--format", "json")
    assert sid in {j["submission_id"] for j in json.loads(r.stdout)}
    r = cli("logs", "--address", url, "--follow", sid)
    assert r.returncode == 0
    r = subprocess.run([sys.executable, "-m", "quanta.scripts", "job", "list", "--address", url], capture_output=True,
                       text=True, timeout=60, env=dict(env, QUANTA_AUTH_TOKEN="w" * 32))
    assert r.returncode == 1 and "401" in r.stderr and "Traceback" not in r.stderr
