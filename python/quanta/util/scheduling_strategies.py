"""Scheduling strategies (Ray's ray.util.scheduling_strategies, same names and meaning).

    f.options(scheduling_strategy="SPREAD").remote()
    f.options(scheduling_strategy=NodeAffinitySchedulingStrategy(node_id, soft=True)).remote()
    f.options(scheduling_strategy=NodeLabelSchedulingStrategy(hard={"zone": In("a", "b")})).remote()
    f.options(scheduling_strategy=PlacementGroupSchedulingStrategy(pg, placement_group_bundle_index=0)).remote()

"DEFAULT" runs a task where its resources are free, preferring the node holding most of its
large arguments, then the submitting node; "SPREAD" spreads tasks over the nodes that fit.
A hard constraint no alive node meets waits for such a node to join, and after
`infeasible_task_timeout_s` (default 300; `quanta.init(_system_config=...)`) fails with
TaskUnschedulableError — where Ray waits silently forever.
"""

from __future__ import annotations


class NodeAffinitySchedulingStrategy:
    """Run on the node with this id (`quanta.get_runtime_context().get_node_id()`, or NodeID
    from `quanta.nodes()`). soft=True: elsewhere if that node is dead or cannot fit the task."""

    def __init__(self, node_id: str, soft: bool, _spill_on_unavailable: bool = False,
                 _fail_on_unavailable: bool = False):
        if not isinstance(node_id, str) or not node_id:
            raise TypeError(f"node_id must be a node id string (hex), got {node_id!r}")
        if not isinstance(soft, bool):
            raise TypeError(f"soft must be a bool, got {soft!r}")
        if _spill_on_unavailable or _fail_on_unavailable:
            raise ValueError("_spill_on_unavailable and _fail_on_unavailable are not supported; a hard "
                             "NodeAffinitySchedulingStrategy waits for its node's resources, a soft one runs "
                             "elsewhere only when the node is dead or can never fit the task")
        self.node_id = node_id
        self.soft = soft

    def __repr__(self):
        return f"NodeAffinitySchedulingStrategy(node_id={self.node_id!r}, soft={self.soft})"


class _LabelOperator:
    def __init__(self, *values):
        for v in values:
            if not isinstance(v, str) or "," in v:
                raise ValueError(f"label values must be strings without commas, got {v!r}")
        self.values = values


class In(_LabelOperator):
    """The node's label has one of these values."""

    def __init__(self, *values):
        if not values:
            raise ValueError("In() needs at least one value")
        super().__init__(*values)

    def _expr(self):
        return "in:" + ",".join(self.values)


class NotIn(_LabelOperator):
    """The node's label is missing or has none of these values."""

    def __init__(self, *values):
        if not values:
            raise ValueError("NotIn() needs at least one value")
        super().__init__(*values)

    def _expr(self):
        return "!in:" + ",".join(self.values)


class Exists(_LabelOperator):
    """The node has the label (any value)."""

    def __init__(self):
        super().__init__()

    def _expr(self):
        return "exists"


class DoesNotExist(_LabelOperator):
    """The node does not have the label."""

    def __init__(self):
        super().__init__()

    def _expr(self):
        return "!exists"


def _label_pairs(selector, what):
    if selector is None:
        return []
    if not isinstance(selector, dict):
        raise TypeError(f"{what} must be a dict of label name -> In/NotIn/Exists/DoesNotExist, got {selector!r}")
    pairs = []
    for key, op in selector.items():
        if not isinstance(key, str) or not key:
            raise TypeError(f"label names must be non-empty strings, got {key!r}")
        if not isinstance(op, _LabelOperator):
            raise TypeError(f"{what}[{key!r}] must be In(...), NotIn(...), Exists() or DoesNotExist(), got {op!r}")
        pairs.append((key, op._expr()))
    return pairs


