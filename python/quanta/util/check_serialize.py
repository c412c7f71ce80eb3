"""quanta.util.inspect_serializability: find what makes an object impossible to send to a task.

Quanta pickles functions, classes, arguments and results with cloudpickle. When that fails, the
error names the innermost type ("cannot pickle '_thread.lock' object") but not where it sits.
`inspect_serializability(obj)` walks into what `obj` holds and reports the innermost members
that fail, as a tree printed to stdout (or `print_file`), and returns Ray's pair
`(serializable, failures)`: a bool and a set of FailureTuple(obj, path, parent).

What it walks into, up to `depth` levels: a function's closure variables, the globals it uses
and its default arguments; a bound method's object and function; a class's attributes and
methods; an object's attributes (`__dict__` and `__slots__`); the items of lists, tuples, sets
and dicts. A member that fails but has no failing member of its own (or sits at the depth
limit) is a failure; its parent is the object that holds it.
"""

from __future__ import annotations

import inspect
import sys
import types

import cloudpickle

_MAX_CHILDREN = 2000  # per object: enough for real programs, bounded for huge containers


class FailureTuple:
    """One member that cannot be serialized: `obj`, its `path` of names from the inspected
    object (`name` is the last), and the `parent` that holds it (None for the root)."""

    __slots__ = ("obj", "path", "parent")

    def __init__(self, obj, path, parent):
        self.obj, self.path, self.parent = obj, tuple(path), parent

    @property
    def name(self):
        return self.path[-1]

    def __repr__(self):
        return (f"FailureTuple({' -> '.join(self.path)}: obj={self.obj!r:.120}, "
                f"parent={self.parent!r:.120})")


def inspect_serializability(base_obj, name=None, depth=3, print_file=None):
    """Returns (True, set()) if `base_obj` pickles; otherwise (False, failures) after printing
    which of its members fail. `name` labels the root (default: its name or type)."""
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 0:
        raise ValueError(f"depth must be an int >= 0, got {depth!r}")
    out = print_file if print_file is not None else sys.stdout
    root = name if name is not None else _label(base_obj)
    title = f"Checking whether {root} ({_short(base_obj)}) can be serialized"
    rule = "=" * min(max(len(title), 40), 100)
    print(rule, file=out)
    print(title, file=out)
    print(rule, file=out)
    failures = set()
    error = _pickle_error(base_obj)
    if error is None:
        print("OK: it can be serialized.", file=out)
        return True, failures
    _walk(base_obj, (root,), None, error, depth, out, failures, set())
    print(rule, file=out)
    print(f"{len(failures)} member(s) cannot be serialized:", file=out)
    for f in sorted(failures, key=lambda f: f.path):
        print(f"    {' -> '.join(f.path)}: {_short(f.obj)}", file=out)
    print("Create them inside the function or class that uses them (so that they are made "
          "where it runs), pass what they are made from instead, or drop them.", file=out)
    print(rule, file=out)
    return False, failures


def _walk(obj, path, parent, error, depth, out, failures, seen):
    indent = "    " * (len(path) - 1)
    print(f"{indent}FAIL {' -> '.join(path)}: {error}", file=out)
    if depth == 0 or id(obj) in seen:
        failures.add(FailureTuple(obj, path, parent))
        return
    seen.add(id(obj))
    found = False
    for label, child in _members(obj):
        child_error = _pickle_error(child)
        if child_error is None:
            continue
        found = True
        _walk(child, path + (label,), obj, child_error, depth - 1, out, failures, seen)
    if not found:
        failures.add(FailureTuple(obj, path, parent))


def _members(obj):
    """(label, member) pairs for what `obj` holds."""
    found = []
    if isinstance(obj, types.FunctionType):
        try:
            cv = inspect.getclosurevars(obj)
            found += list(cv.nonlocals.items()) + list(cv.globals.items())
        except (TypeError, ValueError):
            pass
        found += [(f"<default {i}>", d) for i, d in enumerate(obj.__defaults__ or ())]
        found += [(f"<default {k}>", d) for k, d in (obj.__kwdefaults__ or {}).items()]
    elif isinstance(obj, types.MethodType):
        found += [("__self__", obj.__self__), ("__func__", obj.__func__)]
    elif isinstance(obj, dict):
        found += [(f"[{k!r}]", v) for k, v in obj.items()]
        found += [(f"<key {k!r}>", k) for k in obj]
    elif isinstance(obj, (list, tuple, set, frozenset)):
        found += [(f"[{i}]", v) for i, v in enumerate(obj)]
    elif isinstance(obj, type):
        found += [(k, v) for k, v in vars(obj).items()
                  if not (k.startswith("__") and k.endswith("__"))]
    else:
        found += list(getattr(obj, "__dict__", {}).items())
        for cls in type(obj).__mro__:
            for slot in getattr(cls, "__slots__", ()):
                if isinstance(slot, str) and hasattr(obj, slot) and slot != "__dict__":
                    found.append((slot, getattr(obj, slot)))
    return found[:_MAX_CHILDREN]


def _pickle_error(obj):
    try:
        cloudpickle.dumps(obj)
        return None
    except Exception as e:  # noqa: BLE001 - any failure (RecursionError too) is what we report
        return f"{type(e).__name__}: {e}"


def _label(obj):
    return getattr(obj, "__qualname__", None) or getattr(obj, "__name__", None) or type(obj).__name__


def _short(obj):
    try:
        text = repr(obj)
    except Exception:  # noqa: BLE001 - a broken __repr__
        text = f"<{type(obj).__name__} object>"
    return text if len(text) <= 100 else text[:97] + "..."


__all__ = ["inspect_serializability", "FailureTuple"]
