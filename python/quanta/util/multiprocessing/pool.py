"""quanta.util.multiprocessing.Pool: the standard library's multiprocessing.Pool on Quanta actors.

`Pool(processes)` starts one Quanta actor per process slot (default: one per CPU of the
cluster). The pool's methods, arguments, chunking, callbacks, results and errors are the standard
library's, so code written for `multiprocessing.Pool` runs unchanged:

    from quanta.util.multiprocessing import Pool

    with Pool(4) as pool:
        print(pool.map(abs, range(-5, 5)))

Differences, each because the processes are actors rather than forked children: functions and
arguments always travel pickled (cloudpickle, so lambdas and local functions work too), and a
context with the 'fork' start method is refused. Failures that hang the standard library's pool
are reported instead: a worker process that dies fails the task it was running (and is replaced),
an initializer that raises fails every task with its exception, and terminate() fails the tasks
that had not finished with RuntimeError.
"""

from __future__ import annotations

import functools
import itertools
import numbers
import threading
import warnings

import quanta
from quanta.util import _slots
from quanta.util.multiprocessing.results import AsyncResult, IMapIterator, IMapUnorderedIterator

RUN, CLOSE, TERMINATE = "RUN", "CLOSE", "TERMINATE"


class Pool:
    """A pool of `processes` Quanta actors with the standard library's Pool API.

    `ray_address` connects to a running cluster if this process is not connected yet (None
    starts a local one, as `quanta.init()` does); `ray_remote_args` are actor options for the
    pool's processes (e.g. `{"num_cpus": 2}`). By default each process holds 1 CPU, or an equal
    share of the cluster's CPUs when more processes than CPUs are asked for.
    """

    def __init__(self, processes=None, initializer=None, initargs=None, maxtasksperchild=None,
                 context=None, ray_address=None, ray_remote_args=None):
        self._state = None  # __del__ must work even if __init__ raises
        _slots.check_context(context)
        if processes is not None and (isinstance(processes, bool) or not isinstance(processes, int)):
            raise TypeError(f"processes must be an int or None, got {processes!r}")
        if processes is not None and processes < 1:
            raise ValueError("Number of processes must be at least 1")
        if initializer is not None and not callable(initializer):
            raise TypeError("initializer must be a callable")
        initargs = () if initargs is None else tuple(initargs)
        if maxtasksperchild is not None and (isinstance(maxtasksperchild, bool) or not isinstance(
                maxtasksperchild, int) or maxtasksperchild <= 0):
            raise ValueError("maxtasksperchild must be a positive int or None")
        _connect(ray_address)
        if processes is None:
            processes = max(1, int(quanta.cluster_resources().get("CPU", 1)))
        options = _slots.slot_options(ray_remote_args, processes, True, "Pool")
        self._processes = processes
        self._callback_lock = threading.RLock()
        self._lock = threading.Lock()
        self._feeders = 0
        self._engine = _slots.SlotPool(
            processes, actors=True, options=options, initializer=initializer, initargs=initargs,
            max_tasks=maxtasksperchild, prefetch=2, name="quanta-pool",
            on_broken=lambda cause, why: cause if why == "initializer" else None)
        self._state = RUN

    # -- one call -------------------------------------------------------------------------

    def apply(self, func, args=(), kwds={}, *, kwargs=None):  # noqa: B006 - the stdlib's signature
        """Runs func(*args, **kwds) in a pool process and returns its result."""
        return self.apply_async(func, args, kwds, kwargs=kwargs).get()

    def apply_async(self, func, args=(), kwds={}, callback=None, error_callback=None, *,  # noqa: B006
                    kwargs=None):
        """Like apply(), but returns an AsyncResult at once. `kwargs=` is Ray's name for `kwds`."""
        self._check_running()
        if kwargs is not None:
            if kwds:
                raise TypeError("apply_async() got both kwds and kwargs; pass the keyword "
                                "arguments once (kwds is the standard library's name)")
            kwds = kwargs
        args = () if args is None else tuple(args)
        kwds = {} if kwds is None else dict(kwds)
        _check_callable(func, callback, error_callback)
        result = AsyncResult(self._callback_lock, callback, error_callback)
        self._engine.submit(_slots.Job(func, _slots.CALL, (args, kwds),
                                       functools.partial(result._part_done, 0)))
        return result

    # -- many calls -----------------------------------------------------------------------

    def map(self, func, iterable, chunksize=None):
        """[func(x) for x in iterable], computed in the pool, chunksize items per task."""
        return self._map_async(func, iterable, _slots.MAP, chunksize).get()

    def map_async(self, func, iterable, chunksize=None, callback=None, error_callback=None):
        return self._map_async(func, iterable, _slots.MAP, chunksize, callback, error_callback)

    def starmap(self, func, iterable, chunksize=None):
        """[func(*args) for args in iterable], computed in the pool."""
        return self._map_async(func, iterable, _slots.STARMAP, chunksize).get()

    def starmap_async(self, func, iterable, chunksize=None, callback=None, error_callback=None):
        return self._map_async(func, iterable, _slots.STARMAP, chunksize, callback, error_callback)

    def imap(self, func, iterable, chunksize=1):
        """An iterator over func(x) for x in iterable, in order, computed while you iterate."""
        return self._imap(func, iterable, chunksize, IMapIterator())

    def imap_unordered(self, func, iterable, chunksize=1):
        """Like imap(), but yields results in the order they finish."""
        return self._imap(func, iterable, chunksize, IMapUnorderedIterator())

    def _map_async(self, func, iterable, mode, chunksize, callback=None, error_callback=None):
        self._check_running()
        _check_callable(func, callback, error_callback)
        if not hasattr(iterable, "__len__"):
            iterable = list(iterable)
        if chunksize is None:
            chunksize, extra = divmod(len(iterable), self._processes * 4)
            chunksize += 1 if extra else 0
        else:
            _check_chunksize(chunksize)
        chunks = list(_chunked(iterable, max(chunksize, 1)))
        result = AsyncResult(self._callback_lock, callback, error_callback, chunks=len(chunks))
        fn = _slots.put_function(func) if len(chunks) > 1 else func
        for i, chunk in enumerate(chunks):
            self._engine.submit(_slots.Job(fn, mode, chunk, functools.partial(result._part_done, i)))
        return result

    def _imap(self, func, iterable, chunksize, iterator):
        self._check_running()
        _check_callable(func)
        _check_chunksize(chunksize)
        with self._lock:
            self._feeders += 1

        def feed():
            fn, n = _slots.put_function(func), 0
            try:
                for chunk in _chunked(iterable, chunksize):
                    self._engine.submit(_slots.Job(fn, _slots.MAP, chunk,
                                                   functools.partial(iterator._part_done, n)))
                    n += 1
            except Exception as e:  # noqa: BLE001 - the input iterable raised
                iterator._set_total(n, e)
            else:
                iterator._set_total(n)
            finally:
                self._feeder_done()

        if isinstance(iterable, (list, tuple, range)):
            feed()
        else:  # a generator may be slow or long: consume it beside the caller, as the stdlib does
            threading.Thread(target=feed, name="quanta-pool-feeder", daemon=True).start()
        return iterator

    # -- life cycle -----------------------------------------------------------------------

    def close(self):
        """No more work will be submitted; the processes exit once the queued work is done."""
        with self._lock:
            if self._state == RUN:
                self._state = CLOSE
            if self._feeders == 0:
                self._engine.close()

    def terminate(self):
        """Stops the processes now (and waits for them); unfinished work fails with RuntimeError."""
        with self._lock:
            if self._state is None:
                return
            self._state = TERMINATE
        self._engine.terminate(RuntimeError("the Pool was terminated before this task finished"))
        self._engine.join(timeout=10)

    def join(self):
        """Waits for the processes to exit; call close() or terminate() first."""
        if self._state == RUN:
            raise ValueError("Pool is still running")
        if self._state is None:
            return
        self._engine.join()

    def _feeder_done(self):
        with self._lock:
            self._feeders -= 1
            if self._feeders == 0 and self._state != RUN:
                self._engine.close()

    def _check_running(self):
        if self._state != RUN:
            raise ValueError("Pool not running")

    def __enter__(self):
        self._check_running()
        return self

    def __exit__(self, *exc):
        self.terminate()

    def __reduce__(self):
        raise NotImplementedError("pool objects cannot be passed between processes or pickled")

    def __repr__(self):
        return f"<quanta.util.multiprocessing.Pool state={self._state} processes={self._processes}>"

    def __del__(self):
        if getattr(self, "_state", None) == RUN:
            warnings.warn(f"unclosed running multiprocessing pool {self!r}", ResourceWarning,
                          source=self)
            try:
                self.terminate()
            except Exception:  # noqa: BLE001 - interpreter shutdown
                pass


def _chunked(iterable, size):
    it = iter(iterable)
    while True:
        chunk = list(itertools.islice(it, size))
        if not chunk:
            return
        yield chunk


def _check_chunksize(chunksize):
    if isinstance(chunksize, bool) or not isinstance(chunksize, numbers.Integral):
        raise TypeError(f"chunksize must be an int, got {chunksize!r}")
    if chunksize < 1:
        raise ValueError(f"Chunksize must be 1+, not {chunksize:n}")


def _check_callable(func, callback=None, error_callback=None):
    for name, value in (("func", func), ("callback", callback), ("error_callback", error_callback)):
        if value is not None and not callable(value) or (name == "func" and value is None):
            raise TypeError(f"{name} must be callable, got {type(value).__name__}")


def _connect(address):
    if not quanta.is_initialized():
        quanta.init(address=address)
    elif address not in (None, "auto"):
        raise ValueError(f"ray_address={address!r} was given, but this process is already "
                         "connected to a Quanta cluster; drop ray_address to use that cluster, "
                         "or call quanta.shutdown() first")


__all__ = ["Pool"]
