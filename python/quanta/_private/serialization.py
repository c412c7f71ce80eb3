"""Serialisation of values, task arguments and errors (Python side only).

Values are pickled with cloudpickle (protocol 5). ObjectRefs found while pickling are
collected so the engine can keep them alive as long as the containing object or task lives.
Top-level ObjectRef arguments of a task are replaced by RefSlot placeholders; the node
resolves them to values before the task runs.
"""

from __future__ import annotations

import pickle
import threading
import traceback

import cloudpickle

from quanta import exceptions

# Object kinds, as in src/protocol/messages.h (ObjectKind).
KIND_PICKLED = 0
KIND_TASK_ERROR = 1
KIND_WORKER_CRASHED = 2
KIND_CANCELLED = 3
KIND_ACTOR_DIED = 4
KIND_OBJECT_LOST = 5

_context = threading.local()


def note_nested_ref(binary: bytes) -> None:
    refs = getattr(_context, "refs", None)
    if refs is not None:
        refs.append(binary)


def rebuild_ref(binary: bytes):
    from quanta.object_ref import ObjectRef

    return ObjectRef(binary)


class RefSlot:
    """Placeholder for the i-th top-level ObjectRef argument of a task."""

    __slots__ = ("index",)

    def __init__(self, index: int):
        self.index = index

    def __reduce__(self):
        return (RefSlot, (self.index,))


def serialize(value) -> tuple[bytes, list]:
    """Returns (pickled bytes, ids of the ObjectRefs inside)."""
    outer = getattr(_context, "refs", None)
    _context.refs = []
    try:
        data = cloudpickle.dumps(value, protocol=5)
        return data, _context.refs
    finally:
        _context.refs = outer


def deserialize(kind: int, data: bytes):
    """Returns the value, or raises the error the object stands for."""
    if kind == KIND_PICKLED:
        return pickle.loads(data)
    raise error_from(kind, data)


def error_from(kind: int, data: bytes) -> BaseException:
    if kind == KIND_TASK_ERROR:
        return task_error_from_bytes(data).as_instanceof_cause()
    text = data.decode("utf-8", "replace")
    if kind == KIND_WORKER_CRASHED:
        return exceptions.WorkerCrashedError(text)
    if kind == KIND_CANCELLED:
        return exceptions.TaskCancelledError(text)
    if kind == KIND_ACTOR_DIED:
        return exceptions.ActorDiedError(text)
    if kind == KIND_OBJECT_LOST:
        return exceptions.ObjectLostError(text)
    return exceptions.QuantaSystemError(f"object of unknown kind {kind}: {text}")


def serialize_args(args: tuple, kwargs: dict, ref_type, signature=None) -> tuple[bytes, list, list]:
    """Returns (blob, top-level ref ids, nested ref ids) for a task's arguments."""
    arg_refs = []
    if args:
        new_args = []
        for a in args:
            if type(a) is ref_type:
                new_args.append(RefSlot(len(arg_refs)))
                arg_refs.append(a._id)
            else:
                new_args.append(a)
    else:
        new_args = ()
    if kwargs:
        new_kwargs = {}
        for k, v in kwargs.items():
            if type(v) is ref_type:
                new_kwargs[k] = RefSlot(len(arg_refs))
                arg_refs.append(v._id)
            else:
                new_kwargs[k] = v
    else:
        new_kwargs = None
    if not new_args and not new_kwargs:
        return b"", arg_refs, []
    try:
        blob, nested = serialize((new_args, new_kwargs))
    except Exception as e:
        raise _unpicklable_argument_error(args, kwargs, ref_type, e, signature) from None
    return blob, arg_refs, nested


def deserialize_args(blob: bytes, values: list):
    """Inverse of serialize_args on the worker; `values` are the resolved ref arguments."""
    if not blob:
        return (), {}
    args, kwargs = pickle.loads(blob)
    if values:
        args = [values[a.index] if type(a) is RefSlot else a for a in args]
        if kwargs:
            kwargs = {k: values[v.index] if type(v) is RefSlot else v for k, v in kwargs.items()}
    return args, kwargs or {}


def _unpicklable_argument_error(args, kwargs, ref_type, original, signature=None) -> TypeError:
    named = None
    if signature:
        try:
            bound = signature.bind(*args, **kwargs).arguments
            named = [(f"argument '{k}'", v) for k, v in bound.items()]
        except TypeError:
            named = None
    if named is None:
        named = [(f"argument {i}", a) for i, a in enumerate(args)]
        named += [(f"keyword argument '{k}'", v) for k, v in kwargs.items()]
    for label, value in named:
        if type(value) is ref_type:
            continue
        try:
            cloudpickle.dumps(value, protocol=5)
        except Exception as e:  # noqa: BLE001 - we are looking for the culprit
            culprit, path = find_unpicklable(value)
            path = path.replace("the argument", label.split(" ", 1)[-1].strip("'"), 1)
            inner = f" (the unpicklable object inside is {path}: {culprit!r:.200})" if path else ""
            return TypeError(
                f"Could not serialize {label} of type {type(value).__name__}{inner}: "
                f"{type(e).__name__}: {e}. Task arguments must be picklable with cloudpickle; "
                "pass something picklable, or create the object inside the task.")
    return TypeError(f"Could not serialize the task arguments: {original}")


def find_unpicklable(value, path="the argument", depth=0):
    """Descends into containers and attributes to the innermost object that fails to pickle."""
    if depth > 6:
        return value, path
    children = []
    if isinstance(value, dict):
        children = [(f"{path}[{k!r}]", v) for k, v in value.items()]
    elif isinstance(value, (list, tuple, set, frozenset)):
        children = [(f"{path}[{i}]", v) for i, v in enumerate(value)]
    elif hasattr(value, "__dict__") and not isinstance(value, type):
        children = [(f"{path}.{k}", v) for k, v in vars(value).items()]
    for child_path, child in children:
        try:
            cloudpickle.dumps(child, protocol=5)
        except Exception:  # noqa: BLE001
            return find_unpicklable(child, child_path, depth + 1)
    return value, path


def serialize_task_error(exc: BaseException, function_name: str, pid: int) -> bytes:
    """Pickles a task's exception so the caller can re-raise it, even if the class is unknown there."""
    if isinstance(exc, exceptions.TaskError):  # a failed dependency re-raised inside this task
        cause = exc.cause
        tb_text = exc.traceback_str
        function_name = exc.function_name
        pid = exc.pid or pid
    else:
        cause = exc
        tb_text = "".join(traceback.format_exception(type(exc), exc, _user_frames(exc.__traceback__)))
    try:
        cause_bytes = cloudpickle.dumps(cause, protocol=5)
    except Exception:  # noqa: BLE001 - unpicklable exceptions still travel as text
        cause_bytes = None
    return pickle.dumps((function_name, tb_text, cause_bytes, pid, repr(cause)), protocol=5)


def task_error_from_bytes(data: bytes) -> exceptions.TaskError:
    function_name, tb_text, cause_bytes, pid, cause_repr = pickle.loads(data)
    cause = None
    if cause_bytes is not None:
        try:
            cause = pickle.loads(cause_bytes)
        except Exception:  # noqa: BLE001 - class not importable here: keep the text
            cause = None
    return exceptions.TaskError(function_name, tb_text, cause, pid, cause_repr)


def _user_frames(tb):
    """Skips the worker's own frames so the traceback starts in user code."""
    while tb is not None and tb.tb_frame.f_globals.get("__name__", "").startswith("quanta._private"):
        tb = tb.tb_next
    return tb
