"""Validation of the options accepted by @remote, .options() and actor creation (Ray's names)."""

from __future__ import annotations

import numbers

from quanta._private.services import RESOURCE_UNIT

TASK_OPTIONS = {"num_cpus", "num_gpus", "resources", "num_returns", "max_retries",
                "retry_exceptions", "name", "memory", "scheduling_strategy", "runtime_env",
                "accelerator_type", "placement_group", "placement_group_bundle_index",
                "placement_group_capture_child_tasks", "label_selector", "_metadata",
                "max_calls", "enable_task_events", "timeout_s", "_generator_backpressure_num_objects",
                "priority"}
MAX_PRIORITY = 1000  # TaskSpec::kMaxPriority in src/protocol/messages.h
ACCELERATOR_DEMAND = 0.001  # of the accelerator_type:<model> resource, as in Ray


def _check_number(name, value, allow_none=True):
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"option {name} must be a number, got {type(value).__name__} {value!r}")
    if value < 0:
        raise ValueError(f"option {name} must be >= 0, got {value}")


# Ray options Quanta accepts only at their default (the default is what Quanta does); any other
# value is refused rather than ignored. option -> (is the value the default?, what to do instead).
_DEFAULT_ONLY = {
    "max_calls": (lambda v: not v, "workers are reused for every task"),
    "max_pending_calls": (lambda v: v is None or v == -1, "calls are never refused for being too many"),
    "allow_out_of_order_execution": (lambda v: not v, "calls from one caller run in submission order"),
    "_metadata": (lambda v: not v, "it is for Ray's own libraries"),
    "enable_task_events": (lambda v: v is None or v is True, "every task's events are recorded (quanta list "
                                                             "tasks); there is no per-task switch"),
}


def validate(options: dict, allowed: set, kind: str) -> dict:
    unknown = set(options) - allowed
    if unknown:
        raise ValueError(f"invalid option(s) {sorted(unknown)} for {kind}; valid options are "
                         f"{sorted(o for o in allowed if not o.startswith('_'))}")
    for key, (is_default, instead) in _DEFAULT_ONLY.items():
        if key in options and not is_default(options[key]):
            raise ValueError(f"option {key}={options[key]!r} for {kind} is not supported: {instead} "
                             f"(see docs/ray-compatibility.md)")
    if options.get("runtime_env") is not None:
        from quanta._private import runtime_env

        options["runtime_env"] = runtime_env.validate(options["runtime_env"])
    if "enable_task_events" in options and not isinstance(options["enable_task_events"], bool):
        raise TypeError(f"option enable_task_events must be True or False, got {options['enable_task_events']!r}")
    for key in ("num_cpus", "num_gpus", "memory"):
        if key in options:
            _check_number(key, options[key])
    gpus = options.get("num_gpus")
    if gpus is not None and gpus > 1 and float(gpus) != int(gpus):
        raise ValueError(f"option num_gpus={gpus}: an amount above 1 must be a whole number of GPUs "
                         "(fractions share one GPU: use a value below 1)")
    if options.get("accelerator_type") is not None and (
            not isinstance(options["accelerator_type"], str) or not options["accelerator_type"]):
        raise TypeError(f"option accelerator_type must be a non-empty string such as 'A100' (see "
                        f"quanta.util.accelerators), got {options['accelerator_type']!r}")
    if "priority" in options:
        priority(options)
    res = options.get("resources")
    if res is not None:
        if not isinstance(res, dict):
            raise TypeError(f"option resources must be a dict of name -> amount, got {type(res).__name__}")
        for k, v in res.items():
            if not isinstance(k, str):
                raise TypeError(f"resource names must be strings, got {k!r}")
            if k in ("CPU", "GPU"):
                raise ValueError(f"use num_cpus/num_gpus instead of resources={{'{k}': ...}}")
            _check_number(f"resources[{k!r}]", v, allow_none=False)
    if "num_returns" in options:
        from quanta import generator

        generator.check_num_returns(options["num_returns"])
    if "_generator_backpressure_num_objects" in options:
        from quanta import generator

        generator.check_backpressure(options["_generator_backpressure_num_objects"])
    if "retry_exceptions" in options:
        retry_policy(options["retry_exceptions"])
    if "timeout_s" in options:
        timeout_ms(options)
    for key in ("max_retries", "max_restarts", "max_task_retries"):
        if key in options and options[key] is not None:
            n = options[key]
            if isinstance(n, bool) or not isinstance(n, int) or n < -1:
                raise ValueError(f"option {key} must be an int >= -1 (-1 means forever), got {n!r}")
    return options


