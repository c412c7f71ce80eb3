"""The public functions of the quanta module: init, shutdown, get, put, wait, and friends."""

from __future__ import annotations

import numbers
import os

from quanta import exceptions
from quanta._private import runtime_dir, serialization, services, session
from quanta._private.serialization import KIND_PICKLED

_MS_FOREVER = -1


def init(address=None, *, num_cpus=None, num_gpus=None, resources=None, labels=None, namespace=None,
         ignore_reinit_error=False, log_to_driver=True, object_store_memory=None,
         include_dashboard=None, logging_level=None, _temp_dir=None, **kwargs):
    """Starts a local cluster, or connects to a running one, and makes this process its driver
    (see _init for `address`). runtime_env=... is the job's default for its tasks and actors
    (docs/architecture.md, "Runtime environments"); a job submitted with a runtime_env gets it
    as its default through QUANTA_JOB_RUNTIME_ENV."""
    from quanta._private import runtime_env as rt

    renv = kwargs.get("runtime_env")
    if renv is None and os.environ.get("QUANTA_JOB_RUNTIME_ENV") and not session.is_initialized():
        import json

        renv = kwargs["runtime_env"] = json.loads(os.environ["QUANTA_JOB_RUNTIME_ENV"])
    renv = rt.validate(renv)  # refused before anything starts
    was_initialized = session.is_initialized()
    ctx = _init(address, num_cpus=num_cpus, num_gpus=num_gpus, resources=resources, labels=labels, namespace=namespace,
                ignore_reinit_error=ignore_reinit_error, log_to_driver=log_to_driver,
                object_store_memory=object_store_memory, include_dashboard=include_dashboard,
                logging_level=logging_level, _temp_dir=_temp_dir, **kwargs)
    if not was_initialized:
        rt.clear()
        if renv:
            try:
                rt.set_job_env(renv)
                rt.resolve(renv)  # packs and uploads working_dir / py_modules now, as Ray does
            except BaseException:
                shutdown()
                raise
    return ctx


