"""Helpers for the hardening tests (test_security, test_resource_bounds, test_driver_exit):
raw clients of a node, another local user, /proc measurements of a daemon, and `quanta start`
clusters under a private runtime directory.

The wire helpers (frame, hello_body, read_frame, ...) are those of test_protocol_robustness.
"""

import json
import os
import secrets
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import textwrap
import time

import pytest

from test_protocol_robustness import (  # noqa: F401  (re-exported for the tests)
    HELLO, HELLO_REPLY, OBJECT_READY, PUT_OBJECT, ROLE_DRIVER, ROLE_WORKER, SUBSCRIBE, TASK_DONE,
    frame, hello_body, object_id, parse_hello_reply, read_frame, recv_exact, wait_closed_by_peer,
    wire_bytes, wire_ids)

MiB = 1 << 20
CREATE_OBJECT = 14
GET_STORE_STATS = 17
CREATE_OBJECT_REPLY = 39
STORE_STATS = 40
REF_DELTAS = 6
GET_CLUSTER_INFO = 11
CLUSTER_INFO = 37
PUT_INDEX = 0xFFFFFFFF
KIND_PICKLED = 0


# ----------------------------------------------------------------------------- /proc


def memory(pid):
    """{"rss", "pss", "anon"} of a process in MiB (from /proc/<pid>/smaps_rollup)."""
    fields = {}
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 3 and parts[-1] == "kB":
                fields[parts[0].rstrip(":")] = int(parts[1]) / 1024
    return {"rss": fields["Rss"], "pss": fields["Pss"], "anon": fields["Anonymous"]}


def cpu_seconds(pid):
    """User + system CPU time a process has used so far."""
    with open(f"/proc/{pid}/stat") as f:
        rest = f.read().rsplit(")", 1)[1].split()
    return (int(rest[11]) + int(rest[12])) / os.sysconf("SC_CLK_TCK")


def start_time(pid):
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[19])


def report(label, before, after, unit="MiB"):
    """Prints a measurement so that it shows in `pytest -s` and in failure output."""
    if isinstance(before, dict):
        text = ", ".join(f"{k} {before[k]:.1f} -> {after[k]:.1f} {unit} ({after[k] - before[k]:+.1f})"
                         for k in before)
    else:
        text = f"{before:.2f} -> {after:.2f} {unit} ({after - before:+.2f})"
    line = f"[measure] {label}: {text}"
    print(line, flush=True)
    return line


def daemon_pid(session_dir, role="node"):
    """The pid of a session's daemon, from its record (node.json)."""
    with open(os.path.join(session_dir, "node.json")) as f:
        record = json.load(f)
    return next(p["pid"] for p in record["processes"] if p["role"] == role)


def node_log(session_dir):
    with open(os.path.join(session_dir, "logs", "node.log"), errors="replace") as f:
        return f.read()


def wait_for(predicate, timeout, interval=0.05):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)


# ----------------------------------------------------------------------------- raw clients


