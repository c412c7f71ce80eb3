"""Local trust: what another user of the machine, or a hostile local client, can no longer do.

Every test here runs real daemons and real clients and would have failed before the hardening:

* the runtime root (``<tmp>/quanta-<uid>``) and everything in it is private (0700 directories,
  0600 files, even under ``umask 000``), and nothing in it is trusted until checked: a root,
  ``cluster_latest`` link, session directory or socket that another user owns, or that others
  may write, makes ``init()`` refuse with an error naming the path and the reason, and nothing
  is followed or connected to;
* ``quanta stop`` signals a recorded pid only when it proves to be that session's daemon (pid,
  start time, executable, ``--session-dir``, owner);
* a raw local client cannot forge objects it did not mint (PutObject / CreateObject / TaskDone)
  nor learn other clients' pending return ids from GetStoreStats;
* a process of another uid is refused by the node before Hello (kernel-checked credentials), a
  worker Hello needs the secret token the node gave that very pid, and tokens live only in the
  workers' environments;
* a forged ObjectRef fails fast instead of hanging; a malformed one fails cleanly.

Wire helpers come from test_protocol_robustness (via hostile.py).
"""

import fcntl
import json
import os
import re
import secrets
import shutil
import signal
import socket
import stat
import struct
import subprocess
import sys
import textwrap
import threading
import time

import pytest

import quanta
from conftest import alive, descendants, process_identity, run_driver, wait_until_gone
from hostile import (CREATE_OBJECT, CREATE_OBJECT_REPLY, PUT_INDEX, PUT_OBJECT, REF_DELTAS, ROLE_WORKER,
                     TASK_DONE, RawClient, StartedCluster, daemon_pid, node_log, object_id,
                     other_user, parse_create_reply, pickled_value, short_tempdir, start_time, wait_for,
                     wire_ids)  # noqa: F401  (other_user is a fixture)

UID = os.geteuid()
TOKEN_RE = re.compile(rb"QUANTA_WORKER_TOKEN=([^\0]*)")


def run_python(code, env=None, timeout=60):
    """`python -c CODE` with `env` added to this process's environment."""
    full = dict(os.environ, PYTHONUNBUFFERED="1")
    full.pop("QUANTA_ADDRESS", None)
    full.update(env or {})
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=full, capture_output=True,
                          text=True, timeout=timeout)


# ============================================================================ private files


def test_runtime_tree_is_private_even_under_umask_000():
    """A driver with umask 000 starts a cluster that runs a task (worker logs), spills objects
    (spill files) and stays up while the whole runtime tree is checked: directories 0700,
    files and sockets 0600, all owned by this user."""
    tmp = short_tempdir("qm-")
    try:
        proc = run_python("""
            import json, os, sys
            os.umask(0)                       # the most permissive umask there is
            import numpy as np
            import quanta
            from quanta._private import session

            quanta.init(num_cpus=1, object_store_memory=64 << 20)

            @quanta.remote
            def chatty():
                print("task output goes to a worker log")
                print("and so does stderr", file=sys.stderr)
                return 1

            assert quanta.get(chatty.remote()) == 1
            refs = [quanta.put(np.zeros(24 << 20, dtype=np.uint8)) for _ in range(4)]  # spills
            assert quanta.memory_summary(stats_only=True)["total_spilled"] > 0
            sd = session.current_core().session_dir
            tree = []
            root = os.path.dirname(sd)
            for dirpath, dirnames, filenames in os.walk(root):
                for name in [dirpath] + [os.path.join(dirpath, n) for n in dirnames + filenames]:
                    st = os.lstat(name)
                    tree.append((name, st.st_mode, st.st_uid))
            print("ROOT=" + root)
            print("SESSION=" + sd)
            print("TREE=" + json.dumps(sorted(set(tree))))
        """, env={"TMPDIR": tmp}, timeout=120)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        out = {k: v for k, _, v in (line.partition("=") for line in proc.stdout.splitlines()) if v}
        root, session_dir = out["ROOT"], out["SESSION"]
        tree = json.loads(out["TREE"])
        assert root == os.path.join(tmp, f"quanta-{UID}")
        kinds = {"dir": [], "file": [], "socket": [], "link": []}
        bad = []
        for path, mode, uid in tree:
            perm = stat.S_IMODE(mode)
            if uid != UID:
                bad.append(f"{path}: owned by uid {uid}")
            if stat.S_ISDIR(mode):
                kinds["dir"].append(path)
                if perm != 0o700:
                    bad.append(f"{path}: directory mode {perm:03o}, want 700")
            elif stat.S_ISREG(mode):
                kinds["file"].append(path)
                if perm != 0o600:
                    bad.append(f"{path}: file mode {perm:03o}, want 600")
            elif stat.S_ISSOCK(mode):
                kinds["socket"].append(path)
                if perm & 0o077:
                    bad.append(f"{path}: socket mode {perm:03o}, want 600")
            elif stat.S_ISLNK(mode):
                kinds["link"].append(path)
        assert not bad, "runtime paths others could use:\n" + "\n".join(bad)
        names = {os.path.relpath(p, session_dir) for p in kinds["file"] + kinds["dir"] + kinds["socket"]}
        # What the check covered: the root, the session, its subdirectories, every kind of file.
        for expected in ("logs", "sockets", "spill", "node.json", "node.lock", "logs/node.log",
                         "logs/control.log", "logs/node.out", "sockets/node.sock", "sockets/control.sock"):
            assert expected in names, f"{expected} was not created, so its mode was not checked: {sorted(names)}"
        assert any(n.startswith("logs/worker-") and n.endswith(".out") for n in names), names
        assert any(n.startswith("logs/driver-") for n in names), names
        assert any(n.startswith("spill/") and n != "spill" for n in names), "no spill file was written"
        assert root in kinds["dir"]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# ============================================================================ planted paths


