"""The state API (quanta.util.state) and its CLI (`quanta list|get|summary|logs`) on a real
two-node Cluster: what they report is checked against what the test itself made and what the
processes themselves say (their pid, their node, the objects they hold), including per-node data
gathered from the second node over the peer relay, filters, limits and detail columns, a node
that cannot answer, and the observer role the CLI connects with (no job, read only).
"""

import json
import os
import signal
import subprocess
import sys
import time
import warnings

import pytest

import quanta
from quanta import _core
from quanta.cluster_utils import Cluster
from quanta.util import state
from quanta.util.placement_group import placement_group, remove_placement_group


def plain(resources):
    """A node's or the cluster's resources without the memory and object_store_memory every
    node advertises (their amounts depend on the machine)."""
    return {k: v for k, v in resources.items() if k not in ("memory", "object_store_memory")}



@quanta.remote
class Counter:
    def __init__(self):
        self.n = 0

    def where(self):
        return os.getpid(), quanta.get_runtime_context().get_node_id()

    def shout(self, text):
        print(text, flush=True)
        return text


@quanta.remote(resources={"side": 1})
def big_on_side(n):
    return b"s" * n


@quanta.remote(resources={"side": 1})
def sleep_on_side(seconds):
    time.sleep(seconds)
    return os.getpid()


