"""Generator tasks and actor methods (Ray's streaming generators, num_returns="streaming").

Real workers yield values; each item reaches the caller as it is produced (the tests observe the
producer's progress through a side actor while the consumer holds back, so backpressure is
seen, not assumed). Also: large items through shared memory, errors at their position,
cancellation, async iteration, quanta.wait on a generator, num_returns="dynamic" and
num_returns=N, sync and async actor methods, a worker dying mid-stream (retried without
duplicates, or the error at its position), and a generator on another node of a Cluster whose
items are owned by the caller's node and whose bytes crossed TCP.
"""

import asyncio
import os
import time

import numpy as np
import pytest

import quanta
from quanta import exceptions
from quanta._private import api
from quanta.cluster_utils import Cluster


@quanta.remote
def count_to(n):
    for i in range(n):
        yield i


@quanta.remote
class Progress:
    def __init__(self):
        self.n = 0

    def bump(self):
        self.n += 1

    def value(self):
        return self.n


def test_a_generator_function_streams_1000_values(cluster):
    gen = count_to.remote(1000)
    assert isinstance(gen, quanta.ObjectRefGenerator)
    values = [quanta.get(ref) for ref in gen]
    assert values == list(range(1000))
    assert gen.is_finished()
    assert quanta.get(gen.completed(), timeout=10) == 1000  # the completion holds the count
    with pytest.raises(StopIteration):
        next(gen)


def test_items_arrive_while_the_generator_still_runs(cluster):
    @quanta.remote
    def slow():
        yield "first"
        time.sleep(3)
        yield "second"

    gen = slow.remote()
    start = time.monotonic()
    assert quanta.get(next(gen)) == "first"
    assert time.monotonic() - start < 2.5  # not held back until the task ends
    assert not gen.is_finished()
    assert quanta.get(next(gen)) == "second"


