"""A whole host lost under a running workload, on two real hosts (network, mount and pid
namespaces; hosts.py): killed (SIGKILL of every process in its namespaces, so its kernel
closes its sockets) and unplugged (its link taken down, so no FIN or RST ever arrives).

A driver on the head's host A runs work on host B's node — a task that retries, a task that
may not, an actor with a restart left and a large object only B holds — then the test takes B
away and the driver checks, from A: the head declares B dead within a coarse bound (at once
for a kill, after the 3 s heartbeat timeout for an unplugged host), `quanta.nodes()` shows it
dead, the retried task ran on A, the other failed with NodeDiedError, the actor came back on A
(its owner's node) and the object was rebuilt on A by lineage — read at once, while B does not
answer yet. A task and an actor call sent to B after it went but before its death was known
are not lost either. The marker file each host's private /tmp holds says where each thing ran;
the nodes' counters show the traffic crossed TCP.

After the unplugged host's link comes back, its node — declared dead, its work failed over —
must not come back: it is told so (or refused when it rejoins), exits with its workers, and
the head still lists one node alive; a new node started there joins under a new index.

A driver lost with its host takes what it owns with it: an actor on A borrowing its object gets
OwnerDiedError, and its non-detached actor on A exits.
"""

import json
import os
import secrets
import signal
import sys
import time

import pytest

import hosts

pytestmark = pytest.mark.multihost

PORT = 6380

