"""Quanta: parallel and distributed computing for Python, with a C++ engine.

The API is Ray Core's, so `import quanta as ray` runs Ray programs:

    import quanta
    quanta.init()

    @quanta.remote
    def f(x):
        return x * x

    print(quanta.get([f.remote(i) for i in range(4)]))  # [0, 1, 4, 9]
"""

from quanta import exceptions
from quanta._private.api import (available_resources, cancel, cluster_resources, get,
                                 get_gpu_ids, get_runtime_context, init, is_initialized, memory_summary, nodes,
                                 put, shutdown, wait)
from quanta.actor import ActorClass, ActorHandle, exit_actor, get_actor, kill, method
from quanta.object_ref import ObjectRef
from quanta.generator import DynamicObjectRefGenerator, ObjectRefGenerator
from quanta.remote_function import RemoteFunction
from quanta import util  # cheap: its names are imported on first use

__version__ = "0.1.0"


def remote(*args, **options):
    """Turns a function into a task (`f.remote(...)`) or a class into an actor.

    Use as `@quanta.remote` or `@quanta.remote(num_cpus=2, num_returns=2, ...)`.
    """
    if len(args) == 1 and not options and callable(args[0]):
        return _make_remote(args[0], {})
    if args:
        raise TypeError("@quanta.remote takes a function or class, or only keyword options: "
                        "@quanta.remote(num_cpus=1)")
    return lambda target: _make_remote(target, options)


def timeline(filename=None):
    """Chrome-trace events of the tasks the cluster ran (one per task, per worker per node):
    written to `filename` as JSON, or returned as a list. See quanta.util.state._timeline."""
    from quanta.util.state._timeline import timeline as _timeline

    return _timeline(filename)


def _make_remote(target, options):
    import inspect

    if inspect.isclass(target):
        return ActorClass(target, options)
    if not callable(target):
        raise TypeError(f"@quanta.remote expects a function or a class, got {type(target).__name__}")
    return RemoteFunction(target, options)


__all__ = ["ObjectRefGenerator", "DynamicObjectRefGenerator", "init", "shutdown", "is_initialized", "remote", "get", "put", "wait", "cancel",
           "cluster_resources", "available_resources", "nodes", "get_gpu_ids", "get_runtime_context", "memory_summary",
           "ObjectRef", "exceptions", "RemoteFunction", "get_actor", "kill", "method",
           "ActorClass", "ActorHandle", "actor", "util", "timeline"]