def _init_attempt(tmp, call, timeout=60):
    """Runs `quanta.init(<call>)` in a driver with TMPDIR=tmp; returns (exception name, message)."""
    proc = run_python(f"""
        import quanta
        try:
            quanta.init({call})
            print("RESULT=connected")
        except Exception as e:
            print("RESULT=" + type(e).__name__)
            print("MESSAGE=" + str(e).replace(chr(10), " "))
    """, env={"TMPDIR": tmp}, timeout=timeout)
    lines = dict(line.split("=", 1) for line in proc.stdout.splitlines() if "=" in line)
    assert "RESULT" in lines, proc.stdout + proc.stderr
    return lines["RESULT"], lines.get("MESSAGE", "")


@pytest.fixture
def shared_tmp():
    """A world-writable sticky directory, as /tmp is: where another user can plant things."""
    tmp = short_tempdir("qp-")
    os.chmod(tmp, 0o1777)
    yield tmp
    shutil.rmtree(tmp, ignore_errors=True)


@pytest.mark.parametrize("call", ["num_cpus=1", "address='auto'"])
def test_runtime_root_created_by_another_user_is_refused(shared_tmp, other_user, call):
    root = os.path.join(shared_tmp, f"quanta-{UID}")
    made = other_user.run(["mkdir", "-m", "0777", root])  # the other user gets there first
    assert made.returncode == 0, made.stderr
    assert os.lstat(root).st_uid == other_user.uid
    # ...and lays out a live-looking session with a listening socket, all theirs.
    fake = FakeSession(root)
    try:
        for dirpath, dirnames, filenames in os.walk(root):
            for name in dirnames + filenames:
                os.lchown(os.path.join(dirpath, name), other_user.uid, other_user.gid)
        planted = sorted(os.listdir(root))
        kind, message = _init_attempt(shared_tmp, call)
        assert kind == "UnsafePathError", (kind, message)
        assert root in message and f"belongs to uid {other_user.uid}" in message, message
        assert sorted(os.listdir(root)) == planted, "quanta wrote into a directory another user controls"
        assert fake.accepted == 0, "the driver connected to the other user's socket"
    finally:
        fake.close()


def test_quanta_cli_refuses_a_planted_root_with_a_clear_message(shared_tmp, other_user):
    root = os.path.join(shared_tmp, f"quanta-{UID}")
    assert other_user.run(["mkdir", "-m", "0777", root]).returncode == 0
    env = dict(os.environ, TMPDIR=shared_tmp, QUANTA_AUTH_TOKEN=secrets.token_hex(32))
    for args in (["start", "--head", "--port", "0", "--num-cpus", "1"], ["stop"], ["status"]):
        proc = subprocess.run([sys.executable, "-m", "quanta", *args], env=env, capture_output=True, text=True,
                              timeout=60)
        assert proc.returncode != 0, f"quanta {args[0]} accepted a planted root:\n{proc.stdout}"
        assert root in proc.stderr and "belongs to uid" in proc.stderr, proc.stderr
        assert "Traceback" not in proc.stderr, f"quanta {args[0]} printed a traceback:\n{proc.stderr}"
    assert os.listdir(root) == []


@pytest.mark.parametrize("mode", [0o777, 0o755, 0o770])
def test_runtime_root_that_others_may_use_is_refused(mode):
    tmp = short_tempdir("qp-")
    try:
        root = os.path.join(tmp, f"quanta-{UID}")
        os.mkdir(root)
        os.chmod(root, mode)
        kind, message = _init_attempt(tmp, "num_cpus=1")
        assert kind == "UnsafePathError", (kind, message)
        assert root in message and f"mode {mode:03o}" in message, message
        assert os.listdir(root) == []
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


