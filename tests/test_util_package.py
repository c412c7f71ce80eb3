"""The quanta.util package itself: lazy imports, Ray's names, get_node_ip_address and
inspect_serializability."""

import io
import ipaddress
import sys
import threading

import pytest

import quanta
import quanta.util
from conftest import run_driver
from quanta.util import get_node_ip_address, inspect_serializability


def test_importing_quanta_util_loads_nothing_until_a_name_is_used():
    proc = run_driver("""
        import sys, quanta
        loaded = lambda: sorted(m for m in sys.modules if m.startswith("quanta.util."))
        print("AFTER_IMPORT", loaded(), "joblib" in sys.modules, "sklearn" in sys.modules)
        import quanta as ray
        pool_cls = ray.util.ActorPool          # Ray programs use ray.util.X after import ray
        queue_cls = ray.util.queue.Queue
        print("AFTER_USE", loaded())
    """)
    assert proc.returncode == 0, proc.stderr
    assert "AFTER_IMPORT [] False False" in proc.stdout
    assert "AFTER_USE ['quanta.util.actor_pool', 'quanta.util.queue']" in proc.stdout


def test_all_names_resolve_and_are_rays_names():
    ray_util = pytest.importorskip("ray.util")
    for name in quanta.util.__all__:
        assert getattr(quanta.util, name) is not None
        assert name in dir(quanta.util)
    assert set(quanta.util.__all__) - {"Executor"} <= set(ray_util.__all__)  # Executor: ours
    assert quanta.util.ActorPool is quanta.util.actor_pool.ActorPool
    assert quanta.util.multiprocessing.Pool.__module__ == "quanta.util.multiprocessing.pool"
    assert callable(quanta.util.placement_group)  # placement groups are provided now
    with pytest.raises(AttributeError, match="has no attribute 'collective'"):
        quanta.util.collective  # a Ray name we do not provide is absent, not a stub
    assert quanta.util is quanta.__dict__["util"]


@quanta.remote
def ip_in_worker():
    from quanta.util import get_node_ip_address

    return get_node_ip_address()


def test_get_node_ip_address_is_this_machines_address_in_driver_and_workers(cluster):
    ip = get_node_ip_address()
    ipaddress.ip_address(ip)  # a valid address
    assert quanta.get(ip_in_worker.remote()) == ip  # one machine: workers see the same
    assert get_node_ip_address("127.0.0.1:9") == "127.0.0.1"  # the route to loopback
    with pytest.raises(ValueError, match="host:port"):
        get_node_ip_address("no-port")


_global_lock = threading.Lock()


def uses_a_lock_and_a_generator():
    numbers = (i for i in range(3))

    def inner():
        with _global_lock:
            return next(numbers)

    return inner


class Holder:
    def __init__(self):
        self.fine = [1, 2, 3]
        self.settings = {"name": "x", "guard": threading.RLock()}


def test_inspect_serializability_finds_the_innermost_failures(cluster):
    fn = uses_a_lock_and_a_generator()
    with pytest.raises(Exception, match="pickle"):
        quanta.remote(fn).remote()  # what quanta itself says: too little to fix it

    out = io.StringIO()
    ok, failures = inspect_serializability(fn, name="inner", print_file=out)
    assert ok is False
    by_name = {f.name: f for f in failures}
    assert set(by_name) == {"numbers", "_global_lock"}
    assert by_name["_global_lock"].obj is _global_lock and by_name["_global_lock"].parent is fn
    assert by_name["numbers"].path == ("inner", "numbers")
    text = out.getvalue()
    assert "inner -> _global_lock" in text and "inner -> numbers" in text
    assert "2 member(s) cannot be serialized" in text

    ok, failures = inspect_serializability(Holder(), print_file=out)
    assert not ok
    [failure] = failures
    assert failure.path == ("Holder", "settings", "['guard']")
    assert isinstance(failure.parent, dict) and "RLock" in type(failure.obj).__name__


def test_inspect_serializability_of_fine_objects_and_depth_and_output(capsys):
    assert inspect_serializability({"a": [1, 2]}, name="config") == (True, set())
    assert "config" in capsys.readouterr().out  # prints to stdout by default
    ok, failures = inspect_serializability(Holder(), name="h", depth=0, print_file=io.StringIO())
    assert not ok and [f.path for f in failures] == [("h",)]  # depth 0: only the root
    assert capsys.readouterr().out == ""  # print_file was used instead of stdout
    with pytest.raises(ValueError, match="depth"):
        inspect_serializability(1, depth=-1)
    assert sys.modules["quanta.util.check_serialize"].FailureTuple  # Ray's name for the entries
