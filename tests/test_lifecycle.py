"""Cluster lifecycle: init/shutdown/is_initialized, auto-init, no orphan processes, two drivers,
and the per-session directory.

In-process tests use ``no_cluster``; the others run a separate driver program and inspect its
process tree through /proc.
"""

import os
import shutil
import signal
import tempfile

import pytest

import quanta
from conftest import describe, descendants, process_identity, wait_until_gone

ORPHAN_GRACE_S = 2.0


# ------------------------------------------------------------------------------ in-process


def test_init_shutdown_and_is_initialized(no_cluster):
    assert not quanta.is_initialized()
    quanta.init(num_cpus=2)
    assert quanta.is_initialized()
    assert quanta.cluster_resources()["CPU"] == 2

    @quanta.remote
    def ping():
        return "pong"

    assert quanta.get(ping.remote()) == "pong"
    quanta.shutdown()
    assert not quanta.is_initialized()
    quanta.shutdown()  # a second shutdown is a no-op
    assert not quanta.is_initialized()

    quanta.init(num_cpus=1, namespace="lifecycle-tests")  # a new cluster after a shutdown
    assert quanta.cluster_resources()["CPU"] == 1
    assert quanta.get(ping.remote()) == "pong"


def test_second_init_raises_unless_ignored(no_cluster):
    quanta.init(num_cpus=2)
    with pytest.raises(RuntimeError):
        quanta.init(num_cpus=3)
    quanta.init(num_cpus=3, ignore_reinit_error=True)
    assert quanta.is_initialized()
    assert quanta.cluster_resources()["CPU"] == 2, "ignored re-init keeps the running cluster"


def test_remote_auto_initialises(no_cluster):
    @quanta.remote
    def ping():
        return "pong"

    assert not quanta.is_initialized()
    ref = ping.remote()
    assert quanta.is_initialized()
    assert quanta.get(ref) == "pong"
    assert quanta.cluster_resources()["CPU"] >= 1


def test_put_auto_initialises(no_cluster):
    assert not quanta.is_initialized()
    ref = quanta.put("auto")
    assert quanta.is_initialized()
    assert quanta.get(ref) == "auto"


def _names(identities):
    names = set()
    for pid, _ in identities:
        try:
            names.add(os.path.basename(os.readlink(f"/proc/{pid}/exe")))
        except OSError:
            pass
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                argv0 = fh.read().split(b"\0")[0].decode("utf-8", "replace")
            names.add(os.path.basename(argv0))
        except OSError:
            pass
    return names


def test_cluster_processes_are_control_service_node_daemon_and_workers(no_cluster):
    quanta.init(num_cpus=2)

    @quanta.remote
    def pid():
        return os.getpid()

    worker = process_identity(quanta.get(pid.remote()))
    started = descendants(os.getpid())
    names = _names(started)
    assert "quanta_control" in names and "quanta_node" in names, describe(started)
    assert worker in started, "the worker should be a descendant of the driver:\n" + describe(started)
    quanta.shutdown()
    left = wait_until_gone(started, ORPHAN_GRACE_S)
    assert not left, "still running after shutdown():\n" + describe(left)


# ------------------------------------------------------------------------------ no orphans

ORPHAN_DRIVER = """
import os, sys, quanta
quanta.init(num_cpus=2)

@quanta.remote
def pid():
    return os.getpid()

@quanta.remote
def nested():
    return [os.getpid(), quanta.get(pid.remote())]

pids = set(quanta.get([pid.remote() for _ in range(4)])) | set(quanta.get(nested.remote()))
print("WORKERS", *sorted(pids), flush=True)
sys.stdin.readline()
MODE = {mode!r}
if MODE == "shutdown":
    quanta.shutdown()
    print("SHUTDOWN-DONE", flush=True)
    sys.stdin.readline()
"""


def _started_processes(driver):
    """Everything the driver started, checked to include the workers that ran its tasks."""
    m = driver.wait_for(r"WORKERS ([\d ]+)", timeout=120)
    workers = {process_identity(int(p)) for p in m.group(1).split()}
    assert None not in workers, "a worker that just ran a task has already exited"
    tree = descendants(driver.pid)
    driver.tracked |= tree | workers  # killed at teardown if the test fails
    assert workers <= tree, (
        "worker processes are not descendants of the driver:\n" + describe(workers - tree)
    )
    assert len(tree) > len(workers), "expected service processes besides the workers"
    return tree


