"""Actor lifetime: reference-counted actors, resources returned on death, restarts after a crash,
and detached named actors that outlive their driver on a cluster started with `quanta start`.

Processes are inspected through /proc (a zombie counts as gone). The detached-actor test runs
the CLI and its drivers as subprocesses with a private TMPDIR, so its `quanta stop` cannot touch
any other cluster on the machine.
"""

import gc
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time

import pytest

import quanta
from conftest import alive, process_identity, wait_until_gone
from quanta.exceptions import ActorDiedError, ActorUnavailableError, GetTimeoutError

GONE_WITHIN_S = 5.0


def poll(predicate, timeout=10.0, interval=0.05):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)


def make_counter():
    @quanta.remote
    class Counter:
        def __init__(self, start=0):
            self.value = start

        def incr(self, by=1):
            self.value += by
            return self.value

        def pid(self):
            return os.getpid()

        def ping(self):
            return "pong"

        def nap(self, seconds):
            time.sleep(seconds)
            return seconds

    return Counter


def identity_of(handle):
    ident = process_identity(quanta.get(handle.pid.remote()))
    assert ident is not None
    return ident


def assert_gone(ident, what="the actor process"):
    left = wait_until_gone({ident}, GONE_WITHIN_S)
    assert not left, f"{what} (pid {ident[0]}) is still alive {GONE_WITHIN_S}s after it should have exited"


