"""quanta.util.multiprocessing.Pool: the standard library's Pool API on Quanta actors.

Every test drives real pool processes (Quanta actors) on the shared 4-CPU cluster and checks
results, where the work ran, callbacks, errors as the standard library raises them, the life
cycle (close / join / terminate / context manager) and the options (initializer,
maxtasksperchild, processes, context, ray_remote_args).
"""

import multiprocessing
import os
import threading
import time
from multiprocessing.pool import RemoteTraceback

import pytest

import quanta
from conftest import process_identity, wait_until_gone
from quanta.exceptions import ActorDiedError
from quanta.util.multiprocessing import Pool, TimeoutError as PoolTimeoutError


def square(x):
    return x * x


def pid_of(_=None):
    return os.getpid()


def pid_after(seconds):
    time.sleep(seconds)
    return os.getpid()


def sleep_then(seconds, value=None):
    time.sleep(seconds)
    return value if value is not None else seconds


def fail_on(x, bad):
    if x == bad:
        raise ValueError(f"bad item {x}")
    return x


_init_calls = 0


def count_init(tag):
    global _init_calls
    _init_calls += 1
    os.environ["POOL_TAG"] = tag


def init_state(_=None):
    return os.getpid(), _init_calls, os.environ.get("POOL_TAG")


def broken_init():
    raise KeyError("no config here")


@pytest.fixture
def pool(cluster):
    p = Pool(4)
    yield p
    p.terminate()
    p.join()


# ------------------------------------------------------------------------------ results


def test_map_starmap_apply_give_the_same_results_as_builtins(pool):
    data = list(range(-20, 20))
    assert pool.map(square, data) == [x * x for x in data]
    for chunksize in (1, 3, 7, 100):
        assert pool.map(square, data, chunksize=chunksize) == [x * x for x in data]
    assert pool.map(square, iter(data)) == [x * x for x in data]  # no len(): listed first
    assert pool.map(square, []) == []
    assert pool.starmap(pow, [(2, 5), (3, 2), (10, 0)]) == [32, 9, 1]
    assert pool.apply(divmod, (17, 5)) == (3, 2)
    assert pool.apply(int, ("ff",), {"base": 16}) == 255
    assert pool.apply(int, ("ff",), kwargs={"base": 16}) == 255  # Ray's keyword name
    assert pool.apply(sleep_then, kwds={"seconds": 0, "value": "kw"}) == "kw"
    assert pool.map(lambda x: x + 1, range(3)) == [1, 2, 3]  # cloudpickle: lambdas travel too


def test_work_runs_in_the_pools_own_processes_one_per_slot(cluster):
    with Pool() as p:  # default: one process per cluster CPU
        pids = set(p.map(pid_after, [0.2] * 12, chunksize=1))
        actor_pids = set(quanta.get([h.pid.remote() for h in p._engine.actor_handles()]))
    assert len(actor_pids) == 4 and os.getpid() not in actor_pids
    assert pids <= actor_pids and len(pids) >= 3  # the chunks were spread over the processes


def test_each_process_holds_a_cpu_while_the_pool_lives(cluster):
    p = Pool(2)
    try:
        assert p.map(square, range(4)) == [0, 1, 4, 9]
        assert quanta.available_resources().get("CPU", 0) == pytest.approx(2)
    finally:
        p.terminate()
    deadline = time.monotonic() + 10
    while quanta.available_resources().get("CPU", 0) < 4 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert quanta.available_resources().get("CPU", 0) == pytest.approx(4)


def test_more_processes_than_cpus_share_the_cpus(cluster):
    with Pool(6) as p:
        pids = set(p.map(pid_after, [0.3] * 12, chunksize=1))
        handles = p._engine.actor_handles()
        assert len(set(quanta.get([h.pid.remote() for h in handles]))) == 6
        assert quanta.available_resources().get("CPU", 0) < 0.01  # 6 x 2/3 CPU: all 4 held
    assert os.getpid() not in pids


def test_map_async_callback_and_async_result_api(pool):
    got = []
    done_in = []
    r = pool.map_async(sleep_then, [0.4, 0.1], chunksize=1,
                       callback=lambda v: (got.append(v), done_in.append(threading.current_thread())))
    with pytest.raises(ValueError, match="not ready"):
        r.successful()
    with pytest.raises(PoolTimeoutError):
        r.get(timeout=0.05)
    assert not r.ready()
    r.wait()
    assert r.ready() and r.successful()
    assert r.get() == [0.4, 0.1] and got == [[0.4, 0.1]]  # the callback ran before get() returned
    assert done_in[0] is not threading.main_thread()
    assert PoolTimeoutError is multiprocessing.TimeoutError