class RawClient:
    """A raw connection to a node's Unix socket that speaks the framing by hand."""

    def __init__(self, socket_path, timeout=10.0):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(socket_path)
        self.client_id = None

    def hello(self, role=ROLE_DRIVER, token=b""):
        self.sock.sendall(frame(HELLO, hello_body(role=role, token=token)))
        msg_type, body = read_frame(self.sock)
        assert msg_type == HELLO_REPLY, msg_type
        self.client_id = parse_hello_reply(body)[0]
        return self.client_id

    def send(self, msg_type, body=b""):
        try:
            self.sock.sendall(frame(msg_type, body))
        except (BrokenPipeError, ConnectionResetError):
            pass

    def read(self):
        return read_frame(self.sock)

    def read_until(self, msg_type, timeout=10.0):
        """Frames are read (and others skipped) until one of `msg_type`; returns its body."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            t, body = read_frame(self.sock)
            if t == msg_type:
                return body
        raise TimeoutError(f"no frame of type {msg_type} within {timeout} s")

    def closed_by_peer(self, timeout=10.0):
        return wait_closed_by_peer(self.sock, timeout)

    def still_served(self):
        """True if the node still answers this connection (a GetClusterInfo round trip)."""
        self.send(GET_CLUSTER_INFO, struct.pack("<Q", 777))
        try:
            body = self.read_until(CLUSTER_INFO, timeout=10)
        except (OSError, TimeoutError, ConnectionError):
            return False
        return struct.unpack_from("<Q", body)[0] == 777

    def close(self):
        self.sock.close()


def pickled_value(value):
    """An ObjectValue (kind 0, pickled as Quanta pickles inline values, no nested refs)."""
    from quanta._private import serialization

    data, _ = serialization.serialize(value)
    return struct.pack("<B", KIND_PICKLED) + wire_bytes(data) + wire_ids([])


def parse_create_reply(body):
    request_id, ok, offset = struct.unpack_from("<QBQ", body)
    (n,) = struct.unpack_from("<I", body, 17)
    return request_id, bool(ok), offset, body[21:21 + n].decode()


# ----------------------------------------------------------------------------- another user


def _can_make_users():
    return os.geteuid() == 0 and shutil.which("useradd") and shutil.which("userdel") and shutil.which("runuser")


class OtherUser:
    """A throw-away local account (quanta-test-XXXX) to act as another user of the machine."""

    def __init__(self):
        self.name = f"quanta-test-{secrets.token_hex(3)}"
        subprocess.run(["useradd", "-M", "-s", "/bin/bash", "-d", "/nonexistent", self.name], check=True,
                       capture_output=True)
        import pwd

        entry = pwd.getpwnam(self.name)
        self.uid, self.gid = entry.pw_uid, entry.pw_gid
        # A Python every user may run (the test's own interpreter may live under /root).
        self.python = next((p for p in ("/usr/bin/python3", "/usr/local/bin/python3")
                            if os.path.exists(p)), None)

    def run(self, argv, **kw):
        kw.setdefault("capture_output", True)
        kw.setdefault("text", True)
        kw.setdefault("timeout", 60)
        return subprocess.run(["runuser", "-u", self.name, "--", *argv], **kw)

    def popen(self, argv, **kw):
        return subprocess.Popen(["runuser", "-u", self.name, "--", *argv], **kw)

    def python_code(self, code, **kw):
        if self.python is None:
            pytest.skip("no system python3 that another user may run")
        return self.run([self.python, "-c", textwrap.dedent(code)], **kw)

    def processes(self):
        """Pids of this (throw-away) user's processes: only the tests start any."""
        pids = []
        for name in os.listdir("/proc"):
            if name.isdigit():
                try:
                    if os.stat(f"/proc/{name}").st_uid == self.uid:
                        pids.append(int(name))
                except OSError:
                    pass
        return pids

    def delete(self):
        for pid in self.processes():  # left behind by a failed test; userdel refuses while they run
            try:
                os.kill(pid, 9)
            except OSError:
                pass
        wait_for(lambda: not self.processes(), 5)
        if subprocess.run(["userdel", self.name], capture_output=True).returncode != 0:
            subprocess.run(["userdel", "-f", self.name], capture_output=True)


@pytest.fixture(scope="module")
def other_user():
    if not _can_make_users():
        pytest.skip("needs root with useradd/userdel/runuser to act as another local user")
    try:
        user = OtherUser()
    except (subprocess.CalledProcessError, OSError) as e:
        pytest.skip(f"cannot create a throw-away user: {e}")
    yield user
    user.delete()


# ----------------------------------------------------------------------------- quanta start


def short_tempdir(prefix):
    """A private directory short enough for Unix socket paths (sun_path is 108 bytes)."""
    base = os.environ.get("TMPDIR") or "/tmp"
    if len(base) > 24:
        base = "/tmp"
    return tempfile.mkdtemp(prefix=prefix, dir=base)


class StartedCluster:
    """`python -m quanta start --head --port 0` under a private TMPDIR and cluster token; the
    tests' drivers and CLI calls get the same environment. `stop()` runs `quanta stop`."""

    def __init__(self, num_cpus=2, prefix="qh-"):
        self.tmp = short_tempdir(prefix)
        self.env = dict(os.environ, TMPDIR=self.tmp, PYTHONUNBUFFERED="1",
                        QUANTA_AUTH_TOKEN=secrets.token_hex(32))
        self.env.pop("QUANTA_ADDRESS", None)
        self.env.pop("QUANTA_RUNTIME_DIR", None)
        self.root = os.path.join(self.tmp, f"quanta-{os.geteuid()}")
        started = self.cli("start", "--head", "--num-cpus", str(num_cpus), "--port", "0")
        assert started.returncode == 0, f"quanta start failed:\n{started.stdout}\n{started.stderr}"
        self.start_output = started.stdout
        self.session_dir = next(line.split(":", 1)[1].strip() for line in started.stdout.splitlines()
                                if line.strip().startswith("session:"))
        self.node_pid = daemon_pid(self.session_dir, "node")
        self.control_pid = daemon_pid(self.session_dir, "control")
        self.stopped = False

    def cli(self, *args, timeout=60):
        return subprocess.run([sys.executable, "-m", "quanta", *args], env=self.env, capture_output=True,
                              text=True, timeout=timeout)

    def driver(self, code, timeout=90, check=True):
        proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=self.env,
                              capture_output=True, text=True, timeout=timeout)
        if check:
            assert proc.returncode == 0, f"driver failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
        return proc

    def stop(self):
        if self.stopped:
            return None
        self.stopped = True
        return self.cli("stop")

    def cleanup(self):
        stopped = self.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)
        return stopped
