"""quanta.util.queue.Queue: an actor-backed FIFO queue shared by the driver, tasks and actors.

Order and sizes, blocking with timeouts, Empty/Full, batches, asyncio use, many producers and
consumers at once (tasks and actors, a small maxsize so that both sides block), actor_options,
and shutdown (graceful and forced), all with real processes on the shared 4-CPU cluster.
"""

import asyncio
import queue as stdlib_queue
import time

import pytest

import quanta
from quanta.exceptions import ActorDiedError
from quanta.util.queue import Empty, Full, Queue


@quanta.remote
def produce(q, tag, count):
    for i in range(count):
        q.put((tag, i))
    return tag


@quanta.remote
def put_later(q, item, delay):
    time.sleep(delay)
    q.put(item)


@quanta.remote
def blocked_get(q):
    return q.get()


@quanta.remote
class Consumer:
    def __init__(self, q):
        self.q = q

    def drain(self):
        got = []
        while True:
            item = self.q.get(timeout=30)
            if item is None:
                return got
            got.append(item)


@quanta.remote
class AsyncUser:
    async def round_trip(self, q, item):
        await q.put_async(item)
        return await q.get_async(timeout=10)


@quanta.remote
def hold_cpu(seconds):
    time.sleep(seconds)


def test_items_come_out_in_order_and_sizes_are_right(cluster):
    q = Queue(maxsize=3)
    assert q.empty() and not q.full() and q.size() == 0 and len(q) == 0
    for x in ("a", {"b": 1}, [3]):
        q.put(x)
    assert q.full() and q.qsize() == 3 and len(q) == 3
    assert [q.get(), q.get(), q.get()] == ["a", {"b": 1}, [3]]
    assert q.empty()
    q.shutdown()


def test_blocking_with_timeouts_raises_empty_and_full(cluster):
    q = Queue(maxsize=1)
    assert issubclass(Empty, stdlib_queue.Empty) and issubclass(Full, stdlib_queue.Full)
    started = time.monotonic()
    with pytest.raises(Empty):
        q.get(timeout=0.3)
    assert 0.25 <= time.monotonic() - started < 5
    with pytest.raises(Empty):
        q.get(block=False)
    with pytest.raises(Empty):
        q.get_nowait()
    q.put(1)
    with pytest.raises(Full):
        q.put(2, timeout=0.2)
    with pytest.raises(Full):
        q.put(2, block=False)
    with pytest.raises(Full):
        q.put_nowait(2)
    with pytest.raises(ValueError, match="'timeout' must be a non-negative number"):
        q.get(timeout=-1)
    with pytest.raises(TypeError, match="'timeout' must be a number"):
        q.put(3, timeout="soon")
    assert q.get() == 1 and q.empty()
    q.shutdown()


def test_a_blocked_get_wakes_when_a_task_puts(cluster):
    q = Queue()
    put_later.remote(q, "hello", 0.5)
    started = time.monotonic()
    assert q.get(timeout=30) == "hello"
    assert time.monotonic() - started >= 0.4
    q.shutdown()


def test_many_producers_and_consumers_at_once(cluster):
    q = Queue(maxsize=4)  # small: producers block on put, consumers on get
    consumers = [Consumer.remote(q) for _ in range(2)]
    drains = [c.drain.remote() for c in consumers]
    producers = [produce.remote(q, tag, 25) for tag in "xyz"]
    assert sorted(quanta.get(producers, timeout=120)) == ["x", "y", "z"]
    for _ in consumers:
        q.put(None)
    got = quanta.get(drains, timeout=120)
    items = [item for part in got for item in part]
    assert sorted(items) == sorted((t, i) for t in "xyz" for i in range(25))
    assert all(got)  # both consumers took part
    for part in got:  # each producer's items reach each consumer in the order they were put
        for tag in "xyz":
            seq = [i for t, i in part if t == tag]
            assert seq == sorted(seq)
    q.shutdown()


def test_batches_go_in_or_out_whole(cluster):
    q = Queue(maxsize=3)
    q.put_nowait_batch([1, 2])
    with pytest.raises(Full, match="Cannot add 2 items to queue of size 2 and maxsize 3"):
        q.put_nowait_batch([3, 4])
    assert q.qsize() == 2
    with pytest.raises(Empty, match="Cannot get 3 items from queue of size 2"):
        q.get_nowait_batch(3)
    assert q.get_nowait_batch(2) == [1, 2] and q.get_nowait_batch(0) == []
    with pytest.raises(TypeError, match="must be an Iterable"):
        q.put_nowait_batch(5)
    with pytest.raises(TypeError, match="must be an int"):
        q.get_nowait_batch("2")
    with pytest.raises(ValueError, match="nonnegative"):
        q.get_nowait_batch(-1)
    unbounded = Queue()
    unbounded.put_nowait_batch(range(100))
    assert unbounded.size() == 100
    q.shutdown()
    unbounded.shutdown()


def test_async_put_and_get_from_asyncio_code_and_async_actors(cluster):
    q = Queue()

    async def main():
        await q.put_async("from asyncio")
        first = await q.get_async()
        with pytest.raises(Empty):
            await q.get_async(timeout=0.1)
        return first

    assert asyncio.run(main()) == "from asyncio"
    assert quanta.get(AsyncUser.remote().round_trip.remote(q, 42), timeout=60) == 42
    q.shutdown()


def test_the_queue_actor_holds_no_cpu_and_takes_actor_options(cluster):
    busy = [hold_cpu.remote(3) for _ in range(4)]  # every CPU of the cluster
    time.sleep(0.5)
    started = time.monotonic()
    q = Queue()
    q.put("while busy")
    assert q.get() == "while busy"
    assert time.monotonic() - started < 2.5
    quanta.get(busy)

    named = Queue(actor_options={"name": "util-test-queue"})
    named.put("via name")
    assert quanta.get(quanta.get_actor("util-test-queue").get_nowait.remote()) == (True, "via name")
    with pytest.raises(ValueError, match="invalid option"):
        Queue(actor_options={"colour": "red"})
    with pytest.raises(TypeError, match="actor_options must be a dict"):
        Queue(actor_options=["name"])
    q.shutdown()
    named.shutdown()


def test_shutdown_ends_the_actor_and_later_calls_say_so(cluster):
    q = Queue()
    handle = q.actor
    waiter = blocked_get.remote(q)
    time.sleep(0.3)
    q.shutdown()
    with pytest.raises(ActorDiedError):
        quanta.get(waiter, timeout=30)  # a consumer blocked in get() is told
    with pytest.raises(ActorDiedError):
        quanta.get(handle.qsize.remote(), timeout=30)
    with pytest.raises(RuntimeError, match="shut down"):
        q.put(1)
    q.shutdown()  # twice is fine

    forced = Queue()
    waiter = blocked_get.remote(forced)
    time.sleep(0.3)
    started = time.monotonic()
    forced.shutdown(force=True)
    with pytest.raises(ActorDiedError):
        quanta.get(waiter, timeout=30)
    assert time.monotonic() - started < 5
