"""Remote functions: submission, arguments, options, resources, nesting, function shipping.

Remote functions are defined inside the tests so that they are shipped by value (as closures
are); shipping functions that live in importable modules is tested separately, in a driver.
"""

import os
import subprocess
import sys
import time

import numpy as np
import pytest

import quanta
from conftest import SHARED_NUM_CPUS, run_driver


def max_overlap(intervals):
    """Largest number of (start, end) intervals that are open at the same moment."""
    events = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals])
    best = cur = 0
    for _, delta in events:
        cur += delta
        best = max(best, cur)
    return best


def test_remote_returns_refs_at_once(cluster):
    @quanta.remote
    def slow(x):
        time.sleep(1.5)
        return x * 2

    start = time.monotonic()
    refs = [slow.remote(i) for i in range(3)]
    assert time.monotonic() - start < 1.0
    assert all(isinstance(r, quanta.ObjectRef) for r in refs)
    assert quanta.get(refs) == [0, 2, 4]


def test_direct_call_raises_type_error_pointing_to_remote(cluster):
    @quanta.remote
    def f(x):
        return x

    with pytest.raises(TypeError) as info:
        f(1)
    assert "f.remote(" in str(info.value)


def test_wrong_argument_count_fails_at_submission(cluster):
    @quanta.remote
    def two(a, b):
        return a + b

    with pytest.raises(TypeError):
        two.remote(1)
    with pytest.raises(TypeError):
        two.remote(1, 2, 3)
    with pytest.raises(TypeError):
        two.remote(1, c=3)
    assert quanta.get(two.remote(1, 2)) == 3


def test_keyword_and_default_arguments(cluster):
    @quanta.remote
    def f(a, b=10, *args, c=100, **kwargs):
        return (a, b, args, c, kwargs)

    assert quanta.get(f.remote(1)) == (1, 10, (), 100, {})
    assert quanta.get(f.remote(1, 2, 3, 4, c=5, d=6)) == (1, 2, (3, 4), 5, {"d": 6})
    assert quanta.get(f.remote(b=7, a=8)) == (8, 7, (), 100, {})


def test_tasks_run_in_reused_worker_processes(cluster):
    @quanta.remote
    def pid():
        return os.getpid()

    pids = [quanta.get(pid.remote()) for _ in range(12)]
    assert os.getpid() not in pids, "tasks must not run in the driver process"
    assert len(set(pids)) < len(pids), f"sequential tasks should reuse workers, got pids {pids}"


def test_workers_run_the_drivers_copy_of_quanta(cluster):
    # Even when another copy is installed, workers import the package the driver (and the
    # node daemon it started) came from: mixed versions would misread each other's messages.
    @quanta.remote
    def package_file():
        import quanta as q

        return q.__file__

    assert quanta.get(package_file.remote()) == quanta.__file__


def test_top_level_ref_arguments_are_replaced_by_values(cluster):
    @quanta.remote
    def describe(a, b, *, c):
        return [type(a).__name__, a, type(b).__name__, b, type(c).__name__, c]

    @quanta.remote
    def make(v):
        return v

    a = quanta.put(5)
    b = make.remote("task-value")
    c = quanta.put([1, 2])
    assert quanta.get(describe.remote(a, b, c=c)) == ["int", 5, "str", "task-value", "list", [1, 2]]


def test_nested_refs_arrive_as_refs(cluster):
    class Box:
        def __init__(self, ref):
            self.ref = ref

    @quanta.remote
    def inspect(in_list, in_dict, in_obj):
        kinds = [
            isinstance(in_list[0], quanta.ObjectRef),
            isinstance(in_dict["k"], quanta.ObjectRef),
            isinstance(in_obj.ref, quanta.ObjectRef),
        ]
        values = quanta.get([in_list[0], in_dict["k"], in_obj.ref])
        return kinds, values

    r1, r2, r3 = quanta.put("one"), quanta.put("two"), quanta.put("three")
    kinds, values = quanta.get(inspect.remote([r1], {"k": r2}, Box(r3)))
    assert kinds == [True, True, True]
    assert values == ["one", "two", "three"]


