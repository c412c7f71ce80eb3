"""Many threads of one process waiting on the same connection to the node.

A thread that blocks in get/wait reads the node's messages itself when nobody else is (see
src/core/core_reader.cc); these tests check that the reader role passes between threads without
losing a message or leaving a waiter asleep: every result arrives, in every thread, and idle
pauses (when only the background thread reads) lose nothing either.
"""

import threading
import time

import quanta


@quanta.remote
def square(x):
    return x * x


@quanta.remote
def slow_square(x, delay):
    time.sleep(delay)
    return x * x


def run_threads(count, body):
    errors, results = [], [None] * count

    def main(i):
        try:
            results[i] = body(i)
        except BaseException as e:  # reported below with the thread's index
            errors.append((i, repr(e)))

    threads = [threading.Thread(target=main, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a thread never returned from get/wait"
    assert not errors, errors
    return results


def test_threads_each_get_their_own_results(cluster):
    def body(i):
        out = []
        for round_ in range(20):
            refs = [square.remote(i * 1000 + round_ * 10 + k) for k in range(10)]
            out.extend(quanta.get(refs))
        return out

    results = run_threads(8, body)
    for i, got in enumerate(results):
        want = [(i * 1000 + r * 10 + k) ** 2 for r in range(20) for k in range(10)]
        assert got == want


def test_threads_mixing_get_wait_and_timeouts(cluster):
    def body(i):
        slow = slow_square.remote(i, 0.3)
        # A wait that times out must return promptly and leave the reader role to others.
        ready, not_ready = quanta.wait([slow], timeout=0.01)
        assert ready == [] and not_ready == [slow]
        fast = [square.remote(i + k) for k in range(50)]
        assert quanta.get(fast) == [(i + k) ** 2 for k in range(50)]
        ready, _ = quanta.wait([slow], timeout=30)
        assert ready == [slow]
        return quanta.get(slow)

    assert run_threads(6, body) == [i * i for i in range(6)]


def test_results_arriving_while_no_thread_waits_are_kept(cluster):
    # Submit, then stay busy outside the client long past the reader grace period: the
    # background thread must read the results so a later get finds them all.
    refs = [square.remote(k) for k in range(200)]
    deadline = time.monotonic() + 0.5
    while time.monotonic() < deadline:
        sum(range(1000))
    assert quanta.get(refs, timeout=30) == [k * k for k in range(200)]


def test_worker_threads_share_one_connection(cluster):
    @quanta.remote
    def fan_out(n):
        def body(i):
            return quanta.get([square.remote(i * 100 + k) for k in range(5)])

        return run_threads(n, body)

    got = quanta.get(fan_out.remote(4), timeout=120)
    assert got == [[(i * 100 + k) ** 2 for k in range(5)] for i in range(4)]
