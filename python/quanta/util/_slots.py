"""Work slots: the engine under quanta.util.multiprocessing.Pool and quanta.util.Executor.

A SlotPool runs *jobs* (a function applied to one call, or to a chunk of items) on a fixed
number of *slots*. Each slot is a thread in the calling process that takes jobs from one shared
FIFO queue, so a long job never holds up the others (the workers of `multiprocessing.Pool` take
their tasks from one shared queue the same way). A slot runs its jobs

* on its own Quanta actor (`actors=True`): a dedicated process in which an initializer runs once,
  replaced by a fresh one after `max_tasks` jobs or when it dies; or
* as plain Quanta tasks (`actors=False`), on the node's pool of reusable workers.

The worker side (what runs in the processes) is in _slot_worker.py. A job's outcome is handed
to its `done(ok, value)` in the slot's thread: `ok=True` with the
function's result, or `ok=False` with the exception to raise (the remote exception itself, with
its remote traceback as `__cause__`, as multiprocessing does). `start()`, if given, is called
when a slot takes the job; returning False skips it (a cancelled future).

When all slots are busy and more jobs wait, a slot may keep one more job queued at its actor
(`prefetch=2`), hiding the round trip between two jobs.
"""

from __future__ import annotations

import atexit
import collections
import math
import threading
import traceback
import weakref
from multiprocessing.pool import RemoteTraceback

import quanta
from quanta import exceptions
from quanta.util._slot_worker import CALL, INIT_ERR, MAP, OK, STARMAP, SlotActor, run_job  # noqa: F401

RUNNING, CLOSED, TERMINATED = "running", "closed", "terminated"


_remote_cache = {}


def _remote(target):
    if target not in _remote_cache:
        _remote_cache[target] = quanta.remote(target)
    return _remote_cache[target]


def with_remote_traceback(exc, tb_text):
    exc.__cause__ = RemoteTraceback(tb_text)
    return exc


# ----------------------------------------------------------------------- the caller side


class Job:
    """fn applied to data (see CALL/MAP/STARMAP); `done(ok, value)` gets the outcome; `start()`
    is asked when a slot takes it (False: skip it); `owner` is the submitter's (a Future)."""

    __slots__ = ("fn", "mode", "data", "done", "start", "owner")

    def __init__(self, fn, mode, data, done, start=None, owner=None):
        self.fn, self.mode, self.data, self.done, self.start = fn, mode, data, done, start
        self.owner = owner