def test_refs_inside_a_result_stay_refs(cluster):
    @quanta.remote
    def produce():
        return {"inner": quanta.put(np.arange(5))}

    out = quanta.get(produce.remote())
    assert isinstance(out["inner"], quanta.ObjectRef)
    np.testing.assert_array_equal(quanta.get(out["inner"]), np.arange(5))


def test_multiple_return_values(cluster):
    @quanta.remote(num_returns=3)
    def three():
        return "a", "b", "c"

    refs = three.remote()
    assert isinstance(refs, (list, tuple)) and len(refs) == 3
    assert all(isinstance(r, quanta.ObjectRef) for r in refs)
    assert quanta.get(list(refs)) == ["a", "b", "c"]


def test_options_override_per_call_without_changing_the_function(cluster):
    @quanta.remote
    def pair():
        return (1, 2)

    first, second = pair.options(num_returns=2).remote()
    assert quanta.get([first, second]) == [1, 2]
    single = pair.remote()
    assert isinstance(single, quanta.ObjectRef)
    assert quanta.get(single) == (1, 2)


def test_task_submits_tasks_and_gets_inside(cluster):
    @quanta.remote
    def square(x):
        return x * x

    @quanta.remote
    def sum_of_squares(n):
        return sum(quanta.get([square.remote(i) for i in range(n)]))

    assert quanta.get(sum_of_squares.remote(10)) == sum(i * i for i in range(10))


def test_blocked_tasks_deeper_than_cpu_count_do_not_deadlock(cluster):
    # Every level blocks in get() on the next one: 2 * SHARED_NUM_CPUS levels need the CPUs of
    # blocked workers to be lent back.
    @quanta.remote
    def descend(depth):
        if depth == 0:
            return os.getpid()
        return [os.getpid()] + [quanta.get(descend.remote(depth - 1))]

    result = quanta.get(descend.remote(2 * SHARED_NUM_CPUS), timeout=120)
    levels = 1
    while isinstance(result, list):
        levels += 1
        result = result[1]
    assert levels == 2 * SHARED_NUM_CPUS + 1


@pytest.mark.subprocess_driver
def test_recursive_fib_on_one_cpu():
    proc = run_driver(
        """
        import quanta
        quanta.init(num_cpus=1)

        @quanta.remote
        def fib(n):
            if n < 2:
                return n
            return sum(quanta.get([fib.remote(n - 1), fib.remote(n - 2)]))

        print("FIB", quanta.get(fib.remote(6), timeout=120))
        quanta.shutdown()
        """
    )
    assert proc.returncode == 0, proc.stderr
    assert "FIB 8" in proc.stdout


def test_surplus_idle_workers_exit(no_cluster):
    # Blocked tasks make the node start workers beyond the pool size (one per CPU); once idle
    # for a second they exit, as in Ray, instead of holding memory for the rest of the session.
    from conftest import descendants

    def task_workers():
        found = set()
        for pid, _ in descendants(os.getpid()):
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as fh:
                    if b"worker_main" in fh.read():
                        found.add(pid)
            except OSError:
                pass
        return found

    quanta.init(num_cpus=2)

    @quanta.remote
    def descend(depth):
        if depth == 0:
            return 0
        return 1 + quanta.get(descend.remote(depth - 1))

    assert quanta.get(descend.remote(6), timeout=120) == 6
    assert len(task_workers()) >= 7, "the nested gets should have needed extra workers"
    deadline = time.monotonic() + 20
    while len(task_workers()) > 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert len(task_workers()) == 2, f"workers left: {len(task_workers())}"
    # The pool still works, and grows again when needed.
    assert quanta.get(descend.remote(4), timeout=120) == 4


def test_num_cpus_limits_concurrency(cluster):
    @quanta.remote(num_cpus=2)
    def hold():
        start = time.time()
        time.sleep(0.6)
        return start, time.time()

    intervals = quanta.get([hold.remote() for _ in range(4)])
    assert max_overlap(intervals) <= SHARED_NUM_CPUS // 2

    @quanta.remote(num_cpus=1)
    def light():
        start = time.time()
        time.sleep(0.6)
        return start, time.time()

    intervals = quanta.get([light.options(num_cpus=SHARED_NUM_CPUS).remote() for _ in range(3)])
    assert max_overlap(intervals) == 1


