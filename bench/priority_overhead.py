"""Task priorities cost nothing when unused, and work when used.

    python bench/priority_overhead.py --base FOLDER [--rounds 6] [--compare-ray]

1. `single_client_tasks_async` (submit 1000 no-op tasks, get them all), median tasks/s of
   `python -m quanta.bench --only single_client_tasks_async`, in interleaved rounds of:
     this  this build (every task carries priority 0; the ready queue is priority-ordered)
     base  main before priorities (FOLDER holds its `quanta` package, e.g. from
           `pip install --no-build-isolation --target FOLDER /work/main`)
   With --compare-ray, one run of Ray 2.60's same workload in the last round, for the ratio.
2. The demo: on one CPU, a 1 s task holds the CPU while 200 tasks at priority 0 and then 5 at
   priority 10 are submitted; the ranks at which the 5 started (0-4 means first) and how much
   sooner the last of them started than the first low one.

Writes bench/priority-overhead-<date>.json.
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


def bench_once(env: dict, runs: int, backend: str = "quanta") -> float:
    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "r.json")
        cmd = [sys.executable, "-m", "quanta.bench", "--only", WORKLOAD, "--runs", str(runs), "--json", out]
        if backend != "quanta":
            cmd += ["--backend", backend]
        subprocess.run(cmd, check=True, capture_output=True, env=env, cwd=d, timeout=900)
        with open(out) as f:
            row = json.load(f)["rows"][WORKLOAD]["backends"][backend]
    if row.get("status") != "ok":
        raise SystemExit(f"{WORKLOAD} did not run on {backend}: {row}")
    return row["median"]


def demo() -> dict:
    import quanta

    quanta.init(num_cpus=1, include_dashboard=False)

    @quanta.remote
    def hold(seconds):
        time.sleep(seconds)

    @quanta.remote
    def stamp(label):
        return label, time.monotonic()

    quanta.get(hold.remote(0))
    gate = hold.remote(1.0)
    low = [stamp.remote(("low", i)) for i in range(200)]
    high = [stamp.options(priority=10).remote(("high", i)) for i in range(5)]
    quanta.get(gate)
    done = sorted(quanta.get(low + high), key=lambda x: x[1])
    quanta.shutdown()
    ranks = [i for i, (label, _) in enumerate(done) if label[0] == "high"]
    first_low = next(t for label, t in done if label[0] == "low")
    last_high = max(t for label, t in done if label[0] == "high")
    last_low = max(t for label, t in done if label[0] == "low")
    return {"high_priority_start_ranks": ranks, "low_tasks": 200, "high_tasks": 5,
            "last_high_started_before_first_low_ms": round((first_low - last_high) * 1e3, 3),
            "without_priority_the_high_ones_would_wait_behind_200_tasks_ms": round((last_low - first_low) * 1e3, 1)}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--base", required=True, help="folder whose `quanta` package is main before priorities")
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--compare-ray", action="store_true")
    p.add_argument("--out", default=None)
    args = p.parse_args()
    env = dict(os.environ)
    setups = {"this": dict(env), "base": {**env, "PYTHONPATH": args.base + os.pathsep + env.get("PYTHONPATH", "")}}
    got = {k: [] for k in setups}
    for r in range(args.rounds):
        order = list(setups) if r % 2 == 0 else list(reversed(list(setups)))
        for name in order:
            got[name].append(bench_once(setups[name], args.runs))
            print(f"round {r + 1}/{args.rounds} {name}: {got[name][-1]:,.0f} tasks/s", flush=True)
    med = {k: statistics.median(v) for k, v in got.items()}
    result = {"workload": WORKLOAD, "rounds": args.rounds, "bench_runs_per_round": args.runs, "cpus": os.cpu_count(),
              "median_tasks_per_s": med, "samples": got,
              "this_vs_base": round(med["this"] / med["base"], 3)}
    if args.compare_ray:
        ray = bench_once(env, args.runs, "ray")
        result["ray_tasks_per_s"] = ray
        result["this_vs_ray"] = round(med["this"] / ray, 2)
    result["demo"] = json.loads(subprocess.run([sys.executable, os.path.abspath(__file__), "--demo"], check=True,
                                               capture_output=True, text=True, timeout=300).stdout.splitlines()[-1])
    result["load_average_at_end"] = os.getloadavg()
    out = args.out or os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                   time.strftime("priority-overhead-%Y-%m-%d.json"))
    with open(out, "w") as f:
        json.dump(result, f, indent=2)
    print(json.dumps({k: v for k, v in result.items() if k != "samples"}, indent=2))
    print("wrote", out)


if __name__ == "__main__":
    if sys.argv[1:] == ["--demo"]:
        print(json.dumps(demo()))
    else:
        main()
