"""Errors raised in tasks, propagated through arguments and nested gets, and worker crashes.

Exception classes are defined inside the tests so that they travel by value, like the functions.
"""

import os
import re
import threading

import pytest

import quanta
import quanta.exceptions as qexc


def test_exception_module_layout():
    assert qexc.RayTaskError is qexc.TaskError
    assert qexc.RayActorError is qexc.ActorDiedError
    for name in (
        "TaskError",
        "GetTimeoutError",
        "WorkerCrashedError",
        "TaskCancelledError",
        "ObjectStoreFullError",
        "ActorDiedError",
        "RaySystemError",
        "ObjectLostError",
    ):
        cls = getattr(qexc, name)
        assert issubclass(cls, qexc.QuantaError), name
        assert issubclass(cls, Exception), name
    assert issubclass(qexc.GetTimeoutError, TimeoutError)
    assert hasattr(qexc, "QuantaSystemError")


def test_task_exception_is_task_error_and_user_class_with_remote_traceback(cluster):
    class InventoryError(Exception):
        def __init__(self, message, code=None):
            super().__init__(message)
            self.code = code

    @quanta.remote
    def check_inventory(item):
        def look_up_shelf(name):
            raise InventoryError(f"no {name} on the shelf", code=404)

        return look_up_shelf(item)

    ref = check_inventory.remote("widgets")
    with pytest.raises(InventoryError) as info:
        quanta.get(ref)
    err = info.value
    assert isinstance(err, qexc.TaskError)
    assert isinstance(err, qexc.RayTaskError)
    assert isinstance(err, qexc.QuantaError)
    assert err.code == 404
    message = str(err)
    assert "no widgets on the shelf" in message
    assert "InventoryError" in message
    # The remote traceback: user frames, with the function that raised.
    assert re.search(r"line \d+, in look_up_shelf", message), message
    assert "check_inventory" in message


def test_builtin_exception_keeps_its_class(cluster):
    @quanta.remote
    def divide(a, b):
        return a / b

    with pytest.raises(ZeroDivisionError) as info:
        quanta.get(divide.remote(1, 0))
    assert isinstance(info.value, qexc.TaskError)
    assert "division by zero" in str(info.value)
    assert quanta.get(divide.remote(6, 3)) == 2


def test_error_is_raised_on_every_get(cluster):
    @quanta.remote
    def fail():
        raise KeyError("missing-key-123")

    ref = fail.remote()
    for _ in range(2):
        with pytest.raises(KeyError) as info:
            quanta.get(ref)
        assert "missing-key-123" in str(info.value)
    with pytest.raises(qexc.TaskError):
        quanta.get([quanta.put(1), ref])


def test_failed_argument_fails_dependent_task_without_running_it(cluster, tmp_path):
    marker = tmp_path / "dependent-ran"

    @quanta.remote
    def broken():
        raise ValueError("upstream broke")

    @quanta.remote
    def dependent(x, path):
        open(path, "w").close()
        return x

    ref = dependent.remote(broken.remote(), str(marker))
    with pytest.raises(ValueError) as info:
        quanta.get(ref)
    assert isinstance(info.value, qexc.TaskError)
    assert "upstream broke" in str(info.value)
    assert not marker.exists(), "a task whose argument failed must not run"


def test_failure_propagates_along_a_chain(cluster):
    @quanta.remote
    def start():
        raise RuntimeError("root cause 77")

    @quanta.remote
    def step(x):
        return x + 1

    ref = start.remote()
    for _ in range(3):
        ref = step.remote(ref)
    with pytest.raises(RuntimeError) as info:
        quanta.get(ref)
    assert "root cause 77" in str(info.value)


def test_nested_error_can_be_caught_inside_a_task(cluster):
    @quanta.remote
    def inner():
        raise ValueError("inner failure")

    @quanta.remote
    def outer():
        try:
            quanta.get(inner.remote())
        except ValueError as exc:
            return ("caught", "inner failure" in str(exc))
        return ("not caught", False)

    assert quanta.get(outer.remote()) == ("caught", True)


def test_uncaught_nested_error_reaches_the_driver(cluster):
    @quanta.remote
    def inner():
        raise IndexError("deep index problem")

    @quanta.remote
    def outer():
        return quanta.get(inner.remote())

    with pytest.raises(qexc.TaskError) as info:
        quanta.get(outer.remote())
    assert "deep index problem" in str(info.value)
    assert isinstance(info.value, IndexError)


def test_exception_that_cannot_be_unpickled_still_arrives(cluster):
    class NeedsTwoArgs(Exception):
        def __init__(self, message, extra):  # unpickling calls cls(message) and fails
            super().__init__(message)
            self.extra = extra

    @quanta.remote
    def fail():
        raise NeedsTwoArgs("unpicklable-exception-text", 1)

    with pytest.raises(qexc.TaskError) as info:
        quanta.get(fail.remote())
    assert "unpicklable-exception-text" in str(info.value)


def test_exception_that_cannot_be_pickled_still_arrives(cluster):
    class HoldsLock(Exception):
        def __init__(self, message):
            super().__init__(message)
            self.lock = threading.Lock()

    @quanta.remote
    def fail():
        raise HoldsLock("exception-holding-a-lock")

    with pytest.raises(qexc.TaskError) as info:
        quanta.get(fail.remote())
    assert "exception-holding-a-lock" in str(info.value)


def test_worker_crash_raises_worker_crashed_error_and_cluster_recovers(cluster):
    @quanta.remote(max_retries=0)
    def crash():
        os._exit(3)

    @quanta.remote
    def fine(x):
        return x

    with pytest.raises(qexc.WorkerCrashedError) as info:
        quanta.get(crash.remote(), timeout=60)
    assert isinstance(info.value, qexc.QuantaError)
    assert quanta.get([fine.remote(i) for i in range(8)], timeout=60) == list(range(8))


def test_crashed_task_is_retried_up_to_max_retries(cluster, tmp_path):
    attempts = tmp_path / "attempts"

    @quanta.remote(max_retries=2)
    def crash_once(path):
        with open(path, "a") as fh:
            fh.write("x")
        with open(path) as fh:
            if len(fh.read()) == 1:
                os._exit(1)
        return "survived"

    assert quanta.get(crash_once.remote(str(attempts)), timeout=60) == "survived"
    assert attempts.read_text() == "xx"

    always = tmp_path / "always"

    @quanta.remote
    def crash_always(path):
        with open(path, "a") as fh:
            fh.write("x")
        os._exit(1)

    with pytest.raises(qexc.WorkerCrashedError):
        quanta.get(crash_always.options(max_retries=1).remote(str(always)), timeout=60)
    assert always.read_text() == "xx", "one try plus one retry"


def test_application_exceptions_are_not_retried_by_default(cluster, tmp_path):
    attempts = tmp_path / "attempts"

    @quanta.remote(max_retries=3)
    def flaky(path):
        with open(path, "a") as fh:
            fh.write("x")
        raise ValueError("application error")

    with pytest.raises(ValueError):
        quanta.get(flaky.remote(str(attempts)))
    assert attempts.read_text() == "x"
