"""The standard library's multiprocessing as a peer: a process ``Pool`` with
one worker per CPU.  It has tasks (``apply``, ``apply_async``) but no object
store and no actors, so only the task, pool and process workloads apply.

The pool runs builtins and numpy functions only (``bytes`` is the no-op
task), which pickle by name under any start method."""

import os
import platform

from .backends import READY, Backend
from .generic import PoolWorkloads, TaskWorkloads


class MultiprocessingBackend(Backend, TaskWorkloads, PoolWorkloads):
    name = "multiprocessing"
    package = "multiprocessing"

    def version(self):
        return f"python {platform.python_version()}"

    def start(self):
        import multiprocessing

        self.pool = multiprocessing.Pool(os.cpu_count())
        self.pool.apply(bytes)

    def stop(self):
        self.pool.close()
        self.pool.join()

    def fresh_script(self, run_task):
        lines = ["import multiprocessing", "if __name__ == '__main__':",
                 "    pool = multiprocessing.Pool()"]
        if run_task:
            lines.append("    assert pool.apply(abs, (-1,)) == 1")
        lines += [f"    print({READY!r}, flush=True)", "    import sys", "    sys.stdin.read()",
                  "    pool.close()", "    pool.join()"]
        return "\n".join(lines)

    def _one_task(self):
        pool = self.pool
        return lambda: pool.apply(bytes)

    def _batch(self, count):
        pool = self.pool
        return lambda: [r.get() for r in [pool.apply_async(bytes) for _ in range(count)]]

    def _pool(self, processes):
        return self.pool, lambda: None  # the session's Pool(os.cpu_count()), kept for later workloads

    def _dag(self, m):
        # No futures as arguments: f's result comes back to the driver and is
        # sent on to g, which is how a Pool user chains two tasks.
        import numpy as np

        pool = self.pool
        return lambda: pool.apply(np.multiply, (pool.apply(np.add, (m, 1.0)), 2.0))
