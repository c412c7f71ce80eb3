"""quanta.util.Executor: a concurrent.futures.Executor that runs calls on Quanta.

A drop-in for `concurrent.futures.ProcessPoolExecutor`: the same constructor, `submit`,
`map(timeout=, chunksize=)`, `shutdown(wait=, cancel_futures=)`, context manager, and real
`concurrent.futures.Future` objects, so `concurrent.futures.wait`, `as_completed`, callbacks and
`cancel()` work as usual:

    from concurrent.futures import as_completed
    from quanta.util import Executor

    with Executor(max_workers=4) as ex:
        futures = [ex.submit(pow, 2, i) for i in range(10)]
        print(sorted(f.result() for f in as_completed(futures)))

At most `max_workers` calls run at once (default: the cluster's CPUs); the others wait in the
executor as PENDING futures, which `cancel()` can still stop. Calls run as Quanta tasks on the
node's reusable workers; with an `initializer` or `max_tasks_per_child` each of the
`max_workers` slots gets its own process (a Quanta actor) instead, as ProcessPoolExecutor's
workers are. As with ProcessPoolExecutor, a worker process that dies, or an initializer that
raises, breaks the executor: pending futures and later submits raise BrokenProcessPool.
"""

from __future__ import annotations

import concurrent.futures as cf
import itertools
import threading
import time
from concurrent.futures.process import BrokenProcessPool

import quanta
from quanta.util import _slots


class Executor(cf.Executor):
    """Runs callables on a Quanta cluster; see the module docstring.

    `ray_remote_args` are task options (or, with an initializer or max_tasks_per_child, actor
    options) for the calls, e.g. `{"num_cpus": 2}`. By default a call holds 1 CPU, or an equal
    share of the cluster's CPUs when max_workers is larger than their number, so that
    max_workers calls can run at once, as max_workers processes would.
    """

    def __init__(self, max_workers=None, mp_context=None, initializer=None, initargs=(), *,
                 max_tasks_per_child=None, ray_remote_args=None):
        self._engine = None
        _slots.check_context(mp_context)
        if max_workers is not None:
            if isinstance(max_workers, bool) or not isinstance(max_workers, int):
                raise TypeError(f"max_workers must be an int or None, got {max_workers!r}")
            if max_workers <= 0:
                raise ValueError("max_workers must be greater than 0")
        if initializer is not None and not callable(initializer):
            raise TypeError("initializer must be a callable")
        if max_tasks_per_child is not None:
            if isinstance(max_tasks_per_child, bool) or not isinstance(max_tasks_per_child, int):
                raise TypeError("max_tasks_per_child must be an integer")
            if max_tasks_per_child <= 0:
                raise ValueError("max_tasks_per_child must be >= 1")
        if not quanta.is_initialized():
            quanta.init()
        if max_workers is None:
            max_workers = max(1, int(quanta.cluster_resources().get("CPU", 1)))
        self._max_workers = max_workers
        actors = initializer is not None or max_tasks_per_child is not None
        options = _slots.slot_options(ray_remote_args, max_workers, actors, "Executor")
        if not actors:
            # A call whose process dies is not run again: ProcessPoolExecutor reports it.
            options.setdefault("max_retries", 0)
        self._shutdown_lock = threading.RLock()  # a future's callback may submit again
        self._shutdown = False
        self._engine = _slots.SlotPool(
            max_workers, actors=actors, options=options, initializer=initializer,
            initargs=tuple(initargs), max_tasks=max_tasks_per_child, prefetch=1,
            on_broken=_broken_error, name="quanta-executor")

    def submit(self, fn, /, *args, **kwargs):
        """Schedules fn(*args, **kwargs); returns a concurrent.futures.Future."""
        with self._shutdown_lock:
            if self._engine.broken is not None:
                raise BrokenProcessPool(str(self._engine.broken))
            if self._shutdown:
                raise RuntimeError("cannot schedule new futures after shutdown")
            if not callable(fn):
                raise TypeError(f"submit() needs a callable, got {type(fn).__name__}")
            future = cf.Future()
            self._engine.submit(_slots.Job(fn, _slots.CALL, (args, kwargs), _resolver(future),
                                           future.set_running_or_notify_cancel, future))
            return future

    def map(self, fn, *iterables, timeout=None, chunksize=1):
        """Like the builtin map(fn, *iterables), computed in parallel; results in order.

        The iterator raises TimeoutError if a result is not ready `timeout` seconds after the
        call to map(); `chunksize` items travel in one call."""
        if isinstance(chunksize, bool) or not isinstance(chunksize, int):
            raise TypeError(f"chunksize must be an int, got {chunksize!r}")
        if chunksize < 1:
            raise ValueError("chunksize must be >= 1.")
        deadline = None if timeout is None else time.monotonic() + timeout
        calls = zip(*iterables)
        if chunksize == 1:
            futures = [self.submit(fn, *args) for args in calls]
            return _results(futures, deadline, chunked=False)
        fn_ref = _slots.put_function(fn)
        futures = []
        while True:
            chunk = list(itertools.islice(calls, chunksize))
            if not chunk:
                break
            futures.append(self._submit_chunk(fn_ref, chunk))
        return _results(futures, deadline, chunked=True)

    def _submit_chunk(self, fn, chunk):
        with self._shutdown_lock:
            if self._engine.broken is not None:
                raise BrokenProcessPool(str(self._engine.broken))
            if self._shutdown:
                raise RuntimeError("cannot schedule new futures after shutdown")
            future = cf.Future()
            self._engine.submit(_slots.Job(fn, _slots.STARMAP, chunk, _resolver(future),
                                           future.set_running_or_notify_cancel, future))
            return future

    def shutdown(self, wait=True, *, cancel_futures=False):
        """No more submits; with cancel_futures, pending futures are cancelled; with wait,
        returns once every running and pending call has finished."""
        if self._engine is None:
            return
        with self._shutdown_lock:
            self._shutdown = True
            if cancel_futures:
                for job in self._engine.drain():
                    job.owner.cancel()  # not taken by a slot: still PENDING, so cancellable
            self._engine.close()
        if wait:
            self._engine.join()

    def __del__(self):
        engine = getattr(self, "_engine", None)
        if engine is not None and not self._shutdown:
            try:
                engine.close()
            except Exception:  # noqa: BLE001 - interpreter shutdown
                pass

    def __reduce__(self):
        raise TypeError("an Executor cannot be pickled or sent to tasks; submit from the driver, "
                        "or create an Executor inside the task")


def _resolver(future):
    def done(ok, value):
        if future.done():  # cancelled meanwhile
            return
        try:
            if ok:
                future.set_result(value)
            else:
                future.set_exception(value)
        except cf.InvalidStateError:
            pass

    return done


def _broken_error(cause, why):
    if why == "initializer":
        text = ("A process in the Quanta executor failed to start: its initializer raised "
                f"{type(cause).__name__}: {cause}; the executor is not usable anymore")
    else:
        text = ("A process in the Quanta executor was terminated abruptly while the future was "
                f"running or pending ({cause}); the executor is not usable anymore")
    error = BrokenProcessPool(text)
    error.__cause__ = cause
    return error


def _results(futures, deadline, chunked):
    """The iterator map() returns: results in order, cancelling the rest if left early."""
    futures.reverse()  # pop() from the end keeps the order and drops each future once seen
    try:
        while futures:
            future = futures.pop()
            left = None if deadline is None else deadline - time.monotonic()
            value = future.result(left)
            if chunked:
                yield from value
            else:
                yield value
    finally:
        for future in futures:
            future.cancel()


__all__ = ["Executor"]
