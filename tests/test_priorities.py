"""Task priorities (beyond Ray): options(priority=N) orders a node's ready tasks of the same
resource shape, higher first, in submission order within a priority."""

import time

import pytest

import quanta


@quanta.remote
def blocker(seconds):
    time.sleep(seconds)
    return 0


@quanta.remote
def stamp(label):
    return label, time.monotonic()


def test_high_priority_tasks_submitted_after_200_low_ones_start_first(no_cluster):
    quanta.init(num_cpus=1)
    quanta.get(blocker.remote(0))  # the worker is up
    gate = blocker.remote(1.0)     # holds the only CPU while everything else queues
    low = [stamp.remote(("low", i)) for i in range(200)]
    high = [stamp.options(priority=10).remote(("high", i)) for i in range(5)]
    mid = [stamp.options(priority=5).remote(("mid", i)) for i in range(3)]
    quanta.get(gate)
    done = quanta.get(low + high + mid, timeout=120)
    order = [label for label, _ in sorted(done, key=lambda x: x[1])]
    assert order[:5] == [("high", i) for i in range(5)], order[:10]
    assert order[5:8] == [("mid", i) for i in range(3)], order[:10]
    assert order[8:] == [("low", i) for i in range(200)], "FIFO within a priority"


def test_default_priority_keeps_submission_order(no_cluster):
    quanta.init(num_cpus=1)
    gate = blocker.remote(0.5)
    refs = [stamp.remote(i) for i in range(50)] + [stamp.options(priority=0).remote(50 + i) for i in range(10)]
    quanta.get(gate)
    done = quanta.get(refs, timeout=60)
    assert [label for label, _ in sorted(done, key=lambda x: x[1])] == list(range(60))


def test_negative_priority_runs_last(no_cluster):
    quanta.init(num_cpus=1)
    gate = blocker.remote(0.5)
    late = stamp.options(priority=-1).remote("late")
    normal = [stamp.remote(i) for i in range(5)]
    quanta.get(gate)
    t_late = quanta.get(late)[1]
    assert all(quanta.get(r)[1] < t_late for r in normal)


@pytest.mark.parametrize("value,error,match", [
    ("high", TypeError, "must be an int"), (1.5, TypeError, "must be an int"), (True, TypeError, "must be an int"),
    (1001, ValueError, "out of range"), (-1001, ValueError, "out of range"),
])
def test_bad_priorities_are_refused(value, error, match):
    with pytest.raises(error, match=match):
        stamp.options(priority=value)
    with pytest.raises(error, match=match):
        quanta.remote(priority=value)(lambda: 1)


def test_priority_is_for_tasks_not_actors():
    class A:
        pass

    with pytest.raises(ValueError, match="invalid option"):
        quanta.remote(priority=1)(A)
