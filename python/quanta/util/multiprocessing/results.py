"""What Pool's *_async and imap methods return: AsyncResult, IMapIterator, IMapUnorderedIterator.

They behave like the standard library's (multiprocessing.pool.AsyncResult and the imap
iterators): `get(timeout)` raises `multiprocessing.TimeoutError` when the result is not ready,
`successful()` raises ValueError before then, a failed call re-raises the worker's exception
(with the remote traceback as its `__cause__`), and callbacks run before `get()` returns, one at
a time, in a thread of the pool.
"""

from __future__ import annotations

import collections
import threading
import time
from multiprocessing import TimeoutError


class AsyncResult:
    """The result of apply_async (one call) or of map_async/starmap_async (`chunks` chunks)."""

    def __init__(self, callback_lock, callback=None, error_callback=None, chunks=None):
        self._lock = callback_lock
        self._callback = callback
        self._error_callback = error_callback
        self._event = threading.Event()
        self._single = chunks is None
        self._parts = None if self._single else [None] * chunks
        self._left = 1 if self._single else chunks
        self._success = None
        self._value = None
        if not self._single and chunks == 0:  # map of nothing: ready at once, no callback
            self._success, self._value = True, []
            self._event.set()

    # -- filled in by the pool -----------------------------------------------------------

    def _part_done(self, index, ok, value):
        with self._lock:
            if self._event.is_set():
                return  # an earlier chunk failed: the result is settled
            if not ok:
                self._settle(False, value)
                return
            if self._single:
                self._settle(True, value)
                return
            self._parts[index] = value
            self._left -= 1
            if self._left == 0:
                self._settle(True, [x for part in self._parts for x in part])
                self._parts = None

    def _settle(self, ok, value):
        # Called with the callback lock held: callbacks run one at a time, before get() returns.
        self._success, self._value = ok, value
        try:
            if ok and self._callback is not None:
                self._callback(value)
            elif not ok and self._error_callback is not None:
                self._error_callback(value)
        finally:
            self._event.set()

    # -- the standard library's API ------------------------------------------------------

    def ready(self):
        return self._event.is_set()

    def successful(self):
        if not self.ready():
            raise ValueError(f"{self!r} not ready")
        return self._success

    def wait(self, timeout=None):
        self._event.wait(timeout)

    def get(self, timeout=None):
        self.wait(timeout)
        if not self.ready():
            raise TimeoutError
        if self._success:
            return self._value
        raise self._value


class IMapIterator:
    """imap's iterator: results in input order; `next(timeout)` like the standard library's."""

    _ordered = True

    def __init__(self):
        self._cond = threading.Condition()
        self._ready = {}  # chunk index -> (ok, values), for the ordered iterator
        self._arrived = collections.deque()  # (ok, values), for the unordered one
        self._next_chunk = 0
        self._buffer = collections.deque()
        self._total = None  # chunks, once the input is exhausted
        self._taken = 0
        self._input_error = None

    def _part_done(self, index, ok, value):
        with self._cond:
            if self._ordered:
                self._ready[index] = (ok, value)
            else:
                self._arrived.append((ok, value))
            self._cond.notify_all()

    def _set_total(self, chunks, error=None):
        with self._cond:
            self._total = chunks
            self._input_error = error
            self._cond.notify_all()

    def _pop_chunk(self):
        if self._ordered:
            return self._ready.pop(self._next_chunk, None)
        return self._arrived.popleft() if self._arrived else None

    def __iter__(self):
        return self

    def next(self, timeout=None):
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while True:
                if self._buffer:
                    return self._buffer.popleft()
                part = self._pop_chunk()
                if part is not None:
                    self._next_chunk += 1
                    self._taken += 1
                    ok, values = part
                    if not ok:
                        raise values
                    self._buffer.extend(values)
                    continue
                if self._total is not None and self._taken >= self._total:
                    if self._input_error is not None:
                        error, self._input_error = self._input_error, None
                        raise error
                    raise StopIteration
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise TimeoutError
                self._cond.wait(left)

    __next__ = next


class IMapUnorderedIterator(IMapIterator):
    """imap_unordered's iterator: results in the order their chunks finish."""

    _ordered = False
