"""Generators as tasks (Ray's streaming generators, num_returns="streaming" / "dynamic").

A task or actor method that `yield`s returns an ObjectRefGenerator from `.remote()`: it hands
out one ObjectRef per yielded value, in order, as soon as the worker has produced it (the worker
sends each item to the caller's node as it is yielded; the caller's node owns the items). The
task's single return, `completed()`, is sealed when the generator ends; an exception inside the
generator is delivered at its position: the ref after the last item raises it, then iteration
stops.
"""

from __future__ import annotations

from quanta.object_ref import ObjectRef

NO_GENERATOR, STREAMING, DYNAMIC = 0, 1, 2
BACKPRESSURE_OPTION = "_generator_backpressure_num_objects"


def mode_of(num_returns, is_generator: bool, explicit: bool):
    """(num_returns to submit, generator mode) for a call's num_returns option."""
    if num_returns == "streaming" or (is_generator and not explicit):
        return 1, STREAMING
    if num_returns == "dynamic":
        return 1, DYNAMIC
    return num_returns, NO_GENERATOR


def check_num_returns(n) -> None:
    if n in ("streaming", "dynamic"):
        return
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"option num_returns must be an int, \"streaming\" or \"dynamic\", got {n!r}")
    if n < 0:
        raise ValueError(f"option num_returns must be >= 0, got {n}")


def check_backpressure(n) -> None:
    if isinstance(n, bool) or not isinstance(n, int) or (n < 1 and n != -1):
        raise ValueError(f"option {BACKPRESSURE_OPTION} must be a positive int (or -1: no limit), got {n!r}")


def backpressure_for(options: dict, mode: int, what: str) -> int:
    n = options.get(BACKPRESSURE_OPTION, -1)
    if n == -1 or n is None:
        return 0
    if mode != STREAMING:
        raise ValueError(f"{what}: option {BACKPRESSURE_OPTION} applies only to streaming generators "
                         f"(a function that yields, or num_returns=\"streaming\")")
    return n


def wrap_returns(core, ids, num_returns, mode):
    """What .remote() returns for the submitted task's return ids."""
    if mode == STREAMING:
        return ObjectRefGenerator(core, ObjectRef._adopt(core, ids[0]))
    refs = [ObjectRef._adopt(core, i) for i in ids]
    if mode == DYNAMIC or num_returns == 1:
        return refs[0]
    return refs if num_returns else None


class ObjectRefGenerator:
    """The refs a streaming generator task yields, in order, as they are produced.

    Iterate with `for` / `next()` (blocks until the next item exists) or `async for`; pass it to
    `quanta.wait([gen])` (ready once the next item, or the end, is there) and to
    `quanta.cancel(gen)`. Items not taken when the generator object is dropped are freed.
    """

    def __init__(self, core, completion: ObjectRef):
        self._core = core
        self._ref = completion
        self._task = completion.binary()[:12] + b"\0\0\0\0"
        self._next = 0
        self._done = False

    def _item_id(self, k: int) -> bytes:
        return self._task[:12] + (k + 2).to_bytes(4, "little")

    def __iter__(self):
        return self

    def __next__(self) -> ObjectRef:
        return self._next_sync()

    def _next_sync(self, timeout_s=None) -> ObjectRef:
        """The next item's ref; StopIteration at the end; TimeoutError (with timeout_s) if it is
        not there in time."""
        if self._done:
            raise StopIteration
        ms = -1 if timeout_s is None else max(0, int(timeout_s * 1000))
        state = self._core.generator_next(self._task, self._next, ms)
        if state == 0:
            ref = ObjectRef._adopt(self._core, self._item_id(self._next))
            self._next += 1
            return ref
        if state == 2:
            raise TimeoutError(f"the generator's item {self._next} was not produced within {timeout_s} s")
        self._done = True
        from quanta._private import api

        try:
            api.get(self._ref)
        except Exception:  # noqa: BLE001 - the error that ended it, at its position
            return self._ref
        raise StopIteration

    def __aiter__(self):
        return self

    async def __anext__(self) -> ObjectRef:
        if self._done:
            raise StopAsyncIteration
        received, finished = self._core.generator_state(self._task)
        if received > self._next or finished:  # no need to wait: no thread hop
            ref = self._next_or_none()
        else:
            import asyncio  # here, not at the top: `import quanta` stays free of asyncio's ~20 ms

            ref = await asyncio.get_running_loop().run_in_executor(None, self._next_or_none)
        if ref is None:
            raise StopAsyncIteration
        return ref

    def _next_or_none(self):
        # StopIteration cannot cross a Future: the end is None here.
        try:
            return self._next_sync()
        except StopIteration:
            return None

    def completed(self) -> ObjectRef:
        """A ref that is ready when the generator task has finished (raises its error, if any)."""
        return self._ref

    def is_finished(self) -> bool:
        """True once the task has ended and every item it yielded has been taken."""
        received, finished = self._core.generator_state(self._task)
        return self._done or (finished and self._next >= received)

    def _next_ready_id(self) -> bytes:
        # For quanta.wait: the id that is ready when next() would not block.
        return self._item_id(self._next)

    def task_id(self) -> bytes:
        return self._task

    def __reduce__(self):
        raise TypeError("an ObjectRefGenerator cannot be pickled or passed to another task; iterate it "
                        "here and pass the ObjectRefs it yields instead")

    def __del__(self):
        core = getattr(self, "_core", None)
        if core is not None:
            try:
                core.generator_release(self._task, self._next)
            except Exception:  # noqa: BLE001 - interpreter shutdown
                pass

    def __repr__(self):
        return f"ObjectRefGenerator({self._ref.hex()})"


class DynamicObjectRefGenerator:
    """The value of a num_returns="dynamic" task: the refs of every value it yielded, in order."""

    def __init__(self, refs):
        self._refs = list(refs)

    def __iter__(self):
        return iter(self._refs)

    def __len__(self):
        return len(self._refs)

    def __repr__(self):
        return f"DynamicObjectRefGenerator({len(self._refs)} refs)"
