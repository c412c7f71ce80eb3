"""Runs tasks inside a worker process: loads functions, resolves arguments, reports results.

A worker runs plain tasks one at a time. Once it receives an actor-creation task it hosts that
actor for the rest of its life: method calls then run inline (max_concurrency=1), on a thread
pool (max_concurrency > 1) or on an asyncio event loop (classes with `async def` methods).
"""

from __future__ import annotations

import asyncio
import collections
import inspect
import os
import pickle
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

from quanta import exceptions
from quanta._private import generators, serialization, session
from quanta._private.serialization import (KIND_ACTOR_DIED, KIND_CANCELLED, KIND_PICKLED,
                                           KIND_TASK_ERROR)

KIND_NORMAL, KIND_CREATION, KIND_METHOD = 0, 1, 2
_functions: dict = {}  # function id -> callable or class, cached for the life of the worker
_PID = os.getpid()


class _ActorRuntime:
    """The actor this worker hosts, and how its calls are run.

    Calls run inline (max_concurrency=1, no concurrency groups), on thread pools (one per
    concurrency group, the default group sized max_concurrency) or on one asyncio loop with a
    semaphore per group (async actors).
    """

    def __init__(self, instance, class_name, max_concurrency, is_async, job_id, groups):
        self.instance = instance
        self.class_name = class_name
        self.job_id = job_id
        self.limits = {"": max_concurrency, **dict(groups)}
        self.pools = None
        self.loop = None
        self.semaphores = None
        if is_async:
            self.inbox = collections.deque()  # calls handed to the loop and not started yet
            self.draining = False  # a _drain is scheduled on the loop
            self.loop = asyncio.new_event_loop()
            started = threading.Event()
            threading.Thread(target=self._run_loop, args=(started,), name="quanta-actor-loop",
                             daemon=True).start()
            started.wait()
        elif max_concurrency > 1 or groups:
            self.pools = {name: ThreadPoolExecutor(n, thread_name_prefix=f"quanta-actor-{name or 'default'}")
                          for name, n in self.limits.items()}

    @property
    def concurrent(self) -> bool:
        return self.pools is not None or self.loop is not None

    def hand_over(self, core, task):
        """Starts an async call on the loop (from the thread that receives tasks). One wake-up of
        the loop carries every call that arrives before it runs: waking it once per call (as
        run_coroutine_threadsafe does) halved the rate of a burst of calls."""
        self.inbox.append(task)
        if not self.draining:
            self.draining = True
            self.loop.call_soon_threadsafe(self._drain, core)

    def _drain(self, core):
        # Cleared first: a call appended after this line schedules another drain, and one
        # appended before it is started by this one.
        self.draining = False
        inbox, start = self.inbox, self.loop.create_task
        while inbox:
            start(_run_async(core, inbox.popleft()))

    def _run_loop(self, started):
        session.set_task_job(self.job_id)
        asyncio.set_event_loop(self.loop)
        self.semaphores = {name: asyncio.Semaphore(n) for name, n in self.limits.items()}
        started.set()
        self.loop.run_forever()


_actor: _ActorRuntime | None = None


def run_loop(core) -> None:
    while True:
        task = core.next_task()
        if task is None:
            return
        kind = task[8]
        if kind == KIND_METHOD and _actor is not None and _actor.concurrent:
            _submit_concurrent(core, task)
            continue
        task_id = task[0]
        returns, retryable = execute(task)
        # Drop the argument buffers before reporting: they pin shared memory, and the release
        # must reach the node ahead of TaskDone (which lets the next task claim that memory).
        task = None
        _report(core, task_id, returns, retryable)
        returns = None


