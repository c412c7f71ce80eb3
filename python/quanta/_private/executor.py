"""Runs tasks inside a worker process: loads functions, resolves arguments, reports results."""

from __future__ import annotations

import os
import pickle
import sys

from quanta._private import serialization, session
from quanta._private.serialization import KIND_CANCELLED, KIND_PICKLED, KIND_TASK_ERROR

_functions: dict = {}  # function id -> callable, cached for the life of the worker
_PID = os.getpid()


def run_loop(core) -> None:
    while True:
        task = core.next_task()
        if task is None:
            return
        returns = execute(task)
        sys.stdout.flush()
        sys.stderr.flush()
        core.task_done(task[0], returns)


def execute(task) -> list:
    task_id, job_id, fid, name, blob, arg_values, num_returns, payload = task
    session.set_task_job(job_id)
    session._task_context.task_id = task_id
    try:
        try:
            fn = _functions.get(fid)
            if fn is None:
                if payload is None:
                    raise RuntimeError(f"the node sent task {name} without its function definition")
                fn = _functions[fid] = pickle.loads(payload)
            values = [serialization.deserialize(kind, data) for kind, data in arg_values]
            args, kwargs = serialization.deserialize_args(blob, values)
            result = fn(*args, **kwargs)
            return pack_returns(result, num_returns, name)
        except KeyboardInterrupt:
            text = f"task {name} was cancelled while running".encode()
            return [(KIND_CANCELLED, text, [])] * num_returns
        except Exception as e:  # noqa: BLE001 - every task error goes back to the caller
            data = serialization.serialize_task_error(e, name, _PID)
            return [(KIND_TASK_ERROR, data, [])] * num_returns
    finally:
        session._task_context.task_id = None


def pack_returns(result, num_returns: int, name: str) -> list:
    if num_returns == 1:
        values = (result,)
    elif num_returns == 0:
        if result is not None:
            raise ValueError(f"task {name} has num_returns=0 but returned {type(result).__name__}")
        return []
    else:
        if not isinstance(result, (tuple, list)) or len(result) != num_returns:
            got = f"{len(result)} values" if isinstance(result, (tuple, list)) else type(result).__name__
            raise ValueError(f"task {name} has num_returns={num_returns} but returned {got}; "
                             f"return a tuple or list of exactly {num_returns} values")
        values = result
    out = []
    for v in values:
        try:
            data, nested = serialization.serialize(v)
        except Exception as e:  # noqa: BLE001
            raise TypeError(f"task {name} returned a value that cannot be pickled: "
                            f"{type(e).__name__}: {e}") from e
        out.append((KIND_PICKLED, data, nested))
    return out
