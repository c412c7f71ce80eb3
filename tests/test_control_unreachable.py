"""While the control service is unreachable, requests it answers must fail with its reason, not
answer as if the cluster's tables were empty (a KV key that exists reported missing, named actors
that live listed as none)."""

import signal

import pytest

import quanta
import quanta.experimental.internal_kv as kv
import quanta.util
from quanta._private import session


@pytest.fixture
def headless(no_cluster):
    """A local cluster whose control service was killed after a key and a named actor were made."""
    quanta.init(num_cpus=1)

    @quanta.remote
    class Service:
        def ping(self):
            return "pong"

    svc = Service.options(name="svc").remote()
    assert quanta.get(svc.ping.remote(), timeout=30) == "pong"
    kv._internal_kv_put(b"key", b"value")
    assert kv._internal_kv_get(b"key") == b"value"
    assert quanta.util.list_named_actors() == ["svc"]
    control = [p for role, p in session._cluster._procs if role == "control"]
    assert len(control) == 1
    control[0].send_signal(signal.SIGKILL)
    control[0].wait(10)
    yield svc


@pytest.mark.parametrize("call", [
    lambda: kv._internal_kv_get(b"key"),
    lambda: kv._internal_kv_exists(b"key"),
    lambda: kv._internal_kv_list(b"k"),
    lambda: kv._internal_kv_del(b"key"),
    lambda: quanta.util.list_named_actors(),
], ids=["kv_get", "kv_exists", "kv_list", "kv_del", "list_named_actors"])
def test_requests_fail_with_the_reason_while_the_control_service_is_down(headless, call):
    with pytest.raises(ConnectionError, match="control service is unreachable"):
        call()
    # The node itself still serves: the actor answers, its calls go node-local.
    assert quanta.get(headless.ping.remote(), timeout=30) == "pong"
