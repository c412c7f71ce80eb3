"""`quanta list tasks` beside `ray list tasks` with 100,000 finished tasks in the table.

    python bench/list_tasks_100k.py [--tasks 100000] [--backends quanta,ray]

For each backend: a one-node local cluster (2 CPUs), `--tasks` no-op tasks submitted in batches
of 10,000 and got, then a wait until the state API counts every one of them FINISHED (both
record task events asynchronously), then the command line timed, each command 5 times, median:

  list            `<tool> list tasks` (the default limit, 100 rows, a table)
  list_json_10k   `<tool> list tasks --limit 10000 --format json`
  list_filtered   `<tool> list tasks --filter state=FAILED` (nothing matches: a scan of the table)
  summary         `<tool> summary tasks`

Ray's state API needs ray[default] (its dashboard); the result says if it was missing. Writes
bench/list-tasks-100k-<date>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

COMMANDS = {"list": ["list", "tasks"],
            "list_json_10k": ["list", "tasks", "--limit", "10000", "--format", "json"],
            "list_filtered": ["list", "tasks", "--filter", "state=FAILED"],
            "summary": ["summary", "tasks"]}


def timed(cmd, env=None, repeat=5) -> dict:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
        times.append(time.perf_counter() - t)
        if r.returncode != 0:
            return {"error": (r.stderr or r.stdout)[-800:]}
    return {"median_s": round(statistics.median(times), 3), "samples_s": [round(x, 3) for x in times],
            "stdout_bytes": len(r.stdout), "stdout_head": r.stdout[:400] if len(r.stdout) < 2000 else None}


def _finished(summary) -> int:
    """FINISHED tasks in a summarize_tasks() answer, whatever the function is called there."""
    entries = summary["cluster"]["summary"].values()
    return sum(e.get("state_counts", {}).get("FINISHED", 0) for e in entries)


def run_quanta(n: int) -> dict:
    import quanta
    from quanta.util import state

    info = quanta.init(num_cpus=2, include_dashboard=False)

    @quanta.remote
    def noop():
        return None

    t = time.perf_counter()
    for _ in range(n // 10000):
        quanta.get([noop.remote() for _ in range(10000)])
    submit_s = time.perf_counter() - t
    deadline = time.monotonic() + 300
    while True:
        finished = _finished(state.summarize_tasks())
        if finished >= n or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    out = {"tasks_run_s": round(submit_s, 2), "finished_in_table": finished}
    session = info["session_dir"] if isinstance(info, dict) and "session_dir" in info else None
    base = [sys.executable, "-m", "quanta.scripts"]
    env = dict(os.environ)
    if session:
        env["QUANTA_ADDRESS"] = session
    for key, args in COMMANDS.items():
        out[key] = timed(base + args, env)
    quanta.shutdown()
    return out


def run_ray(n: int) -> dict:
    try:
        import aiohttp_cors  # noqa: F401  (ray[default]: its dashboard serves the state API)
        import ray
        from ray.util import state
    except ImportError as e:
        return {"error": f"ray[default] is not installed ({e}); `ray list tasks` needs its dashboard"}
    ctx = ray.init(num_cpus=2, include_dashboard=True, _temp_dir=os.path.join(os.environ.get("TMPDIR", "/tmp"), "ray"))

    @ray.remote
    def noop():
        return None

    t = time.perf_counter()
    for _ in range(n // 10000):
        ray.get([noop.remote() for _ in range(10000)])
    submit_s = time.perf_counter() - t
    url = "http://" + ctx.dashboard_url if ctx.dashboard_url and "://" not in ctx.dashboard_url else ctx.dashboard_url
    deadline = time.monotonic() + 300
    finished, error = 0, None
    while time.monotonic() < deadline:
        try:
            finished, error = _finished(state.summarize_tasks(address=url)), None
        except Exception as e:  # noqa: BLE001 - the dashboard may still be starting
            finished, error = 0, repr(e)[:300]
        if finished >= n:
            break
        time.sleep(2)
    out = {"tasks_run_s": round(submit_s, 2), "finished_in_table": finished, "dashboard": url}
    if error:
        out["summary_error"] = error
    base = [sys.executable, "-m", "ray.scripts.scripts"]
    for key, args in COMMANDS.items():
        out[key] = timed(base + args + ["--address", url])
    ray.shutdown()
    return out


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--tasks", type=int, default=100000)
    p.add_argument("--backends", default="quanta,ray")
    p.add_argument("--out", default=None)
    args = p.parse_args()
    result = {"tasks": args.tasks, "cpus": os.cpu_count(), "commands": {k: " ".join(v) for k, v in COMMANDS.items()}}
    for b in args.backends.split(","):
        # Each backend in a process of its own (they must not share a driver).
        r = subprocess.run([sys.executable, __file__, "--one", b, "--tasks", str(args.tasks)], capture_output=True,
                           text=True, timeout=3600)
        try:
            result[b] = json.loads(r.stdout.strip().splitlines()[-1])
        except (IndexError, json.JSONDecodeError):
            result[b] = {"error": (r.stderr or r.stdout)[-1500:]}
        print(b, json.dumps(result[b])[:600], flush=True)
    if "quanta" in result and "ray" in result:
        ratios = {}
        for key in COMMANDS:
            q, y = result["quanta"].get(key, {}), result["ray"].get(key, {})
            if "median_s" in q and "median_s" in y and q["median_s"] > 0:
                ratios[key] = round(y["median_s"] / q["median_s"], 2)
        result["ray_time_over_quanta_time"] = ratios
    out = args.out or os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                   time.strftime("list-tasks-100k-%Y-%m-%d.json"))
    with open(out, "w") as f:
        json.dump(result, f, indent=2)
    print(json.dumps(result.get("ray_time_over_quanta_time")), "wrote", out)


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--one":
        which, n = sys.argv[2], int(sys.argv[4])
        print(json.dumps(run_quanta(n) if which == "quanta" else run_ray(n)))
    else:
        main()
