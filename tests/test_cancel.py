"""quanta.cancel: queued tasks never run, running ones are interrupted (force kills the worker),
and actor calls that have not started are dropped without disturbing the actor."""

import time

import pytest

import quanta
from quanta.exceptions import TaskCancelledError


def test_cancel_a_queued_task_never_runs_it(cluster, tmp_path):
    marker = tmp_path / "ran"

    @quanta.remote
    def gate():
        time.sleep(1.0)

    @quanta.remote
    def touch(_):
        marker.write_text("ran")

    ref = touch.remote(gate.remote())  # waits for its argument
    quanta.cancel(ref)
    with pytest.raises(TaskCancelledError):
        quanta.get(ref, timeout=10)
    time.sleep(1.5)
    assert not marker.exists()


@pytest.mark.parametrize("force", [False, True])
def test_cancel_a_running_task(cluster, force):
    @quanta.remote(max_retries=0)
    def sleeper():
        time.sleep(30)

    ref = sleeper.remote()
    time.sleep(0.5)  # let it start
    start = time.time()
    quanta.cancel(ref, force=force)
    with pytest.raises(TaskCancelledError):
        quanta.get(ref, timeout=15)
    assert time.time() - start < 10

    @quanta.remote
    def still_works():
        return "ok"

    assert quanta.get(still_works.remote(), timeout=30) == "ok"


def test_cancel_an_actor_call_that_has_not_started(cluster):
    @quanta.remote
    class Worker:
        def __init__(self):
            self.done = []

        def slow(self):
            time.sleep(1.0)
            self.done.append("slow")

        def record(self, x):
            self.done.append(x)
            return x

        def history(self):
            return self.done

    w = Worker.remote()
    quanta.get(w.history.remote())
    slow = w.slow.remote()
    dropped = w.record.remote("dropped")
    kept = w.record.remote("kept")
    time.sleep(0.2)
    quanta.cancel(dropped)
    quanta.cancel(slow)  # already running: actor calls are not interrupted
    with pytest.raises(TaskCancelledError):
        quanta.get(dropped, timeout=10)
    assert quanta.get(kept, timeout=10) == "kept"
    assert quanta.get(w.history.remote(), timeout=10) == ["slow", "kept"]