class SlotPool:
    """`slots` threads feeding jobs to actors or tasks; see the module docstring."""

    def __init__(self, slots, *, actors, options, initializer=None, initargs=(), max_tasks=None,
                 prefetch=1, on_broken=None, name="quanta-slots"):
        self._actors = actors
        self._options = dict(options)
        self._initializer, self._initargs = initializer, tuple(initargs)
        self._max_tasks = max_tasks
        self._prefetch = prefetch
        # on_broken(cause, why) -> the exception that every later job fails with, or None to
        # keep going (a crashed actor is then replaced and only its jobs fail).
        self._on_broken = on_broken or (lambda cause, why: cause if why == "initializer" else None)
        self._cv = threading.Condition()
        self._queue = collections.deque()
        self._state = RUNNING
        self._broken = None
        self._idle = 0
        self._inflight = [collections.deque() for _ in range(slots)]
        self._sent = [0] * slots  # jobs sent to each slot's current actor
        target = SlotActor if actors else run_job
        self._remote = _remote(target).options(**self._options)
        self._handles = [self._new_actor() if actors else None for _ in range(slots)]
        self._terminate_error = RuntimeError("the pool was terminated before this job finished")
        self._threads = [threading.Thread(target=self._slot_main, args=(i,), daemon=True,
                                          name=f"{name}-{i}") for i in range(slots)]
        for t in self._threads:
            t.start()
        _live.add(self)

    # -- what the owner calls ------------------------------------------------------------

    @property
    def broken(self):
        return self._broken

    def submit(self, job):
        """Queues a job (it fails at once if the pool is broken or terminated)."""
        with self._cv:
            if self._broken is None and self._state != TERMINATED:
                self._queue.append(job)
                self._cv.notify()
                return
            error = self._broken or self._terminate_error
        self._deliver(job, False, error)

    def drain(self):
        """Removes and returns the jobs no slot has taken yet."""
        with self._cv:
            jobs = list(self._queue)
            self._queue.clear()
        return jobs

    def close(self):
        """No more jobs will come: slots finish what is queued, release their actors, exit."""
        with self._cv:
            if self._state == RUNNING:
                self._state = CLOSED
            self._cv.notify_all()

    def terminate(self, error=None):
        """Stops now: queued and running jobs fail with `error`; actors are killed."""
        with self._cv:
            if self._state == TERMINATED:
                return
            self._state = TERMINATED
            if error is not None:
                self._terminate_error = error
            queued = list(self._queue)
            self._queue.clear()
            running = [ref for dq in self._inflight for _, ref, _ in dq]
            handles = [h for h in self._handles if h is not None]
            self._cv.notify_all()
        for job in queued:
            self._deliver(job, False, self._terminate_error)
        if self._actors:
            for h in handles:
                _kill(h)
        else:
            for ref in running:
                try:
                    quanta.cancel(ref, force=True)
                except Exception:  # noqa: BLE001 - already finished, or the session is gone
                    pass

    def join(self, timeout=None):
        for t in self._threads:
            if t is not threading.current_thread():
                t.join(timeout)

    def actor_handles(self):
        return [h for h in self._handles if h is not None]

    # -- the slots ------------------------------------------------------------------------

    def _new_actor(self):
        return self._remote.remote(self._initializer, self._initargs)

    def _take(self, wait):
        with self._cv:
            while True:
                if self._state == TERMINATED:
                    return None
                while self._queue:
                    job = self._queue.popleft()
                    if job.start is None or job.start():
                        return job
                if self._state != RUNNING or not wait:
                    return None
                self._idle += 1
                try:
                    self._cv.wait()
                finally:
                    self._idle -= 1

    def _may_prefetch(self, slot):
        if len(self._inflight[slot]) >= self._prefetch or self._idle or not self._queue:
            return False
        return self._max_tasks is None or self._sent[slot] < self._max_tasks

    def _slot_main(self, slot):
        inflight = self._inflight[slot]
        while True:
            if not inflight or self._may_prefetch(slot):
                job = self._take(wait=not inflight)
                if job is not None:
                    self._launch(slot, job)
                    continue
                if not inflight:
                    break
            job, ref, handle = inflight[0]
            why, value = self._collect(ref)
            with self._cv:
                inflight.popleft()
            if why == "crash" and self._state != TERMINATED:
                self._retire(slot, handle)
            self._finish(job, why, value)
            if self._max_tasks is not None and self._sent[slot] >= self._max_tasks and not inflight:
                self._retire(slot, handle)  # maxtasksperchild: a fresh process for what comes next
        self._retire(slot, self._handles[slot])

    def _launch(self, slot, job):
        handle = None
        try:
            if self._actors:
                with self._cv:
                    if self._state == TERMINATED:
                        raise self._terminate_error
                    if self._handles[slot] is None:
                        self._handles[slot] = self._new_actor()
                        self._sent[slot] = 0
                    handle = self._handles[slot]
                    self._sent[slot] += 1
                ref = handle.run.remote(job.fn, job.mode, job.data)
            else:
                ref = self._remote.remote(job.fn, job.mode, job.data)
        except Exception as e:  # noqa: BLE001 - e.g. an unpicklable function or argument
            self._deliver(job, False, e)
            return
        with self._cv:
            self._inflight[slot].append((job, ref, handle))

    def _retire(self, slot, handle):
        """Ends the slot's actor `handle` (if it is still the slot's); the next job starts a new one."""
        if handle is None:
            return
        with self._cv:
            if self._handles[slot] is handle:
                self._handles[slot] = None
                self._sent[slot] = 0
        _kill(handle)

    def _collect(self, ref):
        try:
            outcome = quanta.get(ref)
        except (exceptions.ActorDiedError, exceptions.WorkerCrashedError) as e:
            return "crash", e
        except Exception as e:  # noqa: BLE001 - an unpicklable result, cancelled, session gone
            return "error", e
        if outcome[0] == OK:
            return "ok", outcome[1]
        error = with_remote_traceback(outcome[1], outcome[2])
        return ("initializer" if outcome[0] == INIT_ERR else "error"), error

    def _finish(self, job, why, value):
        if self._state == TERMINATED and why != "ok":
            value = self._terminate_error
        elif why in ("crash", "initializer"):
            self._break(value, why)
            value = self._broken or value
        self._deliver(job, why == "ok", value)

    def _break(self, cause, why):
        with self._cv:
            if self._broken is not None:
                return
            error = self._on_broken(cause, why)
            if error is None:
                return
            self._broken = error
            queued = list(self._queue)
            self._queue.clear()
        for job in queued:
            self._deliver(job, False, error)

    @staticmethod
    def _deliver(job, ok, value):
        try:
            job.done(ok, value)
        except Exception:  # noqa: BLE001 - an owner's bug must not kill the slot
            traceback.print_exc()