def _init(address=None, *, num_cpus=None, num_gpus=None, resources=None, labels=None, namespace=None,
          ignore_reinit_error=False, log_to_driver=True, object_store_memory=None,
          include_dashboard=None, logging_level=None, _temp_dir=None, **kwargs):
    """Starts a local cluster, or connects to a running one, and makes this process its driver.

    `address`: None or "local" starts a new local cluster; "auto" joins the cluster started on
    this host with `quanta start` (or the one in QUANTA_ADDRESS); "HOST:PORT" joins the cluster
    whose head listens there (through this host's node of it, or a driver node started for
    this driver when the host runs none)."""
    if session.is_initialized():
        if ignore_reinit_error:
            return QuantaContext()
        raise RuntimeError("quanta.init() was called twice; a session is already running. Call "
                           "quanta.shutdown() first, or pass ignore_reinit_error=True.")
    if session.is_worker():
        raise RuntimeError("quanta.init() cannot be called inside a task or actor")
    unknown = set(kwargs) - _ACCEPTED_INIT_KWARGS
    if unknown:
        raise TypeError(f"quanta.init() got unexpected keyword arguments {sorted(unknown)}: Quanta does not "
                        "support them (docs/ray-compatibility.md lists every Ray argument and why)")
    for key, (is_default, instead) in _INIT_DEFAULT_ONLY.items():
        if key in kwargs and not is_default(kwargs[key]):
            raise ValueError(f"quanta.init({key}={kwargs[key]!r}) is not supported: {instead} "
                             "(see docs/ray-compatibility.md)")
    from quanta import _core

    _core.check_client_environment()  # before anything starts: a bad QUANTA_CLIENT_SPIN_US says so
    configure_logging = kwargs.get("configure_logging", True)
    if not isinstance(configure_logging, bool):
        raise TypeError(f"configure_logging must be True or False, got {configure_logging!r}")
    if logging_level is not None and configure_logging:  # False: the program configures logging itself
        import logging

        logging.getLogger("quanta").setLevel(logging_level)
    if address is None:
        address = os.environ.get("QUANTA_ADDRESS") or None
    if address not in (None, "local"):
        if not isinstance(address, str):
            raise TypeError(f"address must be a string, got {type(address).__name__}")
        if kwargs.get("_system_config"):
            raise ValueError("_system_config configures a new cluster; it cannot be given when connecting to an "
                             "existing one (address=...)")
        if num_cpus is not None or resources or num_gpus is not None or object_store_memory is not None:
            raise ValueError("num_cpus, num_gpus, resources and object_store_memory describe a new cluster; "
                             "they cannot be given when connecting to an existing one (address=...)")
        new_cluster_only = [k for k, v in [("labels", labels), ("include_dashboard", include_dashboard),
                                           *((k, kwargs.get(k)) for k in ("dashboard_host", "dashboard_port",
                                                                          "object_spilling_directory"))]
                            if v is not None]
        if new_cluster_only:
            raise ValueError(f"{', '.join(new_cluster_only)} describe(s) a new cluster; they cannot be given when "
                             "connecting to an existing one (address=...): give them to `quanta start` instead")
        return _connect(address, namespace, log_to_driver, _temp_dir, kwargs.get("_node_ip_address"))
    if kwargs.get("_node_ip_address") is not None:
        raise ValueError("quanta.init(_node_ip_address=...) is only for joining a cluster (address='HOST:PORT'): "
                         "a local cluster is reached through this host's Unix sockets; start a head that "
                         "others can reach with `quanta start --head --node-ip-address IP`")
    if num_cpus is None:
        num_cpus = os.cpu_count() or 1
    _check_amount("num_cpus", num_cpus)
    resources = dict(resources or {})
    if num_gpus is not None:  # else detected (CUDA_VISIBLE_DEVICES, nvidia-smi), as in Ray
        _check_amount("num_gpus", num_gpus)
        resources["GPU"] = num_gpus
    for name, amount in resources.items():
        if not isinstance(name, str) or not name:
            raise TypeError(f"resource names must be non-empty strings, got {name!r}")
        if name == "CPU":
            raise ValueError("use num_cpus=..., not resources={'CPU': ...}")
        _check_amount(f"resources[{name!r}]", amount)
    if namespace is not None and not isinstance(namespace, str):
        raise TypeError("namespace must be a string")
    if labels is not None and (not isinstance(labels, dict)
                               or not all(isinstance(k, str) and isinstance(v, str) for k, v in labels.items())):
        raise TypeError(f"labels must be a dict of str -> str, got {labels!r}")

    from quanta._private import system_config as sysconf

    system_config = sysconf.validate(kwargs.get("_system_config"))
    if object_store_memory is None:
        object_store_memory = services.default_object_store_memory()
    _check_amount("object_store_memory", object_store_memory)
    if object_store_memory < 1 << 20:
        raise ValueError(f"object_store_memory must be at least 1 MiB, got {object_store_memory}")
    store = {
        "object_store_memory": int(object_store_memory),
        "inline_threshold": int(system_config.get("max_direct_call_object_size", 100 * 1024)),
        "spill_dir": kwargs.get("object_spilling_directory") or system_config.get("object_spilling_directory")
        or os.environ.get("QUANTA_SPILL_DIR"),
        "node_flags": sysconf.node_flags(system_config),
    }
    session_dir = runtime_dir.new_session(_temp_dir)
    dashboard = _dashboard_options(include_dashboard, kwargs, session_dir)
    cluster = services.Session(session_dir).start(
        head=True, tied_to_driver=True, resources={"CPU": num_cpus, **resources}, store=store, dashboard=dashboard,
        labels=labels)
    try:
        cluster.write_record(head=True, started_by="init")
        core = _connect_core(cluster.node_socket, session_dir, log_to_driver)
    except BaseException:
        cluster.stop()
        raise
    session.start_driver(core, cluster, namespace)
    return QuantaContext()


def _dashboard_options(include_dashboard, kwargs, session_dir):
    """The dashboard of a local cluster: on by default, on 127.0.0.1:8265 (or the next free
    port), behind the cluster token if one is configured, else behind a token made for the
    session (<session>/dashboard_token; JobSubmissionClient finds it)."""
    from quanta._private import auth_token
    from quanta.dashboard import launch

    try:
        token = auth_token.load()[0]
    except (auth_token.TokenError, OSError):
        token = None
    return launch.options(include_dashboard, kwargs.get("dashboard_host") or "127.0.0.1",
                          kwargs.get("dashboard_port"), token, session_dir)


def _connect_core(sock, session_dir, log_to_driver):
    from quanta import _core

    _core.init_logging("driver", os.path.join(session_dir, "logs", f"driver-{os.getpid()}.log"))
    return _core.CoreClient.connect(sock, False, "", bool(log_to_driver))


