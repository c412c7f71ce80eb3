"""The worker side of generator tasks: sending each yielded value as it is produced.

Streaming: item k goes to the node at once (GeneratorItem; small values inline, large ones
written into shared memory first, like any return); the worker pauses while the consumer has
`_generator_backpressure_num_objects` items it has not taken. The task's return is the count of
items; an exception ends it at its position. Dynamic: every value is `put`, and the return is a
DynamicObjectRefGenerator of their refs.
"""

from __future__ import annotations

import asyncio
import inspect
import pickle

from quanta import exceptions
from quanta._private import serialization
from quanta._private.serialization import KIND_PICKLED

NO_GENERATOR, STREAMING, DYNAMIC = 0, 1, 2
_WAIT_SLICE_MS = 200  # back to Python this often while paused, so a cancellation interrupts it


def _not_a_generator(result, name):
    return TypeError(f"task {name} was submitted as a generator (num_returns=\"streaming\"/\"dynamic\") "
                     f"but returned {type(result).__name__}, not a generator; use yield, or an int "
                     f"num_returns")


def _send(core, task_id: bytes, k: int, value) -> None:
    rid = task_id[:12] + (k + 2).to_bytes(4, "little")
    try:
        kind, data, nested = serialization.store_or_inline(core, rid, value)
    except exceptions.QuantaError:
        raise
    except Exception as e:  # noqa: BLE001 - the generator ends here, with this error
        raise TypeError(f"the value the generator yielded at position {k} cannot be pickled: "
                        f"{type(e).__name__}: {e}") from None
    core.generator_item(task_id, k, kind, data, nested)


def _dynamic(values):
    from quanta._private import api
    from quanta.generator import DynamicObjectRefGenerator

    return DynamicObjectRefGenerator([api.put(v) for v in values])


def run_sync(core, gen, result, name):
    """Runs a generator task's generator on this thread; the task's returns (streaming) or its
    single value (dynamic)."""
    task_id, mode, backpressure = gen
    if inspect.isasyncgen(result):
        return asyncio.run(run_async(core, gen, result, name))
    if not inspect.isgenerator(result):
        raise _not_a_generator(result, name)
    if mode == DYNAMIC:
        return _dynamic(result)
    k = 0
    for value in result:
        _send(core, task_id, k, value)
        value = None
        k += 1
        if backpressure:
            while not core.generator_wait(task_id, k, backpressure, _WAIT_SLICE_MS):
                pass
    return [(KIND_PICKLED, pickle.dumps(k), [])]


async def run_async(core, gen, result, name):
    """The same on an async actor's event loop (async generators, or plain ones)."""
    task_id, mode, backpressure = gen
    if inspect.isgenerator(result):
        if mode == DYNAMIC:
            return _dynamic(result)
        values = result
    elif inspect.isasyncgen(result):
        if mode == DYNAMIC:
            return _dynamic([v async for v in result])
        values = None
    else:
        raise _not_a_generator(result, name)
    loop = asyncio.get_running_loop()
    k = 0

    async def paced():
        if backpressure and not core.generator_wait(task_id, k, backpressure, 0):
            # Paused without blocking the loop: the actor's other calls go on.
            while not await loop.run_in_executor(None, core.generator_wait, task_id, k, backpressure,
                                                 _WAIT_SLICE_MS):
                pass

    if values is not None:
        for value in values:
            _send(core, task_id, k, value)
            k += 1
            await paced()
    else:
        async for value in result:
            _send(core, task_id, k, value)
            k += 1
            await paced()
    return [(KIND_PICKLED, pickle.dumps(k), [])]