class NodeLabelSchedulingStrategy:
    """Run on a node whose labels (`quanta start --labels`, `Cluster.add_node(labels=...)`)
    satisfy every `hard` expression, preferring those that satisfy `soft` ones."""

    def __init__(self, hard: dict, *, soft: dict | None = None):
        self.hard = hard
        self.soft = soft or {}
        self._hard = _label_pairs(hard, "hard")
        self._soft = _label_pairs(self.soft, "soft")
        if not self._hard and not self._soft:
            raise ValueError("NodeLabelSchedulingStrategy needs at least one hard or soft expression")

    def __repr__(self):
        return f"NodeLabelSchedulingStrategy(hard={self.hard!r}, soft={self.soft!r})"


class PlacementGroupSchedulingStrategy:
    """Run in a bundle of a placement group (all bundles when the index is -1)."""

    def __init__(self, placement_group, placement_group_bundle_index: int = -1,
                 placement_group_capture_child_tasks: bool | None = None):
        from quanta.util.placement_group import PlacementGroup

        if not isinstance(placement_group, PlacementGroup):
            raise TypeError(f"placement_group must be a PlacementGroup (from quanta.util.placement_group()), "
                            f"got {type(placement_group).__name__}")
        n = len(placement_group.bundle_specs)
        if not isinstance(placement_group_bundle_index, int) or not -1 <= placement_group_bundle_index < n:
            raise ValueError(f"placement_group_bundle_index must be -1 or 0..{n - 1}, got "
                             f"{placement_group_bundle_index!r}")
        if placement_group_capture_child_tasks:
            raise ValueError("placement_group_capture_child_tasks=True is not supported: child tasks run outside "
                             "the group unless given the strategy themselves")
        self.placement_group = placement_group
        self.placement_group_bundle_index = placement_group_bundle_index
        self.placement_group_capture_child_tasks = placement_group_capture_child_tasks


# Kinds as the engine knows them (protocol::SchedulingStrategy::Kind).
_DEFAULT, _SPREAD, _AFFINITY, _LABELS = 0, 1, 2, 3


def to_engine(strategy, label_selector=None):
    """The (kind, node_id, soft, hard, soft) tuple for the engine, or None for DEFAULT."""
    if label_selector:
        if strategy not in (None, "DEFAULT"):
            raise ValueError("label_selector cannot be combined with a scheduling_strategy other than DEFAULT")
        return (_LABELS, "", False, _selector_pairs(label_selector), [])
    if strategy is None or strategy == "DEFAULT":
        return None
    if strategy == "SPREAD":
        return (_SPREAD, "", False, [], [])
    if isinstance(strategy, NodeAffinitySchedulingStrategy):
        return (_AFFINITY, strategy.node_id, strategy.soft, [], [])
    if isinstance(strategy, NodeLabelSchedulingStrategy):
        return (_LABELS, "", False, strategy._hard, strategy._soft)
    if isinstance(strategy, PlacementGroupSchedulingStrategy):
        return None  # expressed through the bundles' resources
    raise ValueError(f"scheduling_strategy must be 'DEFAULT', 'SPREAD', NodeAffinitySchedulingStrategy, "
                     f"NodeLabelSchedulingStrategy or PlacementGroupSchedulingStrategy, got {strategy!r}")


def _selector_pairs(selector):
    """Ray's label_selector dict: "value", "!value", "in(a,b)", "!in(a,b)"."""
    if not isinstance(selector, dict):
        raise TypeError(f"label_selector must be a dict of label name -> value expression, got {selector!r}")
    pairs = []
    for key, expr in selector.items():
        if not isinstance(key, str) or not isinstance(expr, str):
            raise TypeError(f"label_selector entries must be strings, got {key!r}: {expr!r}")
        negate = expr.startswith("!")
        body = expr[1:] if negate else expr
        if body.startswith("in(") and body.endswith(")"):
            values = [v.strip() for v in body[3:-1].split(",") if v.strip()]
        else:
            values = [body]
        if not values or any(not v for v in values):
            raise ValueError(f"label_selector[{key!r}] = {expr!r} is not a value, !value, in(a,b) or !in(a,b)")
        pairs.append((key, ("!in:" if negate else "in:") + ",".join(values)))
    return pairs


__all__ = ["NodeAffinitySchedulingStrategy", "NodeLabelSchedulingStrategy", "PlacementGroupSchedulingStrategy",
           "In", "NotIn", "Exists", "DoesNotExist"]