# The driver on host A. Phases are gated by files the test writes into A's private /tmp:
# /tmp/go holds the monotonic time at which B was killed or unplugged (the clock is the
# machine's, shared by every namespace), /tmp/go2 says the link is back and B's node is gone,
# /tmp/go3 that a new node was started on B.
DRIVER = r'''
import json, os, sys, threading, time
import numpy as np
import quanta
from quanta.exceptions import NodeDiedError
from quanta.util.scheduling_strategies import NodeAffinitySchedulingStrategy

address, b_ip = sys.argv[1], sys.argv[2]
quanta.init(address=address, log_to_driver=False)
MARK = open("/tmp/marker").read().strip()
b_id = next(n["NodeID"] for n in quanta.nodes() if n["NodeManagerAddress"] == b_ip and n["Alive"])
a_id = quanta.get_runtime_context().get_node_id()
on_b = NodeAffinitySchedulingStrategy(b_id, soft=True)


def say(tag, **kw):
    print(tag, json.dumps(kw), flush=True)


def wait_file(path):
    while not os.path.exists(path):
        time.sleep(0.01)
    time.sleep(0.05)
    return open(path).read()


@quanta.remote(num_cpus=0)
class Gate:
    def __init__(self):
        self.seen = []
    def arrive(self, who):
        self.seen.append(who)
    def seen_so_far(self):
        return list(self.seen)


@quanta.remote
def nap(gate, name):
    here = open("/tmp/marker").read().strip()
    quanta.get(gate.arrive.remote((name, here)))
    if here.endswith(b_ip):
        time.sleep(4)  # still running on B when B goes; an unplugged B finishes it unheard
    return here


@quanta.remote
class Tally:
    def __init__(self):
        self.n = 0
    def inc(self):
        self.n += 1
        return self.n
    def host(self):
        return open("/tmp/marker").read().strip()


@quanta.remote
def make(n):
    a = np.zeros(n, dtype=np.uint8)
    m = open("/tmp/marker").read().strip().encode()
    a[:len(m)] = np.frombuffer(m, dtype=np.uint8)
    return a


@quanta.remote(num_cpus=0)
def peek(arr):
    return open("/tmp/marker").read().strip(), bytes(arr[:32]).rstrip(b"\0").decode()


def watch_death():
    while True:
        entry = next(n for n in quanta.nodes() if n["NodeID"] == b_id)
        if not entry["Alive"]:
            return time.monotonic(), entry
        time.sleep(0.01)


def marker_of(arr):
    return bytes(arr[:32]).rstrip(b"\0").decode()


gate = Gate.options(scheduling_strategy=NodeAffinitySchedulingStrategy(a_id, soft=False)).remote()
actor = Tally.options(max_restarts=1, max_task_retries=-1, scheduling_strategy=on_b).remote()
actor_before = quanta.get(actor.host.remote(), timeout=60)
counts_before = quanta.get([actor.inc.remote() for _ in range(3)], timeout=60)
big = make.options(scheduling_strategy=on_b).remote(20_000_000)
quanta.wait([big], fetch_local=False, timeout=60)
peeked = quanta.get(peek.options(scheduling_strategy=on_b).remote(big), timeout=60)  # read on B, not copied to A
retried = nap.options(max_retries=1, scheduling_strategy=on_b).remote(gate, "retried")
failed = nap.options(max_retries=0, scheduling_strategy=on_b).remote(gate, "failed")
deadline = time.monotonic() + 60
while len(quanta.get(gate.seen_so_far.remote())) < 2 and time.monotonic() < deadline:
    time.sleep(0.02)
say("READY", actor_host=actor_before, counts=counts_before, peeked=peeked,
    running=quanta.get(gate.seen_so_far.remote()), stats=quanta._private.api.node_stats())

t_gone = float(wait_file("/tmp/go"))
# Sent after B went and before anyone can know it: they must not be lost with it.
late = nap.options(max_retries=1, scheduling_strategy=on_b).remote(gate, "late")
late_call = actor.inc.remote()
detected = []
threading.Thread(target=lambda: detected.append(watch_death()), daemon=True).start()
# Read at once: the only copy is on B, which does not answer (unplugged) or is gone (killed).
value = quanta.get(big, timeout=60)
t_value = time.monotonic()
retried_value = quanta.get(retried, timeout=60)
t_retried = time.monotonic()
try:
    failed_outcome = "value " + repr(quanta.get(failed, timeout=60))
except NodeDiedError as e:
    failed_outcome = "NodeDiedError: " + str(e)
except Exception as e:
    failed_outcome = type(e).__name__ + ": " + str(e)
late_value = quanta.get(late, timeout=60)
late_count = quanta.get(late_call, timeout=60)
actor_count = quanta.get(actor.inc.remote(), timeout=60)
actor_after = quanta.get(actor.host.remote(), timeout=60)
while not detected:
    time.sleep(0.01)
t_dead, b_entry = detected[0]
say("RESULT", detect_s=t_dead - t_gone, retried_s=t_retried - t_gone, value_s=t_value - t_gone,
    b_alive=b_entry["Alive"], b_reason=b_entry["DeathReasonMessage"], retried=retried_value,
    failed=failed_outcome, late=late_value, late_count=late_count, actor_count=actor_count, actor_host=actor_after,
    big_size=int(value.size), big_marker=marker_of(value), big_rest_zero=not value[32:].any(),
    seen=quanta.get(gate.seen_so_far.remote()))

if sys.argv[3] == "unplug":
    wait_file("/tmp/go2")
    time.sleep(1)  # anything B sent while it was unplugged has arrived by now
    again = quanta.get([nap.options(scheduling_strategy=on_b).remote(gate, "after") for _ in range(2)], timeout=60)
    say("AFTER", nodes=[(n["NodeManagerAddress"], n["Alive"], n["NodeIndex"]) for n in quanta.nodes()],
        retried=quanta.get(retried), big_marker=marker_of(quanta.get(big)), again=again,
        actor_host=quanta.get(actor.host.remote(), timeout=60), actor_count=quanta.get(actor.inc.remote(), timeout=60))
    wait_file("/tmp/go3")  # a new node was started on B
    fresh = next(n["NodeID"] for n in quanta.nodes() if n["NodeManagerAddress"] == b_ip and n["Alive"])
    on_fresh = NodeAffinitySchedulingStrategy(fresh, soft=False)
    say("FRESH", nodes=[(n["NodeManagerAddress"], n["Alive"], n["NodeIndex"]) for n in quanta.nodes()],
        peeked=quanta.get(peek.options(scheduling_strategy=on_fresh).remote(big), timeout=60))
'''


