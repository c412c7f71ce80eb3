"""The `quanta` command line for clusters: start (head and join), status, stop, --block,
get-auth-token, and the refusals.

Each test runs the real CLI (`python -m quanta.scripts`) as a subprocess with a private HOME
(so the token file is the test's own) and a private runtime root (QUANTA_RUNTIME_DIR, so
`quanta stop` and `quanta status` see only the sessions this test started), and checks what
is left running through the session records and /proc.
"""

import json
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time

import pytest

from quanta._private import runtime_dir, services
from conftest import process_identity, wait_until_gone


class Host:
    """A private HOME + runtime root: one "host" as far as the CLI can tell."""

    def __init__(self, root):
        self.root = root
        self.home = os.path.join(root, "home")
        self.runtime = os.path.join(root, "rt")
        os.makedirs(self.home, mode=0o700)
        self.env = {k: v for k, v in os.environ.items()
                    if k not in ("QUANTA_AUTH_TOKEN", "QUANTA_AUTH_TOKEN_PATH", "QUANTA_ADDRESS")}
        self.env.update(HOME=self.home, QUANTA_RUNTIME_DIR=self.runtime, PYTHONUNBUFFERED="1")

    @property
    def token_path(self):
        return os.path.join(self.home, ".quanta", "auth_token")

    def quanta(self, *args, timeout=60, env=None):
        return subprocess.run([sys.executable, "-m", "quanta.scripts", *args], capture_output=True, text=True,
                              timeout=timeout, env={**self.env, **(env or {})})

    def popen(self, *args):
        return subprocess.Popen([sys.executable, "-m", "quanta.scripts", *args], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=self.env)

    def records(self):
        if not os.path.isdir(self.runtime):
            return []
        return [r for r in (runtime_dir.read_record(s) for s in runtime_dir.sessions(self.runtime)) if r]

    def live_daemons(self):
        """Identities of the recorded daemons of this host that still run."""
        out = set()
        for r in self.records():
            for e in r["processes"]:
                if services.alive(e, r["session_dir"]):
                    out.add(process_identity(e["pid"]))
        return out - {None}

    def daemons_in_proc(self):
        """Any quanta_control/quanta_node process whose session dir is under this host's runtime
        root, found by scanning /proc (whether or not a record names it)."""
        found = []
        for name in os.listdir("/proc"):
            if not name.isdigit():
                continue
            try:
                exe = os.path.basename(os.readlink(f"/proc/{name}/exe"))
                with open(f"/proc/{name}/cmdline", "rb") as f:
                    argv = f.read().split(b"\0")
            except OSError:
                continue
            if exe in ("quanta_control", "quanta_node") and any(a.startswith(os.fsencode(self.runtime))
                                                                for a in argv):
                found.append(int(name))
        return found


@pytest.fixture
def make_host():
    made = []

    def make():
        h = Host(tempfile.mkdtemp(prefix="qcli-"))  # short: socket paths are limited to 107 bytes
        made.append(h)
        return h

    yield make
    for h in made:
        if h.live_daemons():
            h.quanta("stop", "--force")
        leftover = h.daemons_in_proc()
        for pid in leftover:
            os.kill(pid, signal.SIGKILL)
        shutil.rmtree(h.root, ignore_errors=True)
        assert not leftover, f"daemons left running: {leftover}"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_head(host, *extra):
    port = free_port()
    r = host.quanta("start", "--head", "--port", str(port), "--node-ip-address", "127.0.0.1", "--num-cpus", "1",
                    *extra)
    assert r.returncode == 0, r.stderr
    return f"127.0.0.1:{port}", r


# ----------------------------------------------------------------------------- start / status / stop