@pytest.mark.subprocess_driver
def test_no_orphans_after_shutdown(start_driver):
    d = start_driver(ORPHAN_DRIVER.format(mode="shutdown"))
    started = _started_processes(d)
    d.send("go")
    d.wait_for("SHUTDOWN-DONE", timeout=60)
    left = wait_until_gone(started, ORPHAN_GRACE_S)
    assert not left, "still running after shutdown():\n" + describe(left)
    assert d.proc.poll() is None, "the driver itself keeps running after shutdown()"
    d.send("bye")
    assert d.wait_exit(timeout=30) == 0, d.output


@pytest.mark.subprocess_driver
def test_no_orphans_after_driver_exits(start_driver):
    d = start_driver(ORPHAN_DRIVER.format(mode="exit"))
    started = _started_processes(d)
    d.send("go")
    assert d.wait_exit(timeout=60) == 0, d.output
    left = wait_until_gone(started, ORPHAN_GRACE_S)
    assert not left, "still running after the driver exited:\n" + describe(left)


@pytest.mark.subprocess_driver
def test_no_orphans_after_driver_is_killed(start_driver):
    d = start_driver(ORPHAN_DRIVER.format(mode="kill"))
    started = _started_processes(d)
    os.kill(d.pid, signal.SIGKILL)
    d.proc.wait(timeout=10)
    left = wait_until_gone(started, ORPHAN_GRACE_S)
    assert not left, "still running after the driver was SIGKILLed:\n" + describe(left)


# ------------------------------------------------------------------------------ two drivers

TWO_DRIVERS_DRIVER = """
import os, sys, quanta
quanta.init(num_cpus={cpus})

@quanta.remote
def pid():
    return os.getpid()

print("CPUS", int(quanta.cluster_resources()["CPU"]), flush=True)
print("WORKER", quanta.get(pid.remote()), flush=True)
for line in sys.stdin:
    if line.strip() == "again":
        print("AGAIN", quanta.get(pid.remote(), timeout=60), flush=True)
    else:
        break
"""


@pytest.mark.subprocess_driver
def test_two_drivers_get_separate_clusters(start_driver):
    a = start_driver(TWO_DRIVERS_DRIVER.format(cpus=1))
    b = start_driver(TWO_DRIVERS_DRIVER.format(cpus=3))
    assert a.wait_for(r"CPUS (\d+)", timeout=120).group(1) == "1"
    assert b.wait_for(r"CPUS (\d+)", timeout=120).group(1) == "3"
    worker_a = int(a.wait_for(r"WORKER (\d+)", timeout=60).group(1))
    worker_b = int(b.wait_for(r"WORKER (\d+)", timeout=60).group(1))
    tree_a, tree_b = descendants(a.pid), descendants(b.pid)
    a.tracked |= tree_a
    b.tracked |= tree_b
    assert process_identity(worker_a) in tree_a and process_identity(worker_a) not in tree_b
    assert process_identity(worker_b) in tree_b and process_identity(worker_b) not in tree_a

    # One driver leaving does not disturb the other's cluster.
    a.send("exit")
    assert a.wait_exit(timeout=60) == 0, a.output
    b.send("again")
    b.wait_for(r"AGAIN \d+", timeout=60)
    b.send("exit")
    assert b.wait_exit(timeout=60) == 0, b.output


# ------------------------------------------------------------------------------ session dir


@pytest.mark.subprocess_driver
def test_session_directory_is_under_the_system_temp_dir(start_driver):
    temp_root = tempfile.mkdtemp(prefix="qt")  # short: unix socket paths are length-limited
    try:
        d = start_driver(
            """
            import sys, tempfile, quanta
            quanta.init(num_cpus=1)

            @quanta.remote
            def hello():
                return "hi"

            print("TEMP", tempfile.gettempdir(), quanta.get(hello.remote()), flush=True)
            sys.stdin.readline()
            """,
            env={"TMPDIR": temp_root},
        )
        assert d.wait_for(r"TEMP (\S+) hi", timeout=120).group(1) == temp_root
        d.tracked |= descendants(d.pid)
        created = [os.path.join(root, n) for root, dirs, files in os.walk(temp_root) for n in dirs + files]
        assert created, "the running session created nothing under the system temp dir"
        d.send("bye")
        assert d.wait_exit(timeout=60) == 0, d.output
    finally:
        shutil.rmtree(temp_root, ignore_errors=True)

