"""`_system_config` (Ray's name): the engine settings a program may change, each checked and
passed to the daemons as a flag. An unknown key is refused, never ignored."""

from __future__ import annotations

import numbers

# key -> (node flag, converter to the flag's integer value, what it means)
_NODE_KEYS = {
    "max_direct_call_object_size": (None, int, "values up to this size travel inline (bytes)"),
    "object_spilling_directory": (None, str, "where full stores spill objects"),
    "infeasible_task_timeout_s": ("--infeasible-task-timeout-ms", lambda v: int(v * 1000),
                                  "a task no node can run fails after this (0: wait forever)"),
    "max_lineage_bytes": ("--max-lineage-bytes", int,
                          "task specs an owner keeps to rebuild lost objects (bytes)"),
    "task_events_report_interval_ms": ("--task-events-report-interval-ms", int,
                                       "how often nodes ship task events to the head (ms, 10 or more); "
                                       "0 records no task events"),
}


def validate(config) -> dict:
    if config is None:
        return {}
    if not isinstance(config, dict):
        raise TypeError(f"_system_config must be a dict, got {type(config).__name__}")
    unknown = set(config) - set(_NODE_KEYS)
    if unknown:
        known = ", ".join(f"{k} ({v[2]})" for k, v in sorted(_NODE_KEYS.items()))
        raise ValueError(f"_system_config keys {sorted(unknown)} are not supported; supported: {known}")
    for key, value in config.items():
        if _NODE_KEYS[key][1] is str:
            if not isinstance(value, str):
                raise TypeError(f"_system_config[{key!r}] must be a string, got {value!r}")
        elif isinstance(value, bool) or not isinstance(value, numbers.Real) or value < 0:
            raise ValueError(f"_system_config[{key!r}] must be a number >= 0, got {value!r}")
        if key == "task_events_report_interval_ms" and (0 < value < 10 or value > 3600000):
            raise ValueError(f"_system_config['task_events_report_interval_ms'] must be 0 (no task events) or "
                             f"10 to 3600000 ms, got {value!r}")
    return dict(config)


def node_flags(config: dict) -> list:
    """The quanta_node flags for a validated config."""
    flags = []
    for key, value in config.items():
        flag, convert, _ = _NODE_KEYS[key]
        if flag is not None:
            flags += [flag, str(convert(value))]
    return flags
