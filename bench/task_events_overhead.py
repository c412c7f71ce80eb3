"""What recording task events costs when nobody looks, on `single_client_tasks_async` (submit
1000 no-op tasks, get them all): pairs of runs with task events on and off, alternating which
goes first, on the same build; the figures are medians over the pairs, with their spread.

    python bench/task_events_overhead.py [--pairs 10] [--base FOLDER]

  on   this build, task events recorded and shipped (the default)
  off  the same build with `_system_config={"task_events_report_interval_ms": 0}` (Ray's key;
       the nodes record nothing), given as QUANTA_TASK_EVENTS_BUFFER=0 to the bench process
  base a build of main before task events (FOLDER holds its `quanta` package), if given

Per run and set-up:
  tasks_per_s      `python -m quanta.bench --only single_client_tasks_async` (its median of
                   --runs); on this shared machine it swings by tens of percent
  daemon_cpu_us    CPU time of the node daemon and the control service per task, read from
                   /proc/PID/schedstat (nanoseconds) over BATCHES batches of 1000 tasks, in a
                   driver of its own: the work the events add, much less sensitive to other load
  cluster_cpu_us   the same for every process of the cluster (driver and workers too), from
                   /proc/PID/stat (clock ticks)

Writes bench/task-events-overhead-<date>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

WORKLOAD = "single_client_tasks_async"
BATCHES = 100


def bench_once(env: dict, runs: int) -> float:
    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "r.json")
        subprocess.run([sys.executable, "-m", "quanta.bench", "--only", WORKLOAD, "--runs", str(runs), "--json", out],
                       check=True, capture_output=True, env=env, cwd=d, timeout=600)
        with open(out) as f:
            row = json.load(f)["rows"][WORKLOAD]["backends"]["quanta"]
    if row.get("status") != "ok":
        raise SystemExit(f"{WORKLOAD} did not run: {row}")
    return row["median"]


def cpu_once(env: dict) -> dict:
    r = subprocess.run([sys.executable, os.path.abspath(__file__), "--child"], check=True, capture_output=True,
                       text=True, env=env, timeout=600)
    return json.loads(r.stdout.strip().splitlines()[-1])


def _sched_ns(pid: int) -> int:
    with open(f"/proc/{pid}/schedstat") as f:
        return int(f.read().split()[0])


def _stat_ticks(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime, stime


def child() -> None:
    import psutil

    import quanta

    quanta.init(num_cpus=2, include_dashboard=False)

    @quanta.remote
    def noop():
        return None

    for _ in range(3):
        quanta.get([noop.remote() for _ in range(1000)])
    me = psutil.Process()
    daemons = [p.pid for p in me.children(recursive=True) if p.name() in ("quanta_node", "quanta_control")]
    assert len(daemons) == 2, daemons

    def cpu():
        d = sum(_sched_ns(p) for p in daemons)
        ticks = 0
        for p in [me] + me.children(recursive=True):
            try:
                ticks += _stat_ticks(p.pid)
            except OSError:
                pass
        return d, ticks

    time.sleep(1.5)  # the warm-up's events shipped
    (d0, k0), t0 = cpu(), time.perf_counter()
    for _ in range(BATCHES):
        quanta.get([noop.remote() for _ in range(1000)])
    wall = time.perf_counter() - t0
    time.sleep(1.5)  # and the measured ones (their cost counts)
    d1, k1 = cpu()
    quanta.shutdown()
    n = BATCHES * 1000
    hz = os.sysconf("SC_CLK_TCK")
    print(json.dumps({"daemon_cpu_us": (d1 - d0) / n / 1e3, "cluster_cpu_us": (k1 - k0) / hz / n * 1e6,
                      "tasks_per_s": n / wall}))


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--base", help="folder whose `quanta` package is main without task events")
    p.add_argument("--pairs", type=int, default=10)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--out", default=None)
    args = p.parse_args()
    env = {k: v for k, v in os.environ.items() if not k.startswith("QUANTA_TASK_EVENTS")}
    setups = {"on": dict(env), "off": {**env, "QUANTA_TASK_EVENTS_BUFFER": "0"}}
    if args.base:
        setups["base"] = {**env, "PYTHONPATH": args.base + os.pathsep + env.get("PYTHONPATH", "")}
    metrics = ("tasks_per_s", "daemon_cpu_us", "cluster_cpu_us", "own_tasks_per_s")
    got = {k: {m: [] for m in metrics} for k in setups}
    loads = []
    for r in range(args.pairs):
        order = list(setups) if r % 2 == 0 else list(reversed(setups))
        for name in order:
            e = setups[name]
            got[name]["tasks_per_s"].append(bench_once(e, args.runs))
            c = cpu_once(e)
            got[name]["daemon_cpu_us"].append(c["daemon_cpu_us"])
            got[name]["cluster_cpu_us"].append(c["cluster_cpu_us"])
            got[name]["own_tasks_per_s"].append(c["tasks_per_s"])
            print(f"pair {r + 1}/{args.pairs} {name}: bench {got[name]['tasks_per_s'][-1]:,.0f} tasks/s, "
                  f"daemons {c['daemon_cpu_us']:.2f} CPU us/task, cluster {c['cluster_cpu_us']:.1f}", flush=True)
        loads.append(os.getloadavg()[0])
    med = {k: {m: statistics.median(v) for m, v in d.items()} for k, d in got.items()}

    def paired(a, b, m, higher_better):
        # The cost in percent of each pair (a against b), then its median and range.
        xs = sorted(100 * ((1 - x / y) if higher_better else (x / y - 1)) for x, y in zip(got[a][m], got[b][m]))
        q = statistics.quantiles(xs, n=4) if len(xs) >= 2 else [xs[0]] * 3
        return {"median": round(statistics.median(xs), 2), "min": round(xs[0], 2), "max": round(xs[-1], 2),
                "quartiles": [round(q[0], 2), round(q[2], 2)]}

    result = {"workload": WORKLOAD, "pairs": args.pairs, "bench_runs_per_pair": args.runs,
              "cpu_batches": BATCHES, "cpus": os.cpu_count(), "load_average_1min_per_pair": loads,
              "median": med, "samples": got,
              "cost_percent": {"tasks_per_s_on_vs_off": paired("on", "off", "tasks_per_s", True),
                               "own_tasks_per_s_on_vs_off": paired("on", "off", "own_tasks_per_s", True),
                               "daemon_cpu_on_vs_off": paired("on", "off", "daemon_cpu_us", False),
                               "cluster_cpu_on_vs_off": paired("on", "off", "cluster_cpu_us", False)},
              "daemon_cpu_us_added_per_task": round(med["on"]["daemon_cpu_us"] - med["off"]["daemon_cpu_us"], 3)}
    if "base" in med:
        result["cost_percent"]["tasks_per_s_on_vs_base"] = paired("on", "base", "tasks_per_s", True)
        result["cost_percent"]["daemon_cpu_on_vs_base"] = paired("on", "base", "daemon_cpu_us", False)
    out = args.out or os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                   time.strftime("task-events-overhead-%Y-%m-%d.json"))
    with open(out, "w") as f:
        json.dump(result, f, indent=2)
    print(json.dumps({k: v for k, v in result.items() if k != "samples"}, indent=2))
    print("wrote", out)


if __name__ == "__main__":
    if sys.argv[1:] == ["--child"]:
        child()
    else:
        main()
