"""Where tasks run in a cluster of real node daemons (quanta.cluster_utils.Cluster).

The owner node places each task (docs/cluster-design.md §6): on itself when it has room, else on
a node with room (spillback), first on a node holding most of the task's large arguments; SPREAD
rotates over the nodes; NodeAffinitySchedulingStrategy and NodeLabelSchedulingStrategy filter
the candidates; placement groups reserve bundles over the nodes by their strategy and tasks run
in their bundles; demand no node can meet warns, names the demand, and fails after
`infeasible_task_timeout_s` unless a node that fits joins first. Every test reads where a task
ran from inside it (its node id); test_cluster.py covers routing by custom resources.
"""

import time

import numpy as np
import pytest

import quanta
from quanta._private import api
from quanta.exceptions import ActorUnschedulableError, TaskUnschedulableError
from quanta.util.placement_group import placement_group, placement_group_table, remove_placement_group
from quanta.util.scheduling_strategies import (In, NodeAffinitySchedulingStrategy, NodeLabelSchedulingStrategy,
                                               NotIn, PlacementGroupSchedulingStrategy)

MiB = 1 << 20


@quanta.remote
def node_after(seconds=0.0):
    time.sleep(seconds)
    return quanta.get_runtime_context().get_node_id()


@quanta.remote(num_cpus=0)
def make_block(n_bytes):
    return np.ones(n_bytes // 8)


@quanta.remote
def where_is(arr):
    return quanta.get_runtime_context().get_node_id(), arr.nbytes


@quanta.remote(num_cpus=0)
class Stats:
    def stats(self):
        return api.node_stats()


@quanta.remote
class Here:
    def node(self):
        return quanta.get_runtime_context().get_node_id()



def ids(cluster):
    return [n.node_id for n in cluster.list_all_nodes()]


def hard(node):
    return NodeAffinitySchedulingStrategy(node.node_id, soft=False)


def warm(cluster):
    """Starts a worker on every node (the first task of a node starts its worker)."""
    assert quanta.get([node_after.options(scheduling_strategy=hard(n)).remote() for n in cluster.list_all_nodes()],
                      timeout=120) == ids(cluster)


# ----------------------------------------------------------------------------- spread, spillback, locality


@pytest.fixture
def four_one_cpu(make_cluster):
    cluster = make_cluster(head_node_args={"num_cpus": 1})
    for _ in range(3):
        cluster.add_node(num_cpus=1)
    cluster.connect()
    warm(cluster)
    return cluster


def test_spread_runs_four_one_second_tasks_on_four_one_cpu_nodes_in_parallel(four_one_cpu):
    t0 = time.monotonic()
    ran_on = quanta.get([node_after.options(scheduling_strategy="SPREAD").remote(1) for _ in range(4)], timeout=60)
    took = time.monotonic() - t0
    assert sorted(ran_on) == sorted(ids(four_one_cpu))
    assert took < 2.5, f"4 one-second SPREAD tasks on 4 one-CPU nodes took {took:.2f} s"


def test_spread_rotates_over_the_nodes_even_when_the_head_has_room(make_cluster):
    cluster = make_cluster(head_node_args={"num_cpus": 8})
    for _ in range(3):
        cluster.add_node(num_cpus=8)
    cluster.connect()
    ran_on = quanta.get([node_after.options(scheduling_strategy="SPREAD", num_cpus=0).remote() for _ in range(8)],
                        timeout=120)
    assert sorted(ran_on.count(n) for n in ids(cluster)) == [2, 2, 2, 2], ran_on


def test_tasks_the_head_has_no_room_for_spill_back_to_nodes_with_room(four_one_cpu):
    t0 = time.monotonic()
    ran_on = quanta.get([node_after.remote(1) for _ in range(4)], timeout=60)
    took = time.monotonic() - t0
    assert sorted(ran_on) == sorted(ids(four_one_cpu)), ran_on
    assert took < 2.5, f"4 one-second tasks spilled over 4 one-CPU nodes took {took:.2f} s"
    stats = api.node_stats()
    assert stats["tasks_forwarded"] >= 3


def test_a_task_runs_where_its_big_argument_is(make_cluster):
    cluster = make_cluster(head_node_args={"num_cpus": 2})
    b = cluster.add_node(num_cpus=2)
    c = cluster.add_node(num_cpus=2)
    cluster.connect()
    warm(cluster)
    probe_c = Stats.options(scheduling_strategy=hard(c)).remote()
    block = make_block.options(scheduling_strategy=hard(c)).remote(32 * MiB)
    quanta.wait([block], fetch_local=False, timeout=60)
    before_c, before_head = quanta.get(probe_c.stats.remote()), api.node_stats()
    # The head (the owner, with room) and B would have to pull 32 MiB; C has it.
    for _ in range(3):
        assert quanta.get(where_is.remote(block), timeout=60) == (c.node_id, 32 * MiB)
    after_head = api.node_stats()  # before the probe's call, which is forwarded too
    after_c = quanta.get(probe_c.stats.remote())
    assert after_c["pulls_started"] == before_c["pulls_started"]
    assert after_head["pulls_started"] == before_head["pulls_started"]
    assert after_head["tasks_forwarded"] - before_head["tasks_forwarded"] == 3
    # A small argument does not pull the task away from the owner.
    small = make_block.options(scheduling_strategy=hard(c)).remote(64 << 10)
    assert quanta.get(where_is.remote(small), timeout=60)[0] == cluster.head_node.node_id
    del b


# ----------------------------------------------------------------------------- node affinity, labels


def test_node_affinity_hard_waits_for_its_node_and_soft_goes_elsewhere_only_if_it_is_dead(make_cluster):
    cluster = make_cluster(head_node_args={"num_cpus": 1})
    b = cluster.add_node(num_cpus=1)
    c = cluster.add_node(num_cpus=1)
    cluster.connect()
    warm(cluster)
    for soft in (False, True):
        strategy = NodeAffinitySchedulingStrategy(b.node_id, soft=soft)
        assert quanta.get([node_after.options(scheduling_strategy=strategy).remote() for _ in range(3)],
                          timeout=60) == [b.node_id] * 3
        # B is busy for a second: the next one waits for B rather than run on the free head or C.
        busy = node_after.options(scheduling_strategy=hard(b)).remote(1.0)
        time.sleep(0.2)
        assert quanta.get(node_after.options(scheduling_strategy=strategy).remote(), timeout=60) == b.node_id
        quanta.get(busy)
    cluster.remove_node(b, allow_graceful=False)
    # Soft: B is dead, so anywhere else.
    elsewhere = quanta.get(node_after.options(scheduling_strategy=NodeAffinitySchedulingStrategy(
        b.node_id, soft=True)).remote(), timeout=60)
    assert elsewhere in (cluster.head_node.node_id, c.node_id)
    # Hard: its node is dead, so it can never run.
    with pytest.raises(TaskUnschedulableError) as info:
        quanta.get(node_after.options(scheduling_strategy=NodeAffinitySchedulingStrategy(
            b.node_id, soft=False)).remote(), timeout=60)
    assert b.node_id in str(info.value) and "dead" in str(info.value), str(info.value)
    # A soft affinity actor goes elsewhere too; a hard one fails with ActorUnschedulableError.
    soft_actor = Here.options(scheduling_strategy=NodeAffinitySchedulingStrategy(b.node_id, soft=True)).remote()
    assert quanta.get(soft_actor.node.remote(), timeout=60) in (cluster.head_node.node_id, c.node_id)
    hard_actor = Here.options(scheduling_strategy=NodeAffinitySchedulingStrategy(b.node_id, soft=False)).remote()
    with pytest.raises(ActorUnschedulableError):
        quanta.get(hard_actor.node.remote(), timeout=60)


def test_node_labels_select_the_nodes_a_task_may_run_on(make_cluster):
    cluster = make_cluster(head_node_args={"num_cpus": 1, "labels": {"zone": "head"}})
    a = cluster.add_node(num_cpus=1, labels={"zone": "a", "disk": "ssd"})
    b = cluster.add_node(num_cpus=1, labels={"zone": "b"})
    cluster.connect()
    assert {n["NodeID"]: n["Labels"].get("zone") for n in quanta.nodes()} == \
        {cluster.head_node.node_id: "head", a.node_id: "a", b.node_id: "b"}

    def run(strategy, n=4):
        return set(quanta.get([node_after.options(scheduling_strategy=strategy).remote() for _ in range(n)],
                              timeout=60))

    assert run(NodeLabelSchedulingStrategy(hard={"zone": In("b")})) == {b.node_id}
    assert run(NodeLabelSchedulingStrategy(hard={"zone": In("a", "b"), "disk": In("ssd")})) == {a.node_id}
    assert run(NodeLabelSchedulingStrategy(hard={"zone": NotIn("head", "a")})) == {b.node_id}
    # Soft: preferred while it has room there (one at a time: A has one CPU).
    for _ in range(3):
        assert run(NodeLabelSchedulingStrategy(hard={"zone": NotIn("head")}, soft={"disk": In("ssd")}), 1) == {a.node_id}
    # No node has the label: it waits (infeasible) until one joins.
    later = node_after.options(scheduling_strategy=NodeLabelSchedulingStrategy(hard={"zone": In("c")})).remote()
    ready, _ = quanta.wait([later], timeout=1.0)
    assert ready == []
    c = cluster.add_node(num_cpus=1, labels={"zone": "c"})
    assert quanta.get(later, timeout=60) == c.node_id


# ----------------------------------------------------------------------------- placement groups


@pytest.fixture
def four_two_cpu(make_cluster):
    cluster = make_cluster(head_node_args={"num_cpus": 2})
    for _ in range(3):
        cluster.add_node(num_cpus=2)
    cluster.connect()
    return cluster


def in_bundle(pg, i, seconds=0.0):
    return node_after.options(scheduling_strategy=PlacementGroupSchedulingStrategy(
        pg, placement_group_bundle_index=i)).remote(seconds)


def test_placement_group_strategies_place_bundles_across_nodes(four_two_cpu):
    cluster = four_two_cpu
    all_ids = set(ids(cluster))

    def placed(pg):
        assert pg.wait(60), placement_group_table(pg)
        row = placement_group_table(pg)
        assert row["state"] == "CREATED"
        nodes = [row["bundles_to_node_id"][i] for i in range(pg.bundle_count)]
        assert set(nodes) <= all_ids, nodes
        # Tasks in each bundle run on the node the table names for it.
        assert quanta.get([in_bundle(pg, i) for i in range(pg.bundle_count)], timeout=60) == nodes
        return nodes

    def removed(*groups):
        # Removal is asynchronous (as in Ray): wait until the nodes report their CPUs free.
        for pg in groups:
            remove_placement_group(pg)
        deadline = time.monotonic() + 30
        while quanta.available_resources().get("CPU", 0) != 8 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert quanta.available_resources().get("CPU", 0) == 8

    pack = placement_group([{"CPU": 1}, {"CPU": 1}], strategy="PACK")
    assert len(set(placed(pack))) == 1
    strict_pack = placement_group([{"CPU": 1}, {"CPU": 1}], strategy="STRICT_PACK")
    assert len(set(placed(strict_pack))) == 1
    removed(pack, strict_pack)
    spread = placement_group([{"CPU": 1}] * 4, strategy="SPREAD")
    assert len(set(placed(spread))) == 4
    removed(spread)
    strict_spread = placement_group([{"CPU": 2}] * 4, strategy="STRICT_SPREAD")
    assert set(placed(strict_spread)) == all_ids
    # PACK of more than one node holds spills over to a second node.
    removed(strict_spread)
    big_pack = placement_group([{"CPU": 2}, {"CPU": 1}], strategy="PACK")
    assert len(set(placed(big_pack))) == 2
    removed(big_pack)


def test_placement_groups_that_cannot_be_placed_stay_pending_and_removal_frees_their_nodes(four_two_cpu):
    cluster = four_two_cpu
    total = quanta.cluster_resources()["CPU"]
    assert total == 8
    # No node has 3 CPUs; there are not 5 nodes.
    strict_pack = placement_group([{"CPU": 1}] * 3, strategy="STRICT_PACK")
    strict_spread = placement_group([{"CPU": 1}] * 5, strategy="STRICT_SPREAD")
    assert not strict_pack.wait(2) and not strict_spread.wait(0.5)
    assert placement_group_table(strict_pack)["state"] == "PENDING"
    assert placement_group_table(strict_spread)["state"] == "PENDING"
    # A group holding every CPU: tasks outside it wait, tasks in it run.
    everything = placement_group([{"CPU": 2}] * 4, strategy="SPREAD")
    assert everything.wait(60)
    table = placement_group_table()
    assert table[everything.id.hex()]["state"] == "CREATED"
    outside = node_after.remote()
    assert quanta.get(in_bundle(everything, 2), timeout=60) == table[everything.id.hex()]["bundles_to_node_id"][2]
    ready, _ = quanta.wait([outside], timeout=1.0)
    assert ready == []
    remove_placement_group(everything)
    assert quanta.get(outside, timeout=60) in ids(cluster)
    assert placement_group_table(everything)["state"] == "REMOVED"
    for pg in (strict_pack, strict_spread):
        remove_placement_group(pg)
    deadline = time.monotonic() + 30
    while quanta.available_resources().get("CPU", 0) != total and time.monotonic() < deadline:
        time.sleep(0.1)
    assert quanta.available_resources().get("CPU", 0) == total


# ----------------------------------------------------------------------------- infeasible demand


def test_infeasible_task_warns_naming_the_demand_and_fails_after_the_timeout(make_cluster, capfd):
    cluster = make_cluster(head_node_args={"num_cpus": 1, "_system_config": {"infeasible_task_timeout_s": 2}})
    cluster.add_node(num_cpus=2, _system_config={"infeasible_task_timeout_s": 2})
    cluster.connect()
    t0 = time.monotonic()
    ref = node_after.options(resources={"unicorn": 3}).remote()
    too_many_cpus = node_after.options(num_cpus=16).remote()
    with pytest.raises(TaskUnschedulableError) as info:
        quanta.get(ref, timeout=60)
    took = time.monotonic() - t0
    assert 1.5 < took < 30, took
    assert "unicorn" in str(info.value)
    with pytest.raises(TaskUnschedulableError):
        quanta.get(too_many_cpus, timeout=60)
    err = capfd.readouterr().err
    assert "unicorn" in err and "TaskUnschedulableError" in err, err
    # Feasible work is untouched.
    assert quanta.get(node_after.remote(), timeout=60) in ids(cluster)


def test_infeasible_actor_fails_with_actor_unschedulable_after_the_timeout(make_cluster):
    cluster = make_cluster(head_node_args={"num_cpus": 1, "_system_config": {"infeasible_task_timeout_s": 2}})
    cluster.connect()
    actor = Here.options(resources={"unicorn": 1}).remote()
    with pytest.raises(ActorUnschedulableError) as info:
        quanta.get(actor.node.remote(), timeout=60)
    assert "unicorn" in str(info.value)


def test_infeasible_task_runs_when_a_node_that_fits_joins_before_the_timeout(make_cluster):
    cluster = make_cluster(head_node_args={"num_cpus": 1, "_system_config": {"infeasible_task_timeout_s": 20}})
    cluster.connect()
    ref = node_after.options(resources={"late": 1}).remote()
    actor = Here.options(resources={"late": 1}).remote()
    ready, _ = quanta.wait([ref], timeout=1.0)
    assert ready == []
    late = cluster.add_node(num_cpus=2, resources={"late": 2})
    assert quanta.get(ref, timeout=60) == late.node_id
    assert quanta.get(actor.node.remote(), timeout=60) == late.node_id
