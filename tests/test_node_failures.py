"""Node deaths on a cluster of real node daemons (quanta.cluster_utils.Cluster), killed with
SIGKILL (`remove_node(allow_graceful=False)`): actors with max_restarts come back on another
node (their owner's node creates them again), calls in flight are retried within
max_task_retries or fail with ActorDiedError, tasks are retried elsewhere within max_retries,
and nothing hangs."""

import os
import time

import pytest

import quanta
from quanta.cluster_utils import Cluster
from quanta.exceptions import ActorDiedError, NodeDiedError
from quanta.util.scheduling_strategies import NodeAffinitySchedulingStrategy


@pytest.fixture
def cluster(no_cluster):
    c = Cluster(initialize_head=True, shutdown_at_exit=False, head_node_args={"num_cpus": 1})
    yield c
    c.shutdown()


def on(node, soft=True):
    return NodeAffinitySchedulingStrategy(node.node_id, soft=soft)


@quanta.remote
class Tally:
    def __init__(self):
        self.n = 0
        self.incarnation = os.getpid()

    def inc(self):
        self.n += 1
        return self.n

    def where(self):
        return quanta.get_runtime_context().get_node_id(), os.getpid()

    def slow(self, seconds):
        time.sleep(seconds)
        self.n += 1
        return self.n


def test_actor_with_restarts_comes_back_on_another_node(cluster):
    doomed = cluster.add_node(num_cpus=1)
    cluster.connect()
    # max_task_retries: a call sent before this node heard of the death is sent again.
    a = Tally.options(max_restarts=1, max_task_retries=-1, scheduling_strategy=on(doomed)).remote()
    node, pid = quanta.get(a.where.remote())
    assert node == doomed.node_id
    assert quanta.get([a.inc.remote() for _ in range(3)]) == [1, 2, 3]
    spare = cluster.add_node(num_cpus=1)
    cluster.remove_node(doomed, allow_graceful=False)
    # Its state is new (__init__ ran again), on a live node, in a new process.
    assert quanta.get(a.inc.remote(), timeout=30) == 1
    node2, pid2 = quanta.get(a.where.remote(), timeout=30)
    assert node2 in (spare.node_id, cluster.head_node.node_id) and node2 != doomed.node_id
    assert pid2 != pid


def test_actor_restarts_on_the_owners_own_node(cluster):
    doomed = cluster.add_node(num_cpus=1)
    cluster.connect()
    a = Tally.options(max_restarts=-1, max_task_retries=-1, scheduling_strategy=on(doomed)).remote()
    assert quanta.get(a.where.remote())[0] == doomed.node_id
    cluster.remove_node(doomed, allow_graceful=False)
    node, _ = quanta.get(a.where.remote(), timeout=30)
    assert node == cluster.head_node.node_id  # the only node left, and the owner's
    assert quanta.get([a.inc.remote() for _ in range(5)]) == [1, 2, 3, 4, 5]


def test_actor_without_restarts_dies_with_its_node(cluster):
    doomed = cluster.add_node(num_cpus=1)
    cluster.add_node(num_cpus=1)
    cluster.connect()
    a = Tally.options(scheduling_strategy=on(doomed)).remote()
    assert quanta.get(a.inc.remote()) == 1
    cluster.remove_node(doomed, allow_graceful=False)
    with pytest.raises(ActorDiedError, match="node"):
        quanta.get(a.inc.remote(), timeout=30)


def test_restarts_are_counted_across_node_deaths(cluster):
    first = cluster.add_node(num_cpus=1, resources={"box": 1})
    cluster.connect()
    a = Tally.options(max_restarts=1, max_task_retries=-1, resources={"box": 0.1}).remote()
    assert quanta.get(a.where.remote())[0] == first.node_id
    second = cluster.add_node(num_cpus=1, resources={"box": 1})
    cluster.remove_node(first, allow_graceful=False)
    assert quanta.get(a.where.remote(), timeout=30)[0] == second.node_id
    cluster.add_node(num_cpus=1, resources={"box": 1})
    cluster.remove_node(second, allow_graceful=False)  # its one restart is spent
    with pytest.raises(ActorDiedError):
        quanta.get(a.inc.remote(), timeout=30)


def test_calls_in_flight_are_retried_only_within_max_task_retries(cluster):
    doomed = cluster.add_node(num_cpus=1)
    cluster.add_node(num_cpus=1)
    cluster.connect()
    keeps = Tally.options(max_restarts=1, max_task_retries=2, scheduling_strategy=on(doomed)).remote()
    drops = Tally.options(max_restarts=1, max_task_retries=0, scheduling_strategy=on(doomed)).remote()
    assert quanta.get([keeps.inc.remote(), drops.inc.remote()]) == [1, 1]
    retried = keeps.slow.remote(3)
    lost = drops.slow.remote(3)
    time.sleep(0.5)  # both are running on the doomed node
    cluster.remove_node(doomed, allow_graceful=False)
    assert quanta.get(retried, timeout=30) == 1  # ran again, on the re-created actor
    with pytest.raises(ActorDiedError):
        quanta.get(lost, timeout=30)
    assert quanta.get(drops.inc.remote(), timeout=30) == 1  # the actor itself came back


