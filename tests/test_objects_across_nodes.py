"""Objects across the nodes of a cluster of real node daemons (quanta.cluster_utils.Cluster).

Each node is its own `quanta_node` process with its own shared-memory store; object bytes move
between stores over the nodes' TCP data channels (docs/cluster-design.md §7). The tests prove
what moved with the nodes' own counters (`node_stats()`, read on each node by a probe actor
pinned there) and the stores' usage (`memory_summary()` on each node):

* transfers both ways (the driver on the head gets an object a task made on node B; a task on B
  reads an object the driver put), a 200 MB array arrives whole and is read without a copy;
* one pull per object per node however many tasks wait for it, and a broadcast of one object to
  three nodes costs one transfer each;
* `wait(fetch_local=True)` pulls the object here, `fetch_local=False` does not;
* once the last reference is gone the secondary copies are freed and every node's store is back
  to its baseline; refs inside objects passed to a third node stay valid and are freed after;
* a holder killed while its copy is being pulled: the pull retries from another copy, or the
  reader gets ObjectLostError (never a hang);
* an object larger than the receiver's free store: the receiver spills or waits, or refuses with
  ObjectStoreFullError when it can never fit; the node keeps running.
"""

import signal
import threading
import time

import numpy as np
import pytest

import quanta
from quanta._private import api
from quanta.exceptions import ObjectLostError, ObjectStoreFullError
from quanta.util.scheduling_strategies import NodeAffinitySchedulingStrategy

MiB = 1 << 20


# ----------------------------------------------------------------------------- helpers


@quanta.remote(num_cpus=0)
class Probe:
    """Pinned to one node: reads that node's counters and store."""

    def stats(self):
        return api.node_stats()

    def store(self):
        return quanta.memory_summary()

    def node(self):
        return quanta.get_runtime_context().get_node_id()


def pinned(node, **options):
    return dict(scheduling_strategy=NodeAffinitySchedulingStrategy(node.node_id, soft=False), **options)


