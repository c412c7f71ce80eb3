"""Head and node on two real hosts (network, mount and pid namespaces; see hosts.py).

Nothing is shared between the hosts but the link: a task routed by a custom resource to the
joined host must run there (it reads a file only that host's private /tmp holds), its result
must come back, and the nodes' counters must show the bytes that crossed TCP. A node with the
wrong token must be refused, with the reason on both sides.
"""

import json
import re
import secrets

import pytest

import hosts

pytestmark = pytest.mark.multihost


@pytest.fixture
def net():
    hosts.require_namespaces()
    network = hosts.Network(2, token=secrets.token_hex(32))
    yield network
    network.close()


def start_head(host, *extra):
    out = host.quanta("start", "--head", "--node-ip-address", host.ip, "--port", "6380", "--num-cpus", "1", *extra)
    assert f"{host.ip}:6380" in out["stdout"]
    return f"{host.ip}:6380"


def stats_of(host):
    return json.loads(host.python("""
        import json, quanta
        quanta.init(address="auto", log_to_driver=False)
        print(json.dumps(quanta._private.api.node_stats()))
    """))


def test_task_routed_by_resource_runs_on_the_other_host(net):
    a, b = net.hosts
    for h in (a, b):
        h.run(["sh", "-c", f"echo host-{h.ip} > /tmp/marker"], check=True)
    address = start_head(a)
    out = b.quanta("start", "--address", address, "--node-ip-address", b.ip, "--num-cpus", "2",
                   "--resources", '{"host_b": 1}')
    assert "Joined" in out["stdout"], out
    output = a.python(f"""
        import json, socket, quanta
        quanta.init(address="{address}")

        @quanta.remote(resources={{"host_b": 1}})
        def where(x):
            print("hello from the other host")
            return open("/tmp/marker").read().strip(), x * 2

        @quanta.remote
        def here():
            return open("/tmp/marker").read().strip()

        print(json.dumps({{"remote": [quanta.get(where.remote(i)) for i in range(3)],
                          "local": quanta.get(here.remote()),
                          "nodes": [(n["NodeManagerAddress"], n["Alive"]) for n in quanta.nodes()],
                          "stats": quanta._private.api.node_stats()}}))
    """)
    *printed, last = output.strip().splitlines()
    result = json.loads(last)
    # Worker output crossed back to the driver, labelled with the host it came from.
    # (Sequential tasks may run in either of B's two workers: the pid is not always the same.)
    line = re.compile(rf"\(where pid=\d+, ip={re.escape(b.ip)}\) hello from the other host")
    assert sum(1 for p in printed if line.fullmatch(p)) == 3, printed
    assert result["remote"] == [[f"host-{b.ip}", 0], [f"host-{b.ip}", 2], [f"host-{b.ip}", 4]]
    assert result["local"] == f"host-{a.ip}"
    assert sorted(result["nodes"]) == [[a.ip, True], [b.ip, True]]
    # The bytes really crossed TCP, in both directions.
    assert result["stats"]["tasks_forwarded"] >= 3
    assert result["stats"]["peer_bytes_sent"] > 0
    b_stats = stats_of(b)
    assert b_stats["tasks_executed_for_other_nodes"] >= 3
    assert b_stats["peer_bytes_sent"] > 0


