"""quanta.util: the utilities of Ray's ray.util, under the same names.

    import quanta as ray
    from ray.util import ActorPool, as_completed
    from ray.util.queue import Queue
    from ray.util.multiprocessing import Pool
    from ray.util.joblib import register_ray

Importing this package is cheap: each name is imported on first use.
"""

import importlib
import sys
import types

# name -> module that defines it
_NAMES = {
    "ActorPool": "quanta.util.actor_pool",
    "as_completed": "quanta.util.helpers",
    "map_unordered": "quanta.util.helpers",
    "get_node_ip_address": "quanta.util.network",
    "inspect_serializability": "quanta.util.check_serialize",
    "Executor": "quanta.util.executor",
    "placement_group": "quanta.util.placement_group",
    "remove_placement_group": "quanta.util.placement_group",
    "get_placement_group": "quanta.util.placement_group",
    "placement_group_table": "quanta.util.placement_group",
    "get_current_placement_group": "quanta.util.placement_group",
    "PlacementGroup": "quanta.util.placement_group",
    "list_named_actors": "quanta.util.named_actors",
}
_SUBMODULES = {"queue", "multiprocessing", "joblib", "actor_pool", "helpers", "network",
               "check_serialize", "executor", "scheduling_strategies", "accelerators"}

__all__ = ["ActorPool", "as_completed", "map_unordered", "get_node_ip_address",
           "inspect_serializability", "Executor", "placement_group", "remove_placement_group",
           "get_placement_group", "placement_group_table", "get_current_placement_group",
           "list_named_actors"]


def __getattr__(name):
    if name in _NAMES:
        value = getattr(importlib.import_module(_NAMES[name]), name)
    elif name in _SUBMODULES:
        value = importlib.import_module(f"{__name__}.{name}")
    else:
        raise AttributeError(f"module 'quanta.util' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_NAMES) | _SUBMODULES)


class _UtilModule(types.ModuleType):
    """`placement_group` names both a function and the module defining it (as in Ray). Importing
    the module binds it on its package; keep the function under that name instead."""

    def __setattr__(self, name, value):
        if name == "placement_group" and isinstance(value, types.ModuleType):
            value = value.placement_group
        super().__setattr__(name, value)

    def __reduce__(self):
        # pickle finds reducers by exact type, so a task that names quanta.util would otherwise fail
        # to pickle ("cannot pickle '_UtilModule' object"): it travels by name, as modules do.
        return importlib.import_module, (self.__name__,)


sys.modules[__name__].__class__ = _UtilModule
