"""The worker side of quanta.util's work slots (see _slots.py): what runs in the process.

`run_job` runs one job (a function applied to one call, or to a chunk of items) as a Quanta task;
`SlotActor` is the dedicated process of an actor slot, which runs an initializer once and then
jobs. Both return a tagged tuple rather than raising, so that a user's exception is data for the
caller, not a failure of the task or of the actor.
"""

from __future__ import annotations

import os
import traceback

CALL, MAP, STARMAP = 0, 1, 2          # what a job's data is: (args, kwargs) / items / arg tuples
OK, ERR, INIT_ERR = 0, 1, 2


def _portable(exc):
    """`exc` if it pickles, else a RuntimeError carrying its type and message."""
    try:
        import cloudpickle

        cloudpickle.dumps(exc)
        return exc
    except Exception:  # noqa: BLE001 - any pickling failure
        return RuntimeError(f"{type(exc).__module__}.{type(exc).__qualname__}: {exc} "
                            "(the original exception could not be pickled)")


def run_job(fn, mode, data):
    """Runs one job; returns (OK, result) or (ERR, exception, traceback text)."""
    try:
        if mode == CALL:
            args, kwargs = data
            return OK, fn(*args, **kwargs)
        if mode == MAP:
            return OK, [fn(x) for x in data]
        return OK, [fn(*a) for a in data]
    except Exception as e:  # noqa: BLE001 - delivered to the caller
        return ERR, _portable(e), traceback.format_exc()


class SlotActor:
    """The process behind one actor slot: runs the initializer once, then jobs."""

    def __init__(self, initializer, initargs):
        self._init_error = None
        if initializer is not None:
            try:
                initializer(*initargs)
            except Exception as e:  # noqa: BLE001 - reported with every job
                self._init_error = (_portable(e), traceback.format_exc())

    def run(self, fn, mode, data):
        if self._init_error is not None:
            return (INIT_ERR,) + self._init_error
        return run_job(fn, mode, data)

    def pid(self):
        return os.getpid()