def fail_setup(core, text: str) -> None:
    """This worker's runtime environment could not be set up: its first task (or actor) fails
    with RuntimeEnvSetupError carrying the setup's output, and the worker exits (tasks queued
    behind it go back to the node, which starts a new worker for them)."""
    from quanta.exceptions import RuntimeEnvSetupError

    task = core.next_task()
    if task is None:
        return
    task_id, name, num_returns, kind = task[0], task[3], task[6], task[8]
    err = RuntimeEnvSetupError(f"the runtime_env of {name} could not be set up on this node:\n{text}")
    print(f"runtime_env setup failed: {text}", file=sys.stderr)
    if kind == KIND_CREATION:
        returns = [(KIND_ACTOR_DIED, f"the actor {name} could not be created: RuntimeEnvSetupError: {err}".encode(), [])]
    else:
        returns = [(KIND_TASK_ERROR, serialization.serialize_task_error(err, name, _PID), [])] * max(num_returns, 1)
    _report(core, task_id, returns, False)


def _report(core, task_id, returns, retryable=False):
    returns = _store_large(core, task_id, returns)
    sys.stdout.flush()
    sys.stderr.flush()
    if returns and returns[0][0] == KIND_TASK_ERROR:  # the traceback, for `quanta list tasks`
        core.task_done(task_id, returns, retryable, _error_text(returns[0][1]))
    else:
        core.task_done(task_id, returns, retryable)
    # The returned values (and the ObjectRefs inside them) lived until TaskDone was sent, so the
    # node pinned those refs before this process could release its own references.
    _keepalive.values = None
    if returns and returns[0][0] == KIND_ACTOR_DIED and _actor is not None and _exiting:
        os._exit(0)


_exiting = False
_keepalive = threading.local()


def _error_text(blob: bytes) -> str:
    """The text of a pickled task error (serialization.serialize_task_error: a plain tuple whose
    second item is the traceback; the exception itself stays pickled), the end kept."""
    try:
        _name, tb_text, _cause, _pid, cause_repr = pickle.loads(blob)
        text = tb_text or cause_repr or ""
    except Exception:  # noqa: BLE001 - best effort: the error value itself is what counts
        return ""
    return text[-16384:]


def _retryable(error: BaseException, policy) -> bool:
    """Whether a task's retry_exceptions (None: no; "": every exception; else '\\n'-separated
    qualified class names) allows re-running it after `error`."""
    if policy is None:
        return False
    if policy == "":
        return True
    names = set(policy.split("\n"))
    return any(f"{c.__module__}.{c.__qualname__}" in names for c in type(error).__mro__)


def execute(task) -> tuple:
    """Runs one task: (returns, retryable), retryable when it raised an exception that its
    retry_exceptions allows re-running."""
    (task_id, job_id, fid, name, blob, arg_values, num_returns, payload, kind, method,
     max_concurrency, is_async, groups, _group, retry_policy, gen_mode, backpressure,
     resources, gpus, actor_id) = task
    session.set_task_job(job_id)
    ctx = session._task_context
    ctx.task_id = task_id
    ctx.resources = resources if kind != KIND_METHOD else _actor_resources
    if kind == KIND_CREATION:
        _hosting(actor_id, resources)
    restore = _use_gpus(gpus)
    try:
        # Load the function first: it brings the exporter's sys.path, which the arguments'
        # classes may need.
        if kind == KIND_METHOD:
            fn = getattr(_actor.instance, method)
        else:
            fn = _load(fid, payload, name)
        values = [serialization.deserialize(k, d) for k, d in arg_values]
        args, kwargs = serialization.deserialize_args(blob, values)
        if kind == KIND_CREATION:
            return _create_actor(fn, name, args, kwargs, max_concurrency, is_async, job_id, groups), False
        return _call(fn, args, kwargs, num_returns, name, retry_policy, (task_id, gen_mode, backpressure))
    except Exception as e:  # noqa: BLE001 - argument decoding failed
        return [(KIND_TASK_ERROR, serialization.serialize_task_error(e, name, _PID), [])] * num_returns, False
    finally:
        ctx.task_id = None
        ctx.resources = None
        if kind == KIND_CREATION:
            _keep_actor_gpus()
        elif restore:
            _restore_gpus()


# CUDA_VISIBLE_DEVICES as the worker started with it (the node's), restored after each task
# that was given GPUs; an actor's worker keeps its devices for good.
_ORIGINAL_CUDA = os.environ.get("CUDA_VISIBLE_DEVICES")
_gpu_ids: list = []          # device ids of the running task (or of the actor), as the node named them
_actor_resources = None      # an actor's creation demand, for get_assigned_resources in methods
_actor_id = None             # the actor this worker hosts (bytes), from its constructor on


