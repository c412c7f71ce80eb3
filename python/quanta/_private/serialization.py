"""Serialisation of values, task arguments and errors (Python side only).

Values are pickled with cloudpickle (protocol 5). ObjectRefs found while pickling are
collected so the engine can keep them alive as long as the containing object or task lives.
Top-level ObjectRef arguments of a task are replaced by RefSlot placeholders; the node
resolves them to values before the task runs.
"""

from __future__ import annotations

import pickle
import struct
import threading
import traceback



class _FirstUse:
    """Stands for the cloudpickle module until first used, then replaces itself with it: its
    import (with pathlib and friends, ~10 ms) is not paid by `import quanta` or the CLI."""

    def __getattr__(self, name):
        import cloudpickle as module

        globals()["cloudpickle"] = module
        return getattr(module, name)


cloudpickle = _FirstUse()
from quanta import exceptions

# Object kinds, as in src/protocol/messages.h (ObjectKind).
KIND_PICKLED = 0
KIND_TASK_ERROR = 1
KIND_WORKER_CRASHED = 2
KIND_CANCELLED = 3
KIND_ACTOR_DIED = 4
KIND_OBJECT_LOST = 5
KIND_STORED = 6       # bytes in the node's shared-memory store (see "Stored layout" below)
KIND_STORE_FULL = 7
KIND_OWNER_DIED = 8
KIND_NODE_DIED = 9
KIND_UNSCHEDULABLE = 10
KIND_TIMED_OUT = 11
KIND_LINEAGE_EVICTED = 12
KIND_RECONSTRUCTION_FAILED = 13

_context = threading.local()


def note_nested_ref(binary: bytes) -> None:
    refs = getattr(_context, "refs", None)
    if refs is not None:
        refs.append(binary)


def rebuild_ref(binary: bytes, cluster_id: int = 0):
    from quanta._private import session
    from quanta.object_ref import ObjectRef

    core = session.current_core()
    if core is not None and cluster_id and core.cluster_id and core.cluster_id != cluster_id:
        raise ValueError(f"ObjectRef({binary.hex()}) (or the actor handle holding it) was pickled in "
                         f"Quanta cluster {cluster_id:016x}, but this process is connected to cluster "
                         f"{core.cluster_id:016x}; refs and actor handles are only valid in the cluster "
                         "that made them. Recreate the object or actor (or look the actor up by name) "
                         "in this cluster.")
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


def deserialize(kind: int, data):
    """Returns the value, or raises the error the object stands for. For KIND_STORED, `data` is
    a read-only buffer over the object in shared memory; out-of-band buffers (numpy arrays,
    bytes-likes) in the result view it directly, without a copy."""
    if kind == KIND_PICKLED:
        return pickle.loads(data)
    if kind == KIND_STORED:
        return _load_stored(data)
    raise error_from(kind, data)


# Stored layout: header, pickle stream, then each out-of-band buffer, all 64-byte aligned.
#   u32 magic | u32 buffer count | u64 pickle length | count x (u64 offset, u64 length)
_MAGIC = 0x31415451  # "QTA1"
_HEADER = struct.Struct("<IIQ")
_BUFFER = struct.Struct("<QQ")
_LOCATION = struct.Struct("<QQB")  # protocol StoredLocation: offset, size, pinned
_ALIGN = 64
_SCALARS = (int, float, bool, str, bytes, type(None))


def _align(n: int) -> int:
    return (n + _ALIGN - 1) // _ALIGN * _ALIGN


def _pickle_out_of_band(value):
    outer = getattr(_context, "refs", None)
    _context.refs = []
    buffers = []
    try:
        data = cloudpickle.dumps(value, protocol=5, buffer_callback=buffers.append)
        return data, buffers, _context.refs
    finally:
        _context.refs = outer


