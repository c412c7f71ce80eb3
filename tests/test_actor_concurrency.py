"""Actor concurrency: one call at a time by default, ``max_concurrency=N`` threads, async actors.

Timing assertions are coarse; overlap is also measured inside the actor (a peak counter), which
is the sharper check.
"""

import asyncio
import threading
import time

import pytest

import quanta
from quanta.exceptions import ActorDiedError, GetTimeoutError


def make_threaded():
    @quanta.remote
    class Threaded:
        def __init__(self):
            self.lock = threading.Lock()
            self.active = 0
            self.peak = 0
            self.threads = set()
            self.gate = threading.Event()

        def nap(self, seconds):
            with self.lock:
                self.active += 1
                self.peak = max(self.peak, self.active)
                self.threads.add(threading.get_ident())
            time.sleep(seconds)
            with self.lock:
                self.active -= 1
            return seconds

        def wait_for_gate(self, timeout):
            return self.gate.wait(timeout)

        def open_gate(self):
            self.gate.set()
            return True

        def stats(self):
            return self.peak, len(self.threads)

    return Threaded


def make_async():
    @quanta.remote
    class Async:
        def __init__(self):
            self.active = 0
            self.peak = 0
            self.threads = set()
            self.event = None

        async def nap(self, seconds):
            self.active += 1
            self.peak = max(self.peak, self.active)
            self.threads.add(threading.get_ident())
            await asyncio.sleep(seconds)
            self.active -= 1
            return seconds

        async def arrive(self, expected, timeout):
            """Finishes only once ``expected`` calls are inside this method at the same time."""
            if self.event is None:
                self.event = asyncio.Event()
            self.active += 1
            self.peak = max(self.peak, self.active)
            if self.active >= expected:
                self.event.set()
            try:
                await asyncio.wait_for(self.event.wait(), timeout)
                return True
            except asyncio.TimeoutError:
                return False
            finally:
                self.active -= 1

        async def fail(self, message):
            await asyncio.sleep(0.05)
            raise KeyError(message)

        async def stats(self):
            return self.peak, len(self.threads)

        async def reset(self):
            self.peak = 0
            self.event = None

    return Async


# ------------------------------------------------------------------------------ default: one at a time


def test_default_actor_runs_one_call_at_a_time(cluster):
    Threaded = make_threaded()
    actor = Threaded.remote()
    quanta.get(actor.stats.remote())  # wait for the constructor
    start = time.monotonic()
    quanta.get([actor.nap.remote(0.3) for _ in range(4)])
    elapsed = time.monotonic() - start
    assert elapsed >= 1.15, f"4 x 0.3 s calls on a default actor overlapped ({elapsed:.2f}s)"
    assert quanta.get(actor.stats.remote()) == (1, 1)


def test_default_actor_cannot_serve_a_call_while_one_blocks(cluster):
    Threaded = make_threaded()
    actor = Threaded.remote()
    waiting = actor.wait_for_gate.remote(1.0)
    opener = actor.open_gate.remote()
    assert quanta.get(waiting) is False, "the gate cannot be opened while the first call blocks"
    assert quanta.get(opener) is True


# ------------------------------------------------------------------------------ threaded actors


def test_max_concurrency_runs_calls_on_threads(cluster):
    Threaded = make_threaded()
    actor = Threaded.options(max_concurrency=4).remote()
    quanta.get(actor.stats.remote())
    start = time.monotonic()
    assert quanta.get([actor.nap.remote(0.5) for _ in range(4)]) == [0.5] * 4
    elapsed = time.monotonic() - start
    assert elapsed < 1.5, f"4 x 0.5 s calls with max_concurrency=4 took {elapsed:.2f}s"
    peak, threads = quanta.get(actor.stats.remote())
    assert peak == 4
    assert threads >= 2, "concurrent calls should run on several threads"


def test_max_concurrency_is_a_limit(cluster):
    Threaded = make_threaded()
    actor = Threaded.options(max_concurrency=2).remote()
    quanta.get(actor.stats.remote())
    start = time.monotonic()
    quanta.get([actor.nap.remote(0.3) for _ in range(6)])
    elapsed = time.monotonic() - start
    assert elapsed >= 0.85, f"6 x 0.3 s calls with max_concurrency=2 took only {elapsed:.2f}s"
    assert quanta.get(actor.stats.remote())[0] == 2


def test_threaded_actor_serves_calls_while_one_blocks(cluster):
    Threaded = make_threaded()
    actor = Threaded.options(max_concurrency=2).remote()
    waiting = actor.wait_for_gate.remote(20)
    time.sleep(0.2)
    assert quanta.get(actor.open_gate.remote(), timeout=10) is True
    assert quanta.get(waiting, timeout=10) is True