def test_apply_async_callbacks_run_one_at_a_time(pool):
    active, overlaps, results = [0], [], []
    lock = threading.Lock()

    def callback(value):
        with lock:
            active[0] += 1
            overlaps.append(active[0])
        time.sleep(0.02)
        results.append(value)
        with lock:
            active[0] -= 1

    rs = [pool.apply_async(square, (i,), callback=callback) for i in range(12)]
    assert [r.get(timeout=30) for r in rs] == [i * i for i in range(12)]
    assert sorted(results) == sorted(i * i for i in range(12))
    assert max(overlaps) == 1


def test_errors_are_raised_as_the_standard_library_raises_them(pool):
    errors = []
    r = pool.apply_async(fail_on, (3, 3), error_callback=errors.append)
    with pytest.raises(ValueError, match="bad item 3") as info:
        r.get(timeout=30)
    assert type(info.value) is ValueError  # the worker's exception itself, not a wrapper
    assert isinstance(info.value.__cause__, RemoteTraceback)
    assert "fail_on" in str(info.value.__cause__) and "bad item 3" in str(info.value.__cause__)
    assert errors == [info.value] and not r.successful()

    with pytest.raises(ValueError, match="bad item 7"):
        pool.starmap(fail_on, [(x, 7) for x in range(10)], chunksize=2)
    seen = []
    r = pool.map_async(fail_on, range(4), error_callback=seen.append)
    with pytest.raises(TypeError):  # fail_on needs two arguments: the TypeError of the call
        r.get(timeout=30)
    assert len(seen) == 1 and isinstance(seen[0], TypeError)


def test_unpicklable_function_fails_its_result_not_the_pool(pool):
    lock = threading.Lock()
    r = pool.apply_async(lambda: lock)
    with pytest.raises(Exception, match="lock"):
        r.get(timeout=30)
    assert pool.map(square, [3]) == [9]


# ------------------------------------------------------------------------------ imap


def test_imap_keeps_order_and_consumes_a_generator_lazily(pool):
    consumed = []

    def gen():
        for i in range(8):
            consumed.append(i)
            yield i

    it = pool.imap(square, gen())
    assert next(it) == 0
    assert list(it) == [x * x for x in range(1, 8)]
    assert consumed == list(range(8))
    assert list(pool.imap(square, range(10), chunksize=3)) == [x * x for x in range(10)]
    with pytest.raises(ValueError, match="Chunksize must be 1"):
        pool.imap(square, range(3), chunksize=0)


def test_imap_unordered_yields_in_completion_order(pool):
    delays = [1.2, 0.1, 0.6, 0.3]
    assert list(pool.imap_unordered(sleep_then, delays)) == sorted(delays)
    it = pool.imap(sleep_then, [1.0])
    with pytest.raises(PoolTimeoutError):
        it.next(timeout=0.1)
    assert it.next(timeout=30) == 1.0
    with pytest.raises(StopIteration):
        next(it)


def test_imap_raises_a_failed_item_at_its_position_and_goes_on(pool):
    it = pool.imap(lambda x: fail_on(x, 2), range(4))
    assert next(it) == 0 and next(it) == 1
    with pytest.raises(ValueError, match="bad item 2"):
        next(it)
    assert next(it) == 3


# ------------------------------------------------------------------------------ options


def test_initializer_runs_once_in_each_process(cluster):
    with Pool(3, initializer=count_init, initargs=("ready",)) as p:
        states = p.map(init_state, range(30), chunksize=1)
    assert {calls for _, calls, _ in states} == {1}
    assert {tag for _, _, tag in states} == {"ready"}
    assert os.environ.get("POOL_TAG") is None  # it ran there, not here


def test_failing_initializer_fails_every_task_with_its_error_instead_of_hanging(cluster):
    with Pool(2, initializer=broken_init) as p:
        with pytest.raises(KeyError, match="no config here") as info:
            p.map(square, range(8), chunksize=1)
        assert "broken_init" in str(info.value.__cause__)
        with pytest.raises(KeyError):
            p.apply(square, (2,))


def test_maxtasksperchild_gives_a_fresh_process_after_that_many_tasks(cluster):
    with Pool(1, maxtasksperchild=2, initializer=count_init, initargs=("x",)) as p:
        states = [p.apply(init_state) for _ in range(6)]
        mapped = p.map(pid_of, range(4), chunksize=1)
    pids = [pid for pid, _, _ in states]
    assert pids[0] == pids[1] != pids[2] == pids[3] != pids[4] == pids[5]
    assert len(set(pids)) == 3
    assert {calls for _, calls, _ in states} == {1}  # each new process ran the initializer once
    assert mapped[0] == mapped[1] != mapped[2] == mapped[3]


