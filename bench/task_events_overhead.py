"""What recording task events costs when nobody looks, on the shape of
`single_client_tasks_async` (submit 1000 no-op tasks, get them all): interleaved rounds of
three set-ups, medians compared.

    python bench/task_events_overhead.py [--base FOLDER] [--rounds 8]

  on   this build, task events recorded and shipped (the default)
  off  this build with QUANTA_TASK_EVENTS_BUFFER=0 (nothing recorded: the same binaries)
  base a build of main before task events (FOLDER holds its `quanta` package), if given

Two figures per round and set-up:
  tasks_per_s   `python -m quanta.bench --only single_client_tasks_async` (its median); on a
                busy machine this swings by tens of percent from run to run
  cpu_us_per_task  CPU time (user + system) that every process of the cluster (driver, node,
                control service, workers) spent per task over 60 batches of 1000 tasks: the
                work the events add, much less sensitive to other load on the machine

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
BATCHES = 60


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

    def cpu():
        total = 0.0
        for p in [me] + me.children(recursive=True):
            try:
                t = p.cpu_times()
                total += t.user + t.system
            except psutil.Error:
                pass
        return total

    time.sleep(1.5)  # the warm-up's events shipped
    c0, t0 = cpu(), time.perf_counter()
    for _ in range(BATCHES):
        quanta.get([noop.remote() for _ in range(1000)])
    wall = time.perf_counter() - t0
    time.sleep(1.5)  # and the measured ones (their cost counts)
    c1 = cpu()
    quanta.shutdown()
    n = BATCHES * 1000
    print(json.dumps({"cpu_us_per_task": (c1 - c0) / n * 1e6, "tasks_per_s": n / wall}))


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--base", help="folder whose `quanta` package is main without task events")
    p.add_argument("--rounds", type=int, default=8)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--out", default=None)
    args = p.parse_args()
    env = {k: v for k, v in os.environ.items() if not k.startswith("QUANTA_TASK_EVENTS")}
    setups = {"on": dict(env), "off": {**env, "QUANTA_TASK_EVENTS_BUFFER": "0"}}
    if args.base:
        setups["base"] = {**env, "PYTHONPATH": args.base + os.pathsep + env.get("PYTHONPATH", "")}
    got = {k: {"tasks_per_s": [], "cpu_us_per_task": [], "own_tasks_per_s": []} for k in setups}
    for r in range(args.rounds):
        for name, e in setups.items():
            got[name]["tasks_per_s"].append(bench_once(e, args.runs))
            c = cpu_once(e)
            got[name]["cpu_us_per_task"].append(c["cpu_us_per_task"])
            got[name]["own_tasks_per_s"].append(c["tasks_per_s"])
            print(f"round {r + 1}/{args.rounds} {name}: bench {got[name]['tasks_per_s'][-1]:,.0f} tasks/s, "
                  f"{c['cpu_us_per_task']:.1f} CPU us/task", flush=True)
    med = {k: {m: statistics.median(v) for m, v in d.items()} for k, d in got.items()}

    def pct(a, b, m, higher_better):
        x, y = med[a][m], med[b][m]
        return round(100 * ((1 - x / y) if higher_better else (x / y - 1)), 2)

    result = {"workload": WORKLOAD, "rounds": args.rounds, "bench_runs_per_round": args.runs,
              "cpu_batches": BATCHES, "cpus": os.cpu_count(), "load_average_at_end": os.getloadavg(),
              "median": med, "samples": got,
              "cost_percent": {"tasks_per_s_on_vs_off": pct("on", "off", "tasks_per_s", True),
                               "cpu_per_task_on_vs_off": pct("on", "off", "cpu_us_per_task", False)}}
    if "base" in med:
        result["cost_percent"]["tasks_per_s_on_vs_base"] = pct("on", "base", "tasks_per_s", True)
        result["cost_percent"]["cpu_per_task_on_vs_base"] = pct("on", "base", "cpu_us_per_task", False)
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