def _connect(address, namespace, log_to_driver, temp_dir=None, node_ip_address=None):
    if address.startswith("ray://") or address.startswith("quanta://"):
        raise ValueError(f"client-server addresses such as {address!r} are not supported; pass the head's "
                         "HOST:PORT (a driver node joins the cluster from this host)")
    cluster = None
    if ":" in address and not os.path.exists(address):
        record = services.find_local_node(address)
        if record is not None:
            sock = services.resolve_address(record["session_dir"])
        else:
            cluster = _start_driver_node(address, temp_dir, node_ip_address)
            sock = cluster.node_socket
    else:
        sock = services.resolve_address(address)
    session_dir = os.path.dirname(os.path.dirname(sock))
    try:
        core = _connect_core(sock, session_dir, log_to_driver)
    except ConnectionError as e:
        if cluster is not None:
            cluster.stop()
        raise ConnectionError(f"could not connect to the Quanta cluster at {address!r}: {e}") from None
    session.start_driver(core, cluster, namespace)
    return QuantaContext()


def _start_driver_node(address, temp_dir, node_ip_address=None):
    """A node with no resources, joined to the cluster at `address` and tied to this driver."""
    from quanta._private import auth_token
    from quanta.util.network import get_node_ip_address

    try:
        token, _ = auth_token.load()
    except auth_token.TokenError as e:
        raise ConnectionError(f"cannot join the cluster at {address!r}: {e}") from None
    session_dir = runtime_dir.new_session(temp_dir)
    # The other nodes send this driver's results back over their own channel to it, so the driver
    # node listens for peers on the address that routes towards the head.
    try:
        host = node_ip_address or get_node_ip_address(address)
    except (TypeError, ValueError):
        host = None
    try:
        cluster = services.Session(session_dir).start(
            head=False, tied_to_driver=True, resources={}, store={"object_store_memory": 64 << 20},
            control_address=address, driver_node=True, token=token, prestart=0, host=host)
    except services.JoinError as e:
        raise ConnectionError(str(e)) from None
    cluster.write_record(head=False, started_by="init", driver_node=True)
    return cluster


# Accepted only at the default (what Quanta does anyway); any other value is refused, not ignored.
_INIT_DEFAULT_ONLY = {
    "local_mode": (lambda v: not v, "local mode is deprecated in Ray; debug with num_cpus=1 instead"),
    "job_config": (lambda v: v is None, "pass namespace= and set the environment before quanta start"),
    "storage": (lambda v: v is None, "the head's persistence is `quanta start --head --storage PATH`"),
    "_plasma_directory": (lambda v: v is None, "the store is an anonymous memfd arena; spilling goes to "
                                               "object_spilling_directory"),
    "logging_format": (lambda v: v is None, "Quanta's daemons log to files in the session's logs folder"),
}

_ACCEPTED_INIT_KWARGS = {"object_spilling_directory", "runtime_env", "configure_logging", "log_to_driver", "_system_config",
                         "dashboard_host", "dashboard_port", "local_mode", "job_config",
                         "_node_ip_address", "_plasma_directory", "logging_format", "storage"}


class QuantaContext(dict):
    """What init() returns: a dict of facts about the session (usable as a context manager)."""

    def __init__(self):
        core = session.current_core()
        record = runtime_dir.read_record(core.session_dir) or {}
        super().__init__(session_dir=core.session_dir, node_id=core.node_id,
                         address=record.get("control_address") or core.session_dir,
                         node_index=core.node_index, dashboard_url=_dashboard_url(record))

    @property
    def dashboard_url(self):
        return self.get("dashboard_url")

    @property
    def address_info(self):
        return dict(self)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        shutdown()


def _dashboard_url(record):
    """The dashboard of the cluster this driver joined: its own local cluster's, or the head's
    when the head runs on this host."""
    if record.get("dashboard_url"):
        return record["dashboard_url"]
    address = record.get("control_address")
    if address and not record.get("head"):
        head = services.find_local_node(address)
        if head is not None:
            return head.get("dashboard_url")
    return None


