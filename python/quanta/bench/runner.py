"""Runs the chosen workloads on each backend, each in a fresh child process.

With several backends, runs alternate: for each group of workloads (process,
objects, tasks, actors, pools) every backend runs that group in its own fresh child,
the primary backend first, before the next group starts.  Slow drift of the
machine (another build, thermal limits) then touches every backend alike.
A backend measured alone runs all groups in one child.

A child that crashes or stops making progress is ended together with all the
processes it started; the workload it was in is recorded as failed and a new
child carries on with the rest.
"""

import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field

from . import procs
from . import workloads as wl
from .backends import backend_class, missing_reason
from .report import fmt

HERE = os.path.dirname(os.path.abspath(__file__))
ISOLATED = os.path.join(HERE, "_isolated.py")
PYTHON_ROOT = os.path.dirname(os.path.dirname(HERE))  # the folder holding quanta/


@dataclass
class Plan:
    backends: list  # canonical names, the primary one first
    workloads: list  # of workloads.Workload
    sizes: wl.Sizes
    timing: object  # measure.Timing
    rounds: int
    timeout_s: float  # a workload making no progress this long is ended
    log_dir: str


@dataclass
class Cell:
    """One backend's result for one row."""

    status: str = "pending"  # ok | n/a | missing | unavailable | error | timeout | crashed
    samples: list = field(default_factory=list)
    details: dict = field(default_factory=dict)
    errors: list = field(default_factory=list)


