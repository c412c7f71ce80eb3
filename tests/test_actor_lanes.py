"""Actor lanes (docs/cluster-design.md §8): calls to an actor on another node go straight to its
worker over a TCP lane that the actor's node authenticated and handed over, and results come
back the same way. Every test checks with the nodes' own counters which way calls went, and
that results, order, cancellation and failures are what they are on the node route."""

import os
import time

import numpy as np
import pytest

import quanta
from quanta._private import api
from quanta.exceptions import ActorDiedError, TaskCancelledError
from quanta.util.scheduling_strategies import NodeAffinitySchedulingStrategy


def head_and_node(make_cluster):
    """A head with 1 CPU and one 2-CPU node, connected (the environment as the test set it)."""
    cluster = make_cluster(head_node_args={"num_cpus": 1})
    node = cluster.add_node(num_cpus=2)
    cluster.connect()
    return cluster, node


@pytest.fixture
def two(make_cluster):
    return head_and_node(make_cluster)


def there(node, **options):
    return dict(scheduling_strategy=NodeAffinitySchedulingStrategy(node.node_id, soft=False), **options)


def lane_counts():
    s = api.node_stats()
    return {k: s[k] for k in ("lane_calls_sent", "lane_results_received", "tasks_forwarded", "lanes_opened")}


def delta(after, before, key):
    return after[key] - before[key]


def open_lane_to(actor, call=lambda a: a.ping.remote()):
    """Calls the actor until this node's lane to it is open (it opens on the first call made once
    the actor is alive; that call and the ones before go the node's way)."""
    start = lane_counts()["lanes_opened"]
    deadline = time.monotonic() + 10
    while lane_counts()["lanes_opened"] == start:
        assert time.monotonic() < deadline, "no lane opened"
        quanta.get(call(actor))


def open_lane(log):
    open_lane_to(log, lambda a: a.add.remote(-1))


@quanta.remote(num_cpus=0)
class Log:
    def __init__(self):
        self.seen = []

    def add(self, i, payload=None):
        self.seen.append(i)
        return i

    def seen_calls(self):
        return self.seen

    def node(self):
        return quanta.get_runtime_context().get_node_id(), os.getpid()

    def stats(self):
        return api.node_stats()

    def big(self, n):
        return np.arange(n, dtype=np.int64)

    def with_ref(self, value):
        return [quanta.put(value)]

    def sleep(self, seconds):
        time.sleep(seconds)
        return seconds

    def die(self):
        os._exit(1)


def test_calls_take_the_lane_and_skip_the_actors_node(two):
    _, node = two
    log = Log.options(**there(node)).remote()
    assert quanta.get(log.node.remote())[0] == node.node_id
    actor_node_before = quanta.get(log.stats.remote())
    before = lane_counts()
    assert [quanta.get(log.add.remote(i)) for i in range(300)] == list(range(300))
    assert quanta.get([log.add.remote(i) for i in range(300, 1300)]) == list(range(300, 1300))
    after = lane_counts()
    actor_node_after = quanta.get(log.stats.remote())
    assert after["lanes_opened"] == 1
    lane_calls = delta(after, before, "lane_calls_sent")
    # All but the calls sent while the lane opened took it, and each result came back on it.
    assert lane_calls >= 1290
    assert delta(after, before, "lane_results_received") >= lane_calls - 2  # the stats calls in flight
    # The actor's node daemon ran only the calls that went its way.
    ran_there = delta(actor_node_after, actor_node_before, "tasks_executed_for_other_nodes")
    assert ran_there <= 1300 - lane_calls + 2
    assert actor_node_after["lanes_attached"] >= 1
    assert quanta.get(log.seen_calls.remote()) == list(range(1300))


def test_order_holds_when_calls_switch_between_the_lane_and_the_node(two):
    _, node = two
    log = Log.options(**there(node)).remote()
    open_lane(log)
    opened = len(quanta.get(log.seen_calls.remote()))
    big = quanta.put(np.zeros(200_000, dtype=np.uint8))  # a stored argument: the node's way
    before = lane_counts()
    refs = []
    for i in range(200):
        refs.append(log.add.remote(i, big) if i % 7 == 3 else log.add.remote(i))
    assert quanta.get(refs, timeout=60) == list(range(200))
    after = lane_counts()
    assert quanta.get(log.seen_calls.remote())[opened:] == list(range(200))
    assert delta(after, before, "tasks_forwarded") >= 200 // 7
    assert delta(after, before, "lane_calls_sent") >= 100


def test_results_the_lane_cannot_carry_go_through_the_actors_node(two):
    _, node = two
    log = Log.options(**there(node)).remote()
    open_lane(log)
    actor_before = quanta.get(log.stats.remote())
    before = lane_counts()
    arr = quanta.get(log.big.remote(2_000_000))  # 16 MB: stored in the actor node's store
    assert arr.shape == (2_000_000,) and int(arr[-1]) == 1_999_999
    inner = quanta.get(log.with_ref.remote("kept"))  # a ref inside the result
    del arr
    assert quanta.get(inner[0], timeout=30) == "kept"
    after = lane_counts()
    actor_after = quanta.get(log.stats.remote())
    assert delta(after, before, "lane_calls_sent") >= 2
    assert delta(actor_after, actor_before, "lane_calls_adopted") == 2
    # The stored result's bytes crossed over TCP from the actor's node.
    assert actor_after["transfer_bytes_sent"] - actor_before["transfer_bytes_sent"] >= 16_000_000