def until(predicate, timeout=10.0, what="condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@pytest.fixture(scope="module")
def two_nodes():
    if quanta.is_initialized():
        quanta.shutdown()
    cluster = Cluster(initialize_head=True, shutdown_at_exit=False,
                      head_node_args={"num_cpus": 2, "heartbeat_timeout_ms": 60000})
    side = cluster.add_node(num_cpus=2, resources={"side": 2})
    quanta.init(address=cluster.address)
    yield cluster, side
    quanta.shutdown()
    cluster.shutdown()


def node_ids(cluster, side):
    return cluster.head_node.node_id, side.node_id


def quanta_cli(*args, timeout=60):
    return subprocess.run([sys.executable, "-m", "quanta.scripts", *args], capture_output=True, text=True,
                          timeout=timeout)


def test_nodes(two_nodes):
    cluster, side = two_nodes
    head_id, side_id = node_ids(cluster, side)
    rows = state.list_nodes()
    assert [r["node_id"] for r in rows] == [head_id, side_id]
    head, other = rows
    assert head.is_head_node and not other.is_head_node
    assert head.state == other.state == "ALIVE"
    assert plain(head.resources_total) == {"CPU": 2.0} and plain(other.resources_total) == {"CPU": 2.0, "side": 2.0}
    assert "resources_available" not in head  # a detail column
    detail = state.get_node(side_id)
    assert detail["session_dir"] == side.session_dir and detail["resources_available"]["side"] == 2.0
    assert state.get_node("0" * 32) is None
    assert [r.node_id for r in state.list_nodes(filters=[("is_head_node", "=", False)])] == [side_id]
    assert state.list_nodes(filters=[("state", "!=", "alive")]) == []


def test_actors_workers_and_their_logs(two_nodes):
    cluster, side = two_nodes
    head_id, side_id = node_ids(cluster, side)
    here = Counter.options(name="here").remote()
    there = Counter.options(name="there", resources={"side": 1}).remote()
    gone = Counter.remote()
    (here_pid, here_node), (there_pid, there_node) = quanta.get([here.where.remote(), there.where.remote()])
    assert (here_node, there_node) == (head_id, side_id)
    quanta.get(gone.where.remote())
    quanta.kill(gone)
    until(lambda: any(a.state == "DEAD" for a in state.list_actors()), what="the killed actor to be DEAD")

    alive = {a["name"]: a for a in state.list_actors(filters=[("state", "=", "ALIVE")], detail=True)}
    assert set(alive) == {"here", "there"}
    assert (alive["here"].pid, alive["here"].node_id) == (here_pid, head_id)
    assert (alive["there"].pid, alive["there"].node_id) == (there_pid, side_id)  # asked of the side node
    assert alive["there"].class_name == "Counter" and alive["there"].job_id == quanta.get_runtime_context().get_job_id()
    dead = state.list_actors(filters=[("state", "=", "DEAD")], detail=True)
    assert len(dead) == 1 and dead[0].pid is None and "kill" in dead[0].death_cause
    assert state.get_actor(alive["there"].actor_id)["worker_id"] == alive["there"].worker_id
    summary = state.summarize_actors()["cluster"]
    assert summary["summary"]["Counter"]["state_counts"] == {"ALIVE": 2, "DEAD": 1} and summary["total_actors"] == 3

    workers = {w.pid: w for w in state.list_workers(detail=True)}
    assert workers[there_pid].state == "ACTOR" and workers[there_pid].actor_id == alive["there"].actor_id
    assert workers[there_pid].node_id == side_id and workers[there_pid].stdout_log.startswith("worker-")
    assert workers[os.getpid()].worker_type == "DRIVER" and workers[os.getpid()].node_id == head_id
    assert all(w.worker_type != "OBSERVER" for w in workers.values())

    # A worker's output, read from the side node; then followed as it grows.
    quanta.get(there.shout.remote("first line from there"))
    assert "first line from there" in "".join(state.get_log(actor_id=alive["there"].actor_id, tail=10))
    follow = state.get_log(actor_id=alive["there"].actor_id, tail=1, follow=True, _interval=0.05)
    assert "first line from there" in next(follow)
    quanta.get(there.shout.remote("second line"))
    assert "second line" in until(lambda: next(follow), what="the followed line")
    follow.close()
    files = state.list_logs(node_id=side_id)
    assert workers[there_pid].stdout_log in files["worker_out"] and "node.log" in files["node"]
    with pytest.raises(ValueError, match="not a file name"):
        list(state.get_log(node_id=side_id, filename="../node.json"))


def test_running_task_shows_on_its_worker(two_nodes):
    cluster, side = two_nodes
    ref = sleep_on_side.remote(3)
    running = until(lambda: [w for w in state.list_workers(detail=True) if w.state == "RUNNING_TASK"
                             and w.task_name == "sleep_on_side"], what="the running task")
    assert running[0].node_id == side.node_id
    assert quanta.get(ref) == running[0].pid


def test_objects_where_they_are_and_what_pins_them(two_nodes):
    cluster, side = two_nodes
    head_id, side_id = node_ids(cluster, side)
    mine = quanta.put(b"m" * (3 << 20))
    remote = big_on_side.remote(2 << 20)
    quanta.wait([remote])
    rows = state.list_objects(detail=True, limit=10000)
    by_id = {}
    for r in rows:
        by_id.setdefault(r.object_id, []).append(r)
    (put_row,) = by_id[mine.hex()]
    assert put_row.node_id == head_id and put_row.storage == "SHARED_MEMORY"
    assert put_row.object_size >= 3 << 20 and put_row.reference_count >= 1
    assert (put_row.owner_pid, put_row.owner_type) == (os.getpid(), "DRIVER")
    side_rows = [r for r in by_id[remote.hex()] if r.node_id == side_id]
    assert side_rows and side_rows[0].object_size >= 2 << 20  # the primary copy, on the node that made it
    assert state.get_objects(mine.hex())[0]["object_id"] == mine.hex()
    total = state.summarize_objects()["cluster"]
    assert total["total_objects"] == len(rows) and total["summary"]["SHARED_MEMORY"]["total_size_mb"] >= 3
    hex_id = mine.hex()
    del mine
    until(lambda: not state.get_objects(hex_id), what="the released object to leave the store")


def test_jobs_and_placement_groups(two_nodes):
    cluster, side = two_nodes
    (me,) = [j for j in state.list_jobs(detail=True) if j.driver_pid == os.getpid()]
    assert me.status == "RUNNING" and me.type == "DRIVER" and me.job_id == quanta.get_runtime_context().get_job_id()
    pg = placement_group([{"CPU": 1}, {"side": 1}], strategy="SPREAD", name="pair")
    assert pg.wait(10)
    (row,) = state.list_placement_groups(filters=[("name", "=", "pair")], detail=True)
    assert row.state == "CREATED" and row.strategy == "SPREAD" and row.creator_job_id == me.job_id
    assert [b["node_id"] for b in row.bundles] == [cluster.head_node.node_id, side.node_id]
    remove_placement_group(pg)
    until(lambda: state.get_placement_group(row.placement_group_id)["state"] == "REMOVED", what="REMOVED")


def test_filters_limits_and_refusals(two_nodes):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert len(state.list_workers(limit=1)) == 1
    assert any("showing the first 1" in str(w.message) for w in caught)
    with pytest.raises(ValueError, match="not a filterable column"):
        state.list_actors(filters=[("nonsense", "=", 1)])
    with pytest.raises(ValueError, match="predicate"):
        state.list_actors(filters=[("state", "~", "ALIVE")])
    with pytest.raises(ValueError, match="not a filterable column"):
        state.list_tasks(filters=[("nonsense", "=", 1)])  # tasks: tests/test_task_events.py


def test_an_unresponsive_node_is_named_not_hidden(two_nodes):
    cluster, side = two_nodes
    node_pid = next(p.pid for role, p in side._session._procs if role == "node")
    held = quanta.put(b"h" * (1 << 20))
    os.kill(node_pid, signal.SIGSTOP)  # alive to the control service (long heartbeat timeout), mute to us
    try:
        t0 = time.monotonic()
        with pytest.raises(state.QuantaStateApiException, match=f"node {side.node_index}"):
            state.list_objects(timeout=1.5)
        assert time.monotonic() - t0 < 5
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            rows = state.list_objects(timeout=1.5, raise_on_missing_output=False)
        assert held.hex() in {r.object_id for r in rows}
        assert all(r.node_id == cluster.head_node.node_id for r in rows)
        assert any("missing" in str(w.message) for w in caught)
    finally:
        os.kill(node_pid, signal.SIGCONT)
    until(lambda: len(state.list_workers(timeout=5)) >= 2, what="the side node to answer again")


def test_cli(two_nodes):
    cluster, side = two_nodes
    addr = cluster.head_node.session_dir
    keep = Counter.options(name="cli_actor", resources={"side": 1}).remote()
    quanta.get(keep.shout.remote("printed for the cli"))
    r = quanta_cli("list", "nodes", "--address", addr)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[0].split()[:3] == ["NODE_ID", "NODE_IP", "NODE_INDEX"]
    assert cluster.head_node.node_id in r.stdout and side.node_id in r.stdout
    r = quanta_cli("list", "actors", "--address", addr, "--filter", "name=cli_actor", "--format", "json", "--detail")
    assert r.returncode == 0, r.stderr
    (actor,) = json.loads(r.stdout)
    assert actor["state"] == "ALIVE" and actor["node_id"] == side.node_id
    r = quanta_cli("get", "actors", actor["actor_id"], "--address", addr)
    assert r.returncode == 0 and "class_name: Counter" in r.stdout and "num_restarts: 0" in r.stdout
    r = quanta_cli("logs", "--actor-id", actor["actor_id"], "--address", addr)
    assert r.returncode == 0 and "printed for the cli" in r.stdout
    r = quanta_cli("summary", "actors", "--address", addr)
    assert r.returncode == 0 and "Counter" in r.stdout
    r = quanta_cli("list", "jobs", "--address", addr, "--format", "yaml")
    assert r.returncode == 0 and f"driver_pid: {os.getpid()}" not in r.stdout  # a detail column
    r = quanta_cli("list", "jobs", "--address", addr, "--format", "json", "--detail")
    jobs = json.loads(r.stdout)
    assert [j["driver_pid"] for j in jobs] == [os.getpid()]  # the CLI itself, an observer, is no job
    for args, message in ((["list", "tasks", "--filter", "bogus=1"], "not a filterable column"),
                          (["list", "actors", "--filter", "x"], "KEY=VALUE"),
                          (["get", "nodes", "f" * 32], "no node with node_id")):
        r = quanta_cli(*args, "--address", addr)
        assert r.returncode == 1 and message in r.stderr and "Traceback" not in r.stderr, r.stderr
    quanta.kill(keep)


def test_observers_only_read(two_nodes):
    cluster, side = two_nodes
    sock = os.path.join(cluster.head_node.session_dir, "sockets", "node.sock")
    observer = _core.CoreClient.connect(sock, log_to_driver=False, observer=True)
    try:
        assert len(observer.cluster_info(5000)) == 2
        assert all(j["driver_pid"] != os.getpid() or j["status"] == "RUNNING"
                   for j in map(_core.decode_job, observer.control_call(20, b"", b"", b"", b"", False, 5000)[5]))
        with pytest.raises(ConnectionError):  # a write (a KV put) ends the observer's connection
            observer.control_call(10, b"ns", b"k", b"", b"v", True, 5000)
            observer.cluster_info(5000)
    finally:
        observer.disconnect()