def _use_gpus(gpus) -> bool:
    """Makes the task's devices the visible ones; True if they must be restored afterwards."""
    global _gpu_ids
    if _actor is not None:
        return False  # an actor's methods run on the devices the actor was given
    _gpu_ids = [g for g, _share in gpus]
    if not gpus:
        return False
    os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(_gpu_ids)
    return True


def _restore_gpus() -> None:
    global _gpu_ids
    _gpu_ids = []
    if _ORIGINAL_CUDA is None:
        os.environ.pop("CUDA_VISIBLE_DEVICES", None)
    else:
        os.environ["CUDA_VISIBLE_DEVICES"] = _ORIGINAL_CUDA


def _hosting(actor_id, resources) -> None:
    """From its constructor on, this worker is the actor's (get_actor_id works in __init__)."""
    global _actor_id, _actor_resources
    _actor_id, _actor_resources = actor_id, resources


def _keep_actor_gpus() -> None:
    """After the constructor: the actor keeps its devices for its life; a failed one gives them up."""
    if _actor is None:
        _restore_gpus()


def gpu_ids() -> list:
    """The GPU ids of the running task or actor: ints, or strings when the node's devices came
    from CUDA_VISIBLE_DEVICES (as Ray returns them)."""
    if _ORIGINAL_CUDA is not None:
        return list(_gpu_ids)
    out = []
    for g in _gpu_ids:
        try:
            out.append(int(g))
        except ValueError:
            out.append(g)
    return out


def current_actor_id():
    """The id (bytes) of the actor this worker hosts, or None."""
    return _actor_id


def assigned_resources() -> dict:
    """{name: amount} held by the running task (or the actor, in its methods)."""
    res = getattr(session._task_context, "resources", None)
    if res is None:
        res = _actor_resources if _actor is not None else None
    from quanta._private.services import RESOURCE_UNIT

    return {name: amount / RESOURCE_UNIT for name, amount in (res or ())}


def _load(fid, payload, name):
    fn = _functions.get(fid)
    if fn is None:
        if payload is None:
            raise RuntimeError(f"the node sent task {name} without its function definition")
        fn = _functions[fid] = serialization.import_function(payload)
    return fn


def _call(fn, args, kwargs, num_returns, name, retry_policy, gen=None) -> tuple:
    global _exiting
    try:
        result = fn(*args, **kwargs)
        if inspect.iscoroutine(result):  # an async method called on a non-async path
            result = asyncio.run(result)
        if gen is not None and gen[1] != generators.NO_GENERATOR:
            result = generators.run_sync(session.current_core(), gen, result, name)
            if gen[1] == generators.STREAMING:
                return result, False
        return pack_returns(result, num_returns, name), False
    except KeyboardInterrupt:
        return [(KIND_CANCELLED, f"task {name} was cancelled while running".encode(), [])] * num_returns, False
    except Exception as e:  # noqa: BLE001 - every task error goes back to the caller
        error = [(KIND_TASK_ERROR, serialization.serialize_task_error(e, name, _PID), [])] * num_returns
        return error, _retryable(e, retry_policy)
    except BaseException as e:
        from quanta.actor import ActorExit

        if isinstance(e, ActorExit):
            _exiting = True
            return [(KIND_ACTOR_DIED, b"the actor exited: exit_actor() was called", [])] * max(num_returns, 1), False
        raise


def _create_actor(cls, name, args, kwargs, max_concurrency, is_async, job_id, groups) -> list:
    global _actor
    try:
        instance = cls(*args, **kwargs)
    except Exception as e:  # noqa: BLE001 - the constructor's error kills the actor
        tb = serialization.format_traceback(e)
        text = f"the actor {name} could not be created: its constructor raised\n{tb}"
        return [(KIND_ACTOR_DIED, text.encode(), [])]
    _actor = _ActorRuntime(instance, name, max_concurrency, is_async, job_id, groups)
    return pack_returns(None, 1, name)