def test_tasks_on_a_dead_node_are_retried_elsewhere_or_fail_with_node_died(cluster):
    doomed = cluster.add_node(num_cpus=1, resources={"spot": 1})
    cluster.connect()

    @quanta.remote
    def nap(seconds):
        time.sleep(seconds)
        return quanta.get_runtime_context().get_node_id()

    retried = nap.options(max_retries=1, scheduling_strategy=on(doomed)).remote(3)
    failed = nap.options(max_retries=0, resources={"spot": 1}).remote(3)
    time.sleep(0.5)
    cluster.remove_node(doomed, allow_graceful=False)
    assert quanta.get(retried, timeout=30) == cluster.head_node.node_id
    with pytest.raises(NodeDiedError):
        quanta.get(failed, timeout=30)


# ---------------------------------------------------------------- lost objects (lineage)

@quanta.remote
def make(n, fill):
    import numpy as np

    return np.full(n, fill, dtype=np.uint8)


@quanta.remote
def plus_one(a):
    return a + 1


def _only_on(node_resource):
    return {"resources": {node_resource: 0.01}}


def test_lost_object_is_rebuilt_by_running_its_task_again(cluster):
    doomed = cluster.add_node(num_cpus=1, resources={"spot": 1})
    cluster.add_node(num_cpus=1, resources={"spot": 1})
    cluster.connect()
    ref = make.options(**_only_on("spot")).remote(5_000_000, 7)
    quanta.wait([ref], fetch_local=False)  # made on a spot node, never copied to the driver's
    assert quanta.get(where_made.options(**_only_on("spot")).remote(ref)) in (doomed.node_id,
                                                                            cluster.worker_nodes[1].node_id)
    for node in list(cluster.worker_nodes):  # every copy of it goes
        cluster.remove_node(node, allow_graceful=False)
    cluster.add_node(num_cpus=1, resources={"spot": 1})
    value = quanta.get(ref, timeout=60)
    assert value.shape == (5_000_000,) and int(value[0]) == 7 and int(value[-1]) == 7


@quanta.remote(num_cpus=0)
def where_made(_arr):
    return quanta.get_runtime_context().get_node_id()


def test_lost_chain_is_rebuilt_recursively_through_its_arguments(cluster):
    doomed = cluster.add_node(num_cpus=1, resources={"spot": 1})
    cluster.connect()
    first = make.options(**_only_on("spot")).remote(3_000_000, 1)
    second = plus_one.options(**_only_on("spot")).remote(first)
    quanta.wait([second], fetch_local=False)
    cluster.add_node(num_cpus=1, resources={"spot": 1})
    cluster.remove_node(doomed, allow_graceful=False)  # both copies were there
    value = quanta.get(second, timeout=60)
    assert int(value[0]) == 2 and value.size == 3_000_000
    assert int(quanta.get(first, timeout=60)[-1]) == 1


def test_lost_object_whose_argument_was_freed_is_rebuilt_with_it(cluster):
    # The argument's ref is dropped (and the object freed) once the task that used it is done;
    # its lineage is kept for the task that still has a referenced return (found by test_chaos).
    doomed = cluster.add_node(num_cpus=1, resources={"spot": 1})
    cluster.connect()
    first = make.options(**_only_on("spot")).remote(3_000_000, 4)
    second = plus_one.options(**_only_on("spot")).remote(first)
    quanta.wait([second], fetch_local=False)
    del first
    time.sleep(0.5)  # the driver's release of `first` reaches its node
    cluster.add_node(num_cpus=1, resources={"spot": 1})
    cluster.remove_node(doomed, allow_graceful=False)
    value = quanta.get(second, timeout=60)
    assert value.size == 3_000_000 and int(value[0]) == 5 and int(value[-1]) == 5


@quanta.remote
def sleeper(seconds):
    time.sleep(seconds)


@quanta.remote
def first_byte(a):
    return int(a[0]), a.size


