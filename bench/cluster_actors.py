"""Actor figures across nodes: Ray's actor microbenchmarks with the caller on the head node and the
actor on another node, actor creation over a 4-node cluster, and get_actor latency.

    python bench/cluster_actors.py [--compare ray] [--rounds 1] [--json out.json]

Both systems run the same code (the runtime module is a parameter) on a cluster of --nodes node
daemons on this machine, started by their own Cluster helper (quanta.cluster_utils.Cluster,
ray.cluster_utils.Cluster): a head with 2 CPUs and --nodes - 1 more with 2 CPUs each. Every actor
holds no CPU (as in Ray's benchmark) and is pinned with NodeAffinitySchedulingStrategy; the callers
are the driver (on the head) or tasks pinned to the head.

  * 1_1_actor_calls_sync / _async / _concurrent, 1_1_async_actor_calls_sync / _async: one actor
    on the first non-head node; one call and its get, 1000 calls then get all, 1000 calls to an
    actor with max_concurrency=16;
  * n_n_actor_calls_async, n_n_async_actor_calls_async: 2 tasks on the head each make 2500 calls
    round-robin over 2 actors, on the first two non-head nodes;
  * same-node sync latency: the two sync workloads again with the actor on the head node, timed in
    runs interleaved with the cross-node ones, so the machine's drift touches both alike
    (issue 12's target: cross-node sync latency within 1.5x of same-node);
  * actor_creation_rate: --actors actors with scheduling_strategy="SPREAD" created at once, one
    call got from each (where each ran is recorded), then killed and their processes waited for;
  * get_actor_first / _repeated: get_actor() from the driver of named actors on a non-head node
    that an actor there created (--lookups of them): the first lookup of each name, timed once
    the nodes have finished starting the worker processes that replace those the new actors
    took (the lookups timed before that are kept as a detail), and one name
    looked up again and again (Ray answers that from the cache of its process; so does its
    creator, which is why the driver does not create them).

Timing is Ray's microbenchmark's (a warm-up fixes a step; each timed run calls the workload step
times at a stretch until --run-seconds have passed and yields calls/s). Each backend runs in a
fresh child; with --rounds N the children alternate N times and samples are pooled.

Behaviour is checked while measuring, untimed: four callers (the driver, two tasks on the head, one
task on another node) each send numbered calls to one actor on a non-head node, which counts calls
seen out of each caller's order (must be 0); after the run, no actor of the run is still alive and
every node daemon is back to the worker processes it had before; the node daemons' RSS before and
after is reported.

Prints one table with ratios (Quanta / Ray for rates, >1 means Quanta is faster) and writes JSON
(--json, default bench/cluster_actors-<date>.json).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

import bench_common

HERE = os.path.dirname(os.path.abspath(__file__))
TARGET_RATIO = 5.0  # issue 12: >= 5x Ray on each figure
TARGET_CROSS_SAME = 1.5  # issue 12: cross-node sync latency <= 1.5x same-node


# ----------------------------------------------------------------------------- processes


descendants = bench_common.descendants


def rss_mib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def comm(pid):
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return "?"


def cpu_ticks(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])
    except (OSError, IndexError, ValueError):
        return None


def python_children(pid):
    """Worker processes under a node daemon (Python processes; helpers such as Ray's agents are
    told apart by command line)."""
    out = []
    for p in descendants(pid):
        try:
            with open(f"/proc/{p}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if "python" in comm(p) or "ray::" in cmd or "python" in cmd.split(" ")[0]:
            if "agent" in cmd or "dashboard" in cmd or "log_monitor" in cmd or "runtime_env" in cmd:
                continue
            out.append(p)
    return out


# ----------------------------------------------------------------------------- timing


rates = bench_common.rates


def one_run(fn, step, multiplier, seconds):
    count, start = 0, time.perf_counter()
    while True:
        for _ in range(step):
            fn()
        count += step
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return count * multiplier / elapsed


def interleaved(fns, args):
    """Like rates() for several one-call workloads, their timed runs alternating (twice as many
    runs of half the length), so that load drift touches each alike."""
    steps = []
    for fn in fns:
        count, start = 0, time.perf_counter()
        while time.perf_counter() - start < args.warmup or count == 0:
            fn()
            count += 1
        steps.append(count // 10 + 1)
    samples = [[] for _ in fns]
    for _ in range(args.runs * 2):
        for i, fn in enumerate(fns):
            samples[i].append(one_run(fn, steps[i], 1, args.run_seconds / 2))
    return samples


# ----------------------------------------------------------------------------- the workloads


def define(rt):
    """Remote classes and functions for runtime module rt (quanta or ray), defined here so that
    cloudpickle ships them by value."""
    import os

    @rt.remote(num_cpus=0)
    class Actor:
        def small_value(self):
            return b"ok"

        def node(self):
            return rt.get_runtime_context().get_node_id(), os.getpid()

    @rt.remote(num_cpus=0)
    class AsyncActor:
        async def small_value(self):
            return b"ok"

        async def node(self):
            return rt.get_runtime_context().get_node_id(), os.getpid()

    @rt.remote(num_cpus=0)
    class Sequence:
        """Counts calls seen out of their caller's order."""

        def __init__(self):
            self.last, self.calls, self.out_of_order = {}, 0, 0

        def push(self, caller, i):
            if i != self.last.get(caller, -1) + 1:
                self.out_of_order += 1
            self.last[caller] = i
            self.calls += 1

        def node(self):
            return rt.get_runtime_context().get_node_id(), os.getpid()

        def report(self):
            return {"calls": self.calls, "out_of_order": self.out_of_order, "callers": len(self.last)}

    @rt.remote(num_cpus=0)
    class Creator:
        """Creates named actors and holds their handles, so that the driver looks them up as a
        process that did not create them (Ray's creator knows its actors' names already)."""

        def __init__(self):
            self.held = []

        def make(self, names, node):
            made = [Actor.options(name=n, **affinity(rt, node)).remote() for n in names]
            self.held += made
            return rt.get([a.node.remote() for a in made])

        def node(self):
            return rt.get_runtime_context().get_node_id(), os.getpid()

    @rt.remote(num_cpus=1)
    def call_actors(actors, calls):
        refs = [actors[i % len(actors)].small_value.remote() for i in range(calls)]
        return sum(1 for v in rt.get(refs) if v == b"ok")

    @rt.remote(num_cpus=0)
    def push_numbered(seq, caller, calls):
        rt.get([seq.push.remote(caller, i) for i in range(calls)])
        return rt.get_runtime_context().get_node_id()

    return Actor, AsyncActor, Sequence, Creator, call_actors, push_numbered


