"""quanta.util.Executor: a concurrent.futures.Executor on Quanta, usable where a
ProcessPoolExecutor is.

The first test runs one small program written against the concurrent.futures API with both
executors and compares the answers; the others check the futures, where calls run, the
max_workers limit and cancellation of pending calls, map(timeout=, chunksize=), shutdown,
initializer / max_tasks_per_child, and BrokenProcessPool, all on the shared 4-CPU cluster.
"""

import concurrent.futures as cf
import multiprocessing
import os
import time
from concurrent.futures.process import BrokenProcessPool
from multiprocessing.pool import RemoteTraceback

import pytest

from quanta.util import Executor


def count_primes(lo, hi):
    return sum(1 for n in range(max(lo, 2), hi) if all(n % d for d in range(2, int(n ** 0.5) + 1)))


def pid_after(seconds):
    time.sleep(seconds)
    return os.getpid()


def touch_after(path, seconds):
    time.sleep(seconds)
    with open(path, "w") as f:
        f.write("ran")
    return os.getpid()


def tag_process(tag):
    os.environ["EXECUTOR_TAG"] = tag


def read_tag():
    return os.getpid(), os.environ.get("EXECUTOR_TAG")


def broken_init():
    raise OSError("cannot reach the license server")


def prime_report(executor_class):
    """A program written for concurrent.futures.Executor, nothing Quanta-specific in it."""
    blocks = [(i * 2000, (i + 1) * 2000) for i in range(6)]
    finished_callbacks = []
    with executor_class(max_workers=2) as ex:
        futures = {ex.submit(count_primes, lo, hi): (lo, hi) for lo, hi in blocks}
        for f in futures:
            f.add_done_callback(lambda fut: finished_callbacks.append(fut.result()))
        per_block = {}
        for f in cf.as_completed(futures, timeout=120):
            per_block[futures[f]] = f.result()
        bad = ex.submit(count_primes, 10, "x")
        done, not_done = cf.wait([bad, ex.submit(time.sleep, 0.5)], timeout=120,
                                 return_when=cf.FIRST_EXCEPTION)
        error = type(bad.exception())
        mapped = list(ex.map(count_primes, [0, 100, 1000], [100, 200, 2000], chunksize=2))
    return per_block, sorted(finished_callbacks), error, bad in done, mapped


def test_a_concurrent_futures_program_gives_the_same_answers_as_with_ProcessPoolExecutor(cluster):
    ours = prime_report(Executor)
    theirs = prime_report(cf.ProcessPoolExecutor)
    assert ours == theirs
    per_block, callbacks, error, bad_done, mapped = ours
    assert sum(per_block.values()) == 1438  # primes below 12,000
    assert callbacks == sorted(per_block.values())
    assert error is TypeError and bad_done
    assert mapped == [25, 21, 135]


def test_futures_are_real_and_calls_run_in_quanta_workers(cluster):
    with Executor(max_workers=3) as ex:
        futures = [ex.submit(pid_after, 0.3) for _ in range(6)]
        assert all(type(f) is cf.Future for f in futures)
        pids = {f.result(timeout=60) for f in futures}
    assert os.getpid() not in pids and len(pids) >= 2
    for pid in pids:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            assert b"quanta._private.worker_main" in fh.read()


def test_at_most_max_workers_run_and_pending_futures_can_be_cancelled(cluster, tmp_path):
    ex = Executor(max_workers=2)
    futures = [ex.submit(touch_after, str(tmp_path / f"ran-{i}"), 0.8) for i in range(6)]
    time.sleep(0.3)
    assert [f.running() for f in futures] == [True, True, False, False, False, False]
    assert not futures[0].cancel()  # running: cannot be cancelled
    assert futures[4].cancel() and futures[5].cancel()
    ex.shutdown(wait=True)
    assert [f.cancelled() for f in futures] == [False] * 4 + [True] * 2
    with pytest.raises(cf.CancelledError):
        futures[5].result()
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"ran-{i}" for i in range(4)]


def interval(seconds):
    start = time.time()
    time.sleep(seconds)
    return start, time.time()


def test_more_workers_than_cpus_run_at_once_as_processes_would(cluster):
    with Executor(max_workers=8) as ex:  # the cluster has 4 CPUs: each call holds half of one
        spans = list(ex.map(interval, [4] * 8))
    assert max(start for start, _ in spans) < min(end for _, end in spans)  # all 8 overlapped


