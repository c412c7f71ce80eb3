"""Bad input to the public API fails early, with the expected exception type and a clear message."""

import re
import threading

import pytest

import quanta
import quanta.exceptions as qexc

BAD_OPTIONS = [
    ({"num_returns": -1}, "num_returns"),
    ({"num_returns": "2"}, "num_returns"),
    ({"num_cpus": -1}, "num_cpus"),
    ({"num_cpus": "two"}, "num_cpus"),
    ({"resources": {"gizmo": -1}}, "gizmo"),
    ({"resources": {"gizmo": "lots"}}, "gizmo"),
    ({"resources": "gizmo"}, "resources"),
    ({"max_retries": -2}, "max_retries"),
    ({"not_an_option": 1}, "not_an_option"),
]


def _ids(cases):
    return [next(iter(kw)) + "=" + repr(next(iter(kw.values()))) for kw, _ in cases]


# ------------------------------------------------------------------------------ remote()


@pytest.mark.parametrize("thing", [42, "f", None, [len]])
def test_remote_rejects_non_functions(thing):
    with pytest.raises(TypeError) as info:
        quanta.remote(thing)
    assert "function" in str(info.value).lower()


@pytest.mark.parametrize("kwargs, named", BAD_OPTIONS, ids=_ids(BAD_OPTIONS))
def test_remote_decorator_validates_options(kwargs, named):
    with pytest.raises((ValueError, TypeError)) as info:

        @quanta.remote(**kwargs)
        def f():
            return 1

    assert named in str(info.value)


@pytest.mark.parametrize("kwargs, named", BAD_OPTIONS, ids=_ids(BAD_OPTIONS))
def test_options_validates_options(cluster, kwargs, named):
    @quanta.remote
    def f():
        return 1

    with pytest.raises((ValueError, TypeError)) as info:
        f.options(**kwargs).remote()
    assert named in str(info.value)


def test_returning_the_wrong_number_of_values_fails_with_a_clear_error(cluster):
    @quanta.remote(num_returns=2)
    def three():
        return 1, 2, 3

    @quanta.remote(num_returns=2)
    def scalar():
        return 5

    for refs in (three.remote(), scalar.remote()):
        with pytest.raises(qexc.TaskError) as info:
            quanta.get(list(refs))
        assert "num_returns" in str(info.value)


def test_unpicklable_argument_is_named_at_submission(cluster):
    @quanta.remote
    def consume(payload):
        return 1

    with pytest.raises(TypeError) as info:
        consume.remote({"config": [threading.Lock()]})
    message = str(info.value)
    assert "payload" in message, message
    assert "lock" in message.lower(), message

    with pytest.raises(TypeError) as info:
        consume.remote(payload=threading.Lock())
    assert "payload" in str(info.value)


def test_put_of_unpicklable_value_raises_type_error(cluster):
    with pytest.raises(TypeError) as info:
        quanta.put({"lock": threading.Lock()})
    assert "lock" in str(info.value).lower()


# ------------------------------------------------------------------------------ get / wait


@pytest.mark.parametrize("thing", [1, "ObjectRef(abc)", {"k": 1}], ids=["int", "str", "dict"])
def test_get_rejects_non_refs(cluster, thing):
    with pytest.raises((TypeError, ValueError)) as info:
        quanta.get(thing)
    assert "ObjectRef" in str(info.value)


def test_get_rejects_a_list_with_a_non_ref(cluster):
    with pytest.raises((TypeError, ValueError)) as info:
        quanta.get([quanta.put(1), 2])
    assert "ObjectRef" in str(info.value)


def test_wait_rejects_duplicates(cluster):
    ref = quanta.put(1)
    with pytest.raises(ValueError) as info:
        quanta.wait([ref, ref])
    assert re.search(r"duplicate|unique", str(info.value), re.I)


def test_wait_rejects_num_returns_larger_than_the_list(cluster):
    refs = [quanta.put(1), quanta.put(2)]
    with pytest.raises(ValueError) as info:
        quanta.wait(refs, num_returns=3)
    assert "num_returns" in str(info.value)


def test_wait_rejects_a_single_ref_and_non_refs(cluster):
    with pytest.raises(TypeError):
        quanta.wait(quanta.put(1))
    with pytest.raises(TypeError):
        quanta.wait([1, 2])


# ------------------------------------------------------------------------------ infeasible tasks


@pytest.mark.subprocess_driver
def test_infeasible_task_warns_and_does_not_block_other_work(start_driver):
    d = start_driver(
        """
        import sys, quanta
        quanta.init(num_cpus=2)

        @quanta.remote
        def f(x):
            return x

        too_big = f.options(num_cpus=64).remote("big")
        no_such = f.options(resources={"unicorn": 1}).remote("unicorn")
        print("OTHER", quanta.get([f.remote(i) for i in range(5)], timeout=60), flush=True)
        ready, not_ready = quanta.wait([too_big, no_such], num_returns=2, timeout=1)
        print("PENDING", len(ready), len(not_ready), flush=True)
        sys.stdin.readline()
        """
    )
    d.wait_for(r"OTHER \[0, 1, 2, 3, 4\]", timeout=120)
    d.wait_for(r"PENDING 0 2", timeout=30)
    d.wait_for(r"CPU\W+64|64\W+CPU", timeout=30)  # e.g. {'CPU': 64.0} / CPU: 64
    d.wait_for(r"unicorn", timeout=30)
    d.send("bye")
    assert d.wait_exit(timeout=60) == 0, "a driver with pending infeasible tasks must exit cleanly"


# ------------------------------------------------------------------------------ init / stale refs
# These shut the shared cluster down, so they come last in the file.


@pytest.mark.parametrize(
    "kwargs",
    [{"num_cpus": -1}, {"num_cpus": "four"}, {"resources": {"gizmo": -1}}, {"resources": {"gizmo": "x"}}],
    ids=["num_cpus=-1", "num_cpus=str", "resource=-1", "resource=str"],
)
def test_init_validates_resources(no_cluster, kwargs):
    with pytest.raises((ValueError, TypeError)):
        quanta.init(**kwargs)
    assert not quanta.is_initialized()


def test_refs_from_a_shut_down_cluster_fail_clearly(no_cluster):
    quanta.init(num_cpus=1)

    @quanta.remote
    def echo(x):
        return x

    stored = quanta.put("stored")
    computed = echo.remote("computed")
    assert quanta.get([stored, computed]) == ["stored", "computed"]
    quanta.shutdown()

    quanta.init(num_cpus=1)
    for ref in (stored, computed):
        with pytest.raises(Exception) as info:
            quanta.get(ref, timeout=15)
        assert not isinstance(info.value, TimeoutError), "must fail, not hang"
        assert str(info.value)
    with pytest.raises(Exception) as info:
        quanta.get(echo.remote(stored), timeout=15)
    assert not isinstance(info.value, TimeoutError), "must fail, not hang"