def affinity(rt, node):
    strategies = __import__(f"{rt.__name__}.util.scheduling_strategies", fromlist=["x"])
    return {"scheduling_strategy": strategies.NodeAffinitySchedulingStrategy(node, soft=False)}


def measure(rt, head_id, others, args, out, actor_pids, settle):
    """Every figure, on a connected cluster whose head is head_id and other nodes others. The pid
    of every actor process is added to actor_pids; settle() waits until no node is starting
    worker processes."""
    Actor, AsyncActor, Sequence, Creator, call_actors, push_numbered = define(rt)
    on = lambda node: affinity(rt, node)  # noqa: E731
    figures, details = out.setdefault("figures", {}), out.setdefault("details", {})

    def new(cls, node, **options):
        a = cls.options(**on(node), **options).remote()
        where, pid = rt.get(a.node.remote())
        assert where == node, "the actor did not run on the node it was pinned to"
        actor_pids.add(pid)
        return a

    def release(*actors):
        for a in actors:
            rt.kill(a)

    def record(name, samples):
        figures.setdefault(name, []).extend(samples)
        print(f"  {name}: {statistics.median(samples):.0f}/s", file=sys.stderr, flush=True)

    # Sync latency, cross-node and same-node, interleaved.
    for cls, name in ((Actor, "1_1_actor_calls_sync"), (AsyncActor, "1_1_async_actor_calls_sync")):
        cross, same = new(cls, others[0]), new(cls, head_id)
        one_cross = lambda a=cross: rt.get(a.small_value.remote())  # noqa: E731
        one_same = lambda a=same: rt.get(a.small_value.remote())  # noqa: E731
        c, s = interleaved([one_cross, one_same], args)
        record(name, c)
        record(name + "_same_node", s)
        release(cross, same)

    def batch(a, n):
        return lambda: rt.get([a.small_value.remote() for _ in range(n)])

    for cls, name, options in ((Actor, "1_1_actor_calls_async", {}),
                               (Actor, "1_1_actor_calls_concurrent", {"max_concurrency": 16}),
                               (AsyncActor, "1_1_async_actor_calls_async", {})):
        a = new(cls, others[0], **options)
        record(name, rates(batch(a, args.batch), args.batch, args))
        release(a)

    n, calls = 2, args.fanout_calls
    for cls, name in ((Actor, "n_n_actor_calls_async"), (AsyncActor, "n_n_async_actor_calls_async")):
        servers = [new(cls, others[i % len(others)]) for i in range(n)]
        callers = call_actors.options(**on(head_id))

        def n_n(servers=servers, callers=callers):
            done = rt.get([callers.remote(servers, calls) for _ in range(n)])
            assert done == [calls] * n, done

        record(name, rates(n_n, n * calls, args))
        release(*servers)

    # get_actor of named actors on another node, created by another process (an actor there): the
    # first lookup of each name, then lookups of one name again and again.
    creator = new(Creator, others[-1])
    names = [f"cluster-actors-bench-{i}" for i in range(2 * args.lookups + 1)]
    made = rt.get(creator.make.remote(names, others[-1]))
    assert [nd for nd, _ in made] == [others[-1]] * len(names)
    actor_pids.update(pid for _, pid in made)
    rt.get_actor(names[0])  # the first lookup of all may set up a connection

    def first_lookups(some):
        rates_ = []
        for name in some:
            t0 = time.perf_counter()
            rt.get_actor(name)
            rates_.append(1 / (time.perf_counter() - t0))
        return rates_

    # Right after the creations, each node is still starting the worker processes that replace
    # those the new actors took (both backends do): lookups timed then measure those starts
    # as much as the lookup, so they are kept as a detail, and the figure is timed once the
    # worker processes are settled.
    details["get_actor_first_while_workers_start"] = first_lookups(names[1:args.lookups + 1])
    details["settle_s"] = settle()
    first = first_lookups(names[args.lookups + 1:])
    record("get_actor_first", first)
    looked_up = []
    record("get_actor_repeated", rates(lambda: looked_up.append(rt.get_actor(names[1])) or looked_up.clear(), 1, args))
    assert rt.get(rt.get_actor(names[1]).small_value.remote()) == b"ok"
    release(*[rt.get_actor(name) for name in names], creator)

    # Ordering from several callers on several nodes (untimed).
    seq = new(Sequence, others[0])
    each = args.order_calls
    tasks = [push_numbered.options(**on(head_id)).remote(seq, f"head-task-{i}", each) for i in range(2)]
    tasks.append(push_numbered.options(**on(others[-1])).remote(seq, "other-node-task", each))
    driver_refs = [seq.push.remote("driver", i) for i in range(each)]
    ran_on = rt.get(tasks)
    rt.get(driver_refs)
    order = rt.get(seq.report.remote())
    order["caller_nodes"] = sorted(set(ran_on + [head_id]))
    details["ordering"] = order
    release(seq)

    # Actor creation over every node.
    nodes = [head_id] + list(others)
    samples, spread = [], []
    for i in range(args.creation_batches + 1):
        count = min(8, args.actors) if i == 0 else args.actors
        t0 = time.perf_counter()
        batch_actors = [Actor.options(scheduling_strategy="SPREAD").remote() for _ in range(count)]
        where = rt.get([a.node.remote() for a in batch_actors])
        elapsed = time.perf_counter() - t0
        release(*batch_actors)
        del batch_actors
        if i:  # the first batch is the warm-up
            samples.append(count / elapsed)
            spread.append([[nd for nd, _ in where].count(nd) for nd in nodes])
        pids = {pid for _, pid in where}
        actor_pids.update(pids)
        wait_gone(pids)  # the next batch starts on a cluster without them
    record("actor_creation_rate", samples)
    details["creation_per_node"] = spread


