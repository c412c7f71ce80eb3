"""Placement groups (Ray's ray.util.placement_group API, same names and semantics).

    pg = placement_group([{"CPU": 1}, {"CPU": 1}], strategy="STRICT_SPREAD")
    quanta.get(pg.ready())          # or pg.wait(timeout_seconds=10)
    f.options(scheduling_strategy=PlacementGroupSchedulingStrategy(pg, placement_group_bundle_index=0)).remote()
    remove_placement_group(pg)

The control service reserves every bundle on a node (PACK: as few nodes as possible,
STRICT_PACK: one node, SPREAD: as many as possible, STRICT_SPREAD: one node per bundle) before
the group counts as created; until then it is pending and retried as resources free up. Tasks
in a group ask for the bundle's resources under group-specific names, as in Ray. A group goes
away with remove_placement_group, or when the driver that created it exits (unless
lifetime="detached"); its running tasks are then stopped.
"""

from __future__ import annotations

import numbers
import time

from quanta._private import api, services, session

_STRATEGIES = {"PACK": 0, "SPREAD": 1, "STRICT_PACK": 2, "STRICT_SPREAD": 3}


class PlacementGroup:
    """A handle to a placement group: `id`, `bundle_specs`, `ready()`, `wait()`."""

    def __init__(self, id_bytes: bytes, bundles: list):
        self._id = id_bytes
        self.bundle_specs = [dict(b) for b in bundles]

    @property
    def id(self):
        return _PlacementGroupID(self._id)

    @property
    def bundle_count(self) -> int:
        return len(self.bundle_specs)

    def _hex(self) -> str:
        return self._id.hex()

    def ready(self):
        """An ObjectRef that resolves (to this group) once every bundle is reserved."""
        task = _make_ready_task()
        return task.options(num_cpus=0, resources={f"bundle_group_{self._hex()}": 0.001}).remote(self)

    def wait(self, timeout_seconds: float = 30) -> bool:
        """True once the group is created; False if `timeout_seconds` pass first."""
        if isinstance(timeout_seconds, bool) or not isinstance(timeout_seconds, numbers.Real):
            raise TypeError(f"timeout_seconds must be a number, got {timeout_seconds!r}")
        deadline = time.monotonic() + timeout_seconds
        while True:
            state = _state_of(self)
            if state == "CREATED":
                return True
            if state == "REMOVED":
                return False
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.01)

    def __reduce__(self):
        return (PlacementGroup, (self._id, self.bundle_specs))

    def __eq__(self, other):
        return isinstance(other, PlacementGroup) and other._id == self._id

    def __hash__(self):
        return hash(self._id)

    def __repr__(self):
        return f"PlacementGroup(id={self._hex()}, bundles={self.bundle_specs})"


class _PlacementGroupID:
    def __init__(self, binary: bytes):
        self._binary = binary

    def binary(self) -> bytes:
        return self._binary

    def hex(self) -> str:
        return self._binary.hex()

    def __repr__(self):
        return f"PlacementGroupID({self.hex()})"

    def __eq__(self, other):
        return isinstance(other, _PlacementGroupID) and other._binary == self._binary

    def __hash__(self):
        return hash(self._binary)


def _ready(pg):
    return pg


_ready_task = None  # a remote function, made on first use (quanta.remote needs the package)


def _make_ready_task():
    global _ready_task
    if _ready_task is None:
        from quanta.remote_function import RemoteFunction

        _ready_task = RemoteFunction(_ready, {"name": "placement_group.ready", "max_retries": 0})
    return _ready_task


def _check_bundles(bundles):
    if not isinstance(bundles, (list, tuple)) or not bundles:
        raise ValueError("placement_group() needs a non-empty list of bundles, e.g. [{'CPU': 1}, {'CPU': 1}]")
    out = []
    for i, b in enumerate(bundles):
        if not isinstance(b, dict) or not b:
            raise ValueError(f"bundle {i} must be a non-empty dict of resource -> amount, got {b!r}")
        clean = {}
        for name, amount in b.items():
            if not isinstance(name, str) or not name:
                raise TypeError(f"bundle {i}: resource names must be strings, got {name!r}")
            if isinstance(amount, bool) or not isinstance(amount, numbers.Real) or amount < 0:
                raise ValueError(f"bundle {i}: {name!r} must be a number >= 0, got {amount!r}")
            if amount:
                clean[name] = float(amount)
        if not clean:
            raise ValueError(f"bundle {i} asks for nothing: every amount in {b!r} is 0")
        out.append(clean)
    return out


