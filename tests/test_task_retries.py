"""Retries of application errors (retry_exceptions) and per-task timeouts (timeout_s), with
real worker processes. Worker and node deaths are in test_tasks.py / test_*_across_nodes.py."""

import os
import time

import pytest

import quanta
from quanta.exceptions import TaskCancelledError, TaskError, TaskTimeoutError


@pytest.fixture(scope="module", autouse=True)
def cluster():
    if quanta.is_initialized():
        quanta.shutdown()  # the session-wide shared cluster of conftest, if an earlier module left it
    quanta.init(num_cpus=2)
    yield
    quanta.shutdown()


class Flaky(Exception):
    pass


class Other(Exception):
    pass


@quanta.remote
class Counter:
    def __init__(self):
        self.n = 0

    def inc(self, key):
        self.n += 1
        return self.n

    def get(self):
        return self.n


def _attempts(tmp_path, name):
    path = tmp_path / name
    return path, (lambda: len(path.read_text()) if path.exists() else 0)


def test_retry_exceptions_true_reruns_until_success(tmp_path):
    path, attempts = _attempts(tmp_path, "a")

    @quanta.remote(retry_exceptions=True, max_retries=3)
    def flaky(p):
        with open(p, "a") as f:
            f.write("x")
        if len(open(p).read()) < 3:
            raise Flaky("not yet")
        return "done"

    assert quanta.get(flaky.remote(str(path))) == "done"
    assert attempts() == 3


def test_retries_are_bounded_by_max_retries(tmp_path):
    path, attempts = _attempts(tmp_path, "b")

    @quanta.remote(retry_exceptions=True, max_retries=2)
    def always(p):
        with open(p, "a") as f:
            f.write("x")
        raise Flaky("always")

    with pytest.raises(Flaky, match="always"):
        quanta.get(always.remote(str(path)))
    assert attempts() == 3  # the first run and two retries


def test_application_errors_are_not_retried_by_default(tmp_path):
    path, attempts = _attempts(tmp_path, "c")

    @quanta.remote(max_retries=5)
    def fails(p):
        with open(p, "a") as f:
            f.write("x")
        raise Flaky("once")

    with pytest.raises(TaskError):
        quanta.get(fails.remote(str(path)))
    assert attempts() == 1


def test_retry_exceptions_list_retries_only_listed_types_and_subclasses(tmp_path):
    class Special(Flaky):
        pass

    @quanta.remote(retry_exceptions=[Flaky], max_retries=4)
    def raises(p, kind):
        with open(p, "a") as f:
            f.write("x")
        raise {"special": Special, "other": Other}[kind](kind)

    p1, attempts1 = _attempts(tmp_path, "d1")
    with pytest.raises(Special):
        quanta.get(raises.remote(str(p1), "special"))
    assert attempts1() == 5  # a subclass of a listed type is retried

    p2, attempts2 = _attempts(tmp_path, "d2")
    with pytest.raises(Other):
        quanta.get(raises.remote(str(p2), "other"))
    assert attempts2() == 1  # not listed: no retry


def test_options_can_turn_retries_on_and_off(tmp_path):
    @quanta.remote(retry_exceptions=True, max_retries=2)
    def raises(p):
        with open(p, "a") as f:
            f.write("x")
        raise Flaky()

    p1, attempts1 = _attempts(tmp_path, "e1")
    with pytest.raises(Flaky):
        quanta.get(raises.options(retry_exceptions=False).remote(str(p1)))
    assert attempts1() == 1
    p2, attempts2 = _attempts(tmp_path, "e2")
    with pytest.raises(Flaky):
        quanta.get(raises.options(max_retries=0).remote(str(p2)))
    assert attempts2() == 1


def test_bad_retry_exceptions_values_are_refused():
    def f():
        pass

    for bad in ("yes", [ValueError, "x"], [], [int], 3):
        with pytest.raises(TypeError, match="retry_exceptions"):
            quanta.remote(retry_exceptions=bad)(f)


def test_actor_method_retry_exceptions_uses_max_task_retries():
    @quanta.remote
    class Shaky:
        def __init__(self):
            self.calls = 0

        @quanta.method(retry_exceptions=[Flaky], max_task_retries=3)
        def work(self):
            self.calls += 1
            if self.calls < 3:
                raise Flaky(f"call {self.calls}")
            return self.calls

        def plain(self):
            self.calls += 1
            raise Flaky("plain")

        def count(self):
            return self.calls

    a = Shaky.remote()
    assert quanta.get(a.work.remote()) == 3
    with pytest.raises(Flaky):
        quanta.get(a.plain.remote())  # no retry_exceptions: one attempt
    assert quanta.get(a.count.remote()) == 4
    with pytest.raises(Flaky):  # retries allowed by options, but none left
        quanta.get(a.plain.options(retry_exceptions=True, max_task_retries=1).remote())
    assert quanta.get(a.count.remote()) == 6


def test_timeout_stops_a_long_task_with_task_timeout_error():
    @quanta.remote(timeout_s=0.5)
    def sleepy():
        time.sleep(30)

    start = time.monotonic()
    with pytest.raises(TaskTimeoutError, match="timeout_s=0.5") as info:
        quanta.get(sleepy.remote(), timeout=20)
    assert time.monotonic() - start < 10
    assert isinstance(info.value, TaskCancelledError) and isinstance(info.value, TimeoutError)


def test_timeout_kills_a_task_that_ignores_keyboard_interrupt():
    @quanta.remote(timeout_s=0.3)
    def stubborn():
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                time.sleep(0.05)
            except KeyboardInterrupt:
                pass
        return "escaped"

    start = time.monotonic()
    with pytest.raises(TaskTimeoutError):
        quanta.get(stubborn.remote(), timeout=20)
    assert time.monotonic() - start < 10

    @quanta.remote
    def pid():
        return os.getpid()

    assert quanta.get(pid.remote(), timeout=20) > 0  # the cluster goes on


def test_fast_tasks_with_a_timeout_are_not_affected():
    @quanta.remote(timeout_s=5)
    def quick(i):
        return i * 2

    assert quanta.get([quick.remote(i) for i in range(200)]) == [2 * i for i in range(200)]


def test_timeouts_are_retried_only_when_asked(tmp_path):
    path, attempts = _attempts(tmp_path, "t")

    @quanta.remote(timeout_s=0.4, max_retries=2)
    def slow_then_fast(p):
        with open(p, "a") as f:
            f.write("x")
        if len(open(p).read()) < 2:
            time.sleep(30)
        return "second try"

    with pytest.raises(TaskTimeoutError):
        quanta.get(slow_then_fast.remote(str(path)), timeout=20)
    assert attempts() == 1
    path.unlink()
    retried = slow_then_fast.options(retry_exceptions=[TaskTimeoutError])
    assert quanta.get(retried.remote(str(path)), timeout=20) == "second try"
    assert attempts() == 2
    path.unlink()
    not_covered = slow_then_fast.options(retry_exceptions=[ValueError])
    with pytest.raises(TaskTimeoutError):
        quanta.get(not_covered.remote(str(path)), timeout=20)


def test_bad_timeouts_are_refused():
    def f():
        pass

    for bad in (0, -1, "1", True, float("nan")):
        with pytest.raises(ValueError, match="timeout_s"):
            quanta.remote(timeout_s=bad)(f)
    with pytest.raises(ValueError, match="timeout_s"):
        Counter.remote().inc.options(timeout_s=1)