@pytest.fixture
def net():
    hosts.require_namespaces()
    network = hosts.Network(2, token=secrets.token_hex(32))
    yield network
    network.close()


def kill_host(host):
    """SIGKILL of pid 1 of the host's pid namespace (the agent, child of the `unshare` that
    `ip netns exec` runs): the kernel then SIGKILLs every other process in it at once."""
    outer = host._agent.pid
    with open(f"/proc/{outer}/task/{outer}/children") as f:
        init = int(f.read().split()[0])
    os.kill(init, signal.SIGKILL)


def plug(net, host):
    """Brings back the link that Network.unplug took down."""
    i = net.hosts.index(host)
    hosts._ip("-n", f"qsw{net.tag}", "link", "set", f"qb{net.tag}{i}", "up")


def driver_line(a, tag, timeout=120):
    deadline = time.monotonic() + timeout
    while True:
        log = a.run(["cat", "/tmp/driver.log"])["stdout"]
        for line in log.splitlines():
            if line.startswith(tag + " "):
                print(line)  # shown when a test fails
                return json.loads(line[len(tag) + 1:])
        if a._call(op="poll", name="driver")["rc"] is not None or time.monotonic() > deadline:
            raise AssertionError(f"the driver on {a.ip} did not print {tag}:\n{log}")
        time.sleep(0.05)


def run_driver(a, b, mode):
    for h in (a, b):
        h.run(["sh", "-c", f"echo host-{h.ip} > /tmp/marker"], check=True)
    address = f"{a.ip}:{PORT}"
    a.quanta("start", "--head", "--node-ip-address", a.ip, "--port", str(PORT), "--num-cpus", "2")
    out = b.quanta("start", "--address", address, "--node-ip-address", b.ip, "--num-cpus", "2")
    assert "Joined" in out["stdout"], out
    a.run(["sh", "-c", "cat > /tmp/driver.py"], input=DRIVER, check=True)
    a.spawn("driver", [sys.executable, "/tmp/driver.py", address, b.ip, mode], log="/tmp/driver.log")
    ready = driver_line(a, "READY")
    # Before the failure: the actor, the object and both tasks are on B.
    assert ready["actor_host"] == f"host-{b.ip}" and ready["counts"] == [1, 2, 3]
    assert ready["peeked"] == [f"host-{b.ip}", f"host-{b.ip}"]
    assert sorted(ready["running"]) == [["failed", f"host-{b.ip}"], ["retried", f"host-{b.ip}"]]
    # Everything B did was sent to it over TCP by A's node, and its replies came back.
    assert ready["stats"]["tasks_forwarded"] >= 8, ready["stats"]
    assert ready["stats"]["peer_bytes_sent"] > 0 and ready["stats"]["peer_bytes_received"] > 0
    return ready


def check_failover(result, a, b):
    assert result["b_alive"] is False
    assert result["retried"] == f"host-{a.ip}"  # ran again, on the head's host
    assert result["failed"].startswith("NodeDiedError"), result["failed"]
    assert result["late"] == f"host-{a.ip}"  # sent to B before its death was known, then retried
    # The actor: __init__ ran again on A; the call sent while B was going was not lost.
    assert result["actor_host"] == f"host-{a.ip}"
    assert (result["late_count"], result["actor_count"]) == (1, 2)
    # Rebuilt by running `make` again, on A: the only copy was on B.
    assert result["big_size"] == 20_000_000 and result["big_rest_zero"]
    assert result["big_marker"] == f"host-{a.ip}"
    assert ["retried", f"host-{a.ip}"] in result["seen"]
    assert ["failed", f"host-{a.ip}"] not in result["seen"]


