"""quanta.util.as_completed and quanta.util.map_unordered (Ray's ray.util helpers).

Real tasks with different durations on the shared 4-CPU cluster: results must arrive in
completion order, batch by batch, with backpressure bounding the tasks in flight, timeouts only
flushing partial batches (never raising), and errors raised when their batch is reached.
"""

import time

import pytest

import quanta
from quanta.util import as_completed, map_unordered


@quanta.remote
def sleep_then(seconds):
    time.sleep(seconds)
    return seconds


@quanta.remote
def fail_if_negative(x):
    if x < 0:
        raise ValueError(f"negative {x}")
    return x


@quanta.remote
class Tracker:
    def __init__(self):
        self.running = 0
        self.peak = 0

    def enter(self):
        self.running += 1
        self.peak = max(self.peak, self.running)

    def leave(self):
        self.running -= 1

    def get_peak(self):
        return self.peak


@quanta.remote
def tracked(item):
    tracker, seconds = item
    quanta.get(tracker.enter.remote())
    time.sleep(seconds)
    quanta.get(tracker.leave.remote())
    return seconds


def test_as_completed_yields_values_in_completion_order(cluster):
    delays = [1.2, 0.1, 0.7, 0.4]
    refs = [sleep_then.remote(d) for d in delays]
    assert list(as_completed(refs, chunk_size=1)) == sorted(delays)
    # The default chunk_size (10) waits for all four, then keeps their input order.
    refs = [sleep_then.remote(d) for d in delays]
    assert list(as_completed(refs)) == delays
    # chunk_size=2: the first two to finish come first, in input order.
    refs = [sleep_then.remote(d) for d in delays]
    assert list(as_completed(refs, chunk_size=2)) == [0.1, 0.4, 1.2, 0.7]


def test_as_completed_can_yield_the_refs_themselves(cluster):
    refs = [sleep_then.remote(d) for d in (0.6, 0.1)]
    out = list(as_completed(refs, chunk_size=1, yield_obj_refs=True))
    assert out == [refs[1], refs[0]]
    assert all(isinstance(r, quanta.ObjectRef) for r in out)
    assert list(as_completed([])) == []


def test_timeout_flushes_a_partial_batch_and_never_raises(cluster):
    refs = [sleep_then.remote(d) for d in (0.1, 1.5)]
    it = as_completed(refs, chunk_size=2, timeout=0.5)
    started = time.monotonic()
    assert next(it) == 0.1
    assert time.monotonic() - started < 1.2  # did not wait for the batch of two to fill
    assert list(it) == [1.5]  # the iteration still ends with every result


def test_errors_are_raised_when_their_batch_is_reached(cluster):
    refs = [fail_if_negative.remote(x) for x in (1, -2, 3)]
    it = as_completed(refs, chunk_size=1)
    values = []
    with pytest.raises(ValueError, match="negative -2"):
        for v in it:
            values.append(v)
    assert set(values) <= {1, 3}
    refs = [fail_if_negative.remote(x) for x in (1, -2)]
    assert len(list(as_completed(refs, yield_obj_refs=True))) == 2


def test_map_unordered_bounds_the_tasks_in_flight(cluster):
    tracker = Tracker.remote()
    got = list(map_unordered(tracked, [(tracker, 0.2)] * 8, backpressure_size=2, chunk_size=1))
    assert got == [0.2] * 8
    assert quanta.get(tracker.get_peak.remote()) == 2

    delays = [0.9, 0.1, 0.5, 0.3]
    assert list(map_unordered(sleep_then, delays, chunk_size=1)) == sorted(delays)
    assert list(map_unordered(sleep_then, delays)) == delays  # one batch of all four
    refs = list(map_unordered(sleep_then, [0.1], yield_obj_refs=True))
    assert quanta.get(refs) == [0.1]


def test_bad_arguments_are_refused_with_what_to_pass(cluster):
    with pytest.raises(ValueError, match="chunk_size must be >= 1"):
        list(as_completed([], chunk_size=0))
    with pytest.raises(TypeError, match=r"unexpected keyword arguments \['num_returns'\]"):
        as_completed([], num_returns=2)
    with pytest.raises(TypeError, match="takes a list of ObjectRefs"):
        as_completed(sleep_then.remote(0))
    with pytest.raises(TypeError, match="takes a remote function"):
        map_unordered(abs, [1])
    with pytest.raises(ValueError, match="backpressure_size must be >= 1"):
        map_unordered(sleep_then, [1], backpressure_size=0)


@quanta.remote
def names_quanta_util():
    # quanta.util is a module subclass (for the placement_group name); a task that names it
    # must still pickle (it used to fail with "cannot pickle '_UtilModule' object").
    return quanta.util.get_node_ip_address()


def test_a_task_that_names_quanta_util_can_be_sent(cluster):
    assert quanta.get(names_quanta_util.remote(), timeout=60) == quanta.util.get_node_ip_address()
