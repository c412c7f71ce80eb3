"""quanta.util.ActorPool: spread work over a fixed set of actors (Ray's ray.util.ActorPool).

    pool = ActorPool([Worker.remote(), Worker.remote()])
    print(list(pool.map(lambda actor, v: actor.double.remote(v), [1, 2, 3, 4])))

`fn(actor, value)` must call one method of `actor` and return its ObjectRef. Each actor runs one
submitted value at a time; values submitted while every actor is busy wait in the pool and start
as actors free up, which happens when their results are collected (get_next, get_next_unordered,
or iterating map / map_unordered).
"""

from __future__ import annotations

import collections

import quanta

_TIMEOUT = "Timed out waiting for result"


class ActorPool:
    """A pool of actors that values are submitted to, with results in or out of order."""

    def __init__(self, actors):
        self._idle = list(actors)
        self._running = {}  # submission index -> (ref or list of refs, actor)
        self._waiting = collections.deque()  # (fn, value) submitted while no actor was idle
        self._next_index = 0  # index of the next submission
        self._next_ordered = 0  # the submission get_next() returns next

    # -- submitting -----------------------------------------------------------------------

    def submit(self, fn, value):
        """Runs fn(actor, value) on an idle actor, or as soon as one is free."""
        if self._idle:
            actor = self._idle.pop()
            ref = fn(actor, value)
            if not _is_refs(ref):
                self._idle.append(actor)
                raise TypeError(f"ActorPool: fn(actor, value) must return the ObjectRef of an "
                                f"actor call (e.g. lambda a, v: a.method.remote(v)), got "
                                f"{type(ref).__name__}")
            self._running[self._next_index] = (ref, actor)
            self._next_index += 1
        else:
            self._waiting.append((fn, value))

    def map(self, fn, values):
        """Submits fn(actor, v) for every v; yields the results in the order of `values`.

        Results still pending from earlier submits are discarded first, as in Ray."""
        self._discard_pending()
        for v in values:
            self.submit(fn, v)
        while self.has_next():
            yield self.get_next()

    def map_unordered(self, fn, values):
        """Like map(), but yields results in the order they finish."""
        self._discard_pending()
        for v in values:
            self.submit(fn, v)
        while self.has_next():
            yield self.get_next_unordered()

    def _discard_pending(self):
        while self.has_next():
            try:
                self.get_next(timeout=0, ignore_if_timedout=True)
            except TimeoutError:
                pass

    # -- collecting -----------------------------------------------------------------------

    def has_next(self):
        """Whether any submitted value's result has not been returned yet."""
        return bool(self._running) or bool(self._waiting)

    def get_next(self, timeout=None, ignore_if_timedout=False):
        """The result of the next submission in submission order.

        Raises StopIteration if nothing is pending, TimeoutError if the result is not ready
        within `timeout` seconds. With ignore_if_timedout=True a timed-out submission is given
        up: its result will never be returned and its actor goes back to the pool."""
        if not self.has_next():
            raise StopIteration("No more results to get")
        self._start_waiting_if_possible()
        if self._next_ordered >= self._next_index:
            raise ValueError(f"get_next() cannot return results that get_next_unordered() "
                             f"skipped over ({len(self._running)} pending); collect them with "
                             "get_next_unordered()")
        index = self._next_ordered
        if index not in self._running:  # already collected out of order: skip ahead
            self._next_ordered += 1
            return self.get_next(timeout, ignore_if_timedout)
        ref, actor = self._running[index]
        if timeout is not None and not _ready(ref, timeout):
            if not ignore_if_timedout:
                raise TimeoutError(_TIMEOUT)
            self._release(index)
            self._next_ordered = index + 1
            raise TimeoutError(f"{_TIMEOUT}. The task {ref} has been ignored.")
        self._release(index)
        self._next_ordered = index + 1
        return quanta.get(ref)

    def get_next_unordered(self, timeout=None, ignore_if_timedout=False):
        """The result of whichever pending submission finishes first.

        Raises StopIteration if nothing is pending, TimeoutError if none finishes within
        `timeout` seconds; with ignore_if_timedout=True the oldest pending submission is then
        given up (its result is never returned; its actor goes back to the pool)."""
        if not self.has_next():
            raise StopIteration("No more results to get")
        self._start_waiting_if_possible()
        flat = {}
        for index, (ref, _) in self._running.items():
            for r in (ref if isinstance(ref, list) else [ref]):
                flat[r] = index
        ready, _ = quanta.wait(list(flat), num_returns=1, timeout=timeout)
        if not ready:
            if not ignore_if_timedout:
                raise TimeoutError(_TIMEOUT)
            oldest = min(self._running)
            ref, _ = self._running[oldest]
            self._release(oldest)
            self._next_ordered = max(self._next_ordered, oldest + 1)
            raise TimeoutError(f"{_TIMEOUT}. The task {ref} has been ignored.")
        index = flat[ready[0]]
        ref, _ = self._running[index]
        self._release(index)
        self._next_ordered = max(self._next_ordered, index + 1)
        return quanta.get(ref)

    # -- the actors -----------------------------------------------------------------------

    def has_free(self):
        """Whether an actor is idle and no submitted value is waiting for one."""
        return bool(self._idle) and not self._waiting

    def pop_idle(self):
        """Removes an idle actor from the pool and returns it (None if there is none)."""
        return self._idle.pop() if self.has_free() else None

    def push(self, actor):
        """Adds an actor to the pool (it then runs the next waiting value, if any)."""
        if actor in self._idle or any(a == actor for _, a in self._running.values()):
            raise ValueError("Actor already belongs to current ActorPool")
        self._return(actor)

    def _release(self, index):
        _, actor = self._running.pop(index)
        self._return(actor)

    def _return(self, actor):
        self._idle.append(actor)
        if self._waiting:
            self.submit(*self._waiting.popleft())

    def _start_waiting_if_possible(self):
        while self._waiting and self._idle:
            self.submit(*self._waiting.popleft())
        if self._waiting and not self._running:
            raise ValueError(f"ActorPool has {len(self._waiting)} submitted values but no actors "
                             "to run them; add one with push()")


def _is_refs(ref):
    if isinstance(ref, quanta.ObjectRef):
        return True
    return isinstance(ref, list) and ref and all(isinstance(r, quanta.ObjectRef) for r in ref)


def _ready(ref, timeout):
    refs = ref if isinstance(ref, list) else [ref]
    ready, _ = quanta.wait(refs, num_returns=len(refs), timeout=timeout)
    return len(ready) == len(refs)


__all__ = ["ActorPool"]