def placement_group(bundles, strategy: str = "PACK", name: str = "", lifetime=None,
                    _soft_target_node_id=None, bundle_label_selector=None) -> PlacementGroup:
    """Reserves `bundles` (a list of resource dicts) across the cluster by `strategy`."""
    bundles = _check_bundles(bundles)
    if strategy not in _STRATEGIES:
        raise ValueError(f"strategy must be one of {sorted(_STRATEGIES)}, got {strategy!r}")
    if not isinstance(name, str):
        raise TypeError(f"name must be a string, got {name!r}")
    if lifetime not in (None, "detached"):
        raise ValueError(f"lifetime must be None or 'detached', got {lifetime!r}")
    if _soft_target_node_id is not None or bundle_label_selector is not None:
        raise ValueError("_soft_target_node_id and bundle_label_selector are not supported; bundles are "
                         "placed by the strategy over the nodes' free resources")
    core = api.ensure_core()
    pg_id = core.next_task_id()
    ns = session.namespace() or f"anonymous-{session.job_id():016x}"
    unit = services.RESOURCE_UNIT
    engine_bundles = [[(k, int(round(v * unit))) for k, v in b.items()] for b in bundles]
    if name and get_placement_group_or_none(name, ns) is not None:
        raise ValueError(f"a placement group named {name!r} already exists in namespace {ns!r}")
    core.create_placement_group(pg_id, name, ns, _STRATEGIES[strategy], engine_bundles,
                                lifetime == "detached", session.job_id())
    _make_ready_task()
    return PlacementGroup(pg_id, bundles)


def remove_placement_group(placement_group: PlacementGroup) -> None:
    """Returns the group's bundles; tasks and actors running in it are stopped."""
    if not isinstance(placement_group, PlacementGroup):
        raise TypeError(f"remove_placement_group() takes a PlacementGroup, got {type(placement_group).__name__}")
    api.ensure_core().remove_placement_group(placement_group._id)


def _groups(id_bytes=b"", name="", namespace=""):
    return api.ensure_core().placement_groups(id_bytes, name, namespace, 10000)


def _state_of(pg) -> str | None:
    groups = _groups(pg._id)
    return groups[0]["state"] if groups else None


def get_placement_group_or_none(name, namespace):
    for g in _groups(b"", name, namespace):
        if g["state"] != "REMOVED":
            return PlacementGroup(g["id"], _bundles_of(g))
    return None


def get_placement_group(placement_group_name: str) -> PlacementGroup:
    """The live placement group with this name in the current namespace, or ValueError."""
    ns = session.namespace() or f"anonymous-{session.job_id():016x}"
    pg = get_placement_group_or_none(placement_group_name, ns)
    if pg is None:
        raise ValueError(f"Failed to look up placement group with name '{placement_group_name}' in namespace '{ns}'")
    return pg


def _bundles_of(g):
    unit = services.RESOURCE_UNIT
    return [{k: v / unit for k, v in b} for b in g["bundles"]]


def placement_group_table(placement_group: PlacementGroup | None = None) -> dict:
    """Ray's table: {id hex: {placement_group_id, name, bundles, strategy, state, ...}} (or one entry)."""
    groups = _groups(placement_group._id if placement_group is not None else b"")
    table = {}
    nodes = {n["NodeIndex"]: n["NodeID"] for n in api.nodes()}
    for g in groups:
        entry = {"placement_group_id": g["id"].hex(), "name": g["name"], "namespace": g["namespace"],
                 "bundles": dict(enumerate(_bundles_of(g))), "strategy": g["strategy"], "state": g["state"],
                 "bundles_to_node_id": {i: nodes.get(n, "") for i, n in enumerate(g["bundle_nodes"])},
                 "stats": {"message": g["message"]}, "is_detached": g["detached"]}
        table[entry["placement_group_id"]] = entry
    if placement_group is not None:
        return table.get(placement_group._hex(), {})
    return table


def get_current_placement_group():
    """The placement group the calling task or actor runs in (set by the worker), or None."""
    return getattr(session._task_context, "placement_group", None)


def demand_in_group(demand: dict, strategy) -> dict:
    """Rewrites a task's resource demand onto a group's bundle resources (Ray's names)."""
    pg = strategy.placement_group
    index = strategy.placement_group_bundle_index
    hexid = pg._hex()
    bundles = pg.bundle_specs if index < 0 else [pg.bundle_specs[index]]
    for name, amount in demand.items():
        if amount and not any(b.get(name, 0) >= amount for b in bundles):
            where = "any bundle" if index < 0 else f"bundle {index} ({pg.bundle_specs[index]})"
            raise ValueError(f"the task asks for {name}: {amount}, more than {where} of placement group "
                             f"{hexid} reserves; it could never run there")
    suffix = f"_{index}_{hexid}" if index >= 0 else f"_{hexid}"
    out = {f"{name}_group{suffix}": amount for name, amount in demand.items() if amount}
    if not out:
        out[f"bundle_group{suffix}"] = 0.001  # asks for nothing else: still placed in the group
    return out


__all__ = ["PlacementGroup", "placement_group", "remove_placement_group", "get_placement_group",
           "placement_group_table", "get_current_placement_group"]
