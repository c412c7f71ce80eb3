"""Short tasks queued at busy workers (src/node/node_pipeline.cc).

Once the node has seen that a function's tasks finish in well under a millisecond, a burst of
them is handed to each worker several at a time. These tests check what must not change because
of it: a slow call does not hold back the calls queued behind it, a call that blocks in get() on
its own children does not deadlock, cancelling queued calls works, and a worker that dies with a
queue loses nothing.
"""

import os
import time

import pytest

import quanta
from quanta.exceptions import TaskCancelledError


def warm_up(fn, *args):
    """Run enough calls that the node knows the function is short."""
    for count in (20, 200):
        refs = [fn.remote(*args) for _ in range(count)]
        quanta.get([r for ref in refs for r in (ref if isinstance(ref, list) else [ref])])


def test_a_slow_call_does_not_hold_back_the_calls_queued_behind_it(cluster):
    @quanta.remote
    def maybe_slow(i, slow):
        if i == slow:
            time.sleep(4)
        return i

    warm_up(maybe_slow, -1, -2)
    refs = [maybe_slow.remote(i, 3) for i in range(300)]
    others = refs[:3] + refs[4:]
    start = time.monotonic()
    ready, not_ready = quanta.wait(others, num_returns=len(others), timeout=3)
    assert not not_ready, (f"{len(not_ready)} quick calls were still waiting after "
                           f"{time.monotonic() - start:.1f}s behind the slow one")
    assert quanta.get(others) == [i for i in range(300) if i != 3]
    assert quanta.get(refs[3], timeout=30) == 3


def test_short_tasks_that_get_their_own_children_do_not_deadlock(cluster):
    @quanta.remote
    def tree(n):
        if n > 0 and n % 4 == 0:
            return quanta.get(tree.remote(n - 1)) + 1
        return n

    warm_up(tree, 1)
    refs = [tree.remote(n) for n in range(400)]
    got = quanta.get(refs, timeout=120)
    assert got == list(range(400))  # tree(4k) = tree(4k - 1) + 1 = 4k
    # Small rounds: the ready queue is nearly empty when a child is submitted, so the node
    # may queue the child right behind its blocked parent; the parent's worker must give it back.
    for _ in range(40):
        assert quanta.get([tree.remote(8) for _ in range(6)], timeout=60) == [8] * 6


def test_cancelling_queued_short_tasks(cluster):
    @quanta.remote
    def tick(i):
        time.sleep(0.002)
        return i

    warm_up(tick, 0)
    refs = [tick.remote(i) for i in range(600)]
    for ref in refs[300:]:
        quanta.cancel(ref)
    cancelled = 0
    for i, ref in enumerate(refs):
        try:
            assert quanta.get(ref, timeout=60) == i
        except TaskCancelledError:
            assert i >= 300, f"task {i} was never cancelled but raised TaskCancelledError"
            cancelled += 1
    assert cancelled > 0, "none of 300 queued tasks could be cancelled"
    # The workers are still fine afterwards.
    assert quanta.get([tick.remote(i) for i in range(50)], timeout=60) == list(range(50))


def test_a_worker_dying_with_a_queue_loses_nothing(cluster, tmp_path):
    marker = str(tmp_path / "died-once")

    @quanta.remote(max_retries=2)
    def fragile(i, marker, crash_at):
        if i == crash_at and not os.path.exists(marker):
            open(marker, "w").close()
            os._exit(1)
        return i * 2

    warm_up(fragile, -1, marker, -2)
    refs = [fragile.remote(i, marker, 150) for i in range(400)]
    assert quanta.get(refs, timeout=120) == [i * 2 for i in range(400)]
    assert os.path.exists(marker), "the crash this test is about did not happen"


def test_force_cancel_of_a_queued_task_keeps_its_worker(cluster):
    @quanta.remote
    def pid_after(delay):
        time.sleep(delay)
        return os.getpid()

    warm_up(pid_after, 0)
    refs = [pid_after.remote(0.001) for _ in range(400)]
    quanta.cancel(refs[-1], force=True)
    with pytest.raises(TaskCancelledError):
        quanta.get(refs[-1], timeout=60)
    pids = set(quanta.get(refs[:-1], timeout=60))
    # The cancelled task had not started, so force killed nobody: every worker that ran one of
    # the other tasks is still alive.
    for pid in pids:
        os.kill(pid, 0)  # raises ProcessLookupError if the worker was killed


def test_queued_tasks_behave_like_any_task(cluster):
    # A burst of a short function exercising what tasks carry: stored (large) arguments and
    # returns, several returns, exceptions, refs inside results. Queued at workers or not,
    # every result must be the same.
    import numpy as np

    big = quanta.put(np.arange(50_000, dtype=np.int64))  # 400 KB: lives in shared memory

    @quanta.remote(num_returns=2)
    def work(i, arr):
        if i % 50 == 7:
            raise ValueError(f"bad input {i}")
        if i % 10 == 3:
            return i, np.full(20_000, i, dtype=np.int64)  # 160 KB return: stored
        if i % 10 == 5:
            return i, [quanta.put(i)]
        return i, int(arr[i])

    warm_up(work, 1, big)
    pairs = [work.remote(i, big) for i in range(500)]
    for i, (first, second) in enumerate(pairs):
        if i % 50 == 7:
            with pytest.raises(ValueError, match=f"bad input {i}"):
                quanta.get(first, timeout=60)
            continue
        assert quanta.get(first, timeout=60) == i
        value = quanta.get(second, timeout=60)
        if i % 10 == 3:
            assert value.shape == (20_000,) and int(value[0]) == i
        elif i % 10 == 5:
            assert quanta.get(value[0], timeout=60) == i
        else:
            assert value == i