def store_or_inline(core, object_id: bytes, value):
    """Serializes `value` for object `object_id`. Small values come back inline as
    (KIND_PICKLED, bytes, refs); large ones are written once into shared memory and come back as
    (KIND_STORED, location bytes, refs)."""
    threshold = core.inline_threshold if core.has_store else 1 << 62
    if type(value) in _SCALARS and (type(value) not in (str, bytes) or len(value) < 4096):
        return KIND_PICKLED, pickle.dumps(value, protocol=5), []
    data, buffers, refs = _pickle_out_of_band(value)
    raws = []
    try:
        raws = [b.raw() for b in buffers]
    except BufferError:  # non-contiguous buffers: keep them in-band
        raws = None
    total_buffers = sum(r.nbytes for r in raws) if raws else 0
    if raws is None or len(data) + total_buffers < threshold:
        if buffers:
            data, refs = serialize(value)  # small: one in-band pickle
        return KIND_PICKLED, data, refs
    header_len = _align(_HEADER.size + len(raws) * _BUFFER.size)
    offsets, cursor = [], _align(header_len + len(data))
    for r in raws:
        offsets.append(cursor)
        cursor = _align(cursor + r.nbytes)
    total = cursor
    header = bytearray(_HEADER.pack(_MAGIC, len(raws), len(data)))
    for off, r in zip(offsets, raws):
        header += _BUFFER.pack(off, r.nbytes)
    try:
        base = core.create_stored(object_id, total)
    except MemoryError as e:
        raise exceptions.ObjectStoreFullError(str(e)) from None
    core.write_stored(base, bytes(header))
    core.write_stored(base + header_len, data)
    for off, r in zip(offsets, raws):
        core.write_stored(base + off, r)
    return KIND_STORED, _LOCATION.pack(base, total, 0), refs


def _load_stored(view):
    mv = memoryview(view)
    magic, count, pickle_len = _HEADER.unpack_from(mv, 0)
    if magic != _MAGIC:
        raise exceptions.QuantaSystemError("corrupt object in the shared-memory store (bad header)")
    buffers = []
    for i in range(count):
        off, length = _BUFFER.unpack_from(mv, _HEADER.size + i * _BUFFER.size)
        buffers.append(mv[off:off + length])
    header_len = _align(_HEADER.size + count * _BUFFER.size)
    return pickle.loads(mv[header_len:header_len + pickle_len], buffers=buffers)


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
    if kind == KIND_STORE_FULL:
        return exceptions.ObjectStoreFullError(text)
    if kind == KIND_OWNER_DIED:
        return exceptions.OwnerDiedError(text)
    if kind == KIND_NODE_DIED:
        return exceptions.NodeDiedError(text)
    if kind == KIND_TIMED_OUT:
        return exceptions.TaskTimeoutError(text)
    if kind == KIND_LINEAGE_EVICTED:
        return exceptions.ObjectReconstructionFailedLineageEvictedError(text)
    if kind == KIND_RECONSTRUCTION_FAILED:
        return exceptions.ObjectReconstructionFailedMaxAttemptsExceededError(text)
    if kind == KIND_UNSCHEDULABLE:
        if text.startswith("actor"):
            return exceptions.ActorUnschedulableError(text)
        return exceptions.TaskUnschedulableError(text)
    return exceptions.QuantaSystemError(f"object of unknown kind {kind}: {text}")


def _buffer_size(v) -> int:
    """Bytes of a value that is one big buffer (numpy array, bytes-like), else 0."""
    t = type(v)
    if t in (bytes, bytearray):
        return len(v)
    if t is memoryview:
        return v.nbytes
    if t.__module__ == "numpy" and t.__name__ == "ndarray":
        return v.nbytes
    return 0


