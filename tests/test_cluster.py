"""Several real node daemons on this machine joined into one cluster (quanta.cluster_utils.Cluster).

Every node is its own `quanta_node` process with its own session directory, object store and
TCP peer port, joined to the head's control service over authenticated TCP on 127.0.0.1 (as a
node on another host would be). The tests check membership (nodes(), resources, deaths and
their reasons, heartbeat timeouts), that tasks routed by custom resources run on the node that
has them (the worker's session directory and the owner's peer counters say so), that a driver
on a "host" with no node of the cluster gets a driver node that lives and dies with it, and
that nothing is left running afterwards.
"""

import json
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time

import pytest

import quanta
from quanta._private import api, runtime_dir, services
from quanta.cluster_utils import Cluster
from conftest import descendants, process_identity, wait_until_gone

RAY_NODE_KEYS = {"NodeID", "Alive", "NodeManagerAddress", "NodeManagerHostname", "NodeManagerPort",
                 "ObjectManagerPort", "ObjectStoreSocketName", "RayletSocketName", "Resources", "Labels"}


@quanta.remote
def where():
    """Which node's worker ran this: (session dir the node gave it, node id, worker pid)."""
    return os.environ["QUANTA_SESSION_DIR"], quanta.get_runtime_context().get_node_id(), os.getpid()


@quanta.remote
def sleep_where(seconds):
    time.sleep(seconds)
    return os.environ["QUANTA_SESSION_DIR"]


@pytest.fixture
def short_tmp():
    """A fresh private directory with a short path (Unix socket paths are limited to 107 bytes)."""
    import shutil

    path = tempfile.mkdtemp(prefix="qc-")
    yield path
    shutil.rmtree(path, ignore_errors=True)



def node_by_id(node_id):
    for n in quanta.nodes():
        if n["NodeID"] == node_id:
            return n
    raise AssertionError(f"node {node_id} is not in quanta.nodes(): {quanta.nodes()}")


def wait_for(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)


def daemon_identities(node):
    return {process_identity(pid) for pid in node.pids} - {None}


def everything_of(node):
    """The node's daemons and all their descendants (workers)."""
    out = set()
    for ident in daemon_identities(node):
        out.add(ident)
        out |= descendants(ident[0])
    return out


# ----------------------------------------------------------------------------- membership


def test_nodes_join_and_report_ray_keys_and_summed_resources(make_cluster):
    cluster = make_cluster(head_node_args={"num_cpus": 1})
    a = cluster.add_node(num_cpus=2, resources={"box_a": 1}, labels={"zone": "a"})
    b = cluster.add_node(num_cpus=1, resources={"box_b": 3})
    cluster.wait_for_nodes()
    host, port = cluster.address.rsplit(":", 1)
    assert host == "127.0.0.1" and int(port) > 0
    assert cluster.list_all_nodes() == [cluster.head_node, a, b]

    cluster.connect()
    nodes = quanta.nodes()
    assert len(nodes) == 3
    for n in nodes:
        assert RAY_NODE_KEYS <= set(n), sorted(RAY_NODE_KEYS - set(n))
        assert n["Alive"] is True and n["alive"] is True
        assert n["NodeManagerAddress"] == "127.0.0.1"
        assert n["NodeManagerPort"] > 0  # its TCP peer listener
        assert os.path.exists(n["ObjectStoreSocketName"])
    by_id = {n["NodeID"]: n for n in nodes}
    assert set(by_id) == {cluster.head_node.node_id, a.node_id, b.node_id}
    assert by_id[cluster.head_node.node_id]["IsHeadNode"] is True
    assert by_id[a.node_id]["Resources"] == {"CPU": 2.0, "box_a": 1.0}
    assert by_id[a.node_id]["Labels"] == {"zone": "a"}
    assert by_id[b.node_id]["Resources"] == {"CPU": 1.0, "box_b": 3.0}
    assert by_id[a.node_id]["SessionDir"] == a.session_dir
    assert len({n["NodeManagerPort"] for n in nodes}) == 3  # one peer port per daemon

    assert quanta.cluster_resources() == {"CPU": 4.0, "box_a": 1.0, "box_b": 3.0}
    wait_for(lambda: quanta.available_resources() == {"CPU": 4.0, "box_a": 1.0, "box_b": 3.0}, 10,
             "every resource of every node to be available")