def test_killed_host_is_declared_dead_at_once_and_its_work_fails_over(net):
    a, b = net.hosts
    run_driver(a, b, "kill")
    kill_host(b)
    a.run(["sh", "-c", f"echo {time.monotonic()} > /tmp/go"], check=True)
    result = driver_line(a, "RESULT")
    assert result["detect_s"] < 8, result  # its connections closed when its kernel reaped them
    assert "connection" in result["b_reason"], result["b_reason"]
    check_failover(result, a, b)


def test_unplugged_host_is_declared_dead_by_heartbeat_and_refused_when_it_comes_back(net):
    a, b = net.hosts
    run_driver(a, b, "unplug")
    net.unplug(b)
    a.run(["sh", "-c", f"echo {time.monotonic()} > /tmp/go"], check=True)
    result = driver_line(a, "RESULT")
    # Nothing closed: only the 3 s heartbeat timeout can tell.
    assert 2.5 < result["detect_s"] < 8, result
    assert "no heartbeat" in result["b_reason"], result["b_reason"]
    check_failover(result, a, b)

    # B's node is still running, cut off. When its link comes back it is told it was declared
    # dead (or refused when it rejoins) and exits, its workers with it.
    assert b.run(["pgrep", "-x", "quanta_node"])["rc"] == 0
    plug(net, b)
    deadline = time.monotonic() + 30
    while b.run(["pgrep", "-x", "quanta_node"])["rc"] == 0:
        assert time.monotonic() < deadline, "B's node is still running 30 s after its link came back"
        time.sleep(0.1)
    leftovers = b.run(["sh", "-c", "ps -eo pid,args | grep -i quanta | grep -v grep; true"])["stdout"]
    assert leftovers.strip() == "", leftovers
    node_log = b.run(["sh", "-c", "cat /tmp/quanta-0/session_*/logs/node*.log"])["stdout"]
    control_log = a.run(["sh", "-c", "cat /tmp/quanta-0/session_*/logs/control.log"])["stdout"]
    assert ("declared this node dead" in node_log or
            ("refused this node's rejoin" in node_log and f"refused the registration of a node from {b.ip}" in control_log)), \
        node_log[-3000:]
    # Still one node alive: B is listed dead under its old index, with the reason, and its
    # resources are not counted as in use.
    status = a.quanta("status")["stdout"]
    assert "1 node(s) alive, 1 dead" in status, status
    b_line = next(line for line in status.splitlines() if f" {b.ip}:" in line)
    assert " dead " in b_line and "had 2 CPU" in b_line, status
    assert "dead: no heartbeat" in status
    a.run(["touch", "/tmp/go2"], check=True)
    after = driver_line(a, "AFTER")
    nodes = sorted(map(tuple, after["nodes"]))
    assert [(ip, alive) for ip, alive, _ in nodes] == [(a.ip, True), (b.ip, False)], nodes
    # Late results from B were ignored; work meant for it still goes to A.
    assert after["retried"] == f"host-{a.ip}" and after["big_marker"] == f"host-{a.ip}"
    assert after["again"] == [f"host-{a.ip}", f"host-{a.ip}"]
    assert after["actor_host"] == f"host-{a.ip}" and after["actor_count"] == 3

    # A new node started on B joins under a new index, runs work and reads A's rebuilt copy.
    out = b.quanta("start", "--address", f"{a.ip}:{PORT}", "--node-ip-address", b.ip, "--num-cpus", "1")
    assert "Joined" in out["stdout"], out
    a.run(["touch", "/tmp/go3"], check=True)
    fresh = driver_line(a, "FRESH")
    nodes = sorted(map(tuple, fresh["nodes"]), key=lambda n: n[2])
    assert [(ip, alive) for ip, alive, _ in nodes] == [(a.ip, True), (b.ip, False), (b.ip, True)], nodes
    assert fresh["peeked"] == [f"host-{b.ip}", f"host-{a.ip}"]