def test_large_items_go_through_shared_memory(cluster):
    @quanta.remote
    def arrays():
        for i in range(10):
            yield np.full(50 * 1024 * 1024 // 8, i, dtype=np.int64)

    gen = arrays.remote()
    for i, ref in enumerate(gen):
        arr = quanta.get(ref, timeout=60)
        assert arr.nbytes == 50 * 1024 * 1024
        assert arr[0] == i and arr[-1] == i
        assert not arr.flags.writeable  # a read-only view of the store, not a copy
        del arr, ref
    assert i == 9


def test_an_exception_is_raised_at_its_position(cluster):
    @quanta.remote
    def breaks():
        yield 0
        yield 1
        raise ValueError("broken at 2")

    gen = breaks.remote()
    assert quanta.get(next(gen)) == 0
    assert quanta.get(next(gen)) == 1
    bad = next(gen)
    with pytest.raises(ValueError, match="broken at 2"):
        quanta.get(bad)
    with pytest.raises(StopIteration):
        next(gen)


def test_num_returns_streaming_and_bad_options(cluster):
    @quanta.remote(num_returns="streaming")
    def three():
        yield from (1, 2, 3)

    assert [quanta.get(r) for r in three.remote()] == [1, 2, 3]

    @quanta.remote(num_returns="streaming")
    def not_a_generator():
        return 5

    gen = not_a_generator.remote()
    with pytest.raises(TypeError, match="not a generator"):
        quanta.get(next(gen))
    with pytest.raises(ValueError, match="_generator_backpressure_num_objects"):
        count_to.options(_generator_backpressure_num_objects=0).remote(3)

    @quanta.remote
    def plain():
        return 1

    with pytest.raises(ValueError, match="only to streaming generators"):
        plain.options(_generator_backpressure_num_objects=2).remote()
    with pytest.raises(TypeError, match="streaming"):
        count_to.options(num_returns="many").remote(3)
    with pytest.raises(TypeError, match="cannot be pickled"):
        import pickle

        pickle.dumps(count_to.remote(1))


def test_backpressure_bounds_the_producer(cluster):
    progress = Progress.remote()

    @quanta.remote
    def produce(progress, n):
        for i in range(n):
            quanta.get(progress.bump.remote())
            yield i

    # Without backpressure the producer runs ahead of a consumer that takes nothing...
    free = produce.remote(progress, 20)
    deadline = time.monotonic() + 20
    while quanta.get(progress.value.remote()) < 20 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert quanta.get(progress.value.remote()) == 20
    del free

    # ...with it, it stops once 2 items are unconsumed.
    progress = Progress.remote()
    gen = produce.options(_generator_backpressure_num_objects=2).remote(progress, 20)
    assert quanta.get(next(gen)) == 0
    time.sleep(1.5)
    assert quanta.get(progress.value.remote()) == 3  # 1 taken + 2 waiting, then paused
    assert quanta.get(next(gen)) == 1
    time.sleep(1.0)
    assert quanta.get(progress.value.remote()) == 4
    rest = [quanta.get(r) for r in gen]
    assert rest == list(range(2, 20))


def test_cancel_stops_the_generator(cluster):
    progress = Progress.remote()

    @quanta.remote
    def forever(progress):
        i = 0
        while True:
            quanta.get(progress.bump.remote())
            yield i
            i += 1
            time.sleep(0.05)

    gen = forever.remote(progress)
    assert quanta.get(next(gen)) == 0
    assert quanta.get(next(gen)) == 1
    quanta.cancel(gen)
    start = time.monotonic()
    cancelled = False
    for ref in gen:
        try:
            quanta.get(ref, timeout=10)
        except exceptions.TaskCancelledError:
            cancelled = True
    assert cancelled
    assert time.monotonic() - start < 10
    made = quanta.get(progress.value.remote())
    time.sleep(0.5)
    assert quanta.get(progress.value.remote()) == made  # it really stopped


def test_async_for_and_wait(cluster):
    @quanta.remote
    def slow_items():
        for i in range(3):
            time.sleep(0.5)
            yield i * 10

    gen = slow_items.remote()
    ready, not_ready = quanta.wait([gen], timeout=0.05)
    assert ready == [] and not_ready == [gen]
    ready, _ = quanta.wait([gen], timeout=10)
    assert ready == [gen]

    async def consume():
        return [await ref async for ref in gen]

    assert asyncio.run(consume()) == [0, 10, 20]
    ready, _ = quanta.wait([gen], timeout=10)  # ended: next() would not block either
    assert ready == [gen]


def test_dynamic_returns_one_ref_to_the_refs(cluster):
    @quanta.remote(num_returns="dynamic")
    def split(n):
        for i in range(n):
            yield np.arange(i * 100000)  # some inline, some through the store

    ref = split.remote(4)
    assert isinstance(ref, quanta.ObjectRef)
    dyn = quanta.get(ref)
    assert isinstance(dyn, quanta.DynamicObjectRefGenerator)
    assert len(dyn) == 4
    for i, r in enumerate(dyn):
        assert len(quanta.get(r)) == i * 100000


def test_num_returns_n_with_a_generator(cluster):
    @quanta.remote(num_returns=3)
    def three():
        yield "a"
        yield "b"
        yield "c"

    assert quanta.get(three.remote()) == ["a", "b", "c"]

    @quanta.remote(num_returns=3)
    def two():
        yield "a"
        yield "b"

    refs = two.remote()
    with pytest.raises(ValueError, match="returned 2 objects, but num_returns=3"):
        quanta.get(refs[0])


@quanta.remote
class Streams:
    def __init__(self):
        self.calls = 0

    def numbers(self, n):
        self.calls += 1
        for i in range(n):
            yield i * self.calls

    def calls_so_far(self):
        return self.calls


@quanta.remote
class AsyncStreams:
    async def letters(self, word):
        for ch in word:
            await asyncio.sleep(0.01)
            yield ch

    async def ping(self):
        return "pong"


def test_actor_generator_methods(cluster):
    s = Streams.remote()
    assert [quanta.get(r) for r in s.numbers.remote(5)] == [0, 1, 2, 3, 4]
    assert [quanta.get(r) for r in s.numbers.remote(3)] == [0, 2, 4]
    assert quanta.get(s.calls_so_far.remote()) == 2
    assert quanta.get(s.numbers.options(num_returns=2).remote(2)) == [0, 3]

    a = AsyncStreams.remote()
    gen = a.letters.remote("stream")
    assert quanta.get(a.ping.remote()) == "pong"  # the loop serves other calls meanwhile
    assert "".join(quanta.get(r) for r in gen) == "stream"
    assert gen.is_finished()


def test_threaded_and_async_actor_generators_in_every_mode(cluster):
    @quanta.remote(max_concurrency=4)
    class Threaded:
        def g(self, n):
            for i in range(n):
                time.sleep(0.01)
                yield i

    t = Threaded.remote()
    gens = [t.g.remote(20) for _ in range(4)]  # four streams at once on the actor's threads
    assert [sum(quanta.get(r) for r in g) for g in gens] == [190] * 4

    a = AsyncStreams.remote()
    dyn = quanta.get(a.letters.options(num_returns="dynamic").remote("abc"))
    assert [quanta.get(r) for r in dyn] == ["a", "b", "c"]
    assert quanta.get(a.letters.options(num_returns=2).remote("xy")) == ["x", "y"]
    with pytest.raises(ValueError, match="returned 3 objects, but num_returns=2"):
        quanta.get(a.letters.options(num_returns=2).remote("xyz")[0])


def test_async_actor_generator_with_backpressure(cluster):
    @quanta.remote
    class Producer:
        def __init__(self):
            self.made = 0

        async def items(self, n):
            for i in range(n):
                self.made += 1
                yield i

        async def made_so_far(self):
            return self.made

    p = Producer.remote()
    gen = p.items.options(_generator_backpressure_num_objects=3).remote(50)
    assert quanta.get(next(gen)) == 0
    time.sleep(1.0)
    assert quanta.get(p.made_so_far.remote()) == 4  # paused; its other calls still run
    assert [quanta.get(r) for r in gen] == list(range(1, 50))


def test_dropping_a_generator_frees_its_items(cluster):
    @quanta.remote
    def big():
        for _ in range(3):
            yield np.zeros(20 * 1024 * 1024, dtype=np.uint8)

    core = api.ensure_core()
    before = core.store_stats(10000)["used"]
    gen = big.remote()
    first = next(gen)
    quanta.get(gen.completed(), timeout=60)
    assert core.store_stats(10000)["used"] - before >= 60 * 1024 * 1024  # all three held
    del gen  # the two items never taken go; the one taken stays while its ref lives
    deadline = time.monotonic() + 10
    while core.store_stats(10000)["used"] - before > 30 * 1024 * 1024 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert 20 * 1024 * 1024 <= core.store_stats(10000)["used"] - before <= 30 * 1024 * 1024
    assert quanta.get(first).nbytes == 20 * 1024 * 1024
    del first
    deadline = time.monotonic() + 10
    while core.store_stats(10000)["used"] - before > 1024 * 1024 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert core.store_stats(10000)["used"] - before <= 1024 * 1024


def test_items_may_hold_refs_and_tasks_may_consume_generators(cluster):
    @quanta.remote
    def refs(n):
        for i in range(n):
            yield [quanta.put(i * 7)]  # a ref the worker made, inside the item

    @quanta.remote
    def total(n):
        return sum(quanta.get(r) for r in count_to.remote(n))  # a worker consuming a stream

    got = [quanta.get(quanta.get(r)[0]) for r in refs.remote(5)]
    assert got == [0, 7, 14, 21, 28]
    assert quanta.get(total.remote(100), timeout=60) == sum(range(100))


def test_a_dying_worker_is_retried_without_duplicates(cluster, tmp_path):
    marker = tmp_path / "died"

    @quanta.remote(max_retries=1)
    def flaky(path):
        for i in range(10):
            if i == 5 and not os.path.exists(path):
                open(path, "w").close()
                os._exit(1)
            yield i

    assert [quanta.get(r) for r in flaky.remote(str(marker))] == list(range(10))

    marker.unlink()

    @quanta.remote(max_retries=0)
    def dies(path):
        for i in range(10):
            if i == 5:
                os._exit(1)
            yield i

    gen = dies.remote(str(marker))
    got = []
    with pytest.raises(exceptions.WorkerCrashedError):
        for r in gen:
            got.append(quanta.get(r))
    assert got == [0, 1, 2, 3, 4]


@pytest.fixture
def two_nodes(no_cluster):
    cluster = Cluster(initialize_head=True, shutdown_at_exit=False, head_node_args={"num_cpus": 1})
    cluster.add_node(num_cpus=2, resources={"far": 4})
    cluster.connect()
    yield cluster
    cluster.shutdown()


def test_a_generator_on_another_node(two_nodes):
    @quanta.remote(resources={"far": 1}, num_cpus=0)
    def remote_items(n):
        for i in range(n):
            yield np.full(1024 * 1024, i, dtype=np.int64) if i % 2 else i  # 8 MiB or inline

    @quanta.remote(resources={"far": 1}, num_cpus=0)
    class FarStreams:
        def node(self):
            return api.node_stats()["node_index"]

        def words(self, n):
            for i in range(n):
                yield f"w{i}"

    here = api.node_stats()
    gen = remote_items.remote(10)
    for i, ref in enumerate(gen):
        # Owned by the caller's node: the id names the driver's node.
        assert int.from_bytes(ref.binary()[4:8], "little") == here["node_index"]
        v = quanta.get(ref, timeout=60)
        if i % 2:
            assert v[0] == i and v.nbytes == 8 * 1024 * 1024
        else:
            assert v == i
    assert i == 9
    after = api.node_stats()
    assert after["tasks_forwarded"] - here["tasks_forwarded"] >= 1
    assert after["generator_items_sealed"] - here["generator_items_sealed"] == 10
    assert after["transfer_bytes_received"] - here["transfer_bytes_received"] >= 5 * 8 * 1024 * 1024

    @quanta.remote(resources={"far": 1}, num_cpus=0)
    def far_refs(n):
        for i in range(n):
            yield {"ref": quanta.put(np.full(200000, i))}  # a stored object of the far node inside

    for i, r in enumerate(far_refs.remote(3)):
        assert quanta.get(quanta.get(r)["ref"], timeout=30)[0] == i

    far = FarStreams.remote()
    assert quanta.get(far.node.remote()) != here["node_index"]
    assert [quanta.get(r) for r in far.words.remote(200)] == [f"w{i}" for i in range(200)]


def test_a_generator_whose_node_dies_is_retried_elsewhere_without_duplicates(two_nodes):
    from quanta.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    doomed = two_nodes.add_node(num_cpus=1)
    two_nodes.wait_for_nodes()

    @quanta.remote
    def paced(n):
        for i in range(n):
            time.sleep(0.1)
            yield (i, quanta.get_runtime_context().get_node_id())

    strategy = NodeAffinitySchedulingStrategy(doomed.node_id, soft=True)
    gen = paced.options(max_retries=1, scheduling_strategy=strategy).remote(30)
    got = [quanta.get(next(gen)) for _ in range(5)]
    assert all(node == doomed.node_id for _, node in got)
    two_nodes.remove_node(doomed, allow_graceful=False)
    got += [quanta.get(r, timeout=30) for r in gen]
    assert [i for i, _ in got] == list(range(30))  # each index once, in order
    assert got[-1][1] != doomed.node_id  # the end came from the re-run on another node
