"""Actors: creation, method calls, arguments and results, ordering, handles that travel, options,
named actors and namespaces, multiple returns, kill / exit_actor, errors and resources.

Actor classes are defined inside the tests so that they are shipped by value. Most tests use the
shared 4-CPU ``cluster``; those that need a particular node shape use ``no_cluster`` and start
their own.
"""

import gc
import os
import threading
import time

import numpy as np
import pytest

import quanta
from quanta.exceptions import ActorDiedError, GetTimeoutError, RayActorError


def poll(predicate, timeout=10.0, interval=0.05):
    """Call ``predicate`` until it returns something truthy; return that, or the last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)


def dies_within(handle, method="ping", timeout=10.0):
    """True once a call on ``handle`` raises ActorDiedError (each call must fail or answer fast)."""

    def check():
        try:
            quanta.get(getattr(handle, method).remote(), timeout=timeout)
        except ActorDiedError:
            return True
        except GetTimeoutError:
            raise AssertionError("a call on a dead actor hung instead of raising ActorDiedError")
        return False

    return poll(check, timeout=timeout, interval=0.1)


def make_counter():
    @quanta.remote
    class Counter:
        def __init__(self, start=0):
            self.value = start

        def incr(self, by=1):
            self.value += by
            return self.value

        def get(self):
            return self.value

        def pid(self):
            return os.getpid()

        def ping(self):
            return "pong"

    return Counter


# ------------------------------------------------------------------------------ basics


def test_remote_returns_handle_at_once_and_methods_return_refs(cluster):
    @quanta.remote
    class Slow:
        def __init__(self):
            time.sleep(1.5)
            self.ready = True

        def is_ready(self):
            return self.ready

    start = time.monotonic()
    handle = Slow.remote()
    ref = handle.is_ready.remote()
    submitted = time.monotonic() - start
    assert isinstance(handle, quanta.ActorHandle)
    assert isinstance(ref, quanta.ObjectRef)
    assert submitted < 1.0, f"creating an actor and calling it should not block ({submitted:.2f}s)"
    assert quanta.get(ref) is True
    assert time.monotonic() - start >= 1.4, "the call ran before the constructor finished"


def test_instance_lives_in_its_own_process_and_keeps_state(cluster):
    Counter = make_counter()
    a = Counter.remote()
    b = Counter.remote(100)
    pid_a, pid_b = quanta.get([a.pid.remote(), b.pid.remote()])
    assert pid_a != os.getpid() and pid_b != os.getpid()
    assert pid_a != pid_b, "two actors must not share a process"
    assert quanta.get([a.incr.remote() for _ in range(5)]) == [1, 2, 3, 4, 5]
    assert quanta.get(b.incr.remote(by=10)) == 110
    assert quanta.get(a.get.remote()) == 5, "actors keep separate state"
    assert quanta.get(a.pid.remote()) == pid_a, "every call of an actor runs in the same process"


def test_direct_instantiation_and_direct_method_call_raise_type_error(cluster):
    Counter = make_counter()
    with pytest.raises(TypeError) as info:
        Counter()
    assert ".remote(" in str(info.value)
    handle = Counter.remote()
    with pytest.raises(TypeError):
        handle.incr()
    assert quanta.get(handle.incr.remote()) == 1


def test_wrong_constructor_or_method_arguments_fail_at_the_call_site(cluster):
    Counter = make_counter()
    with pytest.raises(TypeError):
        Counter.remote(1, 2, 3)
    handle = Counter.remote()
    with pytest.raises(TypeError):
        handle.incr.remote(1, 2, 3)
    with pytest.raises(TypeError):
        handle.incr.remote(nope=1)
    assert quanta.get(handle.get.remote()) == 0


def test_arguments_and_results_follow_task_rules(cluster):
    @quanta.remote
    def produce(x):
        return x * 10

    @quanta.remote
    class Box:
        def __init__(self, initial):
            self.items = [initial]  # a top-level ref passed to the constructor arrives resolved

        def add(self, item, *, twice=False):
            self.items.append(item)
            if twice:
                self.items.append(item)
            return list(self.items)

        def describe(self, top, nested):
            inner = nested[0]
            return (top, type(inner).__name__, isinstance(inner, quanta.ObjectRef), quanta.get(inner))

        def big(self, n):
            return np.arange(n, dtype=np.float64)

    box = Box.remote(produce.remote(1))
    assert quanta.get(box.add.remote(produce.remote(2))) == [10, 20]
    assert quanta.get(box.add.remote(quanta.put("p"), twice=True)) == [10, 20, "p", "p"]

    ref = quanta.put(7)
    top, _, is_ref, value = quanta.get(box.describe.remote(ref, [ref]))
    assert top == 7, "a top-level ref argument is resolved to its value"
    assert is_ref and value == 7, "a ref nested in a container is passed as a ref"

    arr = quanta.get(box.big.remote(1_000_000))
    assert arr.shape == (1_000_000,) and arr[-1] == 999_999.0

    # A method's result can feed a task, and a task's result can feed a method.
    @quanta.remote
    def total(items):
        return len(items)

    assert quanta.get(total.remote(box.add.remote(produce.remote(3)))) == 5


def test_unknown_method_raises_attribute_error_at_call_site(cluster):
    Counter = make_counter()
    handle = Counter.remote()
    with pytest.raises(AttributeError):
        handle.no_such_method
    with pytest.raises(AttributeError):
        handle.no_such_method.remote()
    assert quanta.get(handle.ping.remote()) == "pong", "the actor is unaffected"


# ------------------------------------------------------------------------------ ordering


def test_one_thousand_calls_run_in_submission_order(cluster):
    @quanta.remote
    class Log:
        def __init__(self):
            self.seen = []

        def append(self, i):
            self.seen.append(i)
            return len(self.seen)

        def seen_list(self):
            return self.seen

    log = Log.remote()
    refs = [log.append.remote(i) for i in range(1000)]
    assert quanta.get(log.seen_list.remote()) == list(range(1000))
    assert quanta.get(refs) == list(range(1, 1001))


def test_order_is_kept_even_when_an_earlier_argument_resolves_later(cluster):
    @quanta.remote
    def late(value):
        time.sleep(1.0)
        return value

    @quanta.remote
    class Log:
        def __init__(self):
            self.seen = []

        def append(self, item):
            self.seen.append(item)

        def seen_list(self):
            return self.seen

    log = Log.remote()
    log.append.remote(late.remote("first"))
    log.append.remote("second")
    log.append.remote("third")
    assert quanta.get(log.seen_list.remote()) == ["first", "second", "third"]


def test_call_with_a_failed_argument_fails_and_later_calls_still_answer(cluster):
    @quanta.remote
    def broken():
        raise ValueError("upstream failure")

    @quanta.remote
    class Log:
        def __init__(self):
            self.seen = []

        def append(self, item):
            self.seen.append(item)
            return len(self.seen)

        def seen_list(self):
            return self.seen

    log = Log.remote()
    assert quanta.get(log.seen_list.remote()) == []
    failed = log.append.remote(broken.remote())
    after = log.append.remote("after")
    later = log.append.remote("later")
    # The calls after the failed one must answer on their own, not only once yet another call ran.
    assert quanta.get(later, timeout=10) == 2
    assert quanta.get(after, timeout=10) == 1
    with pytest.raises(ValueError) as info:
        quanta.get(failed, timeout=10)
    assert "upstream failure" in str(info.value)
    assert quanta.get(log.seen_list.remote()) == ["after", "later"], "the failed call never ran"


def test_methods_are_atomic_by_default_even_with_many_callers(cluster):
    @quanta.remote
    class Racy:
        def __init__(self):
            self.value = 0
            self.active = 0
            self.peak = 0

        def slow_incr(self):
            self.active += 1
            self.peak = max(self.peak, self.active)
            current = self.value
            time.sleep(0.002)  # would lose updates if two calls interleaved
            self.value = current + 1
            self.active -= 1

        def stats(self):
            return self.value, self.peak

    @quanta.remote
    def hammer(actor, n):
        quanta.get([actor.slow_incr.remote() for _ in range(n)])
        return n

    racy = Racy.remote()
    driver_refs = [racy.slow_incr.remote() for _ in range(50)]
    assert quanta.get([hammer.remote(racy, 50) for _ in range(3)]) == [50, 50, 50]
    quanta.get(driver_refs)
    assert quanta.get(racy.stats.remote()) == (200, 1)


# ------------------------------------------------------------------------------ handles travel


def test_handle_passed_to_tasks_and_actors_and_stored_in_objects(cluster):
    Counter = make_counter()
    counter = Counter.remote()

    @quanta.remote
    def bump(c, n):
        return quanta.get([c.incr.remote() for _ in range(n)])[-1]

    @quanta.remote
    def bump_from_box(box):
        return quanta.get(box["counter"].incr.remote(100))

    @quanta.remote
    class Holder:
        def __init__(self, c):
            self.c = c

        def bump(self):
            return quanta.get(self.c.incr.remote(1000))

    assert quanta.get(bump.remote(counter, 3)) == 3
    holder = Holder.remote(counter)
    assert quanta.get(holder.bump.remote()) == 1003
    assert quanta.get(bump_from_box.remote({"counter": counter})) == 1103  # nested in an argument
    stored = quanta.put([counter])  # inside an object in the store
    assert quanta.get(quanta.get(stored)[0].incr.remote()) == 1104
    assert quanta.get(counter.get.remote()) == 1104
    assert quanta.get(counter.pid.remote()) == quanta.get(quanta.get(stored)[0].pid.remote())


def test_handles_can_be_returned_from_tasks_and_methods(cluster):
    Counter = make_counter()

    @quanta.remote
    class Factory:
        def __init__(self):
            self.children = []

        def make(self, start):
            child = Counter.remote(start)
            self.children.append(child)
            return child

    @quanta.remote
    def make_in_task(start):
        return Counter.remote(start)

    factory = Factory.remote()
    child = quanta.get(factory.make.remote(40))
    assert isinstance(child, quanta.ActorHandle)
    assert quanta.get(child.incr.remote(2)) == 42

    # The task that created it has finished; the handle it returned still works.
    orphan = quanta.get(make_in_task.remote(7))
    assert quanta.get(orphan.incr.remote()) == 8
    assert quanta.get(orphan.incr.remote()) == 9


def test_handles_compare_equal_by_actor(cluster):
    Counter = make_counter()
    a = Counter.remote()
    b = Counter.remote()

    @quanta.remote
    def echo(x):
        return x

    a_again = quanta.get(echo.remote([a]))[0]
    assert a_again == a and hash(a_again) == hash(a)
    assert a != b


# ------------------------------------------------------------------------------ methods with options


def test_method_num_returns(cluster):
    @quanta.remote
    class Splitter:
        @quanta.method(num_returns=2)
        def halves(self, items):
            mid = len(items) // 2
            return items[:mid], items[mid:]

        def triple(self):
            return "a", "b", "c"

    s = Splitter.remote()
    left, right = s.halves.remote([1, 2, 3, 4])
    assert isinstance(left, quanta.ObjectRef) and isinstance(right, quanta.ObjectRef)
    assert quanta.get([left, right]) == [[1, 2], [3, 4]]
    refs = s.triple.options(num_returns=3).remote()
    assert len(refs) == 3
    assert quanta.get(list(refs)) == ["a", "b", "c"]
    assert quanta.get(s.triple.remote()) == ("a", "b", "c")


# ------------------------------------------------------------------------------ named actors


def test_named_actor_lookup_and_namespaces(cluster):
    Counter = make_counter()
    original = Counter.options(name="actors-named-1").remote(5)
    found = quanta.get_actor("actors-named-1")
    assert quanta.get(found.incr.remote()) == 6
    assert quanta.get(original.get.remote()) == 6, "the lookup returns the same actor"

    with pytest.raises(ValueError):
        quanta.get_actor("actors-no-such-name")

    a = Counter.options(name="actors-shared", namespace="actors-ns-a").remote(1)
    b = Counter.options(name="actors-shared", namespace="actors-ns-b").remote(2)
    assert quanta.get(quanta.get_actor("actors-shared", namespace="actors-ns-a").get.remote()) == 1
    assert quanta.get(quanta.get_actor("actors-shared", namespace="actors-ns-b").get.remote()) == 2
    with pytest.raises(ValueError):
        quanta.get_actor("actors-shared")  # not in this driver's namespace
    with pytest.raises(ValueError):
        quanta.get_actor("actors-named-1", namespace="actors-ns-a")
    del a, b


def test_named_actor_can_be_looked_up_from_tasks_and_actors(cluster):
    Counter = make_counter()
    counter = Counter.options(name="actors-lookup-from-inside").remote()

    @quanta.remote
    def bump_by_name():
        return quanta.get(quanta.get_actor("actors-lookup-from-inside").incr.remote())

    @quanta.remote
    class Client:
        def bump(self):
            return quanta.get(quanta.get_actor("actors-lookup-from-inside").incr.remote(10))

    assert quanta.get(bump_by_name.remote()) == 1, "a task sees its driver's namespace"
    assert quanta.get(Client.remote().bump.remote()) == 11, "so does an actor"
    assert quanta.get(counter.get.remote()) == 11


def test_duplicate_name_raises_value_error(cluster):
    Counter = make_counter()
    first = Counter.options(name="actors-dup").remote(1)
    assert quanta.get(first.get.remote()) == 1
    with pytest.raises(ValueError):
        Counter.options(name="actors-dup").remote(2)
    assert quanta.get(quanta.get_actor("actors-dup").get.remote()) == 1, "the first one is untouched"


def test_get_if_exists_returns_the_existing_actor(cluster):
    Counter = make_counter()
    one = Counter.options(name="actors-singleton", get_if_exists=True).remote(10)
    two = Counter.options(name="actors-singleton", get_if_exists=True).remote(99)
    assert quanta.get(one.incr.remote()) == 11
    assert quanta.get(two.incr.remote()) == 12, "get_if_exists must return the existing actor"
    assert quanta.get(one.pid.remote()) == quanta.get(two.pid.remote())


def test_named_actor_name_is_free_again_after_kill(cluster):
    Counter = make_counter()
    first = Counter.options(name="actors-reusable").remote(1)
    assert quanta.get(first.get.remote()) == 1
    quanta.kill(first)

    def lookup_fails():
        try:
            quanta.get_actor("actors-reusable")
        except ValueError:
            return True
        return False

    assert poll(lookup_fails, timeout=10), "a killed actor's name should be released"
    second = Counter.options(name="actors-reusable").remote(2)
    assert quanta.get(quanta.get_actor("actors-reusable").get.remote()) == 2
    del second


# ------------------------------------------------------------------------------ kill / exit / errors


def test_kill_fails_pending_and_later_calls_without_hanging(cluster):
    @quanta.remote
    class Sleeper:
        def nap(self, seconds):
            time.sleep(seconds)
            return "woke"

        def ping(self):
            return "pong"

    s = Sleeper.remote()
    assert quanta.get(s.ping.remote()) == "pong"
    running = s.nap.remote(60)
    queued = s.ping.remote()
    time.sleep(0.3)
    quanta.kill(s)
    for ref in (running, queued, s.ping.remote()):
        with pytest.raises(ActorDiedError):
            quanta.get(ref, timeout=15)
    with pytest.raises(RayActorError):  # Ray's name for the same error
        quanta.get(s.ping.remote(), timeout=15)


def test_exit_actor_ends_the_actor(cluster):
    @quanta.remote
    class Quitter:
        def quit(self):
            quanta.actor.exit_actor()

        def ping(self):
            return "pong"

    q = Quitter.remote()
    assert quanta.get(q.ping.remote()) == "pong"
    q.quit.remote()
    assert dies_within(q), "calls after exit_actor() should raise ActorDiedError"


def test_exit_actor_outside_an_actor_raises(cluster):
    with pytest.raises(Exception):
        quanta.actor.exit_actor()


def test_method_exception_fails_only_that_call(cluster):
    @quanta.remote
    class Fragile:
        def __init__(self):
            self.calls = 0

        def work(self, fail):
            self.calls += 1
            if fail:
                raise ValueError(f"bad input on call {self.calls}")
            return self.calls

    f = Fragile.remote()
    assert quanta.get(f.work.remote(False)) == 1
    with pytest.raises(ValueError) as info:
        quanta.get(f.work.remote(True))
    assert "bad input on call 2" in str(info.value)
    assert isinstance(info.value, quanta.exceptions.RayTaskError)
    assert quanta.get(f.work.remote(False)) == 3, "the actor keeps its state after a failed call"


def test_constructor_exception_makes_every_call_raise_actor_died(cluster):
    @quanta.remote
    class Broken:
        def __init__(self, n):
            raise RuntimeError(f"constructor exploded with n={n}")

        def ping(self):
            return "pong"

    b = Broken.remote(17)
    for _ in range(3):
        with pytest.raises(ActorDiedError) as info:
            quanta.get(b.ping.remote(), timeout=15)
        assert "constructor exploded with n=17" in str(info.value)


def test_kill_rejects_non_handles(cluster):
    @quanta.remote
    def f():
        return 1

    ref = f.remote()
    with pytest.raises((TypeError, ValueError)):
        quanta.kill(ref)
    assert quanta.get(ref) == 1


# ------------------------------------------------------------------------------ resources


def test_default_actor_holds_no_cpu_while_alive(cluster):
    Counter = make_counter()
    total = quanta.cluster_resources()["CPU"]
    assert poll(lambda: quanta.available_resources().get("CPU") == total, timeout=10)
    actors = [Counter.remote() for _ in range(6)]
    assert quanta.get([a.ping.remote() for a in actors]) == ["pong"] * 6
    assert quanta.available_resources().get("CPU") == total


def test_many_default_actors_fit_on_two_cpus(no_cluster):
    quanta.init(num_cpus=2)
    Counter = make_counter()
    actors = [Counter.remote(i) for i in range(10)]
    assert quanta.get([a.incr.remote() for a in actors], timeout=60) == list(range(1, 11))
    pids = quanta.get([a.pid.remote() for a in actors])
    assert len(set(pids)) == 10
    assert quanta.available_resources().get("CPU") == 2

    @quanta.remote
    def task():
        return "ran"

    assert quanta.get(task.remote(), timeout=30) == "ran", "tasks still get the CPUs"


def test_actor_num_cpus_and_custom_resources_are_held(no_cluster):
    quanta.init(num_cpus=2, resources={"gadget": 1})

    @quanta.remote
    class User:
        def ping(self):
            return "pong"

    heavy = User.options(num_cpus=2).remote()
    assert quanta.get(heavy.ping.remote(), timeout=30) == "pong"
    assert quanta.available_resources().get("CPU", 0) == 0

    @quanta.remote(num_cpus=1)
    def task():
        return "ran"

    blocked = task.remote()
    ready, _ = quanta.wait([blocked], timeout=1.0)
    assert ready == [], "a task needing a CPU must wait while the actor holds both"

    first = User.options(num_cpus=0, resources={"gadget": 1}).remote()
    assert quanta.get(first.ping.remote(), timeout=30) == "pong"
    second = User.options(num_cpus=0, resources={"gadget": 1}).remote()
    with pytest.raises(GetTimeoutError):
        quanta.get(second.ping.remote(), timeout=1.0)

    quanta.kill(heavy)
    assert quanta.get(blocked, timeout=15) == "ran", "the killed actor's CPUs went back to the node"
    quanta.kill(first)
    assert quanta.get(second.ping.remote(), timeout=15) == "pong", "the gadget went back to the node"