# A driver on B owns objects held by an actor on A, and a non-detached actor living on A.
B_OWNER = r'''
import os, sys, time, quanta
from quanta.util.scheduling_strategies import NodeAffinitySchedulingStrategy
quanta.init(address=sys.argv[1], namespace="svc", log_to_driver=False)
a_id = next(n["NodeID"] for n in quanta.nodes() if n["NodeManagerAddress"] == sys.argv[2])

@quanta.remote(num_cpus=0)
class Owned:
    def pid(self):
        return os.getpid()

owned = Owned.options(name="owned", scheduling_strategy=NodeAffinitySchedulingStrategy(a_id, soft=False)).remote()
holder = quanta.get_actor("holder")
print("READY", quanta.get(owned.pid.remote()), quanta.get(holder.hold.remote([quanta.put(b"x" * 5_000_000)])), flush=True)
time.sleep(3600)  # lives until its host dies
'''

A_HOLDER = r'''
import json, os, sys, time, quanta
quanta.init(address=sys.argv[1], namespace="svc", log_to_driver=False)

@quanta.remote(num_cpus=0)
class Holder:
    def hold(self, box):
        self.box = box  # borrowed from B's driver; its value was never asked for here
        return "held"
    def read(self):
        try:
            return len(quanta.get(self.box[0], timeout=30))
        except Exception as e:  # noqa: BLE001 - the test looks at which error it is
            return type(e).__name__

h = Holder.options(name="holder", lifetime="detached").remote()
print("HOLDER", json.dumps(quanta.get(h.hold.remote([]))), flush=True)
while not os.path.exists("/tmp/go"):
    time.sleep(0.01)
while sum(n["Alive"] for n in quanta.nodes()) != 1:
    time.sleep(0.01)
read = quanta.get(h.read.remote(), timeout=60)
deadline = time.monotonic() + 20
while time.monotonic() < deadline:
    try:
        quanta.get_actor("owned")
        time.sleep(0.05)
    except ValueError:
        break
print("RESULT", json.dumps({"read": read, "owned_gone": time.monotonic() < deadline}), flush=True)
'''


def test_a_driver_lost_with_its_host_takes_its_objects_and_actors_with_it(net):
    a, b = net.hosts
    address = f"{a.ip}:{PORT}"
    a.quanta("start", "--head", "--node-ip-address", a.ip, "--port", str(PORT), "--num-cpus", "1")
    b.quanta("start", "--address", address, "--node-ip-address", b.ip, "--num-cpus", "1")
    a.run(["sh", "-c", "cat > /tmp/driver.py"], input=A_HOLDER, check=True)
    b.run(["sh", "-c", "cat > /tmp/owner.py"], input=B_OWNER, check=True)
    a.spawn("driver", [sys.executable, "/tmp/driver.py", address], log="/tmp/driver.log")
    driver_line(a, "HOLDER")
    b.spawn("owner", [sys.executable, "/tmp/owner.py", address, a.ip], log="/tmp/owner.log")
    deadline = time.monotonic() + 60
    while "READY" not in (log := b.run(["cat", "/tmp/owner.log"])["stdout"]):
        assert time.monotonic() < deadline and b._call(op="poll", name="owner")["rc"] is None, log
        time.sleep(0.05)
    owned_pid = int(log.split("READY ")[1].split()[0])
    assert a.run(["kill", "-0", str(owned_pid)])["rc"] == 0  # B's driver's actor runs on A
    kill_host(b)
    a.run(["touch", "/tmp/go"], check=True)
    result = driver_line(a, "RESULT")
    # The borrowed object's owner is gone: OwnerDiedError, not a hang. Its non-detached actor
    # on A died with its owner's job: its name is free and its process has exited.
    assert result == {"read": "OwnerDiedError", "owned_gone": True}
    deadline = time.monotonic() + 10
    while a.run(["kill", "-0", str(owned_pid)])["rc"] == 0:
        assert time.monotonic() < deadline, f"the actor process {owned_pid} on A outlived its owner by 10 s"
        time.sleep(0.05)
