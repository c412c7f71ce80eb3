"""The cluster's key-value store, kept by the control service (Ray's ray.experimental.internal_kv).

    from quanta.experimental.internal_kv import _internal_kv_put, _internal_kv_get
    _internal_kv_put(b"config", b"{...}")
    _internal_kv_get(b"config")        # from any driver, task or actor of the cluster

Keys and values are bytes (str is accepted and encoded as UTF-8); each namespace (None: the
default one) has its own keys. Values are limited to 1 MiB and the store to 100,000 keys.
"""

from __future__ import annotations

from quanta._private import control, session


def _b(x, what):
    if isinstance(x, str):
        return x.encode()
    if isinstance(x, (bytes, bytearray, memoryview)):
        return bytes(x)
    raise TypeError(f"{what} must be bytes or str, got {type(x).__name__}")


def _ns(namespace):
    return _b(namespace, "namespace") if namespace is not None else b""


def _ask(what, op, *args, **kwargs):
    """The control service's answer; a request it did not answer (it is unreachable) raises
    rather than reading as "no such key"."""
    answer = control.call(op, *args, **kwargs)
    if not answer[0]:
        raise ConnectionError(f"{what} failed: {answer[4]}")
    return answer


def _internal_kv_initialized() -> bool:
    return session.is_initialized() or session.is_worker()


def _internal_kv_put(key, value, overwrite: bool = True, *, namespace=None) -> bool:
    """Stores value under key; returns True if the key already existed (Ray's convention)."""
    ok, added, _, _, error, _ = control.call(control.KV_PUT, _ns(namespace), _b(key, "key"), b"",
                                             _b(value, "value"), overwrite)
    if not ok:
        raise ValueError(f"_internal_kv_put failed: {error}")
    return not added


def _internal_kv_get(key, *, namespace=None):
    """The value stored under key, or None."""
    _, found, _, blob, _, _ = _ask("_internal_kv_get", control.KV_GET, _ns(namespace), _b(key, "key"))
    return blob if found else None


def _internal_kv_exists(key, *, namespace=None) -> bool:
    return _ask("_internal_kv_exists", control.KV_EXISTS, _ns(namespace), _b(key, "key"))[1]


def _internal_kv_del(key, *, del_by_prefix: bool = False, namespace=None) -> int:
    """Deletes key (or every key starting with it); returns how many were deleted."""
    return _ask("_internal_kv_del", control.KV_DELETE, _ns(namespace), _b(key, "key"), flag=del_by_prefix)[2]


def _internal_kv_list(prefix, *, namespace=None) -> list:
    """Every key that starts with prefix."""
    return list(_ask("_internal_kv_list", control.KV_LIST, _ns(namespace), _b(prefix, "prefix"))[5])


__all__ = ["_internal_kv_initialized", "_internal_kv_put", "_internal_kv_get", "_internal_kv_exists",
           "_internal_kv_del", "_internal_kv_list"]