def test_a_dead_worker_fails_its_task_and_is_replaced(pool):
    r = pool.apply_async(os._exit, (3,))
    with pytest.raises(ActorDiedError):
        r.get(timeout=60)
    assert pool.map(square, range(20), chunksize=1) == [x * x for x in range(20)]


def test_processes_context_and_options_are_checked(cluster):
    with pytest.raises(ValueError, match="Number of processes must be at least 1"):
        Pool(0)
    with pytest.raises(TypeError, match="processes must be an int"):
        Pool(2.5)
    with pytest.raises(TypeError, match="initializer must be a callable"):
        Pool(1, initializer=3)
    with pytest.raises(ValueError, match="maxtasksperchild must be a positive int"):
        Pool(1, maxtasksperchild=0)
    with pytest.raises(ValueError, match="'fork' context is not supported.*'spawn'"):
        Pool(1, context=multiprocessing.get_context("fork"))
    with pytest.raises(ValueError, match=r"ray_remote_args \['name'\]"):
        Pool(1, ray_remote_args={"name": "one"})
    with pytest.raises(ValueError, match="invalid option.*num_cpuz"):
        Pool(1, ray_remote_args={"num_cpuz": 1})
    with pytest.raises(ValueError, match="num_cpus=8 per Pool process.*could never run"):
        Pool(1, ray_remote_args={"num_cpus": 8})
    with pytest.raises(ValueError, match="already connected"):
        Pool(1, ray_address="127.0.0.1:6379")
    with Pool(1, context=multiprocessing.get_context("spawn"), ray_remote_args={"num_cpus": 2}) as p:
        assert p.map(square, [5]) == [25]
        assert quanta.available_resources().get("CPU", 0) == pytest.approx(2)
        with pytest.raises(ValueError, match="Chunksize must be 1"):
            p.map(square, [1], chunksize=0)
        with pytest.raises(TypeError, match="func must be callable"):
            p.apply_async(None)


# ------------------------------------------------------------------------------ life cycle


def test_close_lets_queued_work_finish_then_join_returns(cluster):
    p = Pool(2)
    with pytest.raises(ValueError, match="Pool is still running"):
        p.join()
    results = [p.apply_async(sleep_then, (0.2, i)) for i in range(6)]
    p.close()
    for call in (lambda: p.map(square, [1]), lambda: p.apply_async(square, (1,)),
                 lambda: p.imap(square, [1]), lambda: p.__enter__()):
        with pytest.raises(ValueError, match="Pool not running"):
            call()
    p.join()
    assert [r.get(timeout=0) for r in results] == list(range(6))


def test_terminate_stops_the_processes_and_fails_unfinished_work(cluster):
    p = Pool(2)
    pids = set(p.map(pid_after, [0.2] * 4, chunksize=1))
    idents = {process_identity(pid) for pid in pids}
    slow = [p.apply_async(sleep_then, (30,)) for _ in range(4)]
    time.sleep(0.3)
    started = time.monotonic()
    p.terminate()
    p.join()
    for r in slow:
        with pytest.raises(RuntimeError, match="terminated"):
            r.get(timeout=5)
    assert time.monotonic() - started < 10
    assert wait_until_gone(idents, timeout=10) == set()


def test_context_manager_exit_terminates(cluster):
    with Pool(2) as p:
        pids = set(p.map(pid_after, [0.2] * 4, chunksize=1))
        idents = {process_identity(pid) for pid in pids}  # while the pool surely still runs
    assert None not in idents
    with pytest.raises(ValueError, match="Pool not running"):
        p.map(square, [1])
    assert wait_until_gone(idents, timeout=10) == set()


def test_a_pool_cannot_be_pickled(pool):
    import pickle

    with pytest.raises(NotImplementedError, match="cannot be passed between processes"):
        pickle.dumps(pool)


@pytest.mark.subprocess_driver
def test_ray_program_uses_the_pool_without_calling_init(run_driver_code):
    out = run_driver_code("""
        import quanta as ray
        def cube(x):
            return x ** 3
        with ray.util.multiprocessing.Pool(2) as pool:
            print("RESULT", pool.map(cube, range(5)), ray.is_initialized())
    """)
    assert "RESULT [0, 1, 8, 27, 64] True" in out


@pytest.fixture
def run_driver_code():
    from conftest import run_driver

    def run(code):
        proc = run_driver(code, timeout=120)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return proc.stdout

    return run
