"""The child process that measures one backend.

Started by the runner as ``python _isolated.py --backend NAME ...``.  It
writes one JSON object per line to the ``--out`` file as it goes (``start``
before each workload, then ``result`` rows or an ``error``), so that the
runner keeps what finished even if this process crashes or hangs.
"""

import argparse
import faulthandler
import json
import time
import traceback

from . import workloads as wl
from .backends import BackendUnavailable, backend_class
from .measure import Measurer, Timing, summarize


def main(argv):
    p = argparse.ArgumentParser(prog="quanta-bench-child")
    p.add_argument("--backend", required=True)
    p.add_argument("--workloads", required=True, help="comma-separated workload names")
    p.add_argument("--sizes", required=True, help="JSON of workloads.Sizes")
    p.add_argument("--timing", required=True, help="JSON of measure.Timing")
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    faulthandler.enable()  # a crashing engine leaves a Python traceback in the child's log

    sizes = wl.Sizes(**json.loads(args.sizes))
    timing = Timing(**json.loads(args.timing))
    chosen = [wl.BY_NAME[n] for n in args.workloads.split(",")]
    with open(args.out, "a", buffering=1) as out:
        def emit(**event):
            out.write(json.dumps(event) + "\n")

        return _run(backend_class(args.backend)(sizes, Measurer(timing)), chosen, emit)


def _run(backend, chosen, emit):
    try:
        emit(event="version", version=str(backend.version()))
    except Exception as exc:  # reported properly by start() below, if it matters
        emit(event="version", version=f"? ({type(exc).__name__})")
    # Workloads that start their own cluster go first, with none running here.
    standalone = [w for w in chosen if w.standalone]
    session = [w for w in chosen if not w.standalone]
    for w in standalone:
        _one(backend, w, emit)
    if not session:
        return 0
    start = time.perf_counter()
    try:
        backend.start()
    except BackendUnavailable as exc:
        emit(event="unavailable", error=str(exc))
        return 3
    except Exception as exc:
        emit(event="unavailable", error=f"init failed: {type(exc).__name__}: {exc}")
        return 3
    emit(event="session", init_s=time.perf_counter() - start)
    for w in session:
        _one(backend, w, emit)
    backend.stop()
    return 0


def _one(backend, w, emit):
    emit(event="start", workload=w.name)
    backend.m.settle()
    started = time.perf_counter()
    try:
        rows = backend.run(w.name)
    except Exception as exc:
        traceback.print_exc()  # into the child's log
        emit(event="error", workload=w.name, error=f"{type(exc).__name__}: {exc}")
        return
    for row, (samples, details) in rows.items():
        emit(event="result", workload=w.name, row=row, samples=samples,
             seconds=round(time.perf_counter() - started, 2), details=details,
             **summarize(samples))


if __name__ == "__main__":  # pragma: no cover - started through _isolated.py
    raise SystemExit("run through quanta/bench/_isolated.py")