class FakeSession:
    """A session directory that looks alive (node.lock held, a listening node.sock), linked as
    cluster_latest: what an attacker would plant to receive a victim's driver connection. A
    thread accepts (and at once closes) every connection, counting them."""

    def __init__(self, root, name="session_2030-01-01_00-00-00_1_evil00"):
        self.path = os.path.join(root, name)
        os.makedirs(os.path.join(self.path, "sockets"), mode=0o700)
        os.makedirs(os.path.join(self.path, "logs"), mode=0o700)
        os.chmod(self.path, 0o700)
        self.lock_fd = os.open(os.path.join(self.path, "node.lock"), os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self.lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # "a node daemon runs here"
        self.socket_path = os.path.join(self.path, "sockets", "node.sock")
        self.link = os.path.join(root, "cluster_latest")
        os.symlink(name, self.link)
        self.accepted = 0
        self._stop = threading.Event()
        self._threads = []
        self.listen(self.socket_path)

    def listen(self, path):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(path)
        os.chmod(path, 0o600)
        s.listen(16)
        s.settimeout(0.05)

        def serve():
            while not self._stop.is_set():
                try:
                    conn, _ = s.accept()
                except socket.timeout:
                    continue
                except OSError:
                    return
                self.accepted += 1
                conn.close()
            s.close()

        t = threading.Thread(target=serve, daemon=True)
        t.start()
        self._threads.append(t)

    def close(self):
        self._stop.set()
        for t in self._threads:
            t.join(5)
        os.close(self.lock_fd)


@pytest.fixture
def planted():
    tmp = short_tempdir("qp-")
    root = os.path.join(tmp, f"quanta-{UID}")
    os.mkdir(root, 0o700)
    fake = FakeSession(root)
    yield tmp, root, fake
    fake.close()
    shutil.rmtree(tmp, ignore_errors=True)


def test_planted_session_is_used_when_it_is_ours(planted):
    """The control for the cases below: the same fake session, untampered, *is* trusted:
    init(address='auto') connects to it (and fails, since no node answers there)."""
    tmp, root, fake = planted
    kind, message = _init_attempt(tmp, "address='auto'", timeout=60)
    assert kind != "UnsafePathError", message
    assert fake.accepted >= 1


def _lchown_link_to(user, link):
    os.lchown(link, user.uid, user.gid)


PLANTS = {
    # case: (how, call, what the message must say); "of another user" cases need one
    "cluster_latest link of another user": (
        lambda fake, user, root: _lchown_link_to(user, fake.link), "address='auto'", "refusing to follow"),
    "cluster_latest link pointing outside the root": (
        lambda fake, user, root: (os.unlink(fake.link), os.symlink(fake.path.replace(root, root + "-elsewhere"),
                                                                   fake.link)),
        "address='auto'", "points outside"),
    "session directory of another user": (
        lambda fake, user, root: os.chown(fake.path, user.uid, user.gid), "address='auto'", "belongs to uid"),
    "session directory others may write": (
        lambda fake, user, root: os.chmod(fake.path, 0o770), "address='auto'", "writable by other users"),
    "session directory of another user, named explicitly": (
        lambda fake, user, root: os.chown(fake.path, user.uid, user.gid), "address=FAKE", "belongs to uid"),
    "node socket of another user": (
        lambda fake, user, root: os.chown(fake.socket_path, user.uid, user.gid), "address='auto'",
        "belongs to uid"),
    "node socket others may write": (
        lambda fake, user, root: os.chmod(fake.socket_path, 0o666), "address='auto'", "writable by other users"),
}


@pytest.mark.parametrize("case", sorted(PLANTS))
def test_planted_runtime_paths_are_refused_and_never_connected_to(planted, case, request):
    tmp, root, fake = planted
    plant, call, reason = PLANTS[case]
    user = request.getfixturevalue("other_user") if "another user" in case else None
    os.makedirs(root + "-elsewhere", exist_ok=True)
    plant(fake, user, root)
    kind, message = _init_attempt(tmp, call.replace("FAKE", repr(fake.path)))
    assert kind == "UnsafePathError", f"{case}: {kind}: {message}"
    assert reason in message, message
    named = fake.link if "link" in case else fake.socket_path if "socket" in case else fake.path
    assert named in message, f"the error does not name {named}: {message}"
    assert fake.accepted == 0, f"{case}: the driver connected to the planted socket"


def test_node_socket_replaced_by_a_symlink_is_refused(planted):
    tmp, root, fake = planted
    elsewhere = os.path.join(tmp, "attacker.sock")
    fake.listen(elsewhere)
    os.unlink(fake.socket_path)
    os.symlink(elsewhere, fake.socket_path)
    kind, message = _init_attempt(tmp, "address='auto'")
    assert kind == "UnsafePathError" and "symbolic link" in message and fake.socket_path in message, message
    assert fake.accepted == 0, "the driver followed the link to the attacker's socket"


# ============================================================================ spill directory
# Spilled objects are read back and unpickled: another user who can replace a spill file runs
# code in the victim's process (before, a world-writable object_spilling_directory let them).


@pytest.mark.parametrize("mode", [0o777, 0o1777, 0o770])
def test_spill_directory_others_may_write_is_refused(mode):
    tmp = short_tempdir("qv-")
    try:
        spill = os.path.join(tmp, "shared-spill")
        os.mkdir(spill)
        os.chmod(spill, mode)
        kind, message = _init_attempt(tmp, f"num_cpus=1, object_spilling_directory={spill!r}")
        assert kind == "UnsafePathError", (kind, message)
        assert spill in message and "writable by other users" in message, message
        assert os.listdir(spill) == []
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def test_spill_directory_of_another_user_is_refused(other_user):
    tmp = short_tempdir("qv-")
    try:
        spill = os.path.join(tmp, "their-spill")
        os.mkdir(spill, 0o755)
        os.chown(spill, other_user.uid, other_user.gid)   # as if they had made it for us
        kind, message = _init_attempt(tmp, f"num_cpus=1, object_spilling_directory={spill!r}")
        assert kind == "UnsafePathError", (kind, message)
        assert spill in message and f"belongs to uid {other_user.uid}" in message, message
        env = dict(os.environ, TMPDIR=tmp, QUANTA_AUTH_TOKEN=secrets.token_hex(32))
        cli = subprocess.run([sys.executable, "-m", "quanta", "start", "--head", "--port", "0", "--num-cpus", "1",
                              "--object-spilling-directory", spill], env=env, capture_output=True, text=True,
                             timeout=60)
        assert cli.returncode != 0 and spill in cli.stderr and "Traceback" not in cli.stderr, cli.stderr
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def test_spill_directory_is_created_private_even_under_umask_000():
    tmp = short_tempdir("qv-")
    try:
        spill = os.path.join(tmp, "new", "spill")
        proc = run_python(f"""
            import os
            os.umask(0)
            import numpy as np
            import quanta
            quanta.init(num_cpus=1, object_store_memory=64 << 20, object_spilling_directory={spill!r})
            refs = [quanta.put(np.zeros(24 << 20, dtype=np.uint8)) for _ in range(4)]
            assert quanta.memory_summary(stats_only=True)["total_spilled"] > 0
            print("FILES=" + " ".join("%s:%o" % (n, os.lstat(os.path.join({spill!r}, n)).st_mode & 0o777)
                                      for n in os.listdir({spill!r})))
            assert all(int(quanta.get(r)[0]) == 0 for r in refs)   # read back from the spill files
        """, env={"TMPDIR": tmp}, timeout=120)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert stat.S_IMODE(os.stat(spill).st_mode) == 0o700
        files = dict(f.split(":") for f in proc.stdout.split("FILES=")[1].split("\n")[0].split())
        assert files and set(files.values()) == {"600"}, files
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# ============================================================================ quanta stop


def _python_decoy(session_dir, as_user=None):
    """A long-sleeping Python whose command line names `session_dir` as a daemon's would.
    Returns (Popen, pid of the decoy itself)."""
    python = sys.executable if as_user is None else as_user.python
    argv = [python, "-c", "import time; time.sleep(1000)", "--session-dir", session_dir]
    if as_user is None:
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        pid = proc.pid
    else:
        proc = as_user.popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # its child is the decoy

        def decoy():
            for pid, _ in descendants(proc.pid):
                try:
                    with open(f"/proc/{pid}/cmdline", "rb") as f:
                        if os.fsencode(session_dir) in f.read():
                            return pid
                except OSError:
                    pass
            return None

        pid = wait_for(decoy, 10)
        assert pid, "the other user's decoy did not start"
    assert wait_for(lambda: os.fsencode(session_dir) in open(f"/proc/{pid}/cmdline", "rb").read(), 10)
    return proc, pid


def _fake_session_record(root, name, entry_for):
    """A session directory of ours with a node.json naming one process, as `quanta start`
    writes them; `entry_for(path)` returns that process's entry."""
    path = os.path.join(root, name)
    os.mkdir(path, 0o700)
    record = {"version": 1, "session_dir": path, "node_socket": os.path.join(path, "sockets", "node.sock"),
              "control_socket": None, "control_address": "127.0.0.1:1", "head": True, "driver_node": False,
              "node_index": 1, "node_id": "0" * 32, "started_by": "quanta start", "processes": [entry_for(path)]}
    fd = os.open(os.path.join(path, "node.json"), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(record, f)
    return path


def _users_available():
    return os.geteuid() == 0 and all(shutil.which(t) for t in ("useradd", "userdel", "runuser"))


@pytest.mark.subprocess_driver
def test_quanta_stop_signals_only_processes_proven_to_be_the_sessions_daemons():
    """`quanta start --head`, then records naming unrelated processes that match in all but
    one respect; `quanta stop` stops the real daemons and leaves every decoy alive."""
    from hostile import OtherUser
    from quanta._private import runtime_dir

    cluster = StartedCluster(num_cpus=1, prefix="qx-")
    procs = []        # Popen objects to clean up
    decoys = {}       # what each decoy tests -> its process identity
    user = None
    try:
        node_exe = os.path.realpath(f"/proc/{cluster.node_pid}/exe")
        daemons = {process_identity(cluster.node_pid), process_identity(cluster.control_pid)}

        # (a) `sleep`, appended to the *real* session's record with its true pid, start time and
        # executable: only its command line (no --session-dir) gives it away.
        sleeper = subprocess.Popen(["sleep", "1000"])
        procs.append(sleeper)
        record_path = os.path.join(cluster.session_dir, "node.json")
        with open(record_path) as f:
            record = json.load(f)
        record["processes"].append({"role": "node", "pid": sleeper.pid, "start_time": start_time(sleeper.pid),
                                    "exe": os.path.realpath(shutil.which("sleep"))})
        runtime_dir.write_private(record_path, json.dumps(record))
        decoys["sleep in the real record (command line)"] = process_identity(sleeper.pid)

        def decoy_entry(label, exe=None, start_offset=0, as_user=None):
            def entry_for(path):
                proc, pid = _python_decoy(path, as_user)
                procs.append(proc)
                decoys[label] = process_identity(pid)
                return {"role": "node", "pid": pid, "start_time": start_time(pid) + start_offset,
                        "exe": exe or os.path.realpath(f"/proc/{pid}/exe")}
            return entry_for

        # (b) right pid, start time and --session-dir, but not the Quanta executable.
        _fake_session_record(cluster.root, "session_2000-01-01_00-00-00_1_exe000",
                             decoy_entry("not a quanta daemon (executable)", exe=node_exe))
        # (c) a reused pid: everything matches but the start time.
        _fake_session_record(cluster.root, "session_2000-01-01_00-00-00_1_reuse0",
                             decoy_entry("reused pid (start time)", start_offset=-1))
        # (d) another user's process, matching in every other respect.
        if _users_available():
            user = OtherUser()
            if user.python:
                _fake_session_record(cluster.root, "session_2000-01-01_00-00-00_1_other0",
                                     decoy_entry("another user's process (owner)", as_user=user))
        assert all(decoys.values()), decoys

        stopped = cluster.stop()
        assert stopped.returncode == 0, stopped.stdout + stopped.stderr
        assert "Stopped 1 Quanta session" in stopped.stdout, stopped.stdout
        assert not wait_until_gone(daemons, 10), "quanta stop did not stop the real daemons"
        time.sleep(0.3)
        for label, ident in decoys.items():
            assert alive(ident), f"quanta stop signalled a decoy: {label} (pid {ident[0]})"
        print(f"[measure] quanta stop left {len(decoys)} decoys alive: {sorted(decoys)}")
    finally:
        for label, ident in decoys.items():
            if alive(ident):
                os.kill(ident[0], signal.SIGKILL)
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.wait()
        if user is not None:
            user.delete()
        cluster.cleanup()


@pytest.mark.subprocess_driver
def test_cluster_token_is_not_in_workers_environment():
    """`quanta start` hands the cluster token to the daemons only: a task sees neither it nor
    the worker's own token, in os.environ or in /proc/self/environ."""
    cluster = StartedCluster(num_cpus=1, prefix="qx-")
    try:
        token = cluster.env["QUANTA_AUTH_TOKEN"]
        out = cluster.driver("""
            import os, quanta
            quanta.init(address="auto")

            @quanta.remote
            def look():
                with open("/proc/self/environ", "rb") as f:
                    raw = f.read()
                return (os.environ.get("QUANTA_AUTH_TOKEN"), os.environ.get("QUANTA_WORKER_TOKEN"),
                        raw.decode(errors="replace"))

            env_token, worker_token, raw = quanta.get(look.remote())
            print("ENV_TOKEN=%r" % env_token)
            print("WORKER_TOKEN=%r" % worker_token)
            print("RAW_HAS_AUTH=%r" % ("QUANTA_AUTH_TOKEN" in raw))
            print("RAW=" + raw.replace(chr(0), " "))
        """).stdout
        assert "ENV_TOKEN=None" in out and "WORKER_TOKEN=None" in out, out
        assert "RAW_HAS_AUTH=False" in out and token not in out, "the cluster token reached a worker"
    finally:
        stopped = cluster.cleanup()
        assert stopped.returncode == 0, stopped.stdout + stopped.stderr


# ============================================================================ one node, raw clients


@quanta.remote
def slow_value(seconds, size):
    time.sleep(seconds)
    return b"T" * size


@quanta.remote
def worker_pid():
    return os.getpid()


class LocalNode:
    def __init__(self, session_dir):
        self.session_dir = session_dir
        self.socket_path = os.path.join(session_dir, "sockets", "node.sock")
        self.pid = daemon_pid(session_dir)

    def client(self):
        return RawClient(self.socket_path)

    def log(self):
        return node_log(self.session_dir)


@pytest.fixture(scope="module")
def node():
    """A local cluster of this process under a private runtime root (QUANTA_RUNTIME_DIR)."""
    from quanta._private import session

    if quanta.is_initialized():
        quanta.shutdown()
    runtime_root = short_tempdir("qs-")
    saved = os.environ.get("QUANTA_RUNTIME_DIR")
    os.environ["QUANTA_RUNTIME_DIR"] = runtime_root
    quanta.init(num_cpus=2)
    try:
        n = LocalNode(session.current_core().session_dir)
        assert quanta.get(worker_pid.remote())
        yield n
    finally:
        quanta.shutdown()
        if saved is None:
            os.environ.pop("QUANTA_RUNTIME_DIR", None)
        else:
            os.environ["QUANTA_RUNTIME_DIR"] = saved
        shutil.rmtree(runtime_root, ignore_errors=True)


# ---------------------------------------------------------------------------- forging results


def test_put_of_an_id_the_client_did_not_mint_closes_its_connection(node):
    ref = slow_value.remote(1.5, 10)          # the victim's pending task return
    put = quanta.put("the victim's own value")
    own = node.client()
    own.hello()
    # Control: the same encoding, for an id this client minted, is accepted.
    own.send(PUT_OBJECT, object_id(own.client_id, 1, PUT_INDEX) + pickled_value(b"mine"))
    assert own.still_served(), "a well-formed PutObject of one's own id was refused"
    for target, label in ((ref.binary(), "another client's pending return"),
                          (put.binary(), "another client's put"),
                          (object_id(own.client_id, 5, 1), "a return-shaped id (not a put id)")):
        attacker = node.client()
        attacker.hello()
        attacker.send(PUT_OBJECT, target + pickled_value(b"FORGED"))
        assert attacker.closed_by_peer(), f"PutObject of {label} was accepted"
        attacker.close()
    own.close()
    assert quanta.get(ref, timeout=30) == b"T" * 10
    assert quanta.get(put) == "the victim's own value"
    assert "PutObject of an id this client did not mint" in node.log()


def test_create_object_for_another_clients_id_is_refused(node):
    size = 1 << 20                            # above the inline threshold: the return is stored
    ref = slow_value.remote(2.0, size)
    attacker = node.client()
    attacker.hello()
    attacker.send(CREATE_OBJECT, struct.pack("<Q", 41) + ref.binary() + struct.pack("<Q", size))
    request_id, ok, _, error = parse_create_reply(attacker.read_until(CREATE_OBJECT_REPLY))
    assert request_id == 41 and not ok, "CreateObject for another client's return id was granted"
    assert "is not this process's to create" in error, error
    # Control: its own put id is granted (so the refusal above is the check, not the encoding).
    attacker.send(CREATE_OBJECT, struct.pack("<Q", 42) + object_id(attacker.client_id, 1, PUT_INDEX) +
                  struct.pack("<Q", 4096))
    request_id, ok, _, error = parse_create_reply(attacker.read_until(CREATE_OBJECT_REPLY))
    assert request_id == 42 and ok, error
    attacker.close()
    value = quanta.get(ref, timeout=30)
    assert len(value) == size and value == b"T" * size


def test_task_done_from_a_driver_closes_its_connection(node):
    ref = slow_value.remote(1.5, 10)
    attacker = node.client()
    attacker.hello()
    task_id = ref.binary()[:12] + b"\0\0\0\0"
    attacker.send(TASK_DONE, task_id + struct.pack("<I", 1) + pickled_value(b"FORGED"))
    assert attacker.closed_by_peer(), "a driver's TaskDone was accepted"
    assert quanta.get(ref, timeout=30) == b"T" * 10
    assert "TaskDone from a non-worker" in node.log()


def test_releasing_references_one_does_not_hold_changes_nothing(node):
    value = b"V" * (300 << 10)
    put = quanta.put(value)
    attacker = node.client()
    attacker.hello()
    attacker.send(REF_DELTAS, struct.pack("<I", 1) + put.binary() + struct.pack("<i", -100))
    assert attacker.still_served()
    attacker.close()
    listed = {o["object_id"] for o in quanta.memory_summary()["objects"]}
    assert put.hex() in listed, "another client's release freed an object it never held"
    assert quanta.get(put) == value


def test_store_stats_do_not_reveal_other_clients_pending_return_ids(node):
    ref = slow_value.remote(3.0, 10)
    mine = {o["object_id"]: o for o in quanta.memory_summary()["objects"]}
    assert ref.hex() in mine and mine[ref.hex()]["where"] == "pending", "the holder sees its own pending id"
    proc = run_python(f"""
        import quanta
        quanta.init(address={node.session_dir!r})
        for o in quanta.memory_summary()["objects"]:
            print("OBJECT=%s %s" % (o["object_id"], o["where"]))
    """, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    seen = dict(line[7:].split() for line in proc.stdout.splitlines() if line.startswith("OBJECT="))
    assert ref.hex() not in seen, "another driver learned a pending return id it does not hold"
    masked = (ref.binary()[:8] + bytes(8)).hex()   # creator kept, sequence and index zeroed
    assert seen.get(masked) == "pending", f"the pending object is not shown as its owner's: {seen}"
    assert quanta.get(ref, timeout=30) == b"T" * 10


# ---------------------------------------------------------------------------- who may connect


def _worker_pids(node_pid):
    pids = []
    for pid, _ in descendants(node_pid):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if b"quanta._private.worker_main" in f.read():
                    pids.append(pid)
        except OSError:
            pass
    return pids


def _ancestors_traversable(path):
    path = os.path.dirname(path)
    while path not in ("/", ""):
        if not os.stat(path).st_mode & stat.S_IXOTH:
            return path
        path = os.path.dirname(path)
    return None


PROBE = """
import os, socket, struct, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(10)
try:
    s.connect(sys.argv[1])
except OSError as e:
    print("CONNECT=%s %s" % (type(e).__name__, e.errno))
    sys.exit(0)
print("PID=%d" % os.getpid(), flush=True)
hello = struct.pack("<BI", 1, 0) + struct.pack("<IB", os.getpid(), 0)
try:
    s.sendall(struct.pack("<IHH", len(hello), 2, 1) + hello)
    data = s.recv(4096)
    print("RECV=%d" % len(data))
except OSError as e:
    print("RECV=%s" % type(e).__name__)
"""


def test_another_uid_cannot_reach_or_use_the_node_or_control_socket(node, other_user):
    if other_user.python is None:
        pytest.skip("no system python3 that another user may run")
    sock = node.socket_path
    # 1. As installed, the socket sits in 0700 directories: the kernel stops the other user.
    probe = other_user.run([other_user.python, "-c", PROBE, sock])
    assert "CONNECT=PermissionError 13" in probe.stdout, probe.stdout + probe.stderr
    # 2. Even with the directories opened up, the node itself refuses that uid before any Hello.
    blocked = _ancestors_traversable(os.path.dirname(os.path.dirname(os.path.dirname(sock))))
    if blocked:
        pytest.skip(f"{blocked} is not traversable by other users, so the node's own check cannot be reached")
    root = os.path.dirname(node.session_dir)
    control_sock = os.path.join(os.path.dirname(sock), "control.sock")
    opened = [(root, 0o711), (node.session_dir, 0o711), (os.path.dirname(sock), 0o711), (sock, 0o666),
              (control_sock, 0o666)]
    saved = [(p, stat.S_IMODE(os.lstat(p).st_mode)) for p, _ in opened]
    try:
        for p, mode in opened:
            os.chmod(p, mode)
        probes = {path: other_user.run([other_user.python, "-c", PROBE, path]) for path in (sock, control_sock)}
    finally:
        for p, mode in saved:
            os.chmod(p, mode)
    pids = {}
    for path, probe in probes.items():
        out = probe.stdout
        assert "PID=" in out, f"the other user could not even connect with the directories open: {out}{probe.stderr}"
        pids[path] = int(re.search(r"PID=(\d+)", out).group(1))
        assert re.search(r"RECV=(0|ConnectionResetError|BrokenPipeError)\b", out), \
            f"{os.path.basename(path)} answered a process of another uid: {out}"
    line = f"refusing a local connection from pid {pids[sock]} of uid {other_user.uid}"
    assert wait_for(lambda: line in node.log(), 5), f"the node did not log {line!r}"
    line = f"refusing a local connection from uid {other_user.uid} (pid {pids[control_sock]})"
    control_log = os.path.join(node.session_dir, "logs", "control.log")
    assert wait_for(lambda: line in open(control_log, errors="replace").read(), 5), \
        f"the control service did not log {line!r}"
    assert quanta.get(worker_pid.remote(), timeout=30)


def test_worker_hello_needs_a_token_the_node_issued(node):
    workers = _worker_pids(node.pid)
    assert workers
    with open(f"/proc/{workers[0]}/environ", "rb") as f:
        real_token = TOKEN_RE.search(f.read()).group(1)
    for token, label in ((secrets.token_hex(16).encode(), "a guessed token"),
                         (b"", "no token"),
                         (real_token, "a live worker's token, replayed by another process")):
        attacker = node.client()
        attacker.send(1, struct.pack("<BI", ROLE_WORKER, len(token)) + token + struct.pack("<IB", os.getpid(), 0))
        assert attacker.closed_by_peer(), f"a worker Hello with {label} was accepted"
        attacker.close()
    assert "Hello as a worker with a token this node did not issue" in node.log()
    assert quanta.get([worker_pid.remote() for _ in range(4)], timeout=30)


def test_worker_tokens_are_secret_and_live_in_the_environment_only(node):
    quanta.get([slow_value.remote(0.3, 1) for _ in range(2)])  # both workers up
    workers = _worker_pids(node.pid)
    assert len(workers) >= 2, workers
    tokens = {}
    for pid in workers:
        with open(f"/proc/{pid}/environ", "rb") as f:
            m = TOKEN_RE.search(f.read())
        assert m, f"worker {pid} has no QUANTA_WORKER_TOKEN in its environment"
        tokens[pid] = m.group(1)
        assert re.fullmatch(rb"[0-9a-f]{32}", m.group(1)), f"worker token {m.group(1)!r} is not 128-bit hex"
    assert len(set(tokens.values())) == len(tokens), "workers share a token"
    leaks = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/cmdline", "rb") as f:
                cmdline = f.read()
        except OSError:
            continue
        leaks += [f"pid {name}" for t in tokens.values() if t in cmdline]
    assert not leaks, f"a worker token is visible in a command line (world-readable): {leaks}"

    @quanta.remote
    def own_env():
        return os.environ.get("QUANTA_WORKER_TOKEN")

    assert quanta.get(own_env.remote()) is None, "task code can read its worker's token from os.environ"


def test_another_uid_cannot_read_a_workers_token(node, other_user):
    pid = _worker_pids(node.pid)[0]
    probe = other_user.run(["cat", f"/proc/{pid}/environ"])
    assert probe.returncode != 0 and "QUANTA_WORKER_TOKEN" not in probe.stdout, \
        "another user can read a worker's environment"


HOLD_SITECUSTOMIZE = '''
import os, time
_hold = os.environ.get("QUANTA_TEST_HOLD_DIR")
_token = os.environ.get("QUANTA_WORKER_TOKEN")
if _hold and _token:
    # A worker about to connect: publish its token and wait for the test's go-ahead.
    with open(os.path.join(_hold, "%d.token" % os.getpid()), "w") as f:
        f.write(_token)
    _deadline = time.time() + 60
    while not os.path.exists(os.path.join(_hold, "go")) and time.time() < _deadline:
        time.sleep(0.02)
'''


@pytest.mark.subprocess_driver
def test_worker_token_presented_by_another_pid_is_refused(start_driver):
    """A stolen token is useless: a worker is paused just before its Hello, its token is
    presented by this test process, and the node refuses it because the kernel says the pid
    is not the one the token was issued to; the real worker then registers and runs tasks."""
    hold = short_tempdir("qt-")
    try:
        with open(os.path.join(hold, "sitecustomize.py"), "w") as f:
            f.write(HOLD_SITECUSTOMIZE)
        path = hold + (os.pathsep + os.environ["PYTHONPATH"] if os.environ.get("PYTHONPATH") else "")
        driver = start_driver("""
            import os, quanta
            from quanta._private import session
            quanta.init(num_cpus=1)
            print("SESSION=" + session.current_core().session_dir, flush=True)

            @quanta.remote
            def f():
                return os.getpid()

            print("RAN_ON=%d" % quanta.get(f.remote(), timeout=90), flush=True)
        """, env={"PYTHONPATH": path, "QUANTA_TEST_HOLD_DIR": hold, "TMPDIR": hold})
        session_dir = driver.wait_for(r"SESSION=(\S+)", timeout=60).group(1)
        token_file = wait_for(lambda: next((n for n in os.listdir(hold) if n.endswith(".token")), None), 30)
        assert token_file, "no worker published its token"
        worker = int(token_file.split(".")[0])
        with open(os.path.join(hold, token_file)) as f:
            token = f.read().encode()
        assert re.fullmatch(rb"[0-9a-f]{32}", token)
        attacker = RawClient(os.path.join(session_dir, "sockets", "node.sock"))
        attacker.send(1, struct.pack("<BI", ROLE_WORKER, len(token)) + token + struct.pack("<IB", worker, 0))
        assert attacker.closed_by_peer(), "the node accepted a worker token from the wrong process"
        attacker.close()
        line = f"worker token presented by pid {os.getpid()}, but it was issued to pid {worker}"
        assert wait_for(lambda: line in node_log(session_dir), 5), node_log(session_dir)[-2000:]
        open(os.path.join(hold, "go"), "w").close()
        ran_on = int(driver.wait_for(r"RAN_ON=(\d+)", timeout=90).group(1))
        assert ran_on == worker, "the real worker could not register after the failed attempt"
        assert driver.wait_exit(60) == 0
    finally:
        open(os.path.join(hold, "go"), "w").close()
        shutil.rmtree(hold, ignore_errors=True)


# ============================================================================ forged ObjectRefs


def test_get_of_a_forged_object_ref_fails_fast_instead_of_hanging():
    proc = run_driver("""
        import os, struct, time
        import quanta
        from quanta._private import session
        quanta.init(num_cpus=1)
        me = session.current_core().client_id
        forged = {
            "random": os.urandom(16),
            "own future return": struct.pack("<QII", me, 1 << 30, 1),
            "own future put": struct.pack("<QII", me, 1 << 30, 0xFFFFFFFF),
        }
        for label, binary in forged.items():
            start = time.monotonic()
            try:
                quanta.get(quanta.ObjectRef(binary))
                print("RESULT %s: returned" % label)
            except quanta.exceptions.ObjectLostError as e:
                print("RESULT %s: ObjectLostError %.2f" % (label, time.monotonic() - start))
            except Exception as e:
                print("RESULT %s: %s" % (label, type(e).__name__))
    """, timeout=60)
    results = [line for line in proc.stdout.splitlines() if line.startswith("RESULT")]
    assert len(results) == 3, proc.stdout + proc.stderr
    for line in results:
        m = re.search(r"ObjectLostError ([\d.]+)$", line)
        assert m, f"a forged ref did not raise ObjectLostError: {line}"
        assert float(m.group(1)) < 5, f"took too long: {line}"


def test_object_ref_of_the_wrong_size_raises_value_error_quietly():
    proc = run_driver("""
        import gc
        import quanta
        bad = [b"short", b"x" * 17, b"", "0123456789abcdef"]
        def attempt():
            for binary in bad:
                try:
                    quanta.ObjectRef(binary)
                    print("ACCEPTED %r" % (binary,))
                except ValueError as e:
                    print("VALUEERROR " + str(e))
            gc.collect()
        attempt()                   # no cluster yet
        quanta.init(num_cpus=1)
        attempt()                   # and with one
        quanta.shutdown()
        print("END")
    """, timeout=60)
    assert proc.returncode == 0 and "END" in proc.stdout, proc.stdout + proc.stderr
    assert proc.stdout.count("VALUEERROR") == 8 and "ACCEPTED" not in proc.stdout, proc.stdout
    assert "16 bytes" in proc.stdout
    for noise in ("__del__", "Exception ignored", "Traceback", "AttributeError"):
        assert noise not in proc.stderr, f"stderr mentions {noise!r}:\n{proc.stderr}"
