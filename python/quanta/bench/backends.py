"""What every backend shares, and the registry of backends.

A backend implements workloads as methods marked with :func:`workload`; a
workload it does not implement is one it cannot express.  The two process
workloads (start-up time and idle footprint) are implemented here once, on top
of a short script each backend supplies (:meth:`Backend.fresh_script`).
"""

import importlib
import importlib.util
import os
import selectors
import subprocess
import sys
import tempfile
import time

from . import procs


def workload(name):
    """Mark a backend method as the implementation of workload ``name``."""

    def mark(fn):
        fn.workload = name
        return fn

    return mark


class BackendUnavailable(Exception):
    """The backend's package cannot be imported or its cluster not started."""


READY = "QUANTA_BENCH_READY"


class Backend:
    name = ""  # as shown in reports
    package = ""  # module whose import makes the backend available

    def __init__(self, sizes, measurer):
        self.sizes = sizes
        self.m = measurer

    # -- registry of workloads -------------------------------------------

    @classmethod
    def implemented(cls):
        names = {}
        for klass in reversed(cls.__mro__):
            for attr, value in vars(klass).items():
                if callable(value) and hasattr(value, "workload"):
                    names[value.workload] = attr
        return names

    def run(self, name):
        """Run workload ``name``; returns ``{row: (samples, details)}``."""
        result = getattr(self, self.implemented()[name])()
        return result if isinstance(result, dict) else {name: result}

    # -- to be provided by each backend ----------------------------------

    def version(self):
        return getattr(importlib.import_module(self.package), "__version__", "?")

    def start(self):
        """Start (or connect to) a local cluster for the session workloads."""

    def stop(self):
        pass

    def fresh_script(self, run_task):
        """Source of a ``python -c`` script that starts a local cluster the
        way a user would, runs one task if ``run_task``, prints ``READY`` on
        a line of its own, waits for its stdin to close, then shuts down."""
        raise NotImplementedError

    # -- process workloads, shared ---------------------------------------

    def _fresh_process(self, run_task, while_up=None):
        """Start the fresh script; return (seconds until READY, while_up(pid))."""
        with tempfile.TemporaryFile() as err:
            start = time.perf_counter()
            proc = subprocess.Popen(
                [sys.executable, "-c", self.fresh_script(run_task)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err,
            )
            try:
                _wait_for_line(proc, READY, timeout_s=180)
                elapsed = time.perf_counter() - start
                extra = while_up(proc.pid) if while_up else None
                proc.stdin.close()
                proc.wait(timeout=60)
            except Exception as exc:
                err.seek(0)
                text = err.read().decode(errors="replace").splitlines()
                tail = [line.strip() for line in text if line.strip()][-3:]
                raise RuntimeError(f"{exc} (fresh process stderr: {' | '.join(tail)})") from None
            finally:
                if proc.poll() is None:
                    procs.kill_tree(proc.pid)
                    proc.wait()
        return elapsed, extra

    @workload("startup_to_first_result")
    def startup_to_first_result(self):
        return self.m.oneshot(lambda: self._fresh_process(run_task=True)[0]), {}

    @workload("idle_footprint_pss")
    def idle_footprint_pss(self):
        last = {}

        def measure(pid):
            settled = procs.wait_until_settled(pid, self.m.timing.quiet_s, max_s=30)
            by_name = {}
            for p in [pid] + procs.descendants(pid):
                kib = procs.pss_kib(p)
                if kib is not None:
                    name = "driver (python -c)" if p == pid else procs.name_of(p)
                    count, total = by_name.get(name, (0, 0))
                    by_name[name] = (count + 1, total + kib)
            last.update(settle_s=round(settled, 2),
                        processes=sum(c for c, _ in by_name.values()),
                        by_name={n: {"count": c, "MiB": round(k / 1024, 1)} for n, (c, k) in
                                 sorted(by_name.items(), key=lambda i: -i[1][1])})
            return sum(k for _, k in by_name.values()) / 1024

        samples = self.m.oneshot(lambda: self._fresh_process(run_task=False, while_up=measure)[1])
        return samples, last


def _wait_for_line(proc, wanted, timeout_s):
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout_s
    buf = b""
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no {wanted} line within {timeout_s} s")
            if not sel.select(left):
                continue
            chunk = os.read(proc.stdout.fileno(), 65536)
            if not chunk:
                raise RuntimeError(f"fresh process exited with code {proc.wait()} before {wanted}")
            buf += chunk
            if any(line.strip() == wanted.encode() for line in buf.split(b"\n")):
                return
    finally:
        sel.close()


# name -> (module in this package, class name).  "quanta" and "ray" share one
# implementation, parameterised by the module they import.
REGISTRY = {
    "quanta": ("raylike", "QuantaBackend"),
    "ray": ("raylike", "RayBackend"),
    "dask": ("peer_dask", "DaskBackend"),
    "multiprocessing": ("peer_mp", "MultiprocessingBackend"),
}
ALIASES = {"mp": "multiprocessing"}
SHORT = {"multiprocessing": "mp"}


def canonical(name):
    name = ALIASES.get(name.strip().lower(), name.strip().lower())
    if name not in REGISTRY:
        raise ValueError(f"unknown backend {name!r}; choose from {', '.join(REGISTRY)} (or mp)")
    return name


def backend_class(name):
    module, cls = REGISTRY[canonical(name)]
    return getattr(importlib.import_module(f"{__package__}.{module}"), cls)


def missing_reason(name):
    """Why backend ``name`` cannot run here, or None if its package imports
    (checked without importing it, so that Quanta's own import errors are
    reported by the child that measures it)."""
    package = backend_class(name).package
    if importlib.util.find_spec(package) is None:
        return f"{package} is not installed"
    return None
