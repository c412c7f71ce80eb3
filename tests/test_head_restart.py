"""A head whose control service is SIGKILLed and started again with the same command
(`quanta start --head --storage ...`, SQLite file or a real redis-server) brings the cluster back:
the nodes rejoin under their ids, a detached named actor made before is found and keeps its
state, KV entries survive, a call in flight and a task submitted while the head was down both
complete. Without --storage, requests that need the head fail at once with the reason, and a
head started again without tables refuses the old nodes, which stop with the reason.

The clusters are real `quanta start` sessions (a head and a second node joined over TCP) with a
private HOME and runtime root (test_cli_cluster.Host); the driver is this test process.
"""

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time

import pytest

import quanta
import quanta.experimental.internal_kv as kv
from quanta.util.placement_group import get_placement_group, placement_group
from quanta.util.scheduling_strategies import PlacementGroupSchedulingStrategy
from quanta._private import services
from test_cli_cluster import Host, free_port


def wait_until_gone(pid, timeout):
    deadline = time.monotonic() + timeout
    while services._state(pid) not in (None, "Z", "X"):
        assert time.monotonic() < deadline, f"pid {pid} still runs after {timeout} s"
        time.sleep(0.05)


class Redis:
    """A real redis-server on a free port, its data in a temp dir (append-only file on)."""

    def __init__(self, root):
        self.port = free_port()
        self.dir = os.path.join(root, "redis")
        os.makedirs(self.dir)
        self.proc = subprocess.Popen(["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                                      "--dir", self.dir, "--save", "", "--appendonly", "yes",
                                      "--logfile", os.path.join(self.dir, "redis.log")])
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError(f"redis-server did not listen on {self.port}")
                time.sleep(0.05)

    def stop(self):
        self.proc.kill()
        self.proc.wait(10)


@pytest.fixture
def host(no_cluster, monkeypatch):
    h = Host(tempfile.mkdtemp(prefix="qhr-"))
    # This process is the driver: it sees the same HOME (token) and runtime root as the CLI.
    monkeypatch.setenv("HOME", h.home)
    monkeypatch.setenv("QUANTA_RUNTIME_DIR", h.runtime)
    for name in ("QUANTA_AUTH_TOKEN", "QUANTA_AUTH_TOKEN_PATH", "QUANTA_ADDRESS", "RAY_REDIS_ADDRESS"):
        monkeypatch.delenv(name, raising=False)
    h.redis = None
    yield h
    if quanta.is_initialized():
        quanta.shutdown()
    h.quanta("stop", "--force")
    leftover = h.daemons_in_proc()
    for pid in leftover:
        os.kill(pid, signal.SIGKILL)
    if h.redis:
        h.redis.stop()
    shutil.rmtree(h.root, ignore_errors=True)
    assert not leftover, f"daemons left running: {leftover}"


def storage_for(host, kind):
    if kind == "sqlite":
        return os.path.join(host.root, "head.db")
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed (Debian: apt-get install redis-server)")
    host.redis = Redis(host.root)
    return f"redis://127.0.0.1:{host.redis.port}"


def head_record(host):
    return next(r for r in host.records() if r.get("head"))


def kill_control(host):
    record = head_record(host)
    control = next(e for e in record["processes"] if e["role"] == "control")
    assert services.alive(control, record["session_dir"])
    os.kill(control["pid"], signal.SIGKILL)
    wait_until_gone(control["pid"], 10)
    return control["pid"]


def start_cluster(host, storage_args):
    port = free_port()
    head_cmd = ["start", "--head", "--port", str(port), "--node-ip-address", "127.0.0.1", "--num-cpus", "2",
                "--include-dashboard", "false", *storage_args]
    r = host.quanta(*head_cmd)
    assert r.returncode == 0, r.stderr
    address = f"127.0.0.1:{port}"
    r = host.quanta("start", "--address", address, "--node-ip-address", "127.0.0.1", "--num-cpus", "1",
                    "--resources", '{"second": 1}')
    assert r.returncode == 0, r.stderr
    return address, head_cmd


def alive_nodes():
    return {n["NodeID"]: n for n in quanta.nodes() if n["Alive"]}


@quanta.remote(num_cpus=0)
class Counter:
    def __init__(self):
        self.n = 0

    def incr(self):
        self.n += 1
        return self.n

    def slow_incr(self, seconds):
        time.sleep(seconds)
        self.n += 1
        return self.n