def serialize_args(args: tuple, kwargs: dict, ref_type, signature=None, put=None,
                   threshold: int = 1 << 62) -> tuple[bytes, list, list, list]:
    """Returns (blob, top-level ref ids, nested ref ids, keepalive) for a task's arguments.

    Large arguments (a big buffer, or anything when the pickled arguments exceed the inline
    threshold) are stored with `put` and passed as refs, as Ray does: they then reach the worker
    through shared memory, zero-copy, instead of inside the task message. `keepalive` holds those
    refs until the task is submitted."""
    arg_refs = []
    keep = []

    def convert(v, force_put=False):
        if type(v) is ref_type:
            arg_refs.append(v._id)
            return RefSlot(len(arg_refs) - 1)
        if put is not None and (force_put or _buffer_size(v) >= threshold):
            ref = put(v)
            keep.append(ref)
            arg_refs.append(ref._id)
            return RefSlot(len(arg_refs) - 1)
        return v

    def build(force_put=False):
        arg_refs.clear()
        keep.clear()
        new_args = [convert(a, force_put) for a in args] if args else ()
        new_kwargs = {k: convert(v, force_put) for k, v in kwargs.items()} if kwargs else None
        return new_args, new_kwargs

    new_args, new_kwargs = build()
    if not new_args and not new_kwargs:
        return b"", arg_refs, [], keep
    try:
        blob, nested = serialize((new_args, new_kwargs))
        if put is not None and len(blob) >= threshold and len(blob) > 1 << 20:
            # Big arguments of other kinds: store each one rather than ship megabytes inline.
            new_args, new_kwargs = build(force_put=True)
            blob, nested = serialize((new_args, new_kwargs))
    except Exception as e:
        raise _unpicklable_argument_error(args, kwargs, ref_type, e, signature) from None
    return blob, arg_refs, nested, keep


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
    via = ()
    if isinstance(exc, exceptions.TaskError):  # a failed dependency re-raised inside this task
        cause = exc.cause
        tb_text = exc.traceback_str
        via = exc.via + [function_name]
        function_name = exc.function_name
        pid = exc.pid or pid
    else:
        cause = exc
        tb_text = format_traceback(exc)
    try:
        cause_bytes = cloudpickle.dumps(cause, protocol=5)
    except Exception:  # noqa: BLE001 - unpicklable exceptions still travel as text
        cause_bytes = None
    if cause_bytes is not None and len(cause_bytes) > _MAX_ERROR_BYTES:
        cause_bytes = _smaller_exception(cause)
    data = pickle.dumps((function_name, _clip(tb_text), cause_bytes, pid, _clip(repr(cause))), protocol=5)
    return data + b"".join(b"\0" + name.encode() for name in via)


# An error travels inline to whoever waits for it; a huge message (a 400 MiB repr) is cut to
# this, with a note of its real size, so it arrives as the application error it is.
_MAX_ERROR_BYTES = 1 << 20