def test_a_queued_lane_call_can_be_cancelled(two):
    _, node = two
    log = Log.options(**there(node)).remote()
    open_lane(log)
    before = lane_counts()
    slow = log.sleep.remote(1.0)
    queued = log.add.remote(99)
    time.sleep(0.2)
    quanta.cancel(queued)
    with pytest.raises(TaskCancelledError):
        quanta.get(queued, timeout=30)
    assert quanta.get(slow, timeout=30) == 1.0
    assert 99 not in quanta.get(log.seen_calls.remote())
    assert delta(lane_counts(), before, "lane_calls_sent") >= 2


def test_when_the_actors_worker_dies_calls_in_flight_fail_and_nothing_hangs(two):
    _, node = two
    log = Log.options(**there(node)).remote()
    open_lane(log)
    before = lane_counts()
    dying = log.die.remote()
    behind = [log.add.remote(i) for i in range(5)]
    t0 = time.monotonic()
    with pytest.raises(ActorDiedError):
        quanta.get(dying, timeout=30)
    for ref in behind:
        with pytest.raises(ActorDiedError):
            quanta.get(ref, timeout=30)
    with pytest.raises(ActorDiedError):
        quanta.get(log.add.remote(0), timeout=30)
    assert time.monotonic() - t0 < 20
    assert delta(lane_counts(), before, "lane_calls_sent") >= 1


def test_an_actor_that_may_restart_keeps_the_node_route_and_restarts(two):
    _, node = two
    log = Log.options(**there(node, max_restarts=1, max_task_retries=0)).remote()
    pid = quanta.get(log.node.remote())[1]
    before = lane_counts()
    assert quanta.get([log.add.remote(i) for i in range(50)]) == list(range(50))
    assert delta(lane_counts(), before, "lane_calls_sent") == 0
    with pytest.raises(ActorDiedError):
        quanta.get(log.die.remote(), timeout=30)
    deadline = time.monotonic() + 30
    while True:
        try:
            new_pid = quanta.get(log.node.remote(), timeout=30)[1]
            break
        except ActorDiedError:
            assert time.monotonic() < deadline
            time.sleep(0.1)
    assert new_pid != pid
    assert quanta.get(log.add.remote(7), timeout=30) == 7


def test_lanes_can_be_turned_off(make_cluster, monkeypatch):
    monkeypatch.setenv("QUANTA_ACTOR_LANES", "0")
    _, node = head_and_node(make_cluster)
    log = Log.options(**there(node)).remote()
    before = lane_counts()
    assert quanta.get([log.add.remote(i) for i in range(100)]) == list(range(100))
    after = lane_counts()
    assert delta(after, before, "lane_calls_sent") == 0
    assert delta(after, before, "tasks_forwarded") >= 100


def test_a_call_after_kill_does_not_overtake_it(two):
    _, node = two
    for _ in range(3):
        log = Log.options(**there(node)).remote()
        open_lane(log)
        quanta.kill(log)
        with pytest.raises(ActorDiedError):
            quanta.get(log.add.remote(1), timeout=30)


def test_a_threaded_actor_keeps_the_node_route(two):
    _, node = two
    log = Log.options(**there(node, max_concurrency=4)).remote()
    actor_before = quanta.get(log.stats.remote())
    before = lane_counts()
    assert quanta.get([log.add.remote(i) for i in range(100)]) == list(range(100))
    assert [quanta.get(log.add.remote(i)) for i in range(20)] == list(range(20))
    assert delta(lane_counts(), before, "lane_calls_sent") == 0
    actor_after = quanta.get(log.stats.remote())
    assert delta(actor_after, actor_before, "lanes_turned_away") >= 1  # asked for, and refused


@quanta.remote(num_cpus=0)
class Quitter:
    def ping(self):
        return "pong"

    def quit(self):
        quanta.actor.exit_actor()


def test_exit_actor_in_a_lane_call_ends_the_actor_with_that_reason(two):
    _, node = two
    q = Quitter.options(**there(node)).remote()
    open_lane_to(q)
    before = lane_counts()
    with pytest.raises(ActorDiedError, match="exit_actor"):
        quanta.get(q.quit.remote(), timeout=30)
    assert delta(lane_counts(), before, "lane_calls_sent") == 1
    with pytest.raises(ActorDiedError, match="exit_actor"):
        quanta.get(q.ping.remote(), timeout=30)


def test_lane_calls_are_listed_where_they_ran_with_their_worker(make_cluster, monkeypatch):
    from quanta.util import state

    monkeypatch.setenv("QUANTA_TASK_EVENTS_FLUSH_MS", "200")
    _, node = head_and_node(make_cluster)
    log = Log.options(**there(node)).remote()
    open_lane(log)
    pid = quanta.get(log.node.remote())[1]
    before = lane_counts()
    refs = [log.add.remote(i) for i in range(10)]
    quanta.get(refs)
    assert delta(lane_counts(), before, "lane_calls_sent") == 10
    wanted = {r.task_id().hex() for r in refs}
    deadline = time.monotonic() + 20
    while True:
        rows = [t for t in state.list_tasks(limit=10000, detail=True) if t["task_id"] in wanted]
        if len(rows) == 10 and all(t["state"] == "FINISHED" for t in rows):
            break
        assert time.monotonic() < deadline, rows
        time.sleep(0.2)
    assert {t["node_id"] for t in rows} == {node.node_id}
    assert {t["worker_pid"] for t in rows} == {pid}
    assert all(t["type"] == "ACTOR_TASK" for t in rows)
