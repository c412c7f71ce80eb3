"""Fault-tolerance figures: how fast a failure is noticed and its work recovered, beside Ray.

    python bench/fault_tolerance.py [--repeat 3] [--compare ray] [--ray-repeat 2] [--json out.json]

Every figure is measured on a cluster of real node daemons on this machine (Quanta's
`quanta.cluster_utils.Cluster`, Ray's own `ray.cluster_utils.Cluster`), each backend in a fresh
child process, with the same workload code (`rt` is the `quanta` or the `ray` module):
  * worker_retry_s: a task's worker SIGKILLed -> the retried task starts (max_retries=1);
  * node_dead_s / node_retry_s: a non-head node SIGKILLed (its daemon and every process under
    it, as a host crash; then `remove_node(allow_graceful=False)`) -> `nodes()` shows it dead /
    -> the task that was running there starts again on the head;
  * stopped_dead_s / stopped_retry_s: a non-head node daemon (Ray: its raylet) and every process
    under it SIGSTOPped — they hold their sockets open and answer nothing, as an unplugged host —
    -> dead in `nodes()` / -> the task retried on the head;
  * lineage_get_s: a 100 MB object whose only copy was on a node that is SIGKILLed, `get` called
    at once (detection + rebuild, which runs the task again on the head, the node left);
    lineage_rebuild_s: the same `get` started once `nodes()` shows the node dead (the rebuild
    alone); make_100mb_s: the same task run on the head and `get`, no failure (a rebuild's floor);
  * actor_restart_s: the node of an actor (max_restarts=1, max_task_retries=-1) SIGKILLed -> the
    first successful call on its restarted instance elsewhere.
Quanta alone, on two hosts in network+mount+pid namespaces (tests/hosts.py; needs root):
  * unplug_dead_s / unplug_retry_s: the link of the node's host taken down (no FIN, no RST) ->
    dead in `nodes()` on the head's host / -> the task retried on the head's host.
Samples are taken `--repeat` times (Ray's slow figures `--ray-repeat` times); the table shows
medians and Ray / Quanta ratios (>1: Quanta recovers sooner). JSON (--json, default
bench/fault_tolerance-<date>.json) keeps every sample, Ray's health-check defaults and the load.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import bench_common

HERE = os.path.dirname(os.path.abspath(__file__))
SIZE = 100 * 1000 * 1000
STORE = 512 << 20  # every node's object store: a few 100 MB objects at once

# Ray 2.60's defaults (src/ray/common/ray_config_def.h): the GCS probes each raylet over gRPC.
RAY_HEALTH_CHECK = {"health_check_initial_delay_ms": 5000, "health_check_period_ms": 3000,
                    "health_check_timeout_ms": 10000, "health_check_failure_threshold": 5}


def med(xs):
    return statistics.median(xs) if xs else None


descendants = bench_common.descendants


def wait_until(cond, timeout, what):
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout} s")
        time.sleep(0.005)


class Backend:
    """What differs between Quanta's and Ray's Cluster: the rest of this file uses only this."""

    def __init__(self, name):
        self.name = name
        if name == "quanta":
            import quanta as rt
            from quanta.cluster_utils import Cluster

            self.cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 2, "object_store_memory": STORE})
        else:
            import ray as rt
            from ray.cluster_utils import Cluster

            self.cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 2, "object_store_memory": STORE})
        self.rt = rt
        self.cluster.connect()
        self.head_id = rt.get_runtime_context().get_node_id()

    def add_node(self, **kw):
        node = self.cluster.add_node(num_cpus=1, object_store_memory=STORE, **kw)
        self.cluster.wait_for_nodes()
        return node

    def kill(self, node):
        """A host crash: the node daemon and every process under it SIGKILLed at once (Ray's
        remove_node alone leaves its workers running until they notice their raylet is gone)."""
        pid = self.daemon_pid(node)
        for p in [pid] + descendants(pid):
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.cluster.remove_node(node, allow_graceful=False)

    def daemon_pid(self, node):
        if self.name == "quanta":
            return next(p.pid for role, p in node._session._procs if role == "node")
        return node.all_processes["raylet"][0].process.pid

    def freeze(self, node):
        pid = self.daemon_pid(node)
        frozen = [pid] + descendants(pid)
        for p in frozen:
            os.kill(p, signal.SIGSTOP)
        return frozen

    def thaw_dead(self, node, frozen):
        self.kill(node)

    def alive(self, node_id):
        return any(n["NodeID"] == node_id and n["Alive"] for n in self.rt.nodes())

    def shutdown(self):
        self.rt.shutdown()
        self.cluster.shutdown()


def on(rt, node_id):
    if rt.__name__ == "quanta":
        from quanta.util.scheduling_strategies import NodeAffinitySchedulingStrategy
    else:
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy
    return NodeAffinitySchedulingStrategy(node_id, soft=True)


def workloads(rt):
    """Remote functions defined here so that cloudpickle ships them by value."""

    @rt.remote(max_retries=1)
    def victim(log):
        # One line per attempt: pid, node, start time (CLOCK_MONOTONIC is the machine's).
        with open(log, "a") as f:
            f.write(f"{os.getpid()} {rt.get_runtime_context().get_node_id()} {time.monotonic()}\n")
        with open(log) as f:
            first = len(f.read().splitlines()) == 1
        if first:
            time.sleep(300)
        return os.getpid()

    @rt.remote(max_retries=1)
    def make(n, log=None):
        import numpy as np

        if log:  # where each run (the first, and a rebuild) happened
            with open(log, "a") as f:
                f.write(f"{os.getpid()} {rt.get_runtime_context().get_node_id()} {time.monotonic()}\n")
        return np.ones(n, dtype=np.uint8)

    @rt.remote(max_restarts=1, max_task_retries=-1)
    class Pinger:
        def ping(self):
            return rt.get_runtime_context().get_node_id()

    return victim, make, Pinger


def attempts(log):
    try:
        with open(log) as f:
            return [(int(p), node, float(t)) for p, node, t in (line.split() for line in f.read().splitlines())]
    except FileNotFoundError:
        return []


def watch_dead(b, node_id, out):
    def run():
        while b.alive(node_id):
            time.sleep(0.005)
        out.append(time.monotonic())

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


class Scenarios:
    """One method per failure; each adds its samples, `repeat` (or `slow`) times."""

    def __init__(self, b, repeat, slow, workdir, out):
        self.b, self.rt, self.repeat, self.slow, self.workdir, self.out = b, b.rt, repeat, slow, workdir, out
        self.victim, self.make, self.Pinger = workloads(b.rt)

    def add(self, key, v):
        self.out["samples"].setdefault(key, []).append(v)

    def log(self, what, i):
        return os.path.join(self.workdir, f"{self.b.name}-{what}-{i}.log")

    def on_head(self):
        return on(self.rt, self.b.head_id)

    def worker(self):  # a worker SIGKILLed
        for i in range(self.repeat):
            log = self.log("worker", i)
            ref = self.victim.options(scheduling_strategy=self.on_head()).remote(log)
            pid = wait_until(lambda: attempts(log), 60, "the task started")[0][0]
            t_kill = time.monotonic()
            os.kill(pid, signal.SIGKILL)
            second = wait_until(lambda: attempts(log)[1:], 60, "the task was retried")[0]
            self.add("worker_retry_s", second[2] - t_kill)
            assert self.rt.get(ref, timeout=60) == second[0]

    def _lost_node(self, what, fail, give_up):
        """A victim task running on a new node, then `fail(node)`: dead in nodes() and retried."""
        b = self.b
        for i in range(self.slow):
            node = b.add_node()
            log = self.log(what, i)
            ref = self.victim.options(scheduling_strategy=on(self.rt, node.node_id)).remote(log)
            assert wait_until(lambda: attempts(log), 60, "the task started")[0][1] == node.node_id
            dead = []
            watcher = watch_dead(b, node.node_id, dead)
            t0 = time.monotonic()
            undo = fail(node)
            try:
                second = wait_until(lambda: attempts(log)[1:], give_up, "the task was retried")[0]
                self.add(f"{what}_retry_s", second[2] - t0)
                assert second[1] != node.node_id and self.rt.get(ref, timeout=60) == second[0]
            except TimeoutError:
                self.out.setdefault("not_recovered", []).append(f"{what}: task not retried within {give_up} s")
            watcher.join(give_up)
            if dead:
                self.add(f"{what}_dead_s", dead[0] - t0)
            else:
                self.out.setdefault("not_recovered", []).append(f"{what}: node not declared dead within {give_up} s")
            if undo:
                undo()

    def node(self):  # a node SIGKILLed
        self._lost_node("node", self.b.kill, 120)

    def stopped(self):  # a node and all under it SIGSTOPped: silent, sockets open
        b = self.b

        def freeze(node):
            frozen = b.freeze(node)
            return lambda: b.thaw_dead(node, frozen)

        self._lost_node("stopped", freeze, 100)

    def lineage(self):
        rt, b, make = self.rt, self.b, self.make
        for i in range(self.repeat):  # the floor of a rebuild: the same task and get on the head, no failure
            t0 = time.monotonic()
            ref = make.options(scheduling_strategy=self.on_head()).remote(SIZE)
            assert rt.get(ref, timeout=120).size == SIZE
            self.add("make_100mb_s", time.monotonic() - t0)
            del ref
        for key, wait_dead in (("lineage_get_s", False), ("lineage_rebuild_s", True)):
            for i in range(self.slow):  # a 100 MB object lost with its node
                node = b.add_node()
                log = self.log(key, i)
                ref = make.options(scheduling_strategy=on(rt, node.node_id)).remote(SIZE, log)
                rt.wait([ref], fetch_local=False, timeout=120)
                b.kill(node)
                if wait_dead:
                    wait_until(lambda: not b.alive(node.node_id), 300, "the node was declared dead")
                t0 = time.monotonic()
                value = rt.get(ref, timeout=300)
                self.add(key, time.monotonic() - t0)
                assert value.size == SIZE and int(value[-1]) == 1
                runs = attempts(log)
                assert [r[1] for r in runs] == [node.node_id, b.head_id], runs  # rebuilt, on the head
                del value, ref

    def actor(self):  # an actor's node SIGKILLed
        rt, b = self.rt, self.b
        for i in range(self.slow):
            node = b.add_node()
            a = self.Pinger.options(scheduling_strategy=on(rt, node.node_id)).remote()
            assert rt.get(a.ping.remote(), timeout=60) == node.node_id
            t_kill = time.monotonic()
            b.kill(node)
            while True:
                try:
                    where = rt.get(a.ping.remote(), timeout=300)
                    break
                except Exception as e:  # noqa: BLE001 - a caller retries until the restart is done
                    self.out.setdefault("actor_call_errors", []).append(type(e).__name__)
                    time.sleep(0.01)
            self.add("actor_restart_s", time.monotonic() - t_kill)
            assert where != node.node_id
            rt.kill(a)


SCENARIOS = ["worker", "node", "stopped", "lineage", "actor"]


def child(name, repeat, slow, workdir, only):
    b = Backend(name)
    out = {"version": b.rt.__version__, "samples": {}, "errors": {}}
    sc = Scenarios(b, repeat, slow, workdir, out)
    try:
        # Warm up on the head: worker start-up and numpy's import are in no figure.
        for _ in range(2):
            b.rt.get(sc.make.options(scheduling_strategy=sc.on_head()).remote(SIZE))
        for scenario in SCENARIOS:
            if only and scenario not in only:
                continue
            try:
                getattr(sc, scenario)()
            except Exception as e:  # noqa: BLE001 - reported; the other figures still run
                out["errors"][scenario] = f"{type(e).__name__}: {e}"
    finally:
        b.shutdown()
    out["medians"] = {k: med(v) for k, v in out["samples"].items()}
    return out


# ----------------------------------------------------------------------------- unplugged host (Quanta)

NETNS_DRIVER = r'''
import json, os, sys, time
import quanta
from quanta.util.scheduling_strategies import NodeAffinitySchedulingStrategy

address, b_ip = sys.argv[1], sys.argv[2]
quanta.init(address=address, log_to_driver=False)
b_id = next(n["NodeID"] for n in quanta.nodes() if n["NodeManagerAddress"] == b_ip)
a_id = quanta.get_runtime_context().get_node_id()

@quanta.remote(num_cpus=0)
class Gate:
    def __init__(self):
        self.seen = []
    def arrive(self, node, t):
        self.seen.append((node, t))
    def seen_so_far(self):
        return list(self.seen)

@quanta.remote(max_retries=1)
def victim(gate):
    here = quanta.get_runtime_context().get_node_id()
    quanta.get(gate.arrive.remote(here, time.monotonic()))
    if here == b_id:
        time.sleep(300)
    return here

gate = Gate.options(scheduling_strategy=NodeAffinitySchedulingStrategy(a_id, soft=False)).remote()
ref = victim.options(scheduling_strategy=NodeAffinitySchedulingStrategy(b_id, soft=True)).remote(gate)
while not quanta.get(gate.seen_so_far.remote()):
    time.sleep(0.01)
print("READY", flush=True)
while not os.path.exists("/tmp/go"):
    time.sleep(0.005)
time.sleep(0.02)
t_gone = float(open("/tmp/go").read())
while any(n["NodeID"] == b_id and n["Alive"] for n in quanta.nodes()):
    time.sleep(0.005)
t_dead = time.monotonic()
assert quanta.get(ref, timeout=60) == a_id
seen = quanta.get(gate.seen_so_far.remote())
assert [node for node, _ in seen] == [b_id, a_id], seen
print("RESULT", json.dumps({"unplug_dead_s": t_dead - t_gone, "unplug_retry_s": seen[1][1] - t_gone}), flush=True)
'''


def netns_child(repeat):
    sys.path.insert(0, os.path.join(HERE, "..", "tests"))
    import hosts

    if os.geteuid() != 0 or shutil.which("ip") is None or shutil.which("unshare") is None:
        return {"skipped": "needs root, iproute2 and util-linux (network namespaces)"}
    samples = {}
    for _ in range(repeat):
        net = hosts.Network(2, token=secrets.token_hex(32))
        try:
            a, b = net.hosts
            address = f"{a.ip}:6380"
            a.quanta("start", "--head", "--node-ip-address", a.ip, "--port", "6380", "--num-cpus", "1")
            b.quanta("start", "--address", address, "--node-ip-address", b.ip, "--num-cpus", "1")
            a.run(["sh", "-c", "cat > /tmp/driver.py"], input=NETNS_DRIVER, check=True)
            a.spawn("driver", [sys.executable, "/tmp/driver.py", address, b.ip], log="/tmp/driver.log")

            def line(tag):
                def seen():
                    for text in a.run(["cat", "/tmp/driver.log"])["stdout"].splitlines():
                        if text.startswith(tag):
                            return text[len(tag):].strip() or True
                    if a._call(op="poll", name="driver")["rc"] is not None:
                        raise RuntimeError("the driver failed:\n" + a.run(["cat", "/tmp/driver.log"])["stdout"])
                    return None
                return wait_until(seen, 120, f"the driver printed {tag}")

            line("READY")
            net.unplug(b)
            a.run(["sh", "-c", f"echo {time.monotonic()} > /tmp/go"], check=True)
            for k, v in json.loads(line("RESULT")).items():
                samples.setdefault(k, []).append(v)
        finally:
            net.close()
    return {"samples": samples, "medians": {k: med(v) for k, v in samples.items()}}


# ----------------------------------------------------------------------------- report

ROWS = [
    ("worker_retry_s", "worker SIGKILLed -> task retried, starting"),
    ("node_dead_s", "node SIGKILLed -> dead in nodes()"),
    ("node_retry_s", "node SIGKILLed -> task retried on the head"),
    ("stopped_dead_s", "node SIGSTOPped -> dead in nodes()"),
    ("stopped_retry_s", "node SIGSTOPped -> task retried on the head"),
    ("unplug_dead_s", "host unplugged -> dead in nodes() (namespaces)"),
    ("unplug_retry_s", "host unplugged -> task retried (namespaces)"),
    ("make_100mb_s", "100 MB task on the head + get (floor)"),
    ("lineage_get_s", "100 MB object's node SIGKILLed -> get (at once)"),
    ("lineage_rebuild_s", "  the same get once the node is dead"),
    ("actor_restart_s", "actor's node SIGKILLed -> first call elsewhere"),
]


def fmt(v):
    if v is None:
        return "-"
    return f"{v * 1000:.0f} ms" if v < 1 else f"{v:.2f} s"


def report(q, r, ns):
    qm = dict(q["medians"], **(ns.get("medians") or {}))
    rm = r["medians"] if r else {}
    lines = [f"{'figure (median)':50} {'quanta':>9} {'ray':>9} {'ray/quanta':>10}"]
    for key, label in ROWS:
        qv, rv = qm.get(key), rm.get(key)
        ratio = f"{rv / qv:.1f}x" if (qv and rv) else ""
        lines.append(f"{label:50} {fmt(qv):>9} {fmt(rv):>9} {ratio:>10}")
    for who, res in (("quanta", q), ("quanta (namespaces)", ns), ("ray", r)):
        for note in (res or {}).get("not_recovered", []):
            lines.append(f"{who}: {note}")
        for scenario, err in ((res or {}).get("errors") or {}).items():
            lines.append(f"{who}: {scenario} failed: {err}")
    if r:
        lines.append(f"Ray {r['version']} with its default health checks {RAY_HEALTH_CHECK}; "
                     "it cannot be unplugged alone on one machine, so its silent node is a SIGSTOPped raylet.")
    if ns.get("skipped"):
        lines.append("unplugged host: skipped (" + ns["skipped"] + ")")
    return "\n".join(lines)


def run_child(which, args, workdir):
    argv = [sys.executable, os.path.abspath(__file__), "--_child", which, "--repeat", str(args.repeat),
            "--ray-repeat", str(args.ray_repeat), "--_workdir", workdir, "--only", ",".join(args.only)]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=3600)
    if r.returncode != 0:
        raise RuntimeError(f"the {which} child failed:\n{r.stdout[-2000:]}\n{r.stderr[-4000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeat", type=int, default=3, help="samples of each Quanta figure (and Ray's fast ones)")
    p.add_argument("--ray-repeat", type=int, default=2, help="samples of Ray's slow figures (each waits out "
                   "its health checks)")
    p.add_argument("--compare", default="", help="ray")
    p.add_argument("--only", default="", help="comma-separated scenarios: " + ",".join(SCENARIOS + ["unplug"]))
    p.add_argument("--json", default=None)
    p.add_argument("--_child", default=None, help=argparse.SUPPRESS)
    p.add_argument("--_workdir", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.only = [x for x in args.only.split(",") if x]
    if args._child:
        if args._child == "netns":
            result = netns_child(args.repeat)
        else:
            slow = args.repeat if args._child == "quanta" else args.ray_repeat
            result = child(args._child, args.repeat, slow, args._workdir, args.only)
        print(json.dumps(result))
        return 0
    load = os.getloadavg()
    print(f"fault tolerance on {os.cpu_count()} cores (load average {load[0]:.1f})", flush=True)
    workdir = tempfile.mkdtemp(prefix="qft-")  # short: Unix socket paths are limited to 107 bytes
    try:
        q = run_child("quanta", args, workdir)
        ns = run_child("netns", args, workdir) if not args.only or "unplug" in args.only else {}
        r = run_child("ray", args, workdir) if "ray" in args.compare.split(",") else None
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(report(q, r, ns))
    path = args.json or os.path.join(HERE, f"fault_tolerance-{time.strftime('%Y-%m-%d')}.json")
    with open(path, "w") as f:
        json.dump({"quanta": q, "quanta_unplugged_host": ns, "ray": r, "ray_health_check_defaults": RAY_HEALTH_CHECK,
                   "cpus": os.cpu_count(), "load_average_before": load, "load_average_after": os.getloadavg(),
                   "argv": sys.argv[1:]}, f, indent=1)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
