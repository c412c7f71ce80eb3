"""Helpers the cluster benchmarks in this folder share (each runs as a script, so this folder is
on sys.path): /proc process trees, Ray-style timed rates, and running one backend per child
process with its samples pooled over rounds."""

import json
import os
import subprocess
import sys
import time


def descendants(pid):
    """Every process below `pid`, from /proc."""
    children = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(name))
    out, todo = [], [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def rates(fn, multiplier, args):
    """Per-run samples of multiplier * calls / s, timed as quanta.bench times (Ray's timeit):
    a warm-up of args.warmup s, then args.runs runs of at least args.run_seconds each."""
    count, start = 0, time.perf_counter()
    while True:
        fn()
        count += 1
        if time.perf_counter() - start >= args.warmup:
            break
    step = count // 10 + 1
    out = []
    for _ in range(args.runs):
        count, start = 0, time.perf_counter()
        while True:
            for _ in range(step):
                fn()
            count += step
            elapsed = time.perf_counter() - start
            if elapsed >= args.run_seconds:
                break
        out.append(count * multiplier / elapsed)
    return out


def run_child(script, which, args, skip=("_child", "compare", "json", "rounds")):
    """Runs `script --_child which` with the parsed `args` (but `skip`) as flags; its result is
    the JSON object on its last line of output, with child_wall_s added."""
    argv = [sys.executable, os.path.abspath(script), "--_child", which] + [
        f"--{k.replace('_', '-')}={v}" for k, v in vars(args).items() if k not in skip]
    t0 = time.perf_counter()
    r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=None, text=True, timeout=1800)
    if r.returncode != 0:
        raise RuntimeError(f"the {which} child failed (exit {r.returncode})")
    out = json.loads(r.stdout.strip().splitlines()[-1])
    out["child_wall_s"] = time.perf_counter() - t0
    return out


def merge_rounds(rounds):
    """One result per backend from several rounds: the "figures" samples pooled, everything
    else kept per round under "rounds" (the first round's values stay at the top)."""
    first = dict(rounds[0])
    first["figures"] = {}
    for rnd in rounds:
        for k, v in rnd["figures"].items():
            first["figures"].setdefault(k, []).extend(v)
    first["rounds"] = [{k: v for k, v in rnd.items() if k != "figures"} for rnd in rounds]
    return first