def test_pulled_argument_of_a_queued_task_is_not_evicted_before_it_runs(no_cluster):
    # The head's small store: a task queued there (its CPU busy) has its argument pulled from
    # another node; more pulls then fill the store and evict secondary copies. The queued
    # task's copy must stay until its worker has it (found by test_chaos: ObjectLostError
    # "is not on this node" raised inside a task).
    c = Cluster(initialize_head=True, shutdown_at_exit=False,
                head_node_args={"num_cpus": 1, "object_store_memory": 48 << 20})
    try:
        c.add_node(num_cpus=1, resources={"spot": 1}, object_store_memory=128 << 20)
        c.connect()
        head = NodeAffinitySchedulingStrategy(c.head_node.node_id, soft=False)
        x = make.options(**_only_on("spot")).remote(15_000_000, 7)
        quanta.wait([x], fetch_local=False)
        busy = sleeper.options(scheduling_strategy=head).remote(3)
        queued = first_byte.options(scheduling_strategy=head).remote(x)
        time.sleep(0.5)  # x is pulled to the head while its task waits for the CPU
        others = [make.options(**_only_on("spot")).remote(15_000_000, i) for i in range(4)]
        for i, ref in enumerate(others):  # each read makes room by evicting the oldest pulled copy
            v = quanta.get(ref, timeout=60)
            assert int(v[0]) == i
            del v
        assert quanta.memory_summary(stats_only=True)["total_evicted"] >= 2
        quanta.get(busy, timeout=60)
        assert quanta.get(queued, timeout=60) == (7, 15_000_000)
    finally:
        c.shutdown()


def test_lost_object_read_by_a_task_on_another_node_is_rebuilt(cluster):
    doomed = cluster.add_node(num_cpus=1, resources={"spot": 1})
    reader = cluster.add_node(num_cpus=1, resources={"reader": 1})
    cluster.connect()
    ref = make.options(**_only_on("spot")).remote(2_000_000, 3)
    quanta.wait([ref], fetch_local=False)
    cluster.add_node(num_cpus=1, resources={"spot": 1})
    cluster.remove_node(doomed, allow_graceful=False)

    @quanta.remote(resources={"reader": 1})
    def total(a):
        return int(a.sum()), quanta.get_runtime_context().get_node_id()

    assert quanta.get(total.remote(ref), timeout=60) == (6_000_000, reader.node_id)


def test_lost_object_without_retries_left_raises_reconstruction_failed(cluster):
    doomed = cluster.add_node(num_cpus=1, resources={"spot": 1})
    cluster.connect()
    ref = make.options(max_retries=0, **_only_on("spot")).remote(2_000_000, 9)
    quanta.wait([ref], fetch_local=False)
    cluster.add_node(num_cpus=1, resources={"spot": 1})
    cluster.remove_node(doomed, allow_graceful=False)
    with pytest.raises(quanta.exceptions.ObjectReconstructionFailedMaxAttemptsExceededError,
                       match="no retries left"):
        quanta.get(ref, timeout=60)


def test_lost_object_beyond_the_lineage_budget_raises_lineage_evicted(no_cluster):
    c = Cluster(initialize_head=True, shutdown_at_exit=False,
                head_node_args={"num_cpus": 1, "_system_config": {"max_lineage_bytes": 1}})
    try:
        doomed = c.add_node(num_cpus=1, resources={"spot": 1})
        c.connect()
        ref = make.options(**_only_on("spot")).remote(2_000_000, 4)
        quanta.wait([ref], fetch_local=False)
        c.remove_node(doomed, allow_graceful=False)
        with pytest.raises(quanta.exceptions.ObjectReconstructionFailedLineageEvictedError,
                           match="max_lineage_bytes"):
            quanta.get(ref, timeout=60)
    finally:
        c.shutdown()


def test_unknown_system_config_keys_are_refused(no_cluster):
    with pytest.raises(ValueError, match="not supported"):
        quanta.init(num_cpus=1, _system_config={"object_timeout_milliseconds": 5})
    with pytest.raises(ValueError, match="not supported"):
        Cluster(initialize_head=True, head_node_args={"_system_config": {"no_such_key": 1}})


def test_borrow_of_a_dead_owners_object_raises_owner_died_instead_of_hanging(cluster):
    owner = cluster.add_node(num_cpus=1, resources={"b": 1})
    cluster.add_node(num_cpus=1, resources={"c": 1})
    cluster.connect()

    @quanta.remote(resources={"c": 1}, num_cpus=0)
    class Holder:
        def hold(self, box):
            self.box = box  # a borrow whose value this node has not asked for yet
            return "held"

        def read(self):
            try:
                return quanta.get(self.box[0], timeout=20)
            except Exception as e:  # noqa: BLE001 - the test looks at which error it is
                return type(e).__name__

    @quanta.remote(resources={"b": 1})
    def make_and_hand(h):
        return quanta.get(h.hold.remote([quanta.put(b"x" * 100)]))

    h = Holder.remote()
    assert quanta.get(make_and_hand.remote(h), timeout=30) == "held"
    cluster.remove_node(owner, allow_graceful=False)
    deadline = time.monotonic() + 10
    while any(n["NodeID"] == owner.node_id and n["Alive"] for n in quanta.nodes()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert quanta.get(h.read.remote(), timeout=30) == "OwnerDiedError"