@pytest.mark.parametrize("kind", ["sqlite", "redis"])
def test_a_killed_head_restarted_with_the_same_command_brings_the_cluster_back(host, kind):
    storage = storage_for(host, kind)
    address, head_cmd = start_cluster(host, ["--storage", storage])
    quanta.init(address=address, namespace="hr")
    before = alive_nodes()
    assert len(before) == 2
    keeper = Counter.options(name="keeper", namespace="hr", lifetime="detached",
                             resources={"second": 0.01}).remote()
    assert quanta.get([keeper.incr.remote() for _ in range(3)], timeout=60) == [1, 2, 3]
    kv._internal_kv_put(b"survivor", b"value-1")
    kv._internal_kv_put(b"other", b"x", namespace="ns2")
    group = placement_group([{"CPU": 1}], name="group", lifetime="detached")
    assert group.wait(30)
    in_flight = keeper.slow_incr.remote(3)  # runs on the second node while the head goes away
    time.sleep(0.5)

    old_pid = kill_control(host)

    # While the head is down: a new function (its definition must reach the head), and requests
    # only the head answers, from threads: they wait for it rather than fail.
    @quanta.remote(num_cpus=1, resources={"second": 0.01})
    def made_while_down(x):
        return x * 7

    task = made_while_down.remote(6)
    answers = {}

    def ask(name, fn):
        try:
            answers[name] = fn()
        except Exception as e:  # noqa: BLE001 - reported by the asserts below
            answers[name] = e

    waiters = [threading.Thread(target=ask, args=("kv", lambda: kv._internal_kv_get(b"survivor"))),
               threading.Thread(target=ask, args=("actor", lambda: quanta.get_actor("keeper", namespace="hr")))]
    for t in waiters:
        t.start()
    time.sleep(1.5)
    assert "kv" not in answers and "actor" not in answers, f"answered while the head was down: {answers}"

    r = host.quanta(*head_cmd)  # the same command
    assert r.returncode == 0, r.stderr
    assert "Restarted the control service" in r.stdout, r.stdout
    new_control = next(e for e in head_record(host)["processes"] if e["role"] == "control")
    assert new_control["pid"] != old_pid and services.alive(new_control, head_record(host)["session_dir"])

    for t in waiters:
        t.join(30)
    assert answers.get("kv") == b"value-1", answers
    assert not isinstance(answers.get("actor"), Exception), answers
    assert quanta.get(in_flight, timeout=60) == 4  # the call in flight completed
    assert quanta.get(task, timeout=60) == 42  # the task submitted while the head was down too

    # The nodes are back under the same ids (and none new appeared).
    deadline = time.monotonic() + 20
    while set(alive_nodes()) != set(before) and time.monotonic() < deadline:
        time.sleep(0.2)
    after = alive_nodes()
    assert set(after) == set(before)
    assert not [n for n in quanta.nodes() if not n["Alive"]], "a node was declared dead"
    # The named detached actor is found again and kept its state.
    again = quanta.get_actor("keeper", namespace="hr")
    assert quanta.get(again.incr.remote(), timeout=30) == 5
    assert quanta.get(answers["actor"].incr.remote(), timeout=30) == 6
    # The detached placement group is still there, its bundle still reserved and usable.
    found = get_placement_group("group")
    assert found.id == group.id
    in_group = made_while_down.options(
        resources={}, scheduling_strategy=PlacementGroupSchedulingStrategy(found, placement_group_bundle_index=0))
    assert quanta.get(in_group.remote(1), timeout=30) == 7
    assert kv._internal_kv_get(b"other", namespace="ns2") == b"x"
    assert sorted(kv._internal_kv_list(b"", namespace="ns2")) == [b"other"]
    # New work needing the head goes on: a new named actor, a new KV key.
    fresh = Counter.options(name="fresh", namespace="hr").remote()
    assert quanta.get(fresh.incr.remote(), timeout=30) == 1
    assert kv._internal_kv_put(b"new", b"1") is False  # False: it was not there before

    # Running the command again while the head is up is refused, not a second head.
    r = host.quanta(*head_cmd)
    assert r.returncode != 0 and "runs already" in r.stderr, (r.stdout, r.stderr)


def test_a_head_host_that_crashed_comes_back_as_a_new_session_on_the_same_tables(host):
    storage = os.path.join(host.root, "head.db")
    address, head_cmd = start_cluster(host, ["--storage", storage, "--rejoin-grace-ms", "3000"])
    quanta.init(address=address, namespace="hr")
    keeper = Counter.options(name="keeper", lifetime="detached", resources={"second": 0.01}).remote()
    assert quanta.get(keeper.incr.remote(), timeout=60) == 1
    kv._internal_kv_put(b"survivor", b"v")
    quanta.shutdown()
    old = head_record(host)
    for e in old["processes"]:  # the whole head host: control service, node, its workers
        os.kill(e["pid"], signal.SIGKILL)
    for e in old["processes"]:
        wait_until_gone(e["pid"], 10)
    r = host.quanta(*head_cmd)
    assert r.returncode == 0, r.stderr
    assert "Restarted" not in r.stdout  # a new session: the old one is gone
    new = next(r for r in host.records() if r.get("head") and r["session_dir"] != old["session_dir"])
    assert new["node_id"] != old["node_id"]
    quanta.init(address=address, namespace="hr")
    assert kv._internal_kv_get(b"survivor") == b"v"
    assert quanta.get(quanta.get_actor("keeper").incr.remote(), timeout=60) == 2  # lived on the other node
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        states = {n["NodeID"]: n["Alive"] for n in quanta.nodes()}
        if states.get(old["node_id"]) is False:
            break
        time.sleep(0.2)
    assert states.get(old["node_id"]) is False, states  # the old head's node, after the grace
    assert states.get(new["node_id"]) is True and sum(states.values()) == 2, states