def _check_amount(name, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {type(value).__name__} {value!r}")
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {value}")


def shutdown() -> None:
    """Stops the session; the processes this driver started exit. Safe to call twice."""
    from quanta._private import runtime_env

    session.stop()
    runtime_env.clear()


def is_initialized() -> bool:
    return session.is_initialized()


def ensure_core():
    core = session.current_core()
    if core is None:
        init()
        core = session.current_core()
    return core


def _check_ref_session(ref, core):
    if ref._core is not core:
        raise ValueError(f"{ref!r} belongs to a Quanta session that has been shut down; objects do "
                         "not survive quanta.shutdown(). Recompute it in the current session.")


def _timeout_ms(timeout) -> int:
    if timeout is None:
        return _MS_FOREVER
    if isinstance(timeout, bool) or not isinstance(timeout, numbers.Real):
        raise TypeError(f"timeout must be a number of seconds or None, got {timeout!r}")
    if timeout < 0:
        raise ValueError(f"timeout must be >= 0, got {timeout}")
    return int(timeout * 1000)


def get(object_refs, *, timeout=None):
    """Returns the value of an ObjectRef (or a list of values for a list of refs), waiting for
    them to be computed. Raises the task's error if it failed, GetTimeoutError on timeout."""
    from quanta.object_ref import ObjectRef

    single = type(object_refs) is ObjectRef
    if single:
        refs = [object_refs]
    elif isinstance(object_refs, (list, tuple)):
        refs = object_refs
        for r in refs:
            if type(r) is not ObjectRef:
                raise TypeError(f"quanta.get() takes an ObjectRef or a list of ObjectRefs; the list "
                                f"contains {type(r).__name__} {r!r:.80}")
    else:
        hint = " (pass ObjectRefs, e.g. f.remote(), not their values)"
        raise TypeError(f"quanta.get() takes an ObjectRef or a list of ObjectRefs, got "
                        f"{type(object_refs).__name__}{hint}")
    core = ensure_core()
    for r in refs:
        _check_ref_session(r, core)
    timeout_ms = _timeout_ms(timeout)
    try:
        values = core.get([r._id for r in refs], timeout_ms)
    except TimeoutError:
        raise exceptions.GetTimeoutError(
            f"quanta.get() timed out after {timeout} s; the object can still be fetched later") from None
    except ConnectionError as e:
        raise exceptions.QuantaSystemError(str(e)) from None
    except MemoryError as e:
        raise exceptions.ObjectStoreFullError(str(e)) from None
    out = []
    for kind, data in values:
        out.append(serialization.deserialize(kind, data))
    return out[0] if single else out


def put(value, *, _owner=None):
    """Stores a value in the cluster and returns an ObjectRef to it."""
    from quanta.object_ref import ObjectRef

    if _owner is not None:
        raise ValueError("quanta.put(_owner=...) is not supported: objects are owned by the putting process's "
                         "node; to keep a value alive beyond this driver, return it from a method of a "
                         "detached actor (see docs/ray-compatibility.md)")

    if type(value) is ObjectRef:
        raise TypeError("quanta.put() of an ObjectRef is not allowed; pass the ref itself, or "
                        "put a list containing it")
    core = ensure_core()
    oid = core.next_put_id()
    kind, data, nested = serialization.store_or_inline(core, oid, value)
    if kind == KIND_PICKLED:
        core.put(oid, KIND_PICKLED, data, nested)
    else:
        offset, size, _ = serialization._LOCATION.unpack(data)
        core.put_stored(oid, offset, size, nested)
    return ObjectRef._adopt(core, oid)


def wait(object_refs, *, num_returns=1, timeout=None, fetch_local=True):
    """Waits until `num_returns` of the refs are ready or `timeout` seconds pass.

    Returns (ready, not_ready), both in the order of the input list."""
    from quanta.generator import ObjectRefGenerator
    from quanta.object_ref import ObjectRef

    if isinstance(object_refs, (ObjectRef, ObjectRefGenerator)) or not isinstance(object_refs, (list, tuple)):
        raise TypeError("quanta.wait() takes a list of ObjectRefs, got "
                        f"{type(object_refs).__name__}; wrap a single ref in a list")
    for r in object_refs:
        if type(r) is not ObjectRef and type(r) is not ObjectRefGenerator:
            raise TypeError(f"quanta.wait() takes a list of ObjectRefs; the list contains "
                            f"{type(r).__name__} {r!r:.80}")
    if len(set(object_refs)) != len(object_refs):
        dup = next(r for r in object_refs if object_refs.count(r) > 1)
        raise ValueError(f"quanta.wait() got duplicate ObjectRefs ({dup!r} appears more than "
                         "once); pass each ref only once")
    if isinstance(num_returns, bool) or not isinstance(num_returns, int):
        raise TypeError(f"num_returns must be an int, got {num_returns!r}")
    if num_returns < 1:
        raise ValueError(f"num_returns must be >= 1, got {num_returns}")
    if num_returns > len(object_refs):
        raise ValueError(f"num_returns ({num_returns}) is larger than the number of refs "
                         f"({len(object_refs)})")
    core = ensure_core()
    for r in object_refs:
        if type(r) is ObjectRef:
            _check_ref_session(r, core)
    # A generator is ready when its next item (or its end) is here.
    ids = [r._id if type(r) is ObjectRef else r._next_ready_id() for r in object_refs]
    try:
        flags = core.wait(ids, num_returns, _timeout_ms(timeout), bool(fetch_local))
    except ConnectionError as e:
        raise exceptions.QuantaSystemError(str(e)) from None
    ready, not_ready = [], []
    for r, ok in zip(object_refs, flags):
        (ready if ok and len(ready) < num_returns else not_ready).append(r)
    return ready, not_ready


def cancel(object_ref, *, force=False, recursive=True):
    """Cancels the task that produces `object_ref`: a queued task never runs; a running one gets
    KeyboardInterrupt (force=True kills its worker). get() then raises TaskCancelledError."""
    from quanta.generator import ObjectRefGenerator
    from quanta.object_ref import ObjectRef

    if type(object_ref) is ObjectRefGenerator:  # stops the generator task; later items never come
        object_ref = object_ref.completed()
    if type(object_ref) is not ObjectRef:
        raise TypeError(f"quanta.cancel() takes an ObjectRef, got {type(object_ref).__name__}")
    core = ensure_core()
    _check_ref_session(object_ref, core)
    core.cancel(object_ref._id, bool(force), bool(recursive))


def _nodes_raw():
    core = ensure_core()
    return core.cluster_info(10000)


def _to_float_map(pairs):
    return {name: amount / services.RESOURCE_UNIT for name, amount in pairs}


def nodes():
    """One dict per node of the cluster, alive or dead, with Ray's keys (NodeID, Alive,
    NodeManagerAddress, Resources, Labels, ...) and Quanta's (NodeIndex, IsHeadNode, ...)."""
    out = []
    for n in _nodes_raw():
        ip = n["address"] or "127.0.0.1"
        out.append({
            "NodeID": n["node_id"], "Alive": n["alive"], "alive": n["alive"],
            "NodeManagerAddress": ip, "NodeManagerHostname": ip, "NodeName": ip,
            "NodeManagerPort": n["port"], "ObjectManagerPort": n["port"],
            "ObjectStoreSocketName": n["socket_path"], "RayletSocketName": n["socket_path"],
            "Resources": _to_float_map(n["total"]), "Labels": dict(n["labels"]),
            "DeathReasonMessage": n["death_reason"], "StartTimeMs": n["start_time_ms"],
            "NodeIndex": n["node_index"], "IsHeadNode": n["is_head"], "IsDriverNode": n["is_driver_node"],
            "SessionDir": n["session_dir"],
        })
    return out


def _sum(key):
    total = {}
    for n in _nodes_raw():
        if not n["alive"]:
            continue
        for name, amount in _to_float_map(n[key]).items():
            total[name] = total.get(name, 0.0) + amount
    return total


def cluster_resources():
    """Total resources of the alive nodes, e.g. {'CPU': 4.0}."""
    return _sum("total")


def available_resources():
    """Resources not in use right now (resources with nothing free are omitted, as in Ray)."""
    return {k: v for k, v in _sum("available").items() if v > 0}


def get_runtime_context():
    from quanta._private.runtime_context import RuntimeContext

    return RuntimeContext()


def get_gpu_ids() -> list:
    """The GPUs the node assigned to the running task or actor (CUDA_VISIBLE_DEVICES is set to
    them while it runs): ints, or strings when the node took its devices from
    CUDA_VISIBLE_DEVICES, as in Ray. A driver holds no GPUs: []."""
    if not session.is_worker():
        return []
    from quanta._private import executor

    return executor.gpu_ids()


def node_stats():
    """Counters of this process's node: tasks forwarded to and run for other nodes, bytes sent
    to and received from peers, workers, clients (what tests use to prove bytes crossed TCP)."""
    return ensure_core().node_stats(10000)


def memory_summary(*, stats_only=False):
    """The node's object store: capacity, bytes used and spilled, object counts, and (unless
    stats_only) one entry per object with its size, where it lives, and how many references
    (processes, pending tasks, containing objects) and readers pin it."""
    core = ensure_core()
    stats = core.store_stats(10000)
    objects = stats.pop("objects")
    if not stats_only:
        stats["objects"] = [
            {"object_id": oid, "size": size, "where": where, "references": refs, "readers": pins}
            for oid, size, where, refs, pins in objects
        ]
    stats["num_objects"] = len(objects)
    return stats
