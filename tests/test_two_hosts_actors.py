"""An actor on one real host used from another (network, mount and pid namespaces; hosts.py).

A detached named actor is created by a driver on host B, on B's node (it reads a file only
B's private /tmp holds). A driver on host A finds it by name in the shared namespace, calls it,
and passes its handle through a task that runs on B and calls it from there; each caller sees
its own calls in order. The nodes' counters show that the calls crossed TCP.
"""

import json
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


def test_actor_on_host_b_is_used_from_host_a_by_name_and_through_a_task(net):
    a, b = net.hosts
    for h in (a, b):
        h.run(["sh", "-c", f"echo host-{h.ip} > /tmp/marker"], check=True)
    address = f"{a.ip}:6380"
    a.quanta("start", "--head", "--node-ip-address", a.ip, "--port", "6380", "--num-cpus", "1")
    b.quanta("start", "--address", address, "--node-ip-address", b.ip, "--num-cpus", "2",
             "--resources", '{"host_b": 1}')
    created = b.python(f"""
        import quanta
        quanta.init(address="{address}", namespace="svc")

        @quanta.remote
        class Journal:
            def __init__(self):
                self.entries = []
            def host(self):
                return open("/tmp/marker").read().strip()
            def add(self, who, i):
                self.entries.append((who, i))
                return len(self.entries)
            def of(self, who):
                return [i for w, i in self.entries if w == who]

        j = Journal.options(name="journal", lifetime="detached", resources={{"host_b": 0.5}}).remote()
        print(quanta.get(j.host.remote()))
    """)
    assert created.strip().splitlines()[-1] == f"host-{b.ip}"

    output = a.python(f"""
        import json, quanta
        quanta.init(address="{address}", namespace="svc")
        before = quanta._private.api.node_stats()
        j = quanta.get_actor("journal")

        @quanta.remote(resources={{"host_b": 0.5}})
        def from_b(handle, n):
            refs = [handle.add.remote("task", i) for i in range(n)]
            quanta.get(refs)
            return open("/tmp/marker").read().strip(), quanta.get(handle.of.remote("task"))

        task = from_b.remote(j, 100)
        mine = quanta.get([j.add.remote("driver", i) for i in range(100)])
        where, seen_by_task = quanta.get(task)
        total = quanta.get(j.add.remote("last", 0))
        after = quanta._private.api.node_stats()
        # Then sync calls: they take a lane from A's node straight to the actor's worker on B.
        lane_before = quanta._private.api.node_stats()
        for i in range(50):
            assert quanta.get(j.add.remote("sync", i)) == 202 + i
        lane_after = quanta._private.api.node_stats()
        print(json.dumps({{"actor_host": quanta.get(j.host.remote()), "task_host": where,
                          "task_order": seen_by_task == list(range(100)),
                          "driver_order": quanta.get(j.of.remote("driver")) == list(range(100)),
                          "sync_order": quanta.get(j.of.remote("sync")) == list(range(50)),
                          "total": total,
                          "before": before, "after": after, "lane_before": lane_before, "lane_after": lane_after}}))
        quanta.kill(j)
    """)
    result = json.loads(output.strip().splitlines()[-1])
    assert result["actor_host"] == f"host-{b.ip}"
    assert result["task_host"] == f"host-{b.ip}"
    assert result["task_order"] and result["driver_order"]
    assert result["total"] == 201
    before, after = result["before"], result["after"]
    assert result["sync_order"]
    # A's node sent the driver's 100+ calls (and the task) to B over TCP, and got replies back:
    # to B's node daemon, or on a lane to the actor's worker there.
    sent = lambda s: s["tasks_forwarded"] + s["lane_calls_sent"]  # noqa: E731
    assert sent(after) - sent(before) >= 101
    assert after["peer_bytes_sent"] > before["peer_bytes_sent"]
    assert after["peer_bytes_received"] > before["peer_bytes_received"]
    b_stats = json.loads(b.python("""
        import json, quanta
        quanta.init(address="auto", log_to_driver=False)
        print(json.dumps(quanta._private.api.node_stats()))
    """).strip().splitlines()[-1])
    lanes = after["lane_calls_sent"] - before["lane_calls_sent"]
    assert b_stats["tasks_executed_for_other_nodes"] >= 101 - lanes
    # The sync calls went on the lane: frames crossed TCP between the two network namespaces
    # straight to the worker (B's daemon only handed it the lane).
    lane_before, lane_after = result["lane_before"], result["lane_after"]
    assert lane_after["lane_calls_sent"] - lane_before["lane_calls_sent"] >= 45
    assert lane_after["lane_bytes_sent"] - lane_before["lane_bytes_sent"] >= 45 * 100
    assert lane_after["lane_bytes_received"] - lane_before["lane_bytes_received"] >= 45 * 30
    assert b_stats["lanes_attached"] >= 1
    # The name went with the killed actor.
    gone = a.python(f"""
        import time, quanta
        quanta.init(address="{address}", namespace="svc")
        deadline = time.monotonic() + 10  # kill() is asynchronous, as in Ray
        while True:
            try:
                quanta.get_actor("journal")
            except ValueError as e:
                print("GONE", e)
                break
            if time.monotonic() > deadline:
                print("FOUND")
                break
            time.sleep(0.05)
    """)
    assert "GONE" in gone