def wait_gone(pids, timeout=60):
    """The pids of pids still alive after up to timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        alive = [p for p in pids if os.path.exists(f"/proc/{p}") and not zombie(p)]
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.1)


def zombie(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


# ----------------------------------------------------------------------------- Quanta and Ray children


def child(which, args):
    if which == "quanta":
        import quanta as rt
        from quanta.cluster_utils import Cluster
    else:
        import ray as rt
        from ray.cluster_utils import Cluster

    out = {"version": getattr(rt, "__version__", "?"), "nodes": args.nodes}
    t0 = time.perf_counter()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 2})
    for _ in range(args.nodes - 1):
        cluster.add_node(num_cpus=2)
    cluster.wait_for_nodes()
    if which == "quanta":
        rt.init(address=cluster.address)
        daemons = [pid for node in cluster.list_all_nodes() for role, proc in node._session._procs
                   if role == "node" for pid in [proc.pid]]
    else:
        from ray import ray_constants

        rt.init(address=cluster.address, log_to_driver=False)
        daemons = [info.process.pid for node in cluster.list_all_nodes()
                   for info in node.all_processes[ray_constants.PROCESS_TYPE_RAYLET]]
    out["cluster_start_s"] = time.perf_counter() - t0
    head_id = cluster.head_node.node_id
    others = [n.node_id for n in cluster.worker_nodes]

    def workers():
        return [len(python_children(p)) for p in daemons]

    def settle(timeout=20):
        """Waits until the node daemons' worker processes stay the same processes, together
        using under 30 % of a CPU (a starting interpreter uses all of one), for half a second;
        returns the seconds waited."""
        t0, last, steady = time.perf_counter(), {}, 0
        while time.perf_counter() - t0 < timeout and steady < 5:
            time.sleep(0.1)
            now = {p: cpu_ticks(p) or 0 for d in daemons for p in python_children(d)}
            quiet = now.keys() == last.keys() and sum(now.values()) - sum(last.values()) <= 3
            steady = steady + 1 if quiet else 0
            last = now
        return time.perf_counter() - t0

    try:
        # A first call on every node starts its workers; then the baseline.
        warm = define(rt)[0]
        first = [warm.options(**affinity(rt, nd)).remote() for nd in [head_id] + others]
        first_pids = {pid for _, pid in rt.get([a.node.remote() for a in first])}
        for a in first:
            rt.kill(a)
        del first
        wait_gone(first_pids)
        time.sleep(1)
        out["workers_before"] = workers()
        out["daemon_rss_mib_before"] = [rss_mib(p) for p in daemons]
        t0 = time.perf_counter()
        actor_pids = set()
        measure(rt, head_id, others, args, out, actor_pids, settle)
        out["measure_s"] = time.perf_counter() - t0
        out["actor_processes"] = len(actor_pids)
        out["actor_processes_left"] = len(wait_gone(actor_pids, timeout=30))
        time.sleep(1)
        out["workers_after"] = workers()
        out["daemon_rss_mib_after"] = [rss_mib(p) for p in daemons]
        out["alive_actors_after"] = alive_actors(rt, which)
    finally:
        rt.shutdown()
        cluster.shutdown()
    return out


def alive_actors(rt, which):
    """Actors of this job the cluster still lists as alive (must be 0 after the run)."""
    if which == "quanta":
        from quanta._private import control

        ok, _, _, _, error, items = control.call(control.GET_ACTORS)
        if not ok:
            return f"GET_ACTORS failed: {error}"
        return sum(1 for x in items if control.decode_actor(x)["state"] not in ("DEAD", "dead"))
    from ray._private import state

    return sum(1 for a in state.actors().values() if a.get("State") not in ("DEAD", 4))


# ----------------------------------------------------------------------------- report


ROWS = [
    "1_1_actor_calls_sync", "1_1_actor_calls_async", "1_1_actor_calls_concurrent", "n_n_actor_calls_async",
    "1_1_async_actor_calls_sync", "1_1_async_actor_calls_async", "n_n_async_actor_calls_async",
    "actor_creation_rate", "get_actor_first", "get_actor_repeated",
    "1_1_actor_calls_sync_same_node", "1_1_async_actor_calls_sync_same_node",
]
UNITS = {"actor_creation_rate": "actors/s", "get_actor_first": "lookups/s", "get_actor_repeated": "lookups/s"}


def summary(samples):
    return {"mean": statistics.fmean(samples), "sd": statistics.pstdev(samples) if len(samples) > 1 else 0.0,
            "median": statistics.median(samples), "n": len(samples)}


def fmt_rate(s):
    return f"{s['mean']:.0f} +- {s['sd']:.0f}" if s["mean"] >= 100 else f"{s['mean']:.1f} +- {s['sd']:.1f}"


def latency_us(s):
    return 1e6 / s["mean"]


def report(q, r):
    lines = [f"{'workload (caller on head, actor elsewhere)':44} {'quanta':>18} {'ray':>18} {'quanta/ray':>10}"]
    ratios = {}
    for name in ROWS:
        qs = q["figures"].get(name)
        rs = r["figures"].get(name) if r else None
        if not qs:
            continue
        qsum = summary(qs)
        rsum = summary(rs) if rs else None
        ratio = qsum["mean"] / rsum["mean"] if rsum else None
        if ratio is not None:
            ratios[name] = ratio
        unit = UNITS.get(name, "calls/s")
        mark = ""
        if ratio is not None and not name.endswith("_same_node"):
            mark = "ok" if ratio >= TARGET_RATIO else "MISSED"
        lines.append(f"{name + ' (' + unit + ')':44} {fmt_rate(qsum):>18} {fmt_rate(rsum) if rsum else '-':>18} "
                     f"{f'{ratio:.1f}x' if ratio else '':>10}  {mark}")
    lines.append("")
    lines.append("sync call latency (us, from the mean rate)   cross-node  same-node  cross/same")
    cross_same = {}
    for backend, d in (("quanta", q), ("ray", r)):
        if not d:
            continue
        for name in ("1_1_actor_calls_sync", "1_1_async_actor_calls_sync"):
            c, s = summary(d["figures"][name]), summary(d["figures"][name + "_same_node"])
            cs = latency_us(c) / latency_us(s)
            cross_same[f"{backend}:{name}"] = cs
            mark = ("ok" if cs <= TARGET_CROSS_SAME else "MISSED") if backend == "quanta" else ""
            lines.append(f"  {backend:6} {name:36} {latency_us(c):8.0f}  {latency_us(s):9.0f}  {cs:9.2f}x  {mark}")
    for name in ("get_actor_first", "get_actor_repeated"):
        if q["figures"].get(name):
            lines.append(f"{name} latency (from the median rate): quanta "
                         f"{1e6 / summary(q['figures'][name])['median']:.0f} us"
                         + (f", ray {1e6 / summary(r['figures'][name])['median']:.0f} us" if r else ""))
    early = {b: d["details"].get("get_actor_first_while_workers_start") for b, d in (("quanta", q), ("ray", r)) if d}
    if early.get("quanta"):
        lines.append("get_actor_first while the nodes still start workers (median latency): " + ", ".join(
            f"{b} {1e6 / statistics.median(v):.0f} us (settled after {d['details']['settle_s']:.1f} s)"
            for (b, v), d in zip(early.items(), [x for x in (q, r) if x]) if v))
    lines.append("")
    for backend, d in (("quanta", q), ("ray", r)):
        if not d:
            continue
        o = d["details"]["ordering"]
        lines.append(f"{backend} {d['version']}: ordering {o['calls']} calls from {o['callers']} callers on "
                     f"{len(o['caller_nodes'])} nodes, {o['out_of_order']} out of order; actors spread per node "
                     f"{d['details']['creation_per_node']}; alive actors after the run {d['alive_actors_after']}, "
                     f"actor processes left {d['actor_processes_left']} of {d['actor_processes']}; "
                     f"workers per node before {d['workers_before']} after {d['workers_after']}; daemon RSS MiB "
                     f"before {[round(x or 0, 1) for x in d['daemon_rss_mib_before']]} after "
                     f"{[round(x or 0, 1) for x in d['daemon_rss_mib_after']]}")
    return "\n".join(lines), ratios, cross_same


def run_child(which, args):
    return bench_common.run_child(__file__, which, args)


def merge(rounds):
    """One result per backend from several rounds: samples pooled, details kept per round."""
    first = bench_common.merge_rounds(rounds)
    # The report's behaviour line shows the worst round.
    for key in ("alive_actors_after", "actor_processes_left"):
        first[key] = max((rnd[key] for rnd in rounds), key=lambda x: x if isinstance(x, int) else 1 << 30)
    first["actor_processes"] = sum(rnd["actor_processes"] for rnd in rounds)
    first["details"] = dict(first["details"])
    first["details"]["ordering"] = {
        "calls": sum(rnd["details"]["ordering"]["calls"] for rnd in rounds),
        "out_of_order": sum(rnd["details"]["ordering"]["out_of_order"] for rnd in rounds),
        "callers": first["details"]["ordering"]["callers"],
        "caller_nodes": first["details"]["ordering"]["caller_nodes"]}
    first["details"]["creation_per_node"] = [x for rnd in rounds for x in rnd["details"]["creation_per_node"]]
    return first


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--nodes", type=int, default=4, help="node daemons, the head included")
    p.add_argument("--compare", default="", help="ray")
    p.add_argument("--rounds", type=int, default=1, help="alternate the backends' children this many times")
    p.add_argument("--warmup", type=float, default=0.5, help="seconds of warm-up before each workload")
    p.add_argument("--runs", type=int, default=4, help="timed runs per workload")
    p.add_argument("--run-seconds", type=float, default=1.0, help="minimum length of a timed run")
    p.add_argument("--batch", type=int, default=1000, help="calls per *_async call")
    p.add_argument("--fanout-calls", type=int, default=2500, help="calls per task in n_n")
    p.add_argument("--order-calls", type=int, default=1000, help="numbered calls per caller in the order check")
    p.add_argument("--lookups", type=int, default=5, help="named actors whose first get_actor is timed")
    p.add_argument("--actors", type=int, default=40, help="actors per creation batch")
    p.add_argument("--creation-batches", type=int, default=2, help="timed creation batches (after a warm-up one)")
    p.add_argument("--json", default=None)
    p.add_argument("--_child", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.nodes < 3:
        p.error("--nodes must be at least 3 (the head and two other nodes for the n:n actors)")
    if args._child:
        print(json.dumps(child(args._child, args)))
        return 0
    load = os.getloadavg()
    backends = ["quanta"] + (["ray"] if "ray" in args.compare.split(",") else [])
    print(f"cluster actors: {args.nodes} nodes on {os.cpu_count()} cores (load average {load[0]:.1f}), "
          f"{args.rounds} round(s) of {', '.join(backends)}", flush=True)
    results = {b: [] for b in backends}
    t0 = time.perf_counter()
    for _ in range(args.rounds):
        for b in backends:
            print(f"{b}:", file=sys.stderr, flush=True)
            results[b].append(run_child(b, args))
    q = merge(results["quanta"])
    r = merge(results["ray"]) if "ray" in results else None
    text, ratios, cross_same = report(q, r)
    print(text)
    path = args.json or os.path.join(HERE, f"cluster_actors-{time.strftime('%Y-%m-%d')}.json")
    with open(path, "w") as f:
        json.dump({"quanta": q, "ray": r, "ratios_quanta_over_ray": ratios, "cross_over_same_latency": cross_same,
                   "targets": {"ratio": TARGET_RATIO, "cross_over_same": TARGET_CROSS_SAME},
                   "cpus": os.cpu_count(), "load_average_at_start": load, "load_average_at_end": os.getloadavg(),
                   "wall_s": time.perf_counter() - t0, "argv": sys.argv[1:]}, f, indent=1)
    print(f"wrote {path}  ({time.perf_counter() - t0:.0f} s)")
    print("command: python bench/cluster_actors.py " + " ".join(sys.argv[1:]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