def _submit_concurrent(core, task):
    if _actor.pools is not None:
        box = [task]

        def run():
            t = box.pop()
            task_id = t[0]
            returns, retryable = execute(t)
            t = None
            _report(core, task_id, returns, retryable)

        # The caller checked the group; an unknown one (an older handle) runs in the default.
        _actor.pools.get(task[13], _actor.pools[""]).submit(run)
        return
    _actor.hand_over(core, task)


async def _run_async(core, task):
    (task_id, job_id, fid, name, blob, arg_values, num_returns, payload, kind, method,
     max_concurrency, is_async, _groups, group, retry_policy, gen_mode, backpressure,
     _resources, _gpus, _actor_id) = task
    retryable = False
    session.async_task_id.set(task_id)  # this coroutine's own (its asyncio task has its own context)
    async with _actor.semaphores.get(group, _actor.semaphores[""]):
        try:
            values = [serialization.deserialize(k, d) for k, d in arg_values]
            args, kwargs = serialization.deserialize_args(blob, values)
            fn = getattr(_actor.instance, method)
            result = fn(*args, **kwargs)
            if inspect.iscoroutine(result):
                result = await result
            if gen_mode != generators.NO_GENERATOR:
                result = await generators.run_async(core, (task_id, gen_mode, backpressure), result, name)
            elif inspect.isasyncgen(result):  # num_returns=N: its values are the returns
                result = _Yielded([v async for v in result])
            returns = result if gen_mode == generators.STREAMING else pack_returns(result, num_returns, name)
        except Exception as e:  # noqa: BLE001
            returns = [(KIND_TASK_ERROR, serialization.serialize_task_error(e, name, _PID), [])] * num_returns
            retryable = _retryable(e, retry_policy)
        except BaseException as e:  # noqa: BLE001
            from quanta.actor import ActorExit

            if not isinstance(e, ActorExit):
                raise
            global _exiting
            _exiting = True
            returns = [(KIND_ACTOR_DIED, b"the actor exited: exit_actor() was called", [])] * max(num_returns, 1)
    _report(core, task_id, returns, retryable)


def _store_large(core, task_id, returns):
    """Moves return values above the inline threshold into shared memory (written once)."""
    out = []
    for i, (kind, data, nested) in enumerate(returns):
        if kind == KIND_PICKLED and isinstance(data, tuple):  # (value,) awaiting placement
            rid = task_id[:12] + (i + 1).to_bytes(4, "little")
            try:
                kind, data, nested = serialization.store_or_inline(core, rid, data[0])
            except Exception as e:  # noqa: BLE001 - unpicklable, or ObjectStoreFullError
                if not isinstance(e, exceptions.QuantaError):
                    e = TypeError(f"the task's return value {i} cannot be pickled: {type(e).__name__}: {e}")
                kind, data, nested = KIND_TASK_ERROR, serialization.serialize_task_error(e, "return", _PID), []
        out.append((kind, data, nested))
    return out


class _Yielded(list):
    """The values an async generator yielded, for pack_returns."""


def pack_returns(result, num_returns: int, name: str) -> list:
    if (inspect.isgenerator(result) or type(result) is _Yielded) and num_returns >= 1:
        # num_returns=N with a generator: its values are the N returns (as in Ray).
        result = list(result)
        if len(result) != num_returns:
            raise ValueError(f"task {name} returned {len(result)} objects, but num_returns={num_returns}; "
                             f"a generator with num_returns=N must yield exactly N values (or use "
                             f"num_returns=\"streaming\")")
        if num_returns == 1:
            result = result[0]
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
    _keepalive.values = values
    out = []
    for v in values:
        if _is_small(v):  # builtin scalars: the C pickler is enough and much faster
            out.append((KIND_PICKLED, _dumps(v, 5), []))
        else:
            out.append((KIND_PICKLED, (v,), []))  # placed (inline or shared memory) by _report
    return out


_SMALL_TYPES = (int, float, bool, str, bytes, type(None))
_dumps = __import__("pickle").dumps


def _is_small(v) -> bool:
    return type(v) in _SMALL_TYPES and (type(v) not in (str, bytes) or len(v) < 4096)
