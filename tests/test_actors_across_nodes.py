"""Actors on any node of a cluster of real node daemons (quanta.cluster_utils.Cluster).

Each node is its own `quanta_node` process with its own store and TCP peer port. The tests
check that an actor lives on the node its resources or strategy chose (the node id and session
directory seen inside it say so), that calls go from the caller's node straight to the actor's
node (the head forwards none of them), that each caller's calls run in its submission order
when callers on several nodes call at once, that handles passed through tasks and objects on a
third node stay valid, that names live in the control service (a second driver finds them, a
taken name is refused, get_if_exists races end with one actor), that an actor dies with its
last handle or its owner's job wherever it runs (a detached one does not), the key-value store,
and that an actor whose node dies fails its callers instead of hanging them.
"""

import os
import pickle
import subprocess
import sys
import textwrap
import threading
import time

import pytest

import quanta
from quanta._private import api, control
from quanta.experimental import internal_kv
from quanta.util.placement_group import placement_group, remove_placement_group
from quanta.util.scheduling_strategies import (NodeAffinitySchedulingStrategy,
                                               PlacementGroupSchedulingStrategy)
from conftest import run_driver



@pytest.fixture
def three(make_cluster):
    """A head with 1 CPU and three 2-CPU nodes with resources box_a, box_b, box_c; connected."""
    cluster = make_cluster(head_node_args={"num_cpus": 1})
    nodes = [cluster.add_node(num_cpus=2, resources={f"box_{x}": 1}) for x in "abc"]
    cluster.connect(namespace="shared")
    return cluster, nodes


@quanta.remote
class Where:
    def __init__(self, start=0):
        self.n = start
        self.calls = []

    def where(self):
        return quanta.get_runtime_context().get_node_id(), os.environ["QUANTA_SESSION_DIR"], os.getpid()

    def add(self, who, i):
        self.calls.append((who, i))
        return len(self.calls)

    def calls_of(self, who):
        return [i for w, i in self.calls if w == who]

    def inc(self, k=1):
        self.n += k
        return self.n

    def node_stats(self):
        return api.node_stats()

    def sleep(self, seconds):
        time.sleep(seconds)
        return seconds


def on(box):
    return {"resources": {f"box_{box}": 1}}


