"""quanta.util.ActorPool: Ray's ActorPool semantics on real actors (shared 4-CPU cluster).

Ordered and unordered results, values waiting for a free actor, timeouts with and without
ignore_if_timedout, push / pop_idle, the errors Ray raises, and the mistakes Ray lets through
silently (a fn that returns no ref, values submitted to a pool without actors) refused clearly.
"""

import time

import pytest

import quanta
from quanta.util import ActorPool


@quanta.remote
class Worker:
    def __init__(self, name):
        self.name = name
        self.calls = 0

    def work(self, seconds, value=None):
        self.calls += 1
        time.sleep(seconds)
        return (self.name, value if value is not None else seconds)

    def fail(self, message):
        raise KeyError(message)

    def count(self):
        return self.calls


def call(actor, v):
    return actor.work.remote(*v) if isinstance(v, tuple) else actor.work.remote(v)


def values_of(results):
    return [v for _, v in results]


def test_map_returns_results_in_input_order_using_every_actor(cluster):
    actors = [Worker.remote(n) for n in "ab"]
    pool = ActorPool(actors)
    delays = [0.4, 0.1, 0.3, 0.0, 0.2, 0.1]
    results = list(pool.map(call, delays))
    assert values_of(results) == delays
    assert {name for name, _ in results} == {"a", "b"}
    assert sum(quanta.get([a.count.remote() for a in actors])) == len(delays)


def test_map_unordered_returns_results_as_they_finish(cluster):
    pool = ActorPool([Worker.remote(n) for n in "abc"])
    assert values_of(pool.map_unordered(call, [0.9, 0.1, 0.5])) == [0.1, 0.5, 0.9]


def test_values_wait_for_a_free_actor_and_start_as_results_are_collected(cluster):
    a = Worker.remote("a")
    pool = ActorPool([a])
    assert pool.has_free() and not pool.has_next()
    pool.submit(call, (0.1, "first"))
    pool.submit(call, (0.1, "second"))
    assert not pool.has_free() and pool.has_next()
    time.sleep(0.5)
    assert quanta.get(a.count.remote()) == 1  # "second" waits in the pool, not at the actor
    assert pool.get_next() == ("a", "first")
    assert pool.get_next() == ("a", "second")
    assert not pool.has_next() and pool.has_free()
    with pytest.raises(StopIteration, match="No more results to get"):
        pool.get_next()
    with pytest.raises(StopIteration, match="No more results to get"):
        pool.get_next_unordered()


def test_get_next_timeout_keeps_or_gives_up_the_result(cluster):
    pool = ActorPool([Worker.remote("a"), Worker.remote("b")])
    pool.submit(call, (1.0, "slow"))
    pool.submit(call, (0.0, "fast"))
    with pytest.raises(TimeoutError, match="Timed out waiting for result$"):
        pool.get_next(timeout=0.1)
    assert values_of([pool.get_next()]) == ["slow"]  # kept: still the next result
    assert values_of([pool.get_next()]) == ["fast"]

    pool.submit(call, (1.0, "given up"))
    pool.submit(call, (0.0, "after"))
    with pytest.raises(TimeoutError, match="has been ignored"):
        pool.get_next(timeout=0.1, ignore_if_timedout=True)
    assert values_of([pool.get_next()]) == ["after"]
    assert not pool.has_next()


def test_get_next_unordered_timeout(cluster):
    pool = ActorPool([Worker.remote("a"), Worker.remote("b")])
    pool.submit(call, (1.0, "old"))
    pool.submit(call, (1.0, "new"))
    with pytest.raises(TimeoutError, match="Timed out waiting for result$"):
        pool.get_next_unordered(timeout=0.1)
    with pytest.raises(TimeoutError, match="has been ignored"):
        pool.get_next_unordered(timeout=0.1, ignore_if_timedout=True)  # gives up the oldest
    assert values_of([pool.get_next_unordered()]) == ["new"]
    assert not pool.has_next()


def test_ordered_results_skipped_by_unordered_ones_must_be_collected_unordered(cluster):
    pool = ActorPool([Worker.remote(n) for n in "abc"])
    for v in ((0.8, 0), (0.6, 1), (0.0, 2)):
        pool.submit(call, v)
    assert values_of([pool.get_next_unordered()]) == [2]
    with pytest.raises(ValueError, match="get_next_unordered"):
        pool.get_next()
    assert sorted(values_of([pool.get_next_unordered(), pool.get_next_unordered()])) == [0, 1]


def test_push_and_pop_idle(cluster):
    a, b = Worker.remote("a"), Worker.remote("b")
    pool = ActorPool([a])
    with pytest.raises(ValueError, match="Actor already belongs to current ActorPool"):
        pool.push(a)
    assert pool.pop_idle() == a and pool.pop_idle() is None
    pool.submit(call, (0.0, "waits"))
    assert pool.has_next() and not pool.has_free()
    pool.push(b)  # b starts the waiting value at once
    assert pool.get_next() == ("b", "waits")
    pool.submit(call, (0.5, "busy"))
    with pytest.raises(ValueError, match="already belongs"):
        pool.push(b)  # busy actors belong too
    assert pool.pop_idle() is None
    pool.get_next()


def test_map_discards_results_still_pending_from_earlier_submits(cluster):
    pool = ActorPool([Worker.remote("a")])
    pool.submit(call, (0.3, "stale"))
    assert values_of(pool.map(call, [(0.0, "fresh")])) == ["fresh"]


def test_errors_of_the_actor_method_are_raised_by_get_next(cluster):
    pool = ActorPool([Worker.remote("a")])
    pool.submit(lambda actor, v: actor.fail.remote(v), "broken")
    with pytest.raises(KeyError, match="broken"):
        pool.get_next()
    assert pool.has_free()  # the actor came back to the pool
    assert values_of(pool.map(call, [0.0])) == [0.0]


def test_mistakes_are_refused_instead_of_lost(cluster):
    pool = ActorPool([Worker.remote("a")])
    with pytest.raises(TypeError, match="must return the ObjectRef"):
        pool.submit(lambda actor, v: v, 1)
    assert pool.has_free()  # the actor was not lost
    empty = ActorPool([])
    empty.submit(call, 1)
    with pytest.raises(ValueError, match="no actors to run them; add one with push"):
        empty.get_next()
    with pytest.raises(ValueError, match="no actors"):
        list(ActorPool([]).map(call, [1, 2]))
