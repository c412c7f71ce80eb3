"""list_named_actors (Ray's ray.util.list_named_actors): the live named actors of the cluster."""

from __future__ import annotations

from quanta._private import control, session


def list_named_actors(all_namespaces: bool = False) -> list:
    """Names of the live named actors in the current namespace, or with all_namespaces=True
    dicts {"name": ..., "namespace": ...} of every namespace (as Ray returns them)."""
    ns = session.namespace() or f"anonymous-{session.job_id():016x}"
    ok, _, _, _, error, items = control.call(control.LIST_NAMED_ACTORS, ns, flag=all_namespaces)
    if not ok:  # not "none": the control service did not answer
        raise ConnectionError(f"list_named_actors failed: {error}")
    pairs = [item.split(b"\0", 1) for item in items]
    if all_namespaces:
        return [{"name": name.decode(), "namespace": space.decode()} for space, name in pairs]
    return [name.decode() for space, name in pairs]
