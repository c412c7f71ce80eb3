"""Command line of the benchmark suite (``python -m quanta.bench``)."""

import argparse
import json
import os
import platform
import shlex
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, replace

from . import report
from . import workloads as wl
from .backends import REGISTRY, canonical
from .measure import TIMINGS
from .runner import Plan, Run

TIMEOUTS = {"full": 300.0, "quick": 120.0, "smoke": 60.0}


def parse(argv):
    p = argparse.ArgumentParser(
        prog="python -m quanta.bench",
        description="Ray's microbenchmark workloads and more, on Quanta and optionally on peers.")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="short runs (about 2 minutes for quanta)")
    mode.add_argument("--smoke", action="store_true", help="every workload once at tiny sizes (a test)")
    p.add_argument("--backend", default="quanta",
                   help="backend measured first and compared with the peers (default quanta)")
    p.add_argument("--compare", default="", metavar="PEERS",
                   help="comma-separated peers to run too: ray, dask, multiprocessing (or mp)")
    p.add_argument("--only", default="", metavar="NAMES", help="comma-separated workload or row names")
    p.add_argument("--json", metavar="PATH", help="write every result to PATH")
    p.add_argument("--show", metavar="PATH",
                   help="print the tables of a saved --json file, run nothing")
    p.add_argument("--list", action="store_true",
                   help="list the workloads and which backends express them")
    p.add_argument("--rounds", type=int, default=1,
                   help="repeat the whole schedule; samples are pooled")
    p.add_argument("--timeout", type=float, help="seconds without progress before a workload is ended")
    p.add_argument("--warmup", type=float, help="warm-up seconds per workload")
    p.add_argument("--runs", type=int, help="timed runs per workload")
    p.add_argument("--run-seconds", type=float, help="minimum seconds per timed run")
    p.add_argument("--settle", type=float, help="pause before each workload, seconds")
    p.add_argument("--log-dir", help="keep the children's logs here (default: a temporary folder)")
    return p.parse_args(argv)


def main(argv=None):
    args = parse(sys.argv[1:] if argv is None else argv)
    if args.show:
        with open(args.show) as f:
            print(report.tables(json.load(f)))
        return 0
    try:
        backends = [canonical(args.backend)]
        for peer in filter(None, args.compare.split(",")):
            if canonical(peer) not in backends:
                backends.append(canonical(peer))
        chosen = wl.select([n.strip() for n in args.only.split(",") if n.strip()])
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.list:
        print(report.describe_catalogue(list(REGISTRY)))
        return 0

    mode = "smoke" if args.smoke else "quick" if args.quick else "full"
    overrides = {k: v for k, v in (("warmup_s", args.warmup), ("runs", args.runs),
                                   ("run_s", args.run_seconds), ("settle_s", args.settle))
                 if v is not None}
    timing = replace(TIMINGS[mode], **overrides)
    sizes = wl.SIZES[mode]
    log_dir = args.log_dir or tempfile.mkdtemp(prefix="quanta-bench-")
    os.makedirs(log_dir, exist_ok=True)
    plan = Plan(backends=backends, workloads=chosen, sizes=sizes, timing=timing,
                rounds=max(1, args.rounds), timeout_s=args.timeout or TIMEOUTS[mode], log_dir=log_dir)

    scaled = wl.scaling_notes(sizes, chosen)
    print(f"quanta.bench: {mode} run of {len(chosen)} workloads on {', '.join(backends)}"
          f" ({os.cpu_count()} CPUs); logs in {log_dir}")
    for note in scaled if mode != "smoke" else ["every workload at tiny sizes"]:
        print(f"  scaled: {note}")

    started = time.time()
    run = Run(plan, say=lambda s: print(s, flush=True)).execute()
    meta = {
        "mode": mode, "backends": backends, "command": _command(argv),
        "timing": asdict(timing), "sizes": asdict(sizes), "scaled": scaled,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "elapsed_s": time.time() - started, "rounds": plan.rounds,
        "host": {"cpus": os.cpu_count(), "python": platform.python_version(),
                 "platform": platform.platform(), "mem_gib": _mem_gib()},
    }
    doc = report.to_json(run, meta)
    print()
    print(report.tables(doc))
    if args.json:
        report.write_json(doc, args.json)
        print(f"\nwrote {args.json}")

    failed = [(name, b) for name, e in doc["rows"].items() for b, res in e["backends"].items()
              if res["status"] not in ("ok", "n/a", "missing")]
    if not failed and not args.log_dir:
        shutil.rmtree(log_dir, ignore_errors=True)
    elif failed:
        print(f"\n{len(failed)} results failed; child logs kept in {log_dir}")
    return 1 if failed else 0


def _command(argv):
    args = sys.argv[1:] if argv is None else argv
    return "python -m quanta.bench " + " ".join(shlex.quote(a) for a in args)


def _mem_gib():
    try:
        with open("/proc/meminfo") as f:
            return round(int(f.readline().split()[1]) / 2**20, 1)
    except (OSError, ValueError, IndexError):
        return None