def test_available_resources_count_what_runs_on_other_nodes(make_cluster):
    cluster = make_cluster(head_node_args={"num_cpus": 1})
    cluster.add_node(num_cpus=1, resources={"box": 2})
    cluster.connect()
    refs = [sleep_where.options(resources={"box": 1}).remote(3)]
    # The task holds 1 CPU and 1 "box" on the other node; the head hears it from that node's report.
    wait_for(lambda: quanta.available_resources() == {"CPU": 1.0, "box": 1.0}, 10,
             f"the busy node's report (now {quanta.available_resources()})")
    assert quanta.cluster_resources() == {"CPU": 2.0, "box": 2.0}
    quanta.get(refs)
    wait_for(lambda: quanta.available_resources() == {"CPU": 2.0, "box": 2.0}, 10, "the resources to come back")


@pytest.mark.parametrize("graceful", [True, False], ids=["graceful", "sigkill"])
def test_removed_node_is_dead_at_once_with_a_reason(make_cluster, graceful):
    cluster = make_cluster(head_node_args={"num_cpus": 1})
    node = cluster.add_node(num_cpus=1, resources={"box": 1})
    cluster.connect()
    assert quanta.get(where.options(resources={"box": 1}).remote())[0] == node.session_dir  # it has a worker now
    procs = everything_of(node)
    assert len(procs) >= 2, "the node daemon and its worker"

    cluster.remove_node(node, allow_graceful=graceful)
    assert cluster.worker_nodes == []
    assert not wait_until_gone(procs, 10), "the removed node's daemon or workers are still running"
    # Dead at once (the control service saw its connection close; no heartbeat timeout involved:
    # the default one is 3 s).
    t0 = time.monotonic()
    info = wait_for(lambda: (lambda n: n if not n["Alive"] else None)(node_by_id(node.node_id)), 1.0,
                    "the removed node to be listed dead")
    assert time.monotonic() - t0 < 1.0
    assert "connection to the control service closed" in info["DeathReasonMessage"], info
    assert info["alive"] is False
    assert quanta.cluster_resources() == {"CPU": 1.0}
    # The rest of the cluster carries on.
    assert quanta.get(where.remote())[0] == cluster.head_node.session_dir


def test_sigstopped_node_is_declared_dead_after_the_heartbeat_timeout(make_cluster):
    # heartbeat_timeout_ms is a head argument (cluster_utils._NODE_ARGS -> quanta_control).
    from quanta import cluster_utils

    assert "heartbeat_timeout_ms" in cluster_utils._NODE_ARGS
    cluster = make_cluster(head_node_args={"num_cpus": 1, "heartbeat_timeout_ms": 1000})
    frozen = cluster.add_node(num_cpus=1, resources={"frozen": 1})
    witness = cluster.add_node(num_cpus=1, resources={"witness": 1})
    cluster.connect()
    (daemon_pid,) = frozen.pids
    os.kill(daemon_pid, signal.SIGSTOP)  # silent, but its TCP connection stays open
    try:
        t0 = time.monotonic()
        info = wait_for(lambda: (lambda n: n if not n["Alive"] else None)(node_by_id(frozen.node_id)), 10,
                        "the frozen node to be declared dead")
        took = time.monotonic() - t0
        assert "no heartbeat for 1000 ms" in info["DeathReasonMessage"], info
        # The default timeout is 3 s: seeing it dead well before shows the head used ours.
        assert took < 2.5, f"declared dead {took:.2f} s after SIGSTOP with a 1 s heartbeat timeout"
        assert quanta.cluster_resources() == {"CPU": 2.0, "witness": 1.0}

        # A driver of another node sees the death too (the head broadcast it to every node).
        quanta.shutdown()
        quanta.init(address=witness.session_dir)
        seen = node_by_id(frozen.node_id)
        assert seen["Alive"] is False and "no heartbeat" in seen["DeathReasonMessage"]
        assert node_by_id(witness.node_id)["Alive"] is True
        assert quanta.get(where.options(resources={"witness": 1}).remote())[0] == witness.session_dir
    finally:
        os.kill(daemon_pid, signal.SIGCONT)
    # Woken up, it learns it was declared dead and exits rather than coming back.
    assert not wait_until_gone({process_identity(daemon_pid)} - {None}, 10), \
        "a node declared dead kept running after SIGCONT"