def pid_gone(pid, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    return True
        except FileNotFoundError:
            return True
        time.sleep(0.05)
    return False


# ----------------------------------------------------------------------------- placement


def test_actor_runs_on_the_node_its_resources_or_strategy_chose(three):
    cluster, (a, b, c) = three
    by_resource = Where.options(**on("a")).remote()
    by_affinity = Where.options(scheduling_strategy=NodeAffinitySchedulingStrategy(b.node_id, soft=False)).remote()
    node_id, session_dir, pid = quanta.get(by_resource.where.remote(), timeout=30)
    assert (node_id, session_dir) == (a.node_id, a.session_dir)
    (daemon_pid,) = a.pids
    assert str(daemon_pid) in open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[1:2]  # its parent
    assert quanta.get(by_affinity.where.remote(), timeout=30)[:2] == (b.node_id, b.session_dir)

    # SPREAD puts three actors on three different nodes.
    spread = [Where.options(scheduling_strategy="SPREAD").remote() for _ in range(3)]
    nodes = {quanta.get(h.where.remote(), timeout=30)[0] for h in spread}
    assert len(nodes) == 3


def test_spread_puts_as_many_zero_cpu_actors_on_each_node(three):
    # Created at once, so the head still waits for the first one's worker when its next turn
    # comes: that must not hand its turn to the next node.
    cluster, _ = three
    spread = [Where.options(num_cpus=0, scheduling_strategy="SPREAD").remote() for _ in range(8)]
    nodes = [n for n, _, _ in quanta.get([h.where.remote() for h in spread], timeout=60)]
    assert sorted(nodes.count(n.node_id) for n in cluster.list_all_nodes()) == [2, 2, 2, 2]


def test_actor_in_a_placement_group_bundle_runs_there_and_dies_with_the_group(three):
    cluster, (a, b, c) = three
    pg = placement_group([{"CPU": 1, "box_b": 1}, {"CPU": 1, "box_c": 1}], strategy="STRICT_SPREAD")
    quanta.get(pg.ready(), timeout=30)
    first = Where.options(scheduling_strategy=PlacementGroupSchedulingStrategy(pg, 0)).remote()
    second = Where.options(placement_group=pg, placement_group_bundle_index=1, num_cpus=1).remote()
    assert quanta.get(first.where.remote(), timeout=30)[0] == b.node_id
    assert quanta.get(second.where.remote(), timeout=30)[0] == c.node_id
    remove_placement_group(pg)  # asynchronous, as in Ray: the actors die soon after
    for h in (first, second):
        deadline = time.monotonic() + 10
        with pytest.raises(quanta.exceptions.ActorDiedError, match="placement group .* was removed"):
            while time.monotonic() < deadline:
                quanta.get(h.where.remote(), timeout=30)
                time.sleep(0.05)


def test_infeasible_actor_waits_for_a_node_that_fits(three):
    cluster, _ = three
    h = Where.options(resources={"late": 1}).remote()
    ready, _ = quanta.wait([h.where.remote()], timeout=1.0)
    assert ready == []
    late = cluster.add_node(num_cpus=1, resources={"late": 1})
    assert quanta.get(h.where.remote(), timeout=30)[0] == late.node_id


# ----------------------------------------------------------------------------- calls


@quanta.remote
def call_from_here(handle, who, n):
    """Calls the actor n times from this task's node; returns the node and what the calls saw."""
    refs = [handle.add.remote(who, i) for i in range(n)]
    return quanta.get_runtime_context().get_node_id(), quanta.get(refs)


def test_each_callers_calls_run_in_order_when_callers_on_several_nodes_call_at_once(three):
    cluster, (a, b, c) = three
    log = Where.options(**on("a")).remote()
    n = 300
    remote_callers = [call_from_here.options(**on(x)).remote(log, x, n) for x in "bc"]
    mine = [log.add.remote("driver", i) for i in range(n)]
    results = quanta.get(remote_callers, timeout=60)
    assert [r[0] for r in results] == [b.node_id, c.node_id]
    quanta.get(mine, timeout=60)
    for who in ("b", "c", "driver"):
        assert quanta.get(log.calls_of.remote(who), timeout=30) == list(range(n))
    # Every call ran exactly once: 3 * n calls in all.
    assert quanta.get(log.add.remote("last", 0), timeout=30) == 3 * n + 1


def test_calls_go_straight_to_the_actors_node_not_through_the_head(three):
    cluster, (a, b, c) = three
    target = Where.options(**on("c")).remote()
    quanta.get(target.where.remote(), timeout=30)
    head_before = api.node_stats()
    caller_stats = quanta.get(call_and_measure.options(**on("b")).remote(target, 200), timeout=60)
    head_after = api.node_stats()
    before, after, results = caller_stats
    assert results == list(range(1, 201))
    # Node b sent 200 calls to node c (to its node, or on a lane to the actor's worker there) ...
    sent = lambda s: s["tasks_forwarded"] + s["lane_calls_sent"]  # noqa: E731
    assert sent(after) - sent(before) >= 200
    # ... and the head forwarded none of them: its only new traffic is the caller task and
    # its result (well under what 200 calls and replies take).
    assert head_after["tasks_forwarded"] - head_before["tasks_forwarded"] == 1
    # Node c ran them for node b: forwarded ones as its own tasks, lane calls on the actor's
    # worker after handing it the lane (its daemon never sees those calls).
    target_stats = quanta.get(target.node_stats.remote(), timeout=30)
    lane_calls = after["lane_calls_sent"] - before["lane_calls_sent"]
    assert target_stats["tasks_executed_for_other_nodes"] >= 200 - lane_calls
    assert lane_calls == 0 or target_stats["lanes_attached"] >= 1


@quanta.remote
def call_and_measure(handle, n):
    before = api.node_stats()
    results = quanta.get([handle.inc.remote() for _ in range(n)])
    return before, api.node_stats(), results


@quanta.remote(max_concurrency=4)
class Threaded:
    def slow(self, seconds):
        time.sleep(seconds)
        return threading.get_ident()

    @quanta.method(num_returns=2)
    def pair(self, x):
        return x, x * 2


@quanta.remote
class Async:
    def __init__(self):
        self.running = 0
        self.peak = 0

    async def slow(self, seconds):
        import asyncio

        self.running += 1
        self.peak = max(self.peak, self.running)
        await asyncio.sleep(seconds)
        self.running -= 1
        return self.peak


@quanta.remote(concurrency_groups={"io": 2})
class Grouped:
    def __init__(self):
        self.lock = threading.Lock()
        self.active = 0
        self.peak = 0

    @quanta.method(concurrency_group="io")
    def io(self, seconds):
        with self.lock:
            self.active += 1
            self.peak = max(self.peak, self.active)
        time.sleep(seconds)
        with self.lock:
            self.active -= 1
        return self.peak

    def default(self):
        return "default"


def test_threaded_async_grouped_and_multi_return_actors_work_across_nodes(three):
    cluster, _ = three
    threaded = Threaded.options(**on("b")).remote()
    t0 = time.monotonic()
    idents = quanta.get([threaded.slow.remote(0.5) for _ in range(4)], timeout=30)
    assert time.monotonic() - t0 < 1.8  # four 0.5 s calls at once, not one after another
    assert len(set(idents)) == 4
    x, y = threaded.pair.remote(21)
    assert quanta.get([x, y], timeout=30) == [21, 42]

    asynchronous = Async.options(**on("c")).remote()
    peaks = quanta.get([asynchronous.slow.remote(0.3) for _ in range(10)], timeout=30)
    assert max(peaks) == 10  # all ten coroutines were in flight together

    grouped = Grouped.options(**on("a")).remote()
    peaks = quanta.get([grouped.io.remote(0.2) for _ in range(6)], timeout=30)
    assert max(peaks) == 2
    assert quanta.get(grouped.default.remote(), timeout=30) == "default"


def test_cancel_of_a_queued_call_on_another_node(three):
    cluster, _ = three
    h = Where.options(**on("b")).remote()
    quanta.get(h.where.remote(), timeout=30)
    running = h.sleep.remote(1.5)
    queued = h.inc.remote()
    after = h.inc.remote()
    time.sleep(0.2)
    quanta.cancel(queued)
    with pytest.raises(quanta.exceptions.TaskCancelledError):
        quanta.get(queued, timeout=30)
    assert quanta.get(running, timeout=30) == 1.5
    assert quanta.get(after, timeout=30) == 1  # the cancelled call never ran


# ----------------------------------------------------------------------------- handles


@quanta.remote
def relay(holder, hops):
    """Passes the handle (inside a dict inside an object) on through tasks on other nodes."""
    if hops == 0:
        handle = quanta.get(holder["ref"])["handle"]
        return quanta.get_runtime_context().get_node_id(), quanta.get(handle.inc.remote(100))
    next_box = "c" if hops % 2 else "b"
    return quanta.get(relay.options(**on(next_box)).remote(holder, hops - 1))


def test_handle_passed_inside_objects_through_three_nodes_stays_valid(three):
    cluster, (a, b, c) = three
    h = Where.options(**on("a")).remote(5)
    holder = {"ref": quanta.put({"handle": h})}
    node, value = quanta.get(relay.options(**on("b")).remote(holder, 3), timeout=60)
    assert node in (b.node_id, c.node_id)
    assert value == 105
    assert quanta.get(h.inc.remote(), timeout=30) == 106  # the same actor, seen from its owner


def test_actor_handle_from_another_cluster_is_refused_clearly(three, tmp_path):
    cluster, _ = three
    h = Where.options(**on("a")).remote()
    blob = tmp_path / "handle.pickle"
    blob.write_bytes(pickle.dumps(h))
    out = run_driver(f"""
        import pickle, quanta
        quanta.init(num_cpus=1)
        try:
            pickle.loads(open({str(blob)!r}, "rb").read())
            print("LOADED")
        except ValueError as e:
            print("REFUSED", e)
    """, timeout=120)
    assert "REFUSED" in out.stdout, out.stdout + out.stderr
    assert "only valid in the cluster that made them" in out.stdout


# ----------------------------------------------------------------------------- names


SECOND_DRIVER = """
    import sys, quanta
    quanta.init(address=sys.argv[1], namespace="shared")
"""


def second_driver(cluster, body, timeout=120):
    code = textwrap.dedent(SECOND_DRIVER) + textwrap.dedent(body)
    out = subprocess.run([sys.executable, "-c", code, cluster.address], capture_output=True, text=True,
                         timeout=timeout)
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


def test_named_detached_actor_is_found_by_a_second_driver_and_outlives_its_creator(three):
    cluster, (a, b, c) = three
    out = second_driver(cluster, """
        @quanta.remote
        class Keeper:
            def __init__(self): self.v = 0
            def bump(self): self.v += 1; return self.v
            def where(self): return quanta.get_runtime_context().get_node_id()
        k = Keeper.options(name="keeper", lifetime="detached", resources={"box_b": 1}).remote()
        short = Keeper.options(name="short", resources={"box_c": 1}).remote()
        print(quanta.get(k.bump.remote()), quanta.get(short.bump.remote()), quanta.get(k.where.remote()))
    """)
    assert out.split() == ["1", "1", b.node_id]
    keeper = quanta.get_actor("keeper")
    assert quanta.get(keeper.bump.remote(), timeout=30) == 2  # the same instance: state kept
    assert quanta.get(keeper.where.remote(), timeout=30) == b.node_id
    # The creator's non-detached named actor died with its job, and its name went with it.
    deadline = time.monotonic() + 10
    while "short" in quanta.util.list_named_actors() and time.monotonic() < deadline:
        time.sleep(0.05)
    with pytest.raises(ValueError, match="'short' in namespace 'shared'"):
        quanta.get_actor("short")
    assert quanta.util.list_named_actors() == ["keeper"]
    assert {"name": "keeper", "namespace": "shared"} in quanta.util.list_named_actors(all_namespaces=True)
    quanta.kill(keeper)
    with pytest.raises(quanta.exceptions.ActorDiedError):
        quanta.get(keeper.bump.remote(), timeout=30)
    deadline = time.monotonic() + 10
    while quanta.util.list_named_actors() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert quanta.util.list_named_actors() == []


def test_names_are_per_namespace_and_a_taken_name_is_refused(three):
    cluster, _ = three
    svc = Where.options(name="svc", **on("a")).remote()  # kept: a named actor still dies with its handles
    with pytest.raises(ValueError, match="svc"):
        Where.options(name="svc", **on("b")).remote()
    other = Where.options(name="svc", namespace="other", **on("b")).remote()
    assert quanta.get(other.where.remote(), timeout=30)[0] == cluster.list_all_nodes()[2].node_id
    with pytest.raises(ValueError, match="namespace 'nowhere'"):
        quanta.get_actor("svc", namespace="nowhere")
    # A driver in another namespace does not see "shared"'s names unless it asks for them.
    out = run_driver(f"""
        import quanta
        quanta.init(address={cluster.address!r}, namespace="elsewhere")
        try:
            quanta.get_actor("svc")
            print("FOUND")
        except ValueError as e:
            print("MISSING", e)
        print(quanta.get(quanta.get_actor("svc", namespace="shared").where.remote())[0])
    """)
    lines = out.stdout.splitlines()
    assert lines[0].startswith("MISSING") and "'elsewhere'" in lines[0], out.stdout + out.stderr
    assert lines[1] == cluster.list_all_nodes()[1].node_id
    assert quanta.get(svc.inc.remote(), timeout=30) == 1


def test_get_if_exists_from_several_drivers_at_once_ends_with_one_actor(three):
    cluster, _ = three
    body = f"""
        import os, quanta
        quanta.init(address={cluster.address!r}, namespace="race")

        @quanta.remote
        class Single:
            def pid(self):
                return os.getpid()

        h = Single.options(name="one", get_if_exists=True, lifetime="detached", num_cpus=0).remote()
        print(quanta.get(h.pid.remote()))
    """
    procs = [subprocess.Popen([sys.executable, "-c", textwrap.dedent(body)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(4)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    pids = {o.strip() for o, _ in outs}
    assert len(pids) == 1, outs
    quanta.kill(quanta.get_actor("one", namespace="race"))


def test_several_drivers_query_one_detached_actor_at_once_each_in_its_own_order(three):
    cluster, _ = three
    service = Where.options(name="service", lifetime="detached", **on("c")).remote()
    quanta.get(service.where.remote(), timeout=30)
    body = f"""
        import os, quanta
        quanta.init(address={cluster.address!r}, namespace="shared")
        svc = quanta.get_actor("service")
        me = f"driver-{{os.getpid()}}"
        quanta.get([svc.add.remote(me, i) for i in range(200)])
        print(me, quanta.get(svc.calls_of.remote(me)) == list(range(200)))
    """
    procs = [subprocess.Popen([sys.executable, "-c", textwrap.dedent(body)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(3)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    assert [o.split()[1] for o, _ in outs] == ["True"] * 3, outs
    assert quanta.get(service.add.remote("me", 0), timeout=30) == 601
    quanta.kill(service)


# ----------------------------------------------------------------------------- lifetime


def test_remote_actor_dies_when_its_last_handle_is_gone(three):
    cluster, _ = three
    h = Where.options(**on("b")).remote()
    pid = quanta.get(h.where.remote(), timeout=30)[2]
    # A borrower on a third node used it and finished.
    assert quanta.get(call_from_here.options(**on("c")).remote(h, "c", 3), timeout=30)[1] == [1, 2, 3]
    del h
    assert pid_gone(pid), "the actor's process outlived its last handle"


def test_actors_of_a_driver_that_exits_die_wherever_they_run_except_detached(three):
    cluster, (a, b, c) = three
    out = second_driver(cluster, """
        import os
        @quanta.remote
        class P:
            def pid(self): return os.getpid()
        plain = [P.options(resources={f"box_{x}": 0.5}).remote() for x in "abc"]
        kept = P.options(name="kept", lifetime="detached", resources={"box_a": 0.5}).remote()
        print(*quanta.get([h.pid.remote() for h in plain]), quanta.get(kept.pid.remote()))
    """)
    *plain_pids, kept_pid = (int(x) for x in out.split())
    for pid in plain_pids:
        assert pid_gone(pid), f"actor pid {pid} outlived its driver"
    assert not pid_gone(kept_pid, timeout=0.5)
    kept = quanta.get_actor("kept")
    assert quanta.get(kept.pid.remote(), timeout=30) == kept_pid
    quanta.kill(kept)
    assert pid_gone(kept_pid)


def test_calls_to_an_actor_whose_node_died_fail_instead_of_hanging(three):
    cluster, (a, b, c) = three
    h = Where.options(**on("b")).remote()
    quanta.get(h.where.remote(), timeout=30)
    running = h.sleep.remote(30)
    time.sleep(0.3)
    cluster.remove_node(b, allow_graceful=False)
    for ref in (running, h.inc.remote()):
        with pytest.raises(quanta.exceptions.ActorDiedError, match="node"):
            quanta.get(ref, timeout=20)
    # Actors elsewhere are not affected.
    other = Where.options(**on("c")).remote()
    assert quanta.get(other.inc.remote(), timeout=30) == 1


# ----------------------------------------------------------------------------- metadata


def test_internal_kv_is_cluster_wide(three):
    cluster, _ = three
    assert internal_kv._internal_kv_initialized()
    assert internal_kv._internal_kv_put(b"cfg/a", b"1") is False  # did not exist before
    assert internal_kv._internal_kv_put("cfg/b", "2") is False
    assert internal_kv._internal_kv_put(b"cfg/a", b"3", overwrite=False) is True  # existed: kept
    assert internal_kv._internal_kv_get(b"cfg/a") == b"1"
    out = run_driver(f"""
        import quanta
        from quanta.experimental import internal_kv as kv
        quanta.init(address={cluster.address!r})
        print(kv._internal_kv_get(b"cfg/a"), sorted(kv._internal_kv_list(b"cfg/")), kv._internal_kv_exists(b"cfg/b"))
        kv._internal_kv_put(b"cfg/a", b"from-2")
        print(kv._internal_kv_del(b"cfg/b"))
    """)
    lines = out.stdout.splitlines()
    assert lines == ["b'1' [b'cfg/a', b'cfg/b'] True", "1"], out.stdout + out.stderr
    assert internal_kv._internal_kv_get(b"cfg/a") == b"from-2"
    assert internal_kv._internal_kv_exists(b"cfg/b") is False
    assert internal_kv._internal_kv_get(b"missing") is None
    with pytest.raises(TypeError):
        internal_kv._internal_kv_put(b"k", 3)


def test_control_service_keeps_jobs_and_the_actor_directory(three):
    cluster, (a, b, c) = three
    second_driver(cluster, "print('hello')")
    h = Where.options(**on("c")).remote()
    quanta.get(h.where.remote(), timeout=30)
    ok, _, _, _, error, jobs = control.call(control.GET_JOBS)
    assert ok, error
    decoded = [control.decode_job(j) for j in jobs]
    mine = [j for j in decoded if j["driver_pid"] == os.getpid()]
    assert len(mine) == 1 and mine[0]["status"] == "RUNNING" and mine[0]["start_time"] > 0
    finished = [j for j in decoded if j["status"] == "SUCCEEDED"]
    assert finished and "-c" in finished[0]["entrypoint"] and finished[0]["end_time"] >= finished[0]["start_time"]
    ok, _, _, _, error, actors = control.call(control.GET_ACTORS)
    assert ok, error
    infos = [control.decode_actor(x) for x in actors]
    ours = [x for x in infos if x["actor_id"] == h._actor_id.hex()]
    assert ours and ours[0]["state"] == "ALIVE" and ours[0]["node_index"] == c.node_index
    assert ours[0]["class_name"] == "Where"