def test_threaded_actor_calls_from_tasks_run_concurrently(cluster):
    Threaded = make_threaded()
    actor = Threaded.options(max_concurrency=3).remote()

    @quanta.remote(num_cpus=0)
    def call(a):
        return quanta.get(a.nap.remote(0.6))

    quanta.get(actor.stats.remote())
    assert quanta.get([call.remote(actor) for _ in range(3)]) == [0.6] * 3
    assert quanta.get(actor.stats.remote())[0] >= 2, "calls from different callers should overlap"


# ------------------------------------------------------------------------------ async actors


def test_async_actor_runs_calls_concurrently_on_one_loop(cluster):
    Async = make_async()
    actor = Async.remote()
    quanta.get(actor.stats.remote())
    start = time.monotonic()
    assert quanta.get([actor.nap.remote(0.5) for _ in range(10)]) == [0.5] * 10
    elapsed = time.monotonic() - start
    assert elapsed < 2.5, f"10 x 0.5 s async calls took {elapsed:.2f}s"
    peak, threads = quanta.get(actor.stats.remote())
    assert peak >= 5, f"async calls should overlap (peak {peak})"
    assert threads == 1, "async calls all run on one event loop thread"


def test_async_actor_default_allows_a_thousand_calls_at_once(cluster):
    Async = make_async()
    actor = Async.remote()
    refs = [actor.arrive.remote(1000, 30) for _ in range(1000)]
    assert all(quanta.get(refs, timeout=90)), "1000 calls should be inside the actor at the same time"
    assert quanta.get(actor.stats.remote())[0] == 1000


def test_async_actor_respects_max_concurrency(cluster):
    Async = make_async()
    actor = Async.options(max_concurrency=2).remote()
    quanta.get(actor.stats.remote())
    start = time.monotonic()
    quanta.get([actor.nap.remote(0.3) for _ in range(6)])
    elapsed = time.monotonic() - start
    assert elapsed >= 0.85, f"6 x 0.3 s async calls with max_concurrency=2 took {elapsed:.2f}s"
    assert quanta.get(actor.stats.remote())[0] == 2

    # Three calls that each need all three inside at once cannot finish with a limit of two.
    quanta.get(actor.reset.remote())
    with pytest.raises(GetTimeoutError):
        quanta.get([actor.arrive.remote(3, 30) for _ in range(3)], timeout=1.5)


def test_async_actor_exception_fails_only_that_call(cluster):
    Async = make_async()
    actor = Async.remote()
    ok = [actor.nap.remote(0.2) for _ in range(3)]
    bad = actor.fail.remote("missing-key")
    with pytest.raises(KeyError) as info:
        quanta.get(bad)
    assert "missing-key" in str(info.value)
    assert quanta.get(ok) == [0.2] * 3
    assert quanta.get(actor.nap.remote(0)) == 0, "the actor keeps serving after a failed call"


def test_async_actor_method_can_await_other_actors(cluster):
    @quanta.remote
    class Backend:
        def square(self, x):
            time.sleep(0.3)
            return x * x

    @quanta.remote
    class Frontend:
        def __init__(self, backends):
            self.backends = backends

        async def compute(self, x):
            return await self.backends[x % len(self.backends)].square.remote(x)

    backends = [Backend.remote() for _ in range(4)]
    front = Frontend.remote(backends)
    quanta.get([b.square.remote(0) for b in backends])
    start = time.monotonic()
    assert quanta.get([front.compute.remote(i) for i in range(8)]) == [i * i for i in range(8)]
    assert time.monotonic() - start < 2.0, "awaiting refs should not block the event loop"


@pytest.mark.parametrize("kind", ["threaded", "async"])
def test_exit_actor_from_a_concurrent_actor(cluster, kind):
    if kind == "async":
        @quanta.remote
        class Quitter:
            async def quit(self):
                quanta.actor.exit_actor()

            async def ping(self):
                return "pong"

        handle = Quitter.remote()
    else:
        @quanta.remote
        class Quitter:
            def quit(self):
                quanta.actor.exit_actor()

            def ping(self):
                return "pong"

        handle = Quitter.options(max_concurrency=4).remote()
    assert quanta.get(handle.ping.remote()) == "pong"
    handle.quit.remote()
    deadline = time.monotonic() + 10
    while True:
        try:
            quanta.get(handle.ping.remote(), timeout=10)
        except ActorDiedError:
            break
        assert time.monotonic() < deadline, "the actor did not exit after exit_actor()"
        time.sleep(0.1)