def test_objects_made_on_one_host_are_consumed_on_the_other_and_results_come_back(net):
    a, b = net.hosts
    for h in (a, b):
        h.run(["sh", "-c", f"echo host-{h.ip} > /tmp/marker"], check=True)
    address = start_head(a)
    b.quanta("start", "--address", address, "--node-ip-address", b.ip, "--num-cpus", "2",
             "--resources", '{"host_b": 1}')
    b_before = stats_of(b)
    size = 16 << 20
    output = a.python(f"""
        import json, numpy as np, quanta
        quanta.init(address="{address}")
        before = quanta._private.api.node_stats()

        @quanta.remote(resources={{"host_b": 1}})
        def on_b(arr):
            # The argument was put on host A; the result is made here and stays here until read.
            return open("/tmp/marker").read().strip(), float(arr[::4096].sum()), arr * 2

        @quanta.remote(resources={{"host_b": 1}})
        def make_on_b(n):
            return np.full(n // 8, 3.0)

        from quanta.util.scheduling_strategies import NodeAffinitySchedulingStrategy
        here = NodeAffinitySchedulingStrategy(quanta.get_runtime_context().get_node_id(), soft=False)

        @quanta.remote(scheduling_strategy=here)  # not where its argument is (B): the bytes come to A
        def on_a(arr):
            return open("/tmp/marker").read().strip(), float(arr[::4096].sum()), arr.nbytes

        arg = quanta.put(np.arange({size} // 8, dtype=np.float64))
        host, seen, doubled = quanta.get(on_b.remote(arg))
        made = make_on_b.remote({size})
        print(json.dumps({{"b_host": host, "b_saw": seen,
                          "expected": float(np.arange({size} // 8, dtype=np.float64)[::4096].sum()),
                          "doubled_ok": bool((doubled == np.arange({size} // 8, dtype=np.float64) * 2).all()),
                          "a_task": quanta.get(on_a.remote(made)),
                          "expected_a": float(np.full({size} // 8, 3.0)[::4096].sum()),
                          "before": before, "after": quanta._private.api.node_stats()}}))
    """)
    r = json.loads(output.strip().splitlines()[-1])
    assert r["b_host"] == f"host-{b.ip}"
    assert r["b_saw"] == r["expected"] and r["doubled_ok"]
    assert r["a_task"] == [f"host-{a.ip}", r["expected_a"], size]
    before, after = r["before"], r["after"]
    b_after = stats_of(b)
    # A's put crossed to B, and B's two results (the doubled array, the made one) crossed back,
    # on the data channels between the two network stacks.
    assert after["transfer_bytes_sent"] - before["transfer_bytes_sent"] >= size
    assert after["transfer_bytes_received"] - before["transfer_bytes_received"] >= 2 * size
    assert after["pulls_done"] - before["pulls_done"] == 2
    assert b_after["transfer_bytes_received"] - b_before["transfer_bytes_received"] >= size
    assert b_after["transfer_bytes_sent"] - b_before["transfer_bytes_sent"] >= 2 * size
    assert b_after["objects_served"] - b_before["objects_served"] == 2


def test_status_from_both_hosts_and_stop(net):
    a, b = net.hosts
    address = start_head(a)
    b.quanta("start", "--address", address, "--node-ip-address", b.ip, "--num-cpus", "1")
    for h in (a, b):
        status = h.quanta("status", "--address", address)["stdout"]
        assert "2 node(s) alive" in status, status
        assert a.ip in status and b.ip in status
    b.quanta("stop")
    status = a.quanta("status", "--format", "json")["stdout"]
    nodes = json.loads(status)["nodes"]
    assert sorted((n["address"], n["alive"]) for n in nodes) == [(a.ip, True), (b.ip, False)]


def test_node_with_the_wrong_token_is_refused(net):
    a, b = net.hosts
    address = start_head(a)
    r = b.quanta("start", "--address", address, "--node-ip-address", b.ip,
                 env={"QUANTA_AUTH_TOKEN": secrets.token_hex(32)}, check=False)
    assert r["rc"] != 0
    assert "token" in r["stderr"], r["stderr"]
    assert "QUANTA_AUTH_TOKEN" in r["stderr"]  # the message names the token sources
    # Nothing was left running on b, and the head logged the refusal with b's address.
    assert b.quanta("status", check=False)["rc"] != 0
    log = a.run(["sh", "-c", "cat /tmp/quanta-0/session_*/logs/control.log"])["stdout"]
    assert f"refused a connection from {b.ip}" in log
    status = a.quanta("status")["stdout"]
    assert "1 node(s) alive" in status


def test_unreachable_head_fails_fast(net):
    a, b = net.hosts
    r = b.quanta("start", "--address", f"{a.ip}:6380", "--node-ip-address", b.ip, check=False, timeout=60)
    assert r["rc"] != 0
    assert "could not join" in r["stderr"], r["stderr"]