def test_cluster_resources_available_resources_and_nodes(cluster, tmp_path):
    total = quanta.cluster_resources()
    assert total["CPU"] == SHARED_NUM_CPUS

    def available_cpu():
        return quanta.available_resources().get("CPU", 0)

    def poll(predicate, timeout=10):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(0.05)
        return predicate()

    release = tmp_path / "release"

    @quanta.remote(num_cpus=3)
    def hold(path):
        deadline = time.time() + 30
        while not os.path.exists(path) and time.time() < deadline:
            time.sleep(0.02)
        return "released"

    ref = hold.remote(str(release))
    try:
        assert poll(lambda: available_cpu() == SHARED_NUM_CPUS - 3), quanta.available_resources()
        assert quanta.cluster_resources()["CPU"] == SHARED_NUM_CPUS
    finally:
        release.touch()
    assert quanta.get(ref) == "released"
    assert poll(lambda: available_cpu() == SHARED_NUM_CPUS), quanta.available_resources()

    nodes = quanta.nodes()
    assert isinstance(nodes, list) and len(nodes) == 1
    assert nodes[0]["Alive"] is True
    assert nodes[0]["Resources"]["CPU"] == SHARED_NUM_CPUS


@pytest.mark.subprocess_driver
def test_custom_resources_are_accounted_and_limit_concurrency():
    proc = run_driver(
        """
        import time, quanta
        quanta.init(num_cpus=4, resources={"widget": 2})
        print("TOTAL", quanta.cluster_resources().get("widget"))

        @quanta.remote(resources={"widget": 1})
        def uses_widget():
            start = time.time()
            time.sleep(0.6)
            return start, time.time()

        intervals = quanta.get([uses_widget.remote() for _ in range(4)])
        events = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals])
        cur = best = 0
        for _, d in events:
            cur += d
            best = max(best, cur)
        print("OVERLAP", best)
        quanta.shutdown()
        """
    )
    assert proc.returncode == 0, proc.stderr
    assert "TOTAL 2" in proc.stdout  # 2 or 2.0
    assert "OVERLAP 2" in proc.stdout, proc.stdout


def test_closures_and_lambdas(cluster):
    def make_adder(n):
        @quanta.remote
        def add(x):
            return x + n

        return add

    add3, add40 = make_adder(3), make_adder(40)
    assert quanta.get([add3.remote(1), add40.remote(1)]) == [4, 41]

    square = quanta.remote(lambda x: x * x)
    assert quanta.get(square.remote(9)) == 81


def test_same_name_different_body_are_different_functions(cluster):
    @quanta.remote
    def f():
        return "first"

    first = f

    @quanta.remote
    def f():  # noqa: F811 -- redefined on purpose
        return "second"

    assert quanta.get([first.remote(), f.remote(), first.remote()]) == ["first", "second", "first"]


@pytest.mark.subprocess_driver
def test_functions_from_main_script_and_its_modules(tmp_path):
    (tmp_path / "helper_mod.py").write_text(
        "import quanta\n"
        "\n"
        "@quanta.remote\n"
        "def helper_task(x):\n"
        "    return ('helper', x)\n"
    )
    script = tmp_path / "driver_main.py"
    script.write_text(
        "import quanta\n"
        "from helper_mod import helper_task\n"
        "\n"
        "@quanta.remote\n"
        "def main_task(x):\n"
        "    return ('main', x)\n"
        "\n"
        "quanta.init(num_cpus=2)\n"
        "print('RESULT', quanta.get([main_task.remote(1), helper_task.remote(2)]))\n"
        "quanta.shutdown()\n"
    )
    proc = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    assert "RESULT [('main', 1), ('helper', 2)]" in proc.stdout


def test_many_small_tasks(cluster):
    @quanta.remote
    def inc(x):
        return x + 1

    refs = [inc.remote(i) for i in range(300)]
    assert quanta.get(refs) == list(range(1, 301))


def test_large_numpy_argument_and_result(cluster):
    @quanta.remote
    def double(a):
        return a * 2

    big = np.arange(4_000_000, dtype=np.float64)  # 32 MB
    out = quanta.get(double.remote(big))
    assert out.shape == big.shape and out.dtype == big.dtype
    assert out[0] == 0 and out[-1] == 2 * (len(big) - 1)
    np.testing.assert_array_equal(out[::1000], big[::1000] * 2)