def call_until_answer(method, timeout=20.0):
    """Call until the actor answers (it may be restarting); return the answer."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            return quanta.get(method.remote(), timeout=timeout)
        except (ActorDiedError, ActorUnavailableError) as e:
            last = e
            time.sleep(0.1)
    raise AssertionError(f"the actor did not come back within {timeout}s; last error: {last!r}")


def dies_within(method, timeout=10.0):
    def check():
        try:
            quanta.get(method.remote(), timeout=timeout)
        except ActorDiedError:
            return True
        except ActorUnavailableError:
            return False
        except GetTimeoutError:
            raise AssertionError("a call on a dead actor hung instead of raising ActorDiedError")
        return False

    return poll(check, timeout=timeout, interval=0.1)


# ------------------------------------------------------------------------------ reference counting


def test_process_exits_when_the_last_handle_is_dropped(cluster):
    Counter = make_counter()
    handle = Counter.remote()
    ident = identity_of(handle)
    assert alive(ident)
    del handle
    gc.collect()
    assert_gone(ident)


def test_handle_held_elsewhere_keeps_the_actor_alive(cluster):
    Counter = make_counter()

    @quanta.remote
    class Holder:
        def __init__(self, held):
            self.held = held

        def use(self):
            return quanta.get(self.held.incr.remote())

        def pid(self):
            return os.getpid()

    counter = Counter.remote()
    counter_ident = identity_of(counter)
    holder = Holder.remote(counter)
    holder_ident = identity_of(holder)
    del counter
    gc.collect()
    time.sleep(1.0)
    assert alive(counter_ident), "another actor still holds a handle; the actor must live on"
    assert quanta.get(holder.use.remote()) == 1
    assert quanta.get(holder.use.remote()) == 2

    del holder
    gc.collect()
    assert_gone(holder_ident, "the holder actor")
    assert_gone(counter_ident, "the held actor (its last handle died with the holder)")


def test_handle_inside_a_stored_object_keeps_the_actor_alive(cluster):
    Counter = make_counter()
    counter = Counter.remote(10)
    ident = identity_of(counter)
    box = quanta.put({"counter": counter})
    del counter
    gc.collect()
    time.sleep(1.0)
    assert alive(ident)
    assert quanta.get(quanta.get(box)["counter"].incr.remote()) == 11
    gc.collect()
    del box
    gc.collect()
    assert_gone(ident)


def test_pending_call_still_completes_after_the_handle_is_dropped(cluster):
    Counter = make_counter()
    handle = Counter.remote()
    ident = identity_of(handle)
    ref = handle.nap.remote(0.5)
    del handle
    gc.collect()
    assert quanta.get(ref, timeout=15) == 0.5
    del ref
    gc.collect()
    assert_gone(ident)


def test_handle_passed_to_a_task_keeps_the_actor_alive_after_the_driver_drops_it(cluster):
    Counter = make_counter()

    @quanta.remote
    def use_later(counter):
        time.sleep(1.0)
        return quanta.get(counter.incr.remote())

    handle = Counter.remote(7)
    ident = identity_of(handle)
    result = use_later.remote(handle)
    del handle
    gc.collect()
    assert quanta.get(result, timeout=15) == 8
    del result
    gc.collect()
    assert_gone(ident)


def test_actor_ends_when_its_creating_task_returns_without_handing_it_out(cluster):
    Counter = make_counter()

    @quanta.remote
    def make_and_drop():
        c = Counter.remote()
        pid = quanta.get(c.pid.remote())
        with open(f"/proc/{pid}/stat") as fh:  # (pid, starttime) as conftest.process_identity
            return pid, int(fh.read().rsplit(")", 1)[1].split()[19])

    ident = tuple(quanta.get(make_and_drop.remote()))
    assert_gone(ident)


# ------------------------------------------------------------------------------ resources come back


def test_resources_return_when_an_actor_is_killed(cluster):
    Counter = make_counter()
    total = quanta.cluster_resources()["CPU"]
    assert poll(lambda: quanta.available_resources().get("CPU") == total, timeout=10)
    holder = Counter.options(num_cpus=1).remote()
    ident = identity_of(holder)
    assert poll(lambda: quanta.available_resources().get("CPU") == total - 1, timeout=5), \
        "an actor with num_cpus=1 holds one CPU while it lives"
    quanta.kill(holder)
    assert_gone(ident)
    assert poll(lambda: quanta.available_resources().get("CPU") == total, timeout=5), \
        f"CPU not returned after kill: {quanta.available_resources()}"


def test_resources_return_when_the_last_handle_is_dropped(cluster):
    Counter = make_counter()
    total = quanta.cluster_resources()["CPU"]
    assert poll(lambda: quanta.available_resources().get("CPU") == total, timeout=10)
    holders = [Counter.options(num_cpus=1).remote() for _ in range(2)]
    idents = [identity_of(h) for h in holders]
    assert poll(lambda: quanta.available_resources().get("CPU") == total - 2, timeout=5)
    del holders
    gc.collect()
    for ident in idents:
        assert_gone(ident)
    assert poll(lambda: quanta.available_resources().get("CPU") == total, timeout=5), \
        f"CPU not returned after the handles were dropped: {quanta.available_resources()}"


def test_exit_actor_ends_the_process_and_returns_resources(cluster):
    @quanta.remote(num_cpus=1)
    class Quitter:
        def pid(self):
            return os.getpid()

        def quit(self):
            quanta.actor.exit_actor()

        def ping(self):
            return "pong"

    total = quanta.cluster_resources()["CPU"]
    assert poll(lambda: quanta.available_resources().get("CPU") == total, timeout=10)
    q = Quitter.remote()
    ident = identity_of(q)
    q.quit.remote()
    assert_gone(ident)
    assert dies_within(q.ping)
    assert poll(lambda: quanta.available_resources().get("CPU") == total, timeout=5)


# ------------------------------------------------------------------------------ crashes and restarts


def test_killed_process_without_restarts_makes_calls_fail(cluster):
    Counter = make_counter()
    handle = Counter.remote()
    ident = identity_of(handle)
    in_flight = handle.nap.remote(30)
    time.sleep(0.3)
    os.kill(ident[0], signal.SIGKILL)
    with pytest.raises(ActorDiedError):
        quanta.get(in_flight, timeout=15)
    with pytest.raises(ActorDiedError):
        quanta.get(handle.ping.remote(), timeout=15)


def test_max_restarts_brings_the_actor_back_once(cluster):
    Counter = make_counter()
    handle = Counter.options(max_restarts=1).remote()
    assert quanta.get(handle.incr.remote()) == 1
    assert quanta.get(handle.incr.remote()) == 2
    first = identity_of(handle)

    os.kill(first[0], signal.SIGKILL)
    assert_gone(first)
    second_pid = call_until_answer(handle.pid)
    assert second_pid != first[0], "the restarted actor runs in a new process"
    assert quanta.get(handle.incr.remote()) == 1, "a restarted actor starts from fresh state"
    second = process_identity(second_pid)

    os.kill(second_pid, signal.SIGKILL)
    assert_gone(second)
    assert dies_within(handle.ping), "after the restart budget is used up the actor stays dead"
    with pytest.raises(ActorDiedError):
        quanta.get(handle.ping.remote(), timeout=15)


def test_restart_reruns_the_constructor_with_its_arguments_and_keeps_name_and_resources(cluster):
    Counter = make_counter()
    total = quanta.cluster_resources()["CPU"]
    assert poll(lambda: quanta.available_resources().get("CPU") == total, timeout=10)
    handle = Counter.options(name="lifetime-phoenix", max_restarts=1, num_cpus=1).remote(
        quanta.put(100))
    assert quanta.get(handle.incr.remote()) == 101
    assert quanta.get(handle.incr.remote()) == 102
    first = identity_of(handle)

    os.kill(first[0], signal.SIGKILL)
    assert call_until_answer(handle.incr) == 101, "the constructor ran again with the same argument"
    assert quanta.get(quanta.get_actor("lifetime-phoenix").incr.remote()) == 102
    assert quanta.available_resources().get("CPU") == total - 1, \
        "the restarted actor holds its CPU once, neither leaked nor doubled"

    second = identity_of(handle)
    os.kill(second[0], signal.SIGKILL)
    assert dies_within(handle.ping)
    assert poll(lambda: quanta.available_resources().get("CPU") == total, timeout=5), \
        f"CPU not returned after the final death: {quanta.available_resources()}"


def test_max_task_retries_reruns_the_interrupted_call(cluster):
    Counter = make_counter()
    handle = Counter.options(max_restarts=1, max_task_retries=1).remote()
    ident = identity_of(handle)
    interrupted = handle.nap.remote(1.0)
    time.sleep(0.3)
    os.kill(ident[0], signal.SIGKILL)
    assert quanta.get(interrupted, timeout=30) == 1.0, "the call is retried on the restarted actor"
    assert quanta.get(handle.pid.remote(), timeout=15) != ident[0]


def test_kill_with_restart_allowed_restarts_and_no_restart_does_not(cluster):
    Counter = make_counter()
    handle = Counter.options(max_restarts=2).remote()
    assert quanta.get(handle.incr.remote(5)) == 5
    first = identity_of(handle)
    quanta.kill(handle, no_restart=False)
    assert_gone(first)
    assert call_until_answer(handle.pid) != first[0]
    assert quanta.get(handle.incr.remote()) == 1

    second = identity_of(handle)
    quanta.kill(handle)  # no_restart=True by default, even with restarts left
    assert_gone(second)
    assert dies_within(handle.ping)


# ------------------------------------------------------------------------------ detached actors


@pytest.fixture
def started_cluster():
    """A cluster started with `python -m quanta start --head --num-cpus 2` under a private TMPDIR.

    Yields a function that runs a driver program against it (address="auto").
    """
    tmp = tempfile.mkdtemp(prefix="qa-")  # short: the node socket path must fit in sun_path
    env = dict(os.environ, TMPDIR=tmp, PYTHONUNBUFFERED="1")
    env.pop("QUANTA_ADDRESS", None)

    def cli(*args, timeout=60):
        return subprocess.run([sys.executable, "-m", "quanta", *args], env=env, capture_output=True,
                              text=True, timeout=timeout)

    def driver(code, timeout=90):
        proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env,
                              capture_output=True, text=True, timeout=timeout)
        assert proc.returncode == 0, f"driver failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
        return proc.stdout

    try:
        started = cli("start", "--head", "--num-cpus", "2")
        assert started.returncode == 0, f"quanta start failed:\n{started.stdout}\n{started.stderr}"
        yield driver
    finally:
        stopped = cli("stop")
        shutil.rmtree(tmp, ignore_errors=True)
        assert stopped.returncode == 0, f"quanta stop failed:\n{stopped.stdout}\n{stopped.stderr}"


def values(output, key):
    """The values printed as ``KEY=value`` lines by a driver."""
    return [line.split("=", 1)[1] for line in output.splitlines() if line.startswith(key + "=")]


@pytest.mark.subprocess_driver
def test_detached_named_actor_outlives_its_driver(started_cluster):
    first = started_cluster("""
        import os
        import quanta

        quanta.init(address="auto", namespace="lifetime-shop")

        @quanta.remote
        class Ledger:
            def __init__(self):
                self.entries = []

            def add(self, item):
                self.entries.append(item)
                return list(self.entries)

            def pid(self):
                return os.getpid()

        keeper = Ledger.options(name="ledger", lifetime="detached").remote()
        temp = Ledger.options(name="scratch").remote()
        print("ADD=" + ",".join(quanta.get(keeper.add.remote("from-first"))))
        quanta.get(temp.add.remote("x"))
        print("KEEPER_PID=%d" % quanta.get(keeper.pid.remote()))
        print("TEMP_PID=%d" % quanta.get(temp.pid.remote()))
    """)
    assert values(first, "ADD") == ["from-first"]
    keeper_ident = process_identity(int(values(first, "KEEPER_PID")[0]))
    temp_ident = process_identity(int(values(first, "TEMP_PID")[0]))
    assert keeper_ident is not None

    # The creator is gone: its non-detached actor dies with it, the detached one lives on.
    if temp_ident is not None:
        assert_gone(temp_ident, "the non-detached actor of a finished driver")
    assert alive(keeper_ident), "a detached actor must outlive the driver that created it"

    second = started_cluster("""
        import time
        import quanta

        quanta.init(address="auto", namespace="lifetime-shop")
        ledger = quanta.get_actor("ledger")
        print("ADD=" + ",".join(quanta.get(ledger.add.remote("from-second"))))
        print("PID=%d" % quanta.get(ledger.pid.remote()))

        @quanta.remote
        class Ledger:  # a fresh definition; get_if_exists must still find the running actor
            def __init__(self):
                self.entries = ["should-not-be-created"]

            def pid(self):
                return __import__("os").getpid()

        again = Ledger.options(name="ledger", lifetime="detached", get_if_exists=True).remote()
        print("AGAIN_PID=%d" % quanta.get(again.pid.remote()))
        deadline = time.monotonic() + 10
        while True:
            try:
                quanta.get_actor("scratch")
            except ValueError:
                print("SCRATCH=gone")
                break
            if time.monotonic() > deadline:
                print("SCRATCH=still-registered")
                break
            time.sleep(0.1)
    """)
    assert values(second, "ADD") == ["from-first,from-second"]
    assert int(values(second, "PID")[0]) == keeper_ident[0]
    assert int(values(second, "AGAIN_PID")[0]) == keeper_ident[0]
    assert values(second, "SCRATCH") == ["gone"], "a non-detached actor's name dies with its driver"

    # Named actors are per namespace: an anonymous namespace does not see it, an explicit one does.
    third = started_cluster("""
        import quanta

        quanta.init(address="auto")
        try:
            quanta.get_actor("ledger")
            print("ANONYMOUS=found")
        except ValueError:
            print("ANONYMOUS=not-found")
        ledger = quanta.get_actor("ledger", namespace="lifetime-shop")
        print("ADD=" + ",".join(quanta.get(ledger.add.remote("from-third"))))
        quanta.kill(ledger)
    """)
    assert values(third, "ANONYMOUS") == ["not-found"]
    assert values(third, "ADD") == ["from-first,from-second,from-third"]
    assert_gone(keeper_ident, "the detached actor after quanta.kill")

    fourth = started_cluster("""
        import time
        import quanta

        quanta.init(address="auto", namespace="lifetime-shop")
        deadline = time.monotonic() + 10
        while True:
            try:
                quanta.get_actor("ledger")
            except ValueError:
                print("LEDGER=gone")
                break
            if time.monotonic() > deadline:
                print("LEDGER=still-registered")
                break
            time.sleep(0.1)
    """)
    assert values(fourth, "LEDGER") == ["gone"]


@pytest.mark.subprocess_driver
def test_anonymous_namespaces_are_private_to_each_driver(started_cluster):
    first = started_cluster("""
        import quanta

        quanta.init(address="auto")

        @quanta.remote
        class Tag:
            def __init__(self, text):
                self.text = text

            def read(self):
                return self.text

        Tag.options(name="tag", lifetime="detached").remote("first")
        print("OWN=" + quanta.get(quanta.get_actor("tag").read.remote()))
    """)
    assert values(first, "OWN") == ["first"]
    second = started_cluster("""
        import quanta

        quanta.init(address="auto")
        try:
            quanta.get_actor("tag")
            print("OTHER=found")
        except ValueError:
            print("OTHER=not-found")

        @quanta.remote
        class Tag:
            def __init__(self, text):
                self.text = text

            def read(self):
                return self.text

        mine = Tag.options(name="tag").remote("second")  # the same name is free in this namespace
        print("OWN=" + quanta.get(mine.read.remote()))
    """)
    assert values(second, "OTHER") == ["not-found"]
    assert values(second, "OWN") == ["second"]


def test_killing_many_actors_does_not_stop_worker_starts(cluster):
    # Ended actors' processes exit after they registered: that is not a broken environment, so
    # the node must keep starting workers (it stops only when workers die before starting).
    Counter = make_counter()
    for _ in range(3):
        actors = [Counter.remote() for _ in range(6)]
        assert quanta.get([a.incr.remote() for a in actors], timeout=60) == [1] * 6
        idents = [identity_of(a) for a in actors]
        for a in actors[::2]:
            quanta.kill(a)
        del actors, a  # the last handles: the node ends the other actors' processes
        gc.collect()
        for ident in idents:
            assert_gone(ident, "an actor whose handles were all dropped")
    fresh = Counter.remote()
    assert quanta.get(fresh.incr.remote(), timeout=60) == 1
