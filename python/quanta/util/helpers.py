"""quanta.util.as_completed and quanta.util.map_unordered: results as they become available.

Both follow Ray's ray.util helpers of the same names:

    for value in as_completed([f.remote(x) for x in xs]):   # values, as their tasks finish
        ...
    for value in map_unordered(f, xs, backpressure_size=8):  # at most 8 tasks in flight
        ...

They wait for `chunk_size` refs at a time (quanta.wait's num_returns), so a batch is yielded
once that many are ready, or when fewer remain. Within a batch the input order is kept.

Timeouts: `timeout=` (like `fetch_local=`) is passed on to each quanta.wait(), as in Ray. It
bounds how long a partly ready batch is held back, not the whole iteration: after `timeout`
seconds the refs ready so far are yielded (possibly none) and waiting resumes. These helpers
therefore never raise TimeoutError or GetTimeoutError; the iteration ends when every ref has
been yielded. To give up after a deadline, stop iterating yourself, or use
`quanta.wait(refs, num_returns=len(refs), timeout=...)`, or an Executor's futures with
`concurrent.futures.as_completed(futures, timeout=...)`, which raises TimeoutError.

An error stored in a ref is raised when its batch is reached (as quanta.get raises it); with
`yield_obj_refs=True` the refs themselves are yielded and nothing is raised.
"""

from __future__ import annotations

import quanta

_WAIT_OPTIONS = {"timeout", "fetch_local"}


def _check(chunk_size, kwargs, who):
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int):
        raise TypeError(f"{who}: chunk_size must be an int, got {chunk_size!r}")
    if chunk_size < 1:
        raise ValueError(f"{who}: chunk_size must be >= 1, got {chunk_size}")
    unknown = set(kwargs) - _WAIT_OPTIONS
    if unknown:
        raise TypeError(f"{who}: unexpected keyword arguments {sorted(unknown)}; the extra "
                        f"keywords passed on to quanta.wait() are {sorted(_WAIT_OPTIONS)}")


def _one_batch(refs, chunk_size, yield_obj_refs, wait_kwargs):
    ready, rest = quanta.wait(refs, num_returns=min(chunk_size, len(refs)), **wait_kwargs)
    return (ready if yield_obj_refs else quanta.get(ready)), rest


def as_completed(refs, *, chunk_size=10, yield_obj_refs=False, **kwargs):
    """Yields the values of `refs` (or the refs, with yield_obj_refs=True) as they finish,
    `chunk_size` at a time. Extra keywords (`timeout`, `fetch_local`) go to quanta.wait()."""
    _check(chunk_size, kwargs, "as_completed()")
    if isinstance(refs, quanta.ObjectRef) or not isinstance(refs, (list, tuple)):
        raise TypeError(f"as_completed() takes a list of ObjectRefs, got {type(refs).__name__}")
    pending = list(refs)
    return _iterate(pending, chunk_size, yield_obj_refs, kwargs)


def _iterate(pending, chunk_size, yield_obj_refs, wait_kwargs):
    while pending:
        batch, pending = _one_batch(pending, chunk_size, yield_obj_refs, wait_kwargs)
        yield from batch


def map_unordered(fn, items, *, backpressure_size=100, chunk_size=10, yield_obj_refs=False,
                  **kwargs):
    """Runs `fn.remote(item)` for every item and yields the results as they finish.

    At most `backpressure_size` tasks are in flight (None: no limit): once that many are
    submitted, the next is submitted only after a batch of results has been yielded."""
    _check(chunk_size, kwargs, "map_unordered()")
    if not hasattr(fn, "remote"):
        raise TypeError(f"map_unordered() takes a remote function (made with @quanta.remote), "
                        f"got {type(fn).__name__}")
    if backpressure_size is not None:
        if isinstance(backpressure_size, bool) or not isinstance(backpressure_size, int):
            raise TypeError(f"backpressure_size must be an int or None, got {backpressure_size!r}")
        if backpressure_size < 1:
            raise ValueError(f"backpressure_size must be >= 1 (or None), got {backpressure_size}")
    return _map(fn, items, backpressure_size, chunk_size, yield_obj_refs, kwargs)


def _map(fn, items, backpressure_size, chunk_size, yield_obj_refs, wait_kwargs):
    pending = []
    for item in items:
        while backpressure_size is not None and len(pending) >= backpressure_size:
            batch, pending = _one_batch(pending, chunk_size, yield_obj_refs, wait_kwargs)
            yield from batch
        pending.append(fn.remote(item))
    yield from _iterate(pending, chunk_size, yield_obj_refs, wait_kwargs)


__all__ = ["as_completed", "map_unordered"]