def _clip(text: str, limit: int = _MAX_ERROR_BYTES) -> str:
    if len(text) <= limit:
        return text
    return (text[: limit // 2] + f"\n... [{len(text) - limit:,} characters cut: the original was "
            f"{len(text):,} characters long] ...\n" + text[-limit // 2:])


def _smaller_exception(exc):
    """The exception rebuilt with its message clipped (same class, so `except` clauses still
    match), or None if the class cannot be rebuilt from a message."""
    try:
        small = type(exc)(_clip(str(exc)))
        data = cloudpickle.dumps(small, protocol=5)
        return data if len(data) <= 2 * _MAX_ERROR_BYTES else None
    except Exception:  # noqa: BLE001
        return None


def task_error_from_bytes(data: bytes) -> exceptions.TaskError:
    """The TaskError in `data`: a pickle, then for each task the failure passed on to (innermost
    first) '\0' and its name, appended by the worker that re-raised it or by the node that
    failed a task whose argument had failed (TaskManager::AddToErrorChain)."""
    import io

    stream = io.BytesIO(data)
    function_name, tb_text, cause_bytes, pid, cause_repr = pickle.Unpickler(stream).load()
    rest = stream.read()
    via = [name.decode("utf-8", "replace") for name in rest.split(b"\0")[1:]] if rest else []
    cause = None
    if cause_bytes is not None:
        try:
            cause = pickle.loads(cause_bytes)
        except Exception:  # noqa: BLE001 - class not importable here: keep the text
            cause = None
    return exceptions.TaskError(function_name, tb_text, cause, pid, cause_repr, via)


def _user_frames(tb):
    """Skips the worker's own frames so the traceback starts in user code."""
    while tb is not None and tb.tb_frame.f_globals.get("__name__", "").startswith("quanta._private"):
        tb = tb.tb_next
    return tb


# The engine's frame limit (protocol/frame.h) less room for the message around the payload.
_MAX_FUNCTION_BYTES = (1 << 30) - (1 << 16)


def export_function(fn) -> bytes:
    """The payload registered for a function or class: the exporter's sys.path (so workers can
    import the modules it refers to by name), the source of the files its code comes from (so a
    worker on a host without those files still shows the lines in tracebacks) and its pickle.
    cloudpickle would replace every file name with "<dynamic-code>"; _FilePreservingPickler keeps
    the real ones, so a traceback through the function or any helper it carries names the file."""
    import io
    import sys

    buf = io.BytesIO()
    pickler = _file_preserving_pickler()(buf, protocol=5)
    pickler.dump(fn)
    payload = pickle.dumps(([p for p in sys.path if p], _sources_of(pickler.files), buf.getvalue()),
                           protocol=5)
    if len(payload) > _MAX_FUNCTION_BYTES:
        kind = "class" if isinstance(fn, type) else "function"
        raise ValueError(
            f"the remote {kind} {getattr(fn, '__qualname__', fn)!r} is {len(payload) >> 20} MiB when pickled, "
            f"more than the {_MAX_FUNCTION_BYTES >> 20} MiB a definition may have: it captures large data "
            "(a global or closure variable). Pass the data as an argument, or quanta.put() it once and "
            "pass the ref.")
    return payload


def import_function(payload: bytes):
    import linecache
    import os
    import sys

    paths, sources, data = pickle.loads(payload)
    for p in paths:
        if p not in sys.path:
            sys.path.append(p)
    for filename, text in sources.items():
        # Only where the file is not on this host: the local file, if any, is the truth. No mtime,
        # so linecache.checkcache keeps the entry.
        if not os.path.exists(filename):
            linecache.cache[filename] = (len(text), None, text.splitlines(True), filename)
    return pickle.loads(data)


_pickler_class = None
_MAX_SOURCE_BYTES = 1 << 20  # per file carried with a function; larger files are left out


def _file_preserving_pickler():
    """A cloudpickle Pickler whose code objects keep their co_filename (built on first use, as
    cloudpickle itself is imported on first use). It records the file names it saw."""
    global _pickler_class
    if _pickler_class is None:
        import types

        base = cloudpickle.Pickler
        code_reduce = base.dispatch_table[types.CodeType]

        class _FilePreservingPickler(base):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, **kwargs)
                self.files = set()

            def reducer_override(self, obj):
                if type(obj) is types.CodeType:
                    return self._code_reduce(obj)
                return super().reducer_override(obj)

            def _code_reduce(self, code):
                ctor, args = code_reduce(code)
                if code.co_filename.startswith("<"):
                    return ctor, args
                self.files.add(code.co_filename)
                return ctor, tuple(code.co_filename if a == "<dynamic-code>" else a for a in args)

        _pickler_class = _FilePreservingPickler
    return _pickler_class


def _sources_of(files) -> dict:
    import os

    sources = {}
    for filename in files:
        try:
            if os.path.getsize(filename) <= _MAX_SOURCE_BYTES:
                with open(filename, encoding="utf-8") as f:
                    sources[filename] = f.read()
        except (OSError, UnicodeDecodeError):
            pass  # no source to carry: the traceback shows the file name and line number only
    return sources


def format_traceback(exc) -> str:
    """Like traceback.format_exception, from the first user frame on, with real file names."""
    frames = traceback.StackSummary.extract(traceback.walk_tb(_user_frames(exc.__traceback__)),
                                            lookup_lines=False)
    lines = ["Traceback (most recent call last):\n"] if frames else []
    lines += traceback.format_list(frames)
    lines += traceback.format_exception_only(type(exc), exc)
    return "".join(lines)