def test_wait_for_nodes_times_out_when_a_node_is_missing(make_cluster):
    cluster = make_cluster(head_node_args={"num_cpus": 0})
    node = cluster.add_node(num_cpus=0)
    cluster.wait_for_nodes(timeout=5)
    cluster.remove_node(node, allow_graceful=False)
    from quanta import _core

    wait_for(lambda: not [n for n in _core.query_cluster(cluster.address, 5000) if n["node_id"] == node.node_id
                          and n["alive"]], 5, "the head to see the node dead")
    cluster.worker_nodes.append(node)  # pretend we still expect it
    with pytest.raises(TimeoutError, match="only 1 of 2 nodes are alive"):
        cluster.wait_for_nodes(timeout=0.5)
    cluster.worker_nodes.remove(node)


# ----------------------------------------------------------------------------- tasks across nodes


def test_tasks_routed_by_custom_resources_run_on_that_node(make_cluster):
    cluster = make_cluster(head_node_args={"num_cpus": 1})
    nodes = [cluster.add_node(num_cpus=1, resources={f"n{i}": 1}) for i in range(3)]
    cluster.connect()
    before = api.node_stats()
    assert before["node_index"] == cluster.head_node.node_index  # the driver's node owns its tasks
    for i, node in enumerate(nodes):
        session_dir, node_id, pid = quanta.get(where.options(resources={f"n{i}": 1}).remote())
        assert session_dir == node.session_dir
        assert node_id == node.node_id
        # The worker is a child of that node's daemon, not of the head's.
        (daemon_pid,) = node.pids
        assert pid in {p for p, _ in descendants(daemon_pid)}
    # A task without custom resources stays on the driver's node.
    assert quanta.get(where.remote())[1] == cluster.head_node.node_id
    after = api.node_stats()
    assert after["tasks_forwarded"] - before["tasks_forwarded"] == 3
    assert after["peer_bytes_sent"] > before["peer_bytes_sent"]
    assert after["peer_bytes_received"] > before["peer_bytes_received"]  # the results came back
    assert after["peer_connects"] - before["peer_connects"] == 3  # one outbound channel per peer


def test_four_one_cpu_nodes_run_four_one_second_tasks_in_parallel(make_cluster):
    cluster = make_cluster(head_node_args={"num_cpus": 1, "resources": {"slot0": 1}})
    nodes = [cluster.head_node] + [cluster.add_node(num_cpus=1, resources={f"slot{i}": 1}) for i in range(1, 4)]
    cluster.connect()
    # Warm up: each node's worker has imported the function once.
    assert quanta.get([sleep_where.options(resources={f"slot{i}": 1}).remote(0) for i in range(4)]) == \
        [n.session_dir for n in nodes]
    t0 = time.monotonic()
    ran_on = quanta.get([sleep_where.options(resources={f"slot{i}": 1}).remote(1) for i in range(4)])
    took = time.monotonic() - t0
    assert ran_on == [n.session_dir for n in nodes]
    assert took < 2.5, f"4 one-second tasks on 4 one-CPU nodes took {took:.2f} s"


def test_task_on_a_removed_node_is_not_run_elsewhere_by_accident(make_cluster):
    # The only node with "box" dies: a task that needs it must not be run on a node without it.
    cluster = make_cluster(head_node_args={"num_cpus": 1})
    node = cluster.add_node(num_cpus=1, resources={"box": 1})
    cluster.connect()
    assert quanta.get(where.options(resources={"box": 1}).remote())[0] == node.session_dir
    cluster.remove_node(node)
    wait_for(lambda: not node_by_id(node.node_id)["Alive"], 5, "the node to be dead")
    ref = where.options(resources={"box": 1}).remote()
    ready, _ = quanta.wait([ref], timeout=1.5)
    assert ready == []  # infeasible now: it waits for a node with "box"
    newcomer = cluster.add_node(num_cpus=1, resources={"box": 1})
    assert quanta.get(ref, timeout=30)[0] == newcomer.session_dir