class Run:
    def __init__(self, plan, say=print):
        self.plan = plan
        self.say = say
        self.cells = {(r.name, b): Cell()
                      for w in plan.workloads for r in w.rows for b in plan.backends}
        self.sessions = {b: {} for b in plan.backends}  # version, init seconds, child wall time
        self.blocked = {}  # backend -> reason it cannot run at all

    # -- scheduling --------------------------------------------------------

    def execute(self):
        plan = self.plan
        for b in plan.backends:
            reason = missing_reason(b)
            if reason:
                self.blocked[b] = ("missing", reason)
                self.say(f"[{b}] skipped: {reason}")
            implemented = backend_class(b).implemented()
            for w in plan.workloads:
                if w.name not in implemented:
                    self._set(w, b, "n/a")
        # Alone, a backend runs every group in one child: nothing to alternate with.
        groups = wl.GROUPS if len(plan.backends) > 1 else ("all",)
        for rnd in range(plan.rounds):
            for group in groups:
                for b in plan.backends:
                    if b in self.blocked:
                        continue
                    todo = [w for w in plan.workloads if group in ("all", w.group)
                            and self.cells[(w.rows[0].name, b)].status != "n/a"]
                    if todo:
                        self._run_child(b, todo, f"{group}-r{rnd + 1}")
        for b, (status, reason) in self.blocked.items():
            for w in plan.workloads:
                for r in w.rows:
                    cell = self.cells[(r.name, b)]
                    if cell.status in ("pending",):
                        cell.status = status
                        cell.errors.append(reason)
        return self

    def _set(self, w, b, status, error=None):
        for r in w.rows:
            cell = self.cells[(r.name, b)]
            if status != "n/a" and cell.samples:
                cell.errors.append(f"{status}: {error}")  # an earlier round got samples
                continue
            cell.status = status
            if error:
                cell.errors.append(error)

    # -- one child ---------------------------------------------------------

    def _run_child(self, b, todo, tag):
        plan, attempt = self.plan, 0
        remaining = list(todo)
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        env["PYTHONPATH"] = os.pathsep.join(p for p in (PYTHON_ROOT, env.get("PYTHONPATH")) if p)
        while remaining:
            attempt += 1
            stem = os.path.join(plan.log_dir, f"{b}-{tag}-{attempt}")
            out_path, log_path = stem + ".jsonl", stem + ".log"
            open(out_path, "w").close()
            cmd = [sys.executable, ISOLATED, "--backend", b,
                   "--workloads", ",".join(w.name for w in remaining),
                   "--sizes", json.dumps(asdict(plan.sizes)),
                   "--timing", json.dumps(asdict(plan.timing)), "--out", out_path]
            wall = time.perf_counter()
            with open(log_path, "w") as log:
                child = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env,
                                         cwd=plan.log_dir, stdin=subprocess.DEVNULL)
            current, done, failure, tree, looked = None, set(), None, {}, 0.0
            with open(out_path) as feed:
                pending, last_progress = "", time.monotonic()
                while True:
                    exited = child.poll() is not None  # read after polling: nothing is missed
                    if not exited and time.monotonic() - looked > 1.0:
                        tree.update(procs.snapshot(child.pid))  # all it ever started
                        looked = time.monotonic()
                    pending += feed.read()
                    *lines, pending = pending.split("\n")
                    for line in lines:
                        last_progress = time.monotonic()
                        current = self._handle(b, json.loads(line), current, done)
                    if exited:
                        break
                    if time.monotonic() - last_progress > plan.timeout_s:
                        failure = ("timeout", f"no progress for {plan.timeout_s:g} s")
                        procs.kill_tree(child.pid)
                        child.wait()
                        continue
                    time.sleep(0.1)
            leftovers = procs.end_leftovers(tree)
            if leftovers:
                note = (f"{len(leftovers)} processes outlived the child and were ended: "
                        f"{', '.join(sorted(set(leftovers)))}")
                self.sessions[b].setdefault("warnings", []).append(note)
                self.say(f"[{b}] {note}")
            self.sessions[b]["child_s"] = round(self.sessions[b].get("child_s", 0)
                                                + time.perf_counter() - wall, 1)
            status, why = failure or ("crashed", f"child exited with code {child.returncode}")
            why += f"; log {log_path}: {_tail(log_path)}"
            failed_outside = bool(failure or child.returncode)
            if current is not None and current not in done:
                self._set(wl.BY_NAME[current], b, status, why)
                self.say(f"[{b}] {current}: {status.upper()} {why}")
                done.add(current)
                failed_outside = False
            remaining = [w for w in remaining if w.name not in done]
            if b in self.blocked:
                return
            if failed_outside or not done:  # in start-up or shut-down rather than in a workload
                if remaining:
                    self.blocked[b] = ("error", why)
                    self.say(f"[{b}] cannot go on: {why}")
                    return
                self.sessions[b].setdefault("warnings", []).append(why)
                self.say(f"[{b}] warning after its workloads: {why}")

    def _handle(self, b, event, current, done):
        """Apply one event from a child; returns the workload now in progress."""
        kind = event["event"]
        if kind == "start":
            return event["workload"]
        if kind == "result":
            self._record(b, event)
            done.add(event["workload"])
        elif kind == "error":
            self._set(wl.BY_NAME[event["workload"]], b, "error", event["error"])
            self.say(f"[{b}] {event['workload']}: ERROR {event['error']}")
            done.add(event["workload"])
        elif kind == "version":
            self.sessions[b]["version"] = event["version"]
        elif kind == "session":
            self.sessions[b].setdefault("init_s", []).append(round(event["init_s"], 2))
        elif kind == "unavailable":
            self.blocked[b] = ("unavailable", event["error"])
            self.say(f"[{b}] cannot run: {event['error']}")
        return current

    def _record(self, b, event):
        cell = self.cells[(event["row"], b)]
        cell.status = "ok"
        cell.samples.extend(event["samples"])
        cell.details = event["details"]
        unit = wl.ROWS[event["row"]][1].unit
        self.say(f"[{b}] {event['row']}: {fmt(event['mean'])} ± {fmt(event['sd'])} {unit} "
                 f"(median {fmt(event['median'])}, {len(event['samples'])} runs, "
                 f"{event['seconds']} s)")


def _tail(path, lines=4):
    """The end of a child's log, or for a fatal signal the innermost frame."""
    try:
        with open(path, errors="replace") as f:
            text = [l.strip() for l in f.read().strip().splitlines() if l.strip()]
    except OSError:
        return "(no log)"
    fatal = [i for i, l in enumerate(text) if l.startswith("Fatal Python error")]
    if fatal:  # faulthandler's dump: the error, then the most recent call first
        frames = [l for l in text[fatal[-1]:] if l.startswith("File ")]
        return " | ".join([text[fatal[-1]]] + frames[:1])
    return " | ".join(text[-lines:]) or "(empty log)"