def retry_policy(value) -> tuple:
    """(retry_exceptions flag, '\\n'-separated qualified class names) for the engine: Ray's
    retry_exceptions is True, False, or a list of exception classes to retry."""
    if value is None or value is False:
        return False, ""
    if value is True:
        return True, ""
    if (isinstance(value, (list, tuple)) and value
            and all(isinstance(t, type) and issubclass(t, BaseException) for t in value)):
        from quanta.exceptions import TaskTimeoutError

        names = [f"{t.__module__}.{t.__qualname__}" for t in value]
        if any(issubclass(TaskTimeoutError, t) for t in value):  # the node decides timeouts
            names.append("quanta.exceptions.TaskTimeoutError")
        return True, "\n".join(dict.fromkeys(names))
    raise TypeError("option retry_exceptions must be True, False or a non-empty list of exception "
                    f"classes, got {value!r}")


def priority(options: dict) -> int:
    """The engine's priority for the priority option (beyond Ray: higher runs first among a
    node's ready tasks of the same resource shape; 0 by default)."""
    p = options.get("priority", 0)
    if p is None:
        return 0
    if isinstance(p, bool) or not isinstance(p, int):
        raise TypeError(f"option priority must be an int, got {type(p).__name__} {p!r}")
    if not -MAX_PRIORITY <= p <= MAX_PRIORITY:
        raise ValueError(f"option priority={p} is out of range: it must be from {-MAX_PRIORITY} to {MAX_PRIORITY}")
    return p


def timeout_ms(options: dict) -> int:
    """The engine's timeout for the timeout_s option (0: none)."""
    t = options.get("timeout_s")
    if t is None:
        return 0
    if isinstance(t, bool) or not isinstance(t, numbers.Real) or not t > 0:
        raise ValueError(f"option timeout_s must be a number of seconds > 0 (or None), got {t!r}")
    if t > 4_000_000:
        raise ValueError(f"option timeout_s={t} is too large (at most 4,000,000 s, about 46 days)")
    return max(1, int(t * 1000))


def resource_demand(options: dict, default_cpus: float) -> list:
    """The engine's fixed-point resource list for these options."""
    demand = {}
    cpus = options.get("num_cpus")
    cpus = default_cpus if cpus is None else cpus
    if cpus:
        demand["CPU"] = cpus
    gpus = options.get("num_gpus")
    if gpus:
        demand["GPU"] = gpus
    if options.get("memory"):
        demand["memory"] = options["memory"]
    if options.get("accelerator_type"):
        demand["accelerator_type:" + options["accelerator_type"]] = ACCELERATOR_DEMAND
    for k, v in (options.get("resources") or {}).items():
        if v:
            demand[k] = v
    out = [(k, int(round(v * RESOURCE_UNIT))) for k, v in demand.items()]
    for k, v in out:
        if v >= 1 << 63:
            raise ValueError(f"resource {k}: {demand[k]} is too large (at most {((1 << 63) - 1) // RESOURCE_UNIT})")
    return out


def scheduling(options: dict):
    """(engine strategy tuple or None, placement-group strategy or None) for these options."""
    from quanta.util import scheduling_strategies as ss

    strategy = options.get("scheduling_strategy")
    pg = options.get("placement_group")
    if pg is not None and pg != "default":
        if strategy not in (None, "DEFAULT"):
            raise ValueError("pass either placement_group=... or scheduling_strategy=..., not both")
        strategy = ss.PlacementGroupSchedulingStrategy(
            pg, options.get("placement_group_bundle_index", -1) if options.get("placement_group_bundle_index") is not None else -1,
            options.get("placement_group_capture_child_tasks"))
    engine = ss.to_engine(strategy, options.get("label_selector"))
    return engine, strategy if isinstance(strategy, ss.PlacementGroupSchedulingStrategy) else None


def demand_for(options: dict, default_cpus: float, group_strategy=None) -> list:
    """resource_demand, moved onto a placement group's bundle resources when it runs in one."""
    if group_strategy is None:
        return resource_demand(options, default_cpus)
    from quanta.util.placement_group import demand_in_group

    plain = {k: v / RESOURCE_UNIT for k, v in resource_demand(options, default_cpus)}
    return [(k, int(round(v * RESOURCE_UNIT))) for k, v in demand_in_group(plain, group_strategy).items()]