def test_head_join_status_stop(make_host):
    head = make_host()
    address, r = start_head(head)
    out = r.stdout
    assert f"Started the head of a Quanta cluster at {address}" in out
    assert f"cluster token: {head.token_path} (generated now)" in out
    assert f"quanta start --address {address} --node-ip-address" in out  # the join line
    assert f"quanta.init(address='{address}')" in out
    # The generated token is private.
    assert stat.S_IMODE(os.stat(head.token_path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(os.path.dirname(head.token_path)).st_mode) == 0o700
    assert len(open(head.token_path).read().strip()) >= 32

    r = head.quanta("start", "--address", address, "--num-cpus", "2", "--num-gpus", "2", "--memory", str(1 << 30),
                    "--resources", '{"box": 1}')
    assert r.returncode == 0, r.stderr
    assert f"Joined the Quanta cluster at {address} as node 2" in r.stdout
    assert len(head.live_daemons()) == 4  # control, dashboard + two nodes

    table = head.quanta("status")
    assert table.returncode == 0, table.stderr
    assert "2 node(s) alive, 0 dead" in table.stdout
    rows = [line for line in table.stdout.splitlines() if re.match(r"\s+[12]\s+[0-9a-f]{32}\s", line)]
    assert len(rows) == 2, table.stdout
    assert "(head)" in rows[0] and "0/1 CPU" in rows[0]
    assert "0/2 CPU" in rows[1] and "0/1 box" in rows[1]
    assert "0/2 GPU" in rows[1] and "0.00GiB/1.00GiB memory" in rows[1], rows[1]
    if shutil.which("nvidia-smi") is None and "CUDA_VISIBLE_DEVICES" not in os.environ:
        assert "GPU" not in rows[0], "the head detected no GPU, and was given none"
    assert all("127.0.0.1:" in row and "alive" in row for row in rows)

    js = head.quanta("status", "--format", "json")
    assert js.returncode == 0, js.stderr
    nodes = json.loads(js.stdout)["nodes"]
    assert sorted((n["node_index"], n["alive"], n["is_head"]) for n in nodes) == [(1, True, True), (2, True, False)]
    ids = {r["node_id"] for r in head.records()}
    assert {n["node_id"] for n in nodes} == ids

    # From a "host" with no node of the cluster, status asks the head directly (same token).
    other = make_host()
    remote = other.quanta("status", "--address", address, "--format", "json",
                          env={"QUANTA_AUTH_TOKEN": open(head.token_path).read().strip()})
    assert remote.returncode == 0, remote.stderr
    assert sorted(n["node_index"] for n in json.loads(remote.stdout)["nodes"]) == [1, 2]
    assert other.live_daemons() == set()

    daemons = head.live_daemons()
    r = head.quanta("stop")
    assert r.returncode == 0, r.stderr
    assert "Stopped 2 Quanta session(s)" in r.stdout
    assert not wait_until_gone(daemons, 10)
    assert head.daemons_in_proc() == []
    after = head.quanta("status")
    assert after.returncode != 0
    assert "no cluster running" in after.stderr.lower() and "start one with" in after.stderr.lower()


def test_status_with_no_cluster_says_how_to_start_one(make_host):
    h = make_host()
    r = h.quanta("status")
    assert r.returncode != 0
    assert "no cluster running" in r.stderr.lower() and "start one with `quanta start --head`" in r.stderr.lower()
    assert "Traceback" not in r.stderr + r.stdout
    # A head address where nothing listens: a clear error, no traceback.
    r = h.quanta("status", "--address", f"127.0.0.1:{free_port()}",
                 env={"QUANTA_AUTH_TOKEN": "x" * 32})
    assert r.returncode != 0
    assert "refused" in r.stderr and "Traceback" not in r.stderr + r.stdout
    # `quanta stop` with nothing to stop is fine.
    r = h.quanta("stop")
    assert r.returncode == 0 and "Stopped 0" in r.stdout


def test_existing_token_is_used_not_replaced(make_host):
    h = make_host()
    os.makedirs(os.path.dirname(h.token_path), mode=0o700)
    fd = os.open(h.token_path, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, b"my-own-cluster-token-0123456789\n")
    os.close(fd)
    address, r = start_head(h)
    assert f"cluster token: {h.token_path}\n" in r.stdout  # not "(generated now)"
    assert open(h.token_path).read() == "my-own-cluster-token-0123456789\n"
    # A node with another token is refused, with a message naming the token sources.
    r = h.quanta("start", "--address", address, env={"QUANTA_AUTH_TOKEN": "another-token-abcdefghijklmnop"})
    assert r.returncode != 0
    assert "token" in r.stderr and "QUANTA_AUTH_TOKEN" in r.stderr
    assert len(h.live_daemons()) == 3  # only the head's control service, node and dashboard


def test_block_stays_in_the_foreground_and_exits_cleanly_on_sigterm(make_host):
    h = make_host()
    port = free_port()
    p = h.popen("start", "--head", "--port", str(port), "--num-cpus", "0", "--block")
    try:
        lines = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = p.stdout.readline()
            if not line:
                break
            lines.append(line)
            if "Stop with" in line:
                break
        assert any(f"127.0.0.1:{port}" in line for line in lines), lines
        time.sleep(0.3)
        assert p.poll() is None, "quanta start --block returned"
        daemons = h.live_daemons()
        assert len(daemons) == 3  # control service, node, dashboard
        p.send_signal(signal.SIGTERM)
        assert p.wait(20) == 0
        assert "Traceback" not in p.stderr.read()
        assert not wait_until_gone(daemons, 10)
        assert h.daemons_in_proc() == []
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def test_block_reports_a_daemon_that_dies(make_host):
    h = make_host()
    p = h.popen("start", "--head", "--port", str(free_port()), "--num-cpus", "0", "--block")
    try:
        while "Stop with" not in p.stdout.readline():
            pass
        (record,) = h.records()
        node = [e for e in record["processes"] if e["role"] == "node"][0]
        os.kill(node["pid"], signal.SIGKILL)
        assert p.wait(20) != 0
        assert "exited" in p.stderr.read()
        assert not wait_until_gone(h.live_daemons(), 10)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def test_port_in_use_fails_clearly_and_leaves_nothing_running(make_host):
    h = make_host()
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        r = h.quanta("start", "--head", "--port", str(port), "--num-cpus", "0")
    assert r.returncode != 0
    assert f"port {port}" in r.stderr and "already in use" in r.stderr and "--port" in r.stderr
    assert "Traceback" not in r.stderr
    assert h.live_daemons() == set()
    assert h.daemons_in_proc() == []
    assert not any(runtime_dir.session_in_use(s) for s in runtime_dir.sessions(h.runtime))


def test_join_with_nothing_listening_fails_clearly(make_host):
    h = make_host()
    r = h.quanta("start", "--address", f"127.0.0.1:{free_port()}", env={"QUANTA_AUTH_TOKEN": "t" * 32})
    assert r.returncode != 0
    assert "could not join" in r.stderr and "Traceback" not in r.stderr
    assert h.daemons_in_proc() == []
    # Without any token it does not even try, and says where a token comes from.
    r = h.quanta("start", "--address", f"127.0.0.1:{free_port()}")
    assert r.returncode != 0 and "QUANTA_AUTH_TOKEN" in r.stderr
    assert h.daemons_in_proc() == []


@pytest.mark.parametrize("args, message", [
    (["--storage", "/nonexistent-dir/x.db"], "its directory does not exist"),
    (["--redis-address", "127.0.0.1:6379"], "--storage redis://HOST:PORT"),
    (["--dashboard-port", "70000"], "dashboard_port must be a port number"),
    (["--resources", '{"CPU": 2}'], "use --num-cpus"),
    (["--resources", "[1]"], "must be a JSON object"),
])
def test_unsupported_start_options_are_refused(make_host, args, message):
    h = make_host()
    r = h.quanta("start", "--head", "--port", str(free_port()), *args)
    assert r.returncode != 0
    assert message in r.stderr
    assert "Traceback" not in r.stderr
    assert h.daemons_in_proc() == []


def test_head_or_address_is_required(make_host):
    h = make_host()
    for args in ([], ["--head", "--address", "127.0.0.1:1"]):
        r = h.quanta("start", *args)
        assert r.returncode != 0 and "either --head" in r.stderr


# ----------------------------------------------------------------------------- tokens


def test_get_auth_token_and_generate(make_host):
    h = make_host()
    r = h.quanta("get-auth-token")
    assert r.returncode != 0
    assert "--generate" in r.stderr and "Traceback" not in r.stderr
    assert not os.path.exists(h.token_path)

    r = h.quanta("get-auth-token", "--generate")
    assert r.returncode == 0, r.stderr
    token = r.stdout.strip()
    assert re.fullmatch(r"[0-9a-f]{64}", token)
    assert open(h.token_path).read().strip() == token
    assert stat.S_IMODE(os.stat(h.token_path).st_mode) == 0o600
    assert h.token_path in r.stderr  # says where it came from

    again = h.quanta("get-auth-token", "--generate")  # does not replace an existing token
    assert again.returncode == 0 and again.stdout.strip() == token
    assert h.quanta("get-auth-token").stdout.strip() == token
    # The environment wins over the file.
    r = h.quanta("get-auth-token", env={"QUANTA_AUTH_TOKEN": "from-the-environment-123"})
    assert r.stdout.strip() == "from-the-environment-123" and "QUANTA_AUTH_TOKEN" in r.stderr


def test_token_file_readable_by_others_is_refused(make_host):
    h = make_host()
    assert h.quanta("get-auth-token", "--generate").returncode == 0
    os.chmod(h.token_path, 0o644)
    r = h.quanta("get-auth-token")
    assert r.returncode != 0 and "chmod 600" in r.stderr
    r = h.quanta("start", "--head", "--port", str(free_port()))
    assert r.returncode != 0 and "chmod 600" in r.stderr
    assert h.daemons_in_proc() == []