@quanta.remote(num_cpus=0)
def make_array(n_bytes, seed=0):
    return np.arange(n_bytes // 8, dtype=np.float64) + seed


@quanta.remote(num_cpus=0)
def checksum(arr):
    return float(arr[::4096].sum()), arr.nbytes, quanta.get_runtime_context().get_node_id()


@quanta.remote(num_cpus=0)
def checksum_after(arr, seconds):
    time.sleep(seconds)
    return float(arr[::4096].sum()), arr.nbytes


@quanta.remote(num_cpus=0)
def slow_array(n_bytes, seconds):
    time.sleep(seconds)
    return np.ones(n_bytes // 8)


def expected_sum(n_bytes, seed=0):
    return float((np.arange(n_bytes // 8, dtype=np.float64) + seed)[::4096].sum())


def wait_for(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


class Nodes:
    """The cluster's nodes by name, each with a probe actor living there."""

    def __init__(self, cluster, names):
        self.cluster = cluster
        self.by_name = dict(zip(names, cluster.list_all_nodes()))
        self.probes = {name: Probe.options(**pinned(node)).remote() for name, node in self.by_name.items()}
        for name, node in self.by_name.items():
            assert quanta.get(self.probes[name].node.remote(), timeout=60) == node.node_id

    def __getitem__(self, name):
        return self.by_name[name]

    def stats(self, name):
        return quanta.get(self.probes[name].stats.remote(), timeout=30)

    def all_stats(self):
        return {name: self.stats(name) for name in self.by_name}

    def store(self, name):
        return quanta.get(self.probes[name].store.remote(), timeout=30)

    def usage(self):
        """Bytes in shared memory and secondary copies per node."""
        out = {}
        for name in self.by_name:
            s = self.store(name)
            out[name] = (s["used"], s["num_secondary"])
        return out

    def holds(self, name, ref):
        return [o["where"] for o in self.store(name)["objects"] if o["object_id"] == ref.hex()]


def delta(after, before, key):
    return after[key] - before[key]



@pytest.fixture
def four(make_cluster):
    """A head and nodes b, c, d, one CPU and a 512 MiB store each; connected; probes on each."""
    cluster = make_cluster(head_node_args={"num_cpus": 1, "object_store_memory": 512 * MiB})
    for _ in "bcd":
        cluster.add_node(num_cpus=1, object_store_memory=512 * MiB)
    cluster.connect()
    return Nodes(cluster, ["head", "b", "c", "d"])


# ----------------------------------------------------------------------------- transfers


def test_objects_move_both_ways_between_head_and_another_node(four):
    n = four
    size = 8 * MiB
    # Made on B, read by the driver on the head.
    before_head, before_b = n.stats("head"), n.stats("b")
    ref = make_array.options(**pinned(n["b"])).remote(size, seed=1)
    arr = quanta.get(ref, timeout=60)
    assert arr.nbytes == size and float(arr[::4096].sum()) == expected_sum(size, 1)
    after_head, after_b = n.stats("head"), n.stats("b")
    assert delta(after_head, before_head, "pulls_done") == 1
    assert delta(after_head, before_head, "transfer_bytes_received") >= size
    assert delta(after_b, before_b, "objects_served") == 1
    assert delta(after_b, before_b, "transfer_bytes_sent") >= size
    assert n.holds("head", ref) == ["secondary_copy"]
    del arr

    # Put on the head, read by a task on B.
    before_head, before_b = after_head, after_b
    put = quanta.put(np.arange(size // 8, dtype=np.float64) + 2)
    total, nbytes, where = quanta.get(checksum.options(**pinned(n["b"])).remote(put), timeout=60)
    assert (total, nbytes, where) == (expected_sum(size, 2), size, n["b"].node_id)
    after_head, after_b = n.stats("head"), n.stats("b")
    assert delta(after_b, before_b, "pulls_done") == 1
    assert delta(after_b, before_b, "transfer_bytes_received") >= size
    assert delta(after_head, before_head, "objects_served") == 1
    assert delta(after_head, before_head, "transfer_bytes_sent") >= size


def test_a_200_mb_array_arrives_whole_and_is_read_without_a_copy(four):
    n = four
    size = 200 * 1000 * 1000
    before = n.stats("head")
    ref = make_array.options(**pinned(n["c"])).remote(size, seed=3)
    a = quanta.get(ref, timeout=120)
    b = quanta.get(ref, timeout=120)
    after = n.stats("head")
    assert a.nbytes == size
    assert a[0] == 3.0 and a[-1] == size // 8 - 1 + 3.0
    assert float(a[::4096].sum()) == expected_sum(size, 3)
    assert delta(after, before, "transfer_bytes_received") >= size
    assert delta(after, before, "pulls_done") == 1  # the second get found the local copy
    # Zero-copy: both arrays are read-only views of the same bytes of the head's store.
    assert not a.flags.writeable
    assert a.__array_interface__["data"][0] == b.__array_interface__["data"][0]
    store = n.store("head")
    mine = [o for o in store["objects"] if o["object_id"] == ref.hex()]
    assert mine and mine[0]["size"] >= size and mine[0]["where"] == "secondary_copy"


def test_many_tasks_waiting_for_one_object_on_a_node_cost_one_transfer(four):
    n = four
    size = 16 * MiB
    before_b, before_c = n.stats("b"), n.stats("c")
    # The object appears on C after a second; eight tasks on B are waiting for it by then.
    src = slow_array.options(**pinned(n["c"])).remote(size, 1.0)
    readers = [checksum_after.options(**pinned(n["b"])).remote(src, 0.2) for _ in range(8)]
    results = quanta.get(readers, timeout=120)
    assert results == [(float(np.ones(size // 8)[::4096].sum()), size)] * 8
    after_b, after_c = n.stats("b"), n.stats("c")
    assert delta(after_b, before_b, "pulls_started") == 1
    assert delta(after_b, before_b, "pulls_done") == 1
    assert size <= delta(after_b, before_b, "transfer_bytes_received") < 2 * size
    assert delta(after_c, before_c, "objects_served") == 1


def test_one_object_broadcast_to_three_nodes_is_one_transfer_to_each(four):
    n = four
    size = 32 * MiB
    before = n.all_stats()
    ref = quanta.put(np.arange(size // 8, dtype=np.float64))
    got = quanta.get([checksum.options(**pinned(n[x])).remote(ref) for x in "bcd"], timeout=120)
    assert got == [(expected_sum(size), size, n[x].node_id) for x in "bcd"]
    after = n.all_stats()
    for x in "bcd":
        assert delta(after[x], before[x], "pulls_done") == 1, x
        assert size <= delta(after[x], before[x], "transfer_bytes_received") < 2 * size, x
        assert n.holds(x, ref) == ["secondary_copy"], x
    assert delta(after["head"], before["head"], "pulls_started") == 0
    assert sum(delta(after[x], before[x], "objects_served") for x in after) == 3


def test_wait_with_fetch_local_pulls_the_object_and_without_it_does_not(four):
    n = four
    size = 4 * MiB
    ref = make_array.options(**pinned(n["d"])).remote(size)
    quanta.get(checksum.options(**pinned(n["d"])).remote(ref), timeout=60)  # made and sealed on D
    before = n.stats("head")
    ready, not_ready = quanta.wait([ref], fetch_local=False, timeout=30)
    assert ready == [ref] and not_ready == []
    time.sleep(0.5)  # a pull started anyway would have begun by now
    assert delta(n.stats("head"), before, "pulls_started") == 0
    assert n.holds("head", ref) == ["on_other_nodes"]  # known here, bytes only on D
    ready, _ = quanta.wait([ref], fetch_local=True, timeout=30)
    assert ready == [ref]
    after = n.stats("head")
    assert delta(after, before, "pulls_done") == 1
    assert delta(after, before, "transfer_bytes_received") >= size
    assert n.holds("head", ref) == ["secondary_copy"]
    # The pulled copy serves the get without another transfer.
    assert quanta.get(ref, timeout=30).nbytes == size
    assert delta(n.stats("head"), before, "pulls_started") == 1


def test_every_store_returns_to_its_baseline_after_the_last_reference_is_dropped(four):
    n = four
    baseline = n.usage()
    before = n.all_stats()
    size = 24 * MiB
    made_on_b = make_array.options(**pinned(n["b"])).remote(size, seed=5)
    put_here = quanta.put(np.arange(size // 8, dtype=np.float64))
    reads = [checksum.options(**pinned(n[x])).remote(r) for x in "cd" for r in (made_on_b, put_here)]
    assert [t for t, _, _ in quanta.get(reads, timeout=120)] == [expected_sum(size, 5), expected_sum(size)] * 2
    arr = quanta.get(made_on_b, timeout=60)
    during = n.usage()
    # Copies everywhere: B has the primary, C and D secondaries of both, the head both.
    for x in ("head", "c", "d"):
        assert during[x][1] >= 1 and during[x][0] >= baseline[x][0] + size, (x, during, baseline)
    assert during["b"][0] >= baseline["b"][0] + size
    del arr, made_on_b, put_here, reads
    wait_for(lambda: n.usage() == baseline, 30, f"every store back to its baseline {baseline}")
    after = n.all_stats()
    assert delta(after["head"], before["head"], "frees_sent") >= 2


@quanta.remote(num_cpus=0)
def unwrap_and_sum(box):
    (inner,) = box["refs"]
    arr = quanta.get(inner, timeout=60)
    return float(arr[::4096].sum()), quanta.get_runtime_context().get_node_id()


@quanta.remote(num_cpus=0)
def rewrap(box):
    return {"again": box["refs"]}


def test_refs_inside_objects_reach_a_third_node_and_are_freed_after(four):
    n = four
    baseline = n.usage()
    before_c = n.stats("c")
    size = 8 * MiB
    inner = make_array.options(**pinned(n["b"])).remote(size, seed=7)
    box = quanta.put({"refs": [inner], "pad": b"x" * (2 * MiB)})  # stored, not inline
    del inner  # only the box keeps it alive now
    # A task on C gets the box (a transfer from the head) and the ref inside it (one from B).
    assert quanta.get(unwrap_and_sum.options(**pinned(n["c"])).remote(box), timeout=60) == \
        (expected_sum(size, 7), n["c"].node_id)
    after_c = n.stats("c")
    assert delta(after_c, before_c, "pulls_done") == 2
    assert delta(after_c, before_c, "borrows_registered") >= 1
    # The ref comes back inside a result made on D and is still valid at the driver.
    again = quanta.get(rewrap.options(**pinned(n["d"])).remote(box), timeout=60)
    del box
    (inner_again,) = again["again"]
    assert float(quanta.get(inner_again, timeout=60)[::4096].sum()) == expected_sum(size, 7)
    del inner_again, again
    wait_for(lambda: n.usage() == baseline, 30, f"every store back to its baseline {baseline}")


# ----------------------------------------------------------------------------- faults


def stop(node):
    for _, proc in node._session._procs:
        proc.send_signal(signal.SIGSTOP)


def get_in_thread(ref, timeout):
    out = {}

    def run():
        try:
            out["value"] = quanta.get(ref, timeout=timeout)
        except BaseException as e:  # noqa: BLE001 -- the test looks at it
            out["error"] = e

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, out


def stop_mid_transfer(node, ref, size):
    """Starts the driver's get of `ref` (stored only elsewhere) and SIGSTOPs `node`, its source,
    once part of the bytes have reached the head. Returns (thread, out, bytes received then)."""
    before = api.node_stats()["transfer_bytes_received"]
    t, out = get_in_thread(ref, 120)
    deadline = time.monotonic() + 30
    while True:
        got = api.node_stats()["transfer_bytes_received"] - before
        if got > 0:
            stop(node)
            break
        if time.monotonic() > deadline:
            raise AssertionError("no byte of the object arrived within 30 s")
    time.sleep(0.2)
    return t, out, api.node_stats()["transfer_bytes_received"] - before


def test_holder_killed_mid_transfer_the_pull_retries_from_another_copy(make_cluster):
    cluster = make_cluster(head_node_args={"num_cpus": 1, "object_store_memory": 768 * MiB})
    for _ in "bc":
        cluster.add_node(num_cpus=1, object_store_memory=768 * MiB)
    cluster.connect()
    n = Nodes(cluster, ["head", "b", "c"])
    size = 512 * MiB
    ref = make_array.options(**pinned(n["b"]), max_retries=0).remote(size, seed=9)
    assert quanta.get(checksum.options(**pinned(n["c"])).remote(ref), timeout=120)[0] == expected_sum(size, 9)
    assert n.holds("c", ref) == ["secondary_copy"]
    before = n.stats("head")
    # B is the first location the owner knows; it stops with part of the bytes sent, then dies.
    t, out, got = stop_mid_transfer(n["b"], ref, size)
    assert 0 < got < size, f"the transfer was not stopped midway ({got} of {size} bytes)"
    cluster.remove_node(n["b"], allow_graceful=False)
    t.join(60)
    assert not t.is_alive(), "the get hung after the holder died"
    assert "error" not in out, out
    assert float(out["value"][::4096].sum()) == expected_sum(size, 9)
    after = n.stats("head")
    assert delta(after, before, "pull_retries") == 1  # B's attempt failed, C served it
    assert delta(after, before, "pulls_done") == 1
    assert delta(after, before, "transfers_failed") == 1
    assert delta(after, before, "transfer_bytes_received") >= size + got


def test_holder_killed_mid_transfer_with_no_other_copy_raises_object_lost(make_cluster):
    cluster = make_cluster(head_node_args={"num_cpus": 1, "object_store_memory": 768 * MiB})
    cluster.add_node(num_cpus=1, object_store_memory=768 * MiB)
    cluster.connect()
    n = Nodes(cluster, ["head", "b"])
    size = 512 * MiB
    ref = make_array.options(**pinned(n["b"]), max_retries=0).remote(size)
    quanta.wait([ref], fetch_local=False, timeout=120)
    baseline_used = n.store("head")["used"]
    t, out, got = stop_mid_transfer(n["b"], ref, size)
    assert 0 < got < size, f"the transfer was not stopped midway ({got} of {size} bytes)"
    cluster.remove_node(n["b"], allow_graceful=False)
    t.join(60)
    assert not t.is_alive(), "the get hung after the only holder died"
    assert isinstance(out.get("error"), ObjectLostError), out
    # Nothing half-received stays in the head's store, and the head still runs tasks.
    wait_for(lambda: n.store("head")["used"] <= baseline_used, 10, "the partial copy to be dropped")
    assert quanta.get(checksum.remote(quanta.put(np.zeros(MiB // 8))), timeout=60)[1] == MiB


def test_an_object_larger_than_the_receivers_free_store_spills_or_waits(make_cluster):
    cluster = make_cluster(head_node_args={"num_cpus": 1, "object_store_memory": 512 * MiB})
    small = cluster.add_node(num_cpus=1, object_store_memory=96 * MiB)
    cluster.connect()
    n = Nodes(cluster, ["head", "small"])
    # 60 MB of primaries on the small node, referenced by the driver, then a 60 MB pull to it.
    filler = [make_array.options(**pinned(small)).remote(20 * MiB, seed=i) for i in range(3)]
    quanta.wait(filler, num_returns=3, fetch_local=False, timeout=60)
    used = n.store("small")["used"]
    assert used >= 60 * MiB
    big = quanta.put(np.arange(60 * MiB // 8, dtype=np.float64))
    assert quanta.get(checksum.options(**pinned(small)).remote(big), timeout=120)[:2] == \
        (expected_sum(60 * MiB), 60 * MiB)
    s = n.store("small")
    assert s["total_spilled"] >= 1 or s["total_evicted"] >= 1, s
    # The spilled primaries are still there for their readers.
    assert [quanta.get(checksum.options(**pinned(small)).remote(f), timeout=60)[0] for f in filler] == \
        [expected_sum(20 * MiB, i) for i in range(3)]

    # Never fits: refused with a clear error; the node keeps serving.
    huge = quanta.put(np.zeros(128 * MiB // 8))
    with pytest.raises(ObjectStoreFullError) as info:
        quanta.get(checksum.options(**pinned(small)).remote(huge), timeout=120)
    message = str(info.value)
    assert "store" in message.lower(), message
    assert quanta.get(n.probes["small"].node.remote(), timeout=30) == small.node_id
    assert all(p.poll() is None for _, p in small._session._procs), "the small node's daemon died"
    assert quanta.get(checksum.options(**pinned(small)).remote(quanta.put(np.ones(MiB // 8))), timeout=60)[1] == MiB