def test_a_restarted_head_declares_nodes_that_do_not_come_back_dead_after_the_grace(host):
    storage = os.path.join(host.root, "head.db")
    address, head_cmd = start_cluster(host, ["--storage", storage, "--rejoin-grace-ms", "3000"])
    quanta.init(address=address)
    second = next(r for r in host.records() if not r.get("head"))
    second_id = second["node_id"]
    kill_control(host)
    node = next(e for e in second["processes"] if e["role"] == "node")
    os.kill(node["pid"], signal.SIGKILL)  # gone for good while the head was down
    wait_until_gone(node["pid"], 10)
    r = host.quanta(*head_cmd)
    assert r.returncode == 0, r.stderr
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        states = {n["NodeID"]: n["Alive"] for n in quanta.nodes()}
        if states.get(second_id) is False:
            break
        time.sleep(0.2)
    assert states.get(second_id) is False, states
    assert sum(states.values()) == 1  # the head's own node rejoined


def test_waiting_for_the_head_is_bounded_and_ends_when_it_is_back(host):
    storage = os.path.join(host.root, "head.db")
    address, head_cmd = start_cluster(host, ["--storage", storage, "--node-reconnect-timeout-ms", "2000"])
    quanta.init(address=address)
    kv._internal_kv_put(b"k", b"v")
    kill_control(host)
    t0 = time.monotonic()
    with pytest.raises(ConnectionError, match="has been unreachable for 2000 ms; restart it with the same --storage"):
        kv._internal_kv_get(b"k")
    waited = time.monotonic() - t0
    assert 1.0 < waited < 10, waited  # it waited, bounded
    t0 = time.monotonic()
    with pytest.raises(ConnectionError, match="control service is unreachable.*longer than its nodes wait for it"):
        kv._internal_kv_get(b"k")  # past the bound: at once
    assert time.monotonic() - t0 < 1.5
    r = host.quanta(*head_cmd)
    assert r.returncode == 0 and "Restarted" in r.stdout, (r.stdout, r.stderr)
    deadline = time.monotonic() + 20
    while True:
        try:
            assert kv._internal_kv_get(b"k") == b"v"
            break
        except ConnectionError:
            assert time.monotonic() < deadline, "the node did not rejoin the restarted head"
            time.sleep(0.2)
    assert len(alive_nodes()) == 2


def test_without_storage_requests_fail_fast_and_old_nodes_are_refused_by_a_new_head(host):
    address, head_cmd = start_cluster(host, [])
    quanta.init(address=address)
    kv._internal_kv_put(b"k", b"v")
    second = next(r for r in host.records() if not r.get("head"))
    kill_control(host)
    t0 = time.monotonic()
    with pytest.raises(ConnectionError, match="control service is unreachable.*without --storage"):
        kv._internal_kv_get(b"k")
    assert time.monotonic() - t0 < 5
    # The same command starts a new cluster (no tables to restart from): the node that joined the
    # old one is refused and stops, saying why.
    r = host.quanta(*head_cmd)
    assert r.returncode == 0, r.stderr
    assert "Restarted" not in r.stdout
    node = next(e for e in second["processes"] if e["role"] == "node")
    wait_until_gone(node["pid"], 30)
    log = open(os.path.join(second["session_dir"], "logs", "node.log")).read()
    assert "refused this node's rejoin" in log and "restarted without its tables" in log, log[-2000:]


def test_storage_flags_are_checked(host):
    r = host.quanta("start", "--head", "--storage", "http://example:1")
    assert r.returncode != 0 and "file path (SQLite) or redis://HOST:PORT" in r.stderr
    r = host.quanta("start", "--head", "--redis-address", "127.0.0.1:6379")
    assert r.returncode != 0 and "--storage redis://HOST:PORT" in r.stderr
    r = host.quanta("start", "--head", "--rejoin-grace-ms", "100")
    assert r.returncode != 0 and "go with --storage" in r.stderr
    r = host.quanta("start", "--address", "127.0.0.1:1", "--storage", os.path.join(host.root, "x.db"))
    assert r.returncode != 0 and "go with --head" in r.stderr
    port = free_port()  # nothing listens there
    r = host.quanta("start", "--head", "--port", str(free_port()), "--include-dashboard", "false",
                    "--storage", f"redis://127.0.0.1:{port}")
    assert r.returncode != 0 and f"cannot reach the redis-server of --storage redis://127.0.0.1:{port}" in r.stderr
    # Ray's way to name the Redis of a fault-tolerant head is honoured too.
    r = host.quanta("start", "--head", "--port", str(free_port()), "--include-dashboard", "false",
                    env={"RAY_REDIS_ADDRESS": f"127.0.0.1:{port}"})
    assert r.returncode != 0 and f"cannot reach the redis-server of --storage redis://127.0.0.1:{port}" in r.stderr
    assert not host.daemons_in_proc()