_live = weakref.WeakSet()


@atexit.register
def _terminate_all():
    # Runs before quanta's own exit handler (registered earlier), so that no slot thread still
    # uses the session while it is being shut down.
    for pool in list(_live):
        pool.terminate()
        pool.join(timeout=5)


def _kill(handle):
    try:
        quanta.kill(handle)
    except Exception:  # noqa: BLE001 - already dead, or the session is gone
        pass


def put_function(fn):
    """Stores `fn` once for many jobs (a top-level ObjectRef argument reaches the job as `fn`).

    Falls back to `fn` itself if it cannot be stored here, so the error surfaces per job."""
    try:
        return quanta.put(fn)
    except Exception:  # noqa: BLE001 - unpicklable: each job reports it
        return fn


_NOT_FOR_SLOT_ACTORS = {"name", "namespace", "lifetime", "get_if_exists"}


def slot_options(remote_args, slots, actors, what):
    """Task or actor options for `slots` slots from the user's `ray_remote_args`.

    Each slot holds 1 CPU by default; with more slots than the cluster has CPUs they share them
    equally (rounded down to the engine's 1/10000 CPU, so that all of them can run at once)."""
    if remote_args is not None and not isinstance(remote_args, dict):
        raise TypeError(f"ray_remote_args must be a dict of options, got {type(remote_args).__name__}")
    options = dict(remote_args or {})
    refused = _NOT_FOR_SLOT_ACTORS & set(options) if actors else set()
    if refused:
        raise ValueError(f"ray_remote_args {sorted(refused)} cannot be used for a {what}: its "
                         f"{slots} processes are separate unnamed actors")
    total = quanta.cluster_resources().get("CPU", 0.0)
    cpus = options.get("num_cpus")
    if cpus is None:
        options["num_cpus"] = 1.0 if slots <= total else math.floor(total * 10000 / slots) / 10000
    elif isinstance(cpus, (int, float)) and not isinstance(cpus, bool) and cpus > total:
        raise ValueError(f"ray_remote_args asks for num_cpus={cpus} per {what} process, but the "
                         f"cluster has {total:g} CPUs: it could never run")
    return options


def check_context(context):
    """Refuses a multiprocessing context whose start method cannot apply to Quanta processes."""
    if context is None:
        return
    get_method = getattr(context, "get_start_method", None)
    if get_method is None:
        raise TypeError(f"context must be a multiprocessing context or None, got "
                        f"{type(context).__name__}")
    if get_method() == "fork":
        raise ValueError("a 'fork' context is not supported: the processes are Quanta actors or "
                         "workers, started fresh and sent the function and arguments pickled, as "
                         "with 'spawn'; they cannot inherit this process's memory. Pass "
                         "multiprocessing.get_context('spawn') or no context.")