def test_task_on_a_node_that_dies_fails_instead_of_hanging(make_cluster):
    cluster = make_cluster(head_node_args={"num_cpus": 1})
    node = cluster.add_node(num_cpus=1, resources={"box": 1})
    cluster.connect()
    ref = sleep_where.options(resources={"box": 1}, max_retries=0).remote(30)
    wait_for(lambda: quanta.available_resources().get("box", 0) == 0, 10, "the task to start on the node")
    cluster.remove_node(node, allow_graceful=False)
    with pytest.raises(quanta.exceptions.NodeDiedError, match="no retries left"):
        quanta.get(ref, timeout=10)


def test_task_on_a_node_that_dies_is_retried_on_another(make_cluster):
    cluster = make_cluster(head_node_args={"num_cpus": 1})
    node = cluster.add_node(num_cpus=1, resources={"box": 1})
    cluster.connect()
    ref = sleep_where.options(resources={"box": 1}, max_retries=1).remote(3)
    wait_for(lambda: quanta.available_resources().get("box", 0) == 0, 10, "the task to start on the node")
    cluster.remove_node(node, allow_graceful=False)
    second = cluster.add_node(num_cpus=1, resources={"box": 1})
    assert quanta.get(ref, timeout=10) == second.session_dir


# ----------------------------------------------------------------------------- driver nodes


DRIVER_ON_ANOTHER_HOST = """
    import json, os, sys, quanta
    quanta.init(address=sys.argv[1])

    @quanta.remote(resources={"far": 1})
    def far():
        return os.environ["QUANTA_SESSION_DIR"]

    me = quanta.get_runtime_context().get_node_id()
    mine = [n for n in quanta.nodes() if n["NodeID"] == me][0]
    print(json.dumps({"me": mine, "far": quanta.get(far.remote(), timeout=60),
                      "cpu": quanta.cluster_resources().get("CPU")}), flush=True)
    sys.stdin.readline()  # wait until the test has looked (or kills us)
"""


@pytest.mark.parametrize("how", ["exit", "sigkill"])
def test_driver_without_a_local_node_gets_a_driver_node_that_dies_with_it(make_cluster, short_tmp, how):
    cluster = make_cluster(head_node_args={"num_cpus": 1})
    far = cluster.add_node(num_cpus=1, resources={"far": 1})
    cluster.connect()
    # A "host" that cannot see the head's session records: its own private runtime root.
    private_root = os.path.join(short_tmp, "rt")
    env = dict(os.environ, QUANTA_RUNTIME_DIR=str(private_root), QUANTA_AUTH_TOKEN=cluster._token,
               PYTHONUNBUFFERED="1")
    env.pop("QUANTA_ADDRESS", None)
    driver = subprocess.Popen([sys.executable, "-c", textwrap.dedent(DRIVER_ON_ANOTHER_HOST), cluster.address],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=env)
    try:
        line = driver.stdout.readline()
        assert line, f"the driver failed: {driver.stderr.read()}"
        seen = json.loads(line)
        me = seen["me"]
        assert me["IsDriverNode"] is True and me["Alive"] is True
        assert me["Resources"] == {}  # a driver node adds nothing to the cluster
        assert me["SessionDir"].startswith(private_root + "/")
        assert seen["far"] == far.session_dir  # its task ran on the cluster
        assert seen["cpu"] == 2.0
        # The driver node's daemon, as recorded in the private root.
        (session_dir,) = runtime_dir.sessions(private_root)
        record = runtime_dir.read_record(session_dir)
        assert record["driver_node"] is True
        (entry,) = record["processes"]
        assert services.alive(entry, record["session_dir"])
        ident = process_identity(entry["pid"])
        # The head lists it too, and wait_for_nodes does not count it.
        assert node_by_id(me["NodeID"])["IsDriverNode"] is True
        cluster.wait_for_nodes(timeout=5)

        if how == "exit":
            driver.stdin.write("\n")
            driver.stdin.flush()
            assert driver.wait(30) == 0
        else:
            driver.send_signal(signal.SIGKILL)
            driver.wait(30)
        assert not wait_until_gone({ident}, 10), "the driver node outlived its driver"
        assert not runtime_dir.session_in_use(record["session_dir"])
        info = wait_for(lambda: (lambda n: n if not n["Alive"] else None)(node_by_id(me["NodeID"])), 5,
                        "the driver node to be listed dead")
        assert info["DeathReasonMessage"]
        assert quanta.cluster_resources() == {"CPU": 2.0, "far": 1.0}
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.wait()