def test_exceptions_propagate_with_the_remote_traceback(cluster):
    seen = []
    with Executor(max_workers=1) as ex:
        f = ex.submit(int, "not a number")
        f.add_done_callback(lambda fut: seen.append(type(fut.exception())))
        with pytest.raises(ValueError, match="invalid literal") as info:
            f.result(timeout=60)
        assert type(info.value) is ValueError
        assert isinstance(info.value.__cause__, RemoteTraceback)
        assert seen == [ValueError]
        with pytest.raises(ZeroDivisionError):
            list(ex.map(divmod, [4, 1, 2], [2, 0, 1]))
        with pytest.raises(TypeError, match="needs a callable"):
            ex.submit(42)


def test_map_keeps_order_with_chunks_and_times_out_from_the_call(cluster):
    with Executor(max_workers=2) as ex:
        assert list(ex.map(pow, range(10), [2] * 10)) == [x * x for x in range(10)]
        assert list(ex.map(pow, range(10), [2] * 10, chunksize=3)) == [x * x for x in range(10)]
        assert list(ex.map(abs, [])) == []
        results = ex.map(pid_after, [1.5, 0.1])
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            list(ex.map(pid_after, [1.5], timeout=0.3))
        assert time.monotonic() - started < 1.4
        assert len(list(results)) == 2
        with pytest.raises(ValueError, match="chunksize must be >= 1"):
            ex.map(abs, [1], chunksize=0)


def test_shutdown_waits_cancels_pending_and_refuses_new_work(cluster):
    ex = Executor(max_workers=1)
    running = ex.submit(pid_after, 0.5)
    pending = [ex.submit(pid_after, 0.5) for _ in range(3)]
    time.sleep(0.2)
    ex.shutdown(wait=True, cancel_futures=True)
    assert running.done() and not running.cancelled() and running.result() > 0
    assert all(f.cancelled() for f in pending)
    with pytest.raises(RuntimeError, match="cannot schedule new futures after shutdown"):
        ex.submit(abs, 1)
    ex.shutdown()  # twice is fine

    ex = Executor(max_workers=2)
    fs = [ex.submit(pid_after, 0.3) for _ in range(4)]
    started = time.monotonic()
    ex.shutdown(wait=False)
    assert time.monotonic() - started < 0.2
    assert all(f.result(timeout=60) > 0 for f in fs)  # shutdown(wait=False) still runs them


def test_initializer_and_max_tasks_per_child_give_dedicated_processes(cluster):
    with Executor(max_workers=1, initializer=tag_process, initargs=("set",),
                  max_tasks_per_child=2) as ex:
        states = [ex.submit(read_tag).result(timeout=60) for _ in range(6)]
    pids = [pid for pid, _ in states]
    assert {tag for _, tag in states} == {"set"}
    assert pids[0] == pids[1] != pids[2] == pids[3] != pids[4] == pids[5]
    assert os.environ.get("EXECUTOR_TAG") is None


def test_failing_initializer_breaks_the_executor(cluster):
    ex = Executor(max_workers=2, initializer=broken_init)
    f = ex.submit(abs, -1)
    with pytest.raises(BrokenProcessPool, match="initializer raised OSError") as info:
        f.result(timeout=60)
    assert isinstance(info.value.__cause__, OSError)
    with pytest.raises(BrokenProcessPool):
        ex.submit(abs, -1)
    ex.shutdown()


def test_a_dead_worker_breaks_the_executor_as_in_ProcessPoolExecutor(cluster):
    ex = Executor(max_workers=1)
    crash = ex.submit(os._exit, 1)
    later = ex.submit(pid_after, 5)
    with pytest.raises(BrokenProcessPool, match="terminated abruptly"):
        crash.result(timeout=60)
    with pytest.raises(BrokenProcessPool):
        later.result(timeout=60)
    with pytest.raises(BrokenProcessPool):
        ex.submit(abs, 1)
    ex.shutdown()


def test_arguments_are_checked(cluster):
    with pytest.raises(ValueError, match="max_workers must be greater than 0"):
        Executor(max_workers=0)
    with pytest.raises(TypeError, match="initializer must be a callable"):
        Executor(initializer="setup")
    with pytest.raises(ValueError, match="max_tasks_per_child must be >= 1"):
        Executor(max_tasks_per_child=0)
    with pytest.raises(ValueError, match="'fork' context is not supported"):
        Executor(mp_context=multiprocessing.get_context("fork"))
    with pytest.raises(ValueError, match="num_cpus=5 per Executor process.*could never run"):
        Executor(ray_remote_args={"num_cpus": 5})
    with pytest.raises(ValueError, match="invalid option.*bogus"):
        Executor(ray_remote_args={"bogus": 1})
    with Executor(mp_context=multiprocessing.get_context("spawn"), ray_remote_args={"num_cpus": 2}) as ex:
        assert ex.submit(abs, -3).result(timeout=60) == 3