# ----------------------------------------------------------------------------- shutdown


def test_shutdown_leaves_no_process_and_no_session_in_use(no_cluster):
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1}, shutdown_at_exit=False)
    try:
        nodes = [cluster.add_node(num_cpus=1, resources={f"s{i}": 1}) for i in range(2)]
        cluster.connect()
        quanta.get([where.options(resources={f"s{i}": 1}).remote() for i in range(2)] + [where.remote()])
        everything = set()
        for n in cluster.list_all_nodes():
            everything |= everything_of(n)
        roles = sorted(os.path.basename(os.readlink(f"/proc/{pid}/exe")) for pid, _ in everything
                       if pid in {p for n in cluster.list_all_nodes() for p in n.pids})
        assert roles == ["quanta_control", "quanta_node", "quanta_node", "quanta_node"]
        assert len(everything) >= 7  # 4 daemons + a worker per node
        sessions = [n.session_dir for n in cluster.list_all_nodes()]
        records = [runtime_dir.read_record(s) for s in sessions]
        assert all(r is not None and r["started_by"] == "cluster_utils" for r in records)
        assert all(runtime_dir.session_in_use(s) for s in sessions)
    finally:
        cluster.shutdown()
    assert not quanta.is_initialized()
    assert cluster.head_node is None and cluster.worker_nodes == []
    assert not wait_until_gone(everything, 10), "processes left after Cluster.shutdown()"
    for s, r in zip(sessions, records):
        assert not runtime_dir.session_in_use(s)
        assert not any(services.alive(e, s) for e in r["processes"])


def test_cluster_daemons_die_with_the_process_that_made_them():
    code = """
        import json, sys
        from quanta.cluster_utils import Cluster
        c = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
        c.add_node(num_cpus=0)
        print(json.dumps([p for n in c.list_all_nodes() for p in n.pids]), flush=True)
        sys.stdin.readline()
    """
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    p = subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, text=True, env=env)
    try:
        pids = json.loads(p.stdout.readline())
        idents = {process_identity(pid) for pid in pids} - {None}
        assert len(idents) == 3  # control + head node + node
        p.kill()  # no atexit, no shutdown(): only the lifeline pipes can end them
        p.wait()
        assert not wait_until_gone(idents, 10), "Cluster daemons outlived their (SIGKILLed) creator"
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


@pytest.mark.multihost
def test_driver_node_on_another_real_host_runs_tasks_and_dies_with_its_driver():
    """The same across two network namespaces (hosts.py): the results of the driver's tasks
    must come back over TCP to its driver node, which must listen on its host's address."""
    import secrets

    import hosts

    hosts.require_namespaces()
    net = hosts.Network(2, token=secrets.token_hex(32))
    try:
        a, b = net.hosts
        a.run(["sh", "-c", f"echo host-{a.ip} > /tmp/marker"], check=True)
        a.quanta("start", "--head", "--node-ip-address", a.ip, "--port", "6380", "--num-cpus", "1")
        out = b.python(f"""
            import json, quanta
            quanta.init(address="{a.ip}:6380")

            @quanta.remote
            def marker():
                return open("/tmp/marker").read().strip()

            me = quanta.get_runtime_context().get_node_id()
            print(json.dumps({{"marker": quanta.get(marker.remote(), timeout=60),
                              "me": [n for n in quanta.nodes() if n["NodeID"] == me][0]}}))
        """, timeout=120)
        seen = json.loads(out.strip().splitlines()[-1])
        assert seen["marker"] == f"host-{a.ip}"
        assert seen["me"]["IsDriverNode"] is True
        assert seen["me"]["NodeManagerAddress"] == b.ip
        status = json.loads(a.quanta("status", "--format", "json")["stdout"])["nodes"]
        driver_nodes = [n for n in status if n["is_driver_node"]]
        assert len(driver_nodes) == 1 and driver_nodes[0]["alive"] is False  # it ended with its driver
    finally:
        net.close()
