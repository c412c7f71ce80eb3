"""The process-wide Quanta session: the core-library client and, in a driver, the local cluster.

A process is either a driver (it called `quanta.init()`, explicitly or implicitly) or a worker
(started by a node daemon). `current_core()` is the CoreClient of whichever it is, or None.
"""

from __future__ import annotations

import atexit
import contextvars
import threading

_lock = threading.RLock()
_core = None            # quanta._core.CoreClient of this process
_cluster = None         # services.LocalCluster started by this driver, if any
_is_worker = False
_namespace = None
_job_id = 0             # job (driver client id) that tasks submitted from here belong to
_task_context = threading.local()  # in workers: the task running on this thread
# In async actors: the call running in this coroutine (they share the loop's thread).
async_task_id = contextvars.ContextVar("quanta_task_id", default=None)


def current_task_id():
    """The id (bytes) of the task running on this thread or coroutine, or None."""
    return getattr(_task_context, "task_id", None) or async_task_id.get()


def current_core():
    return _core


def is_initialized() -> bool:
    return _core is not None


def is_worker() -> bool:
    return _is_worker


# A driver's named namespace is its whole job's, as in Ray: the driver publishes it in the head's
# KV store, and a worker looks it up (once per job) for the tasks and actors of that job.
_JOB_NAMESPACES_KV = "_quanta_job_namespaces"
_job_namespaces = {}  # worker: job id -> its namespace, or None (anonymous)


def _job_namespace_key(job) -> bytes:
    return f"{job:016x}".encode()


def namespace():
    if not _is_worker:
        return _namespace
    job = job_id()
    if job not in _job_namespaces:
        from quanta.experimental import internal_kv

        try:
            value = internal_kv._internal_kv_get(_job_namespace_key(job), namespace=_JOB_NAMESPACES_KV)
        except Exception:  # the head is unreachable: the anonymous namespace, not cached
            return None
        if len(_job_namespaces) > 1000:
            _job_namespaces.clear()
        _job_namespaces[job] = value.decode() if value is not None else None
    return _job_namespaces[job]


def job_id() -> int:
    ctx_job = getattr(_task_context, "job_id", None)
    return ctx_job if ctx_job is not None else _job_id


def set_task_job(job) -> None:
    _task_context.job_id = job


def start_driver(core, cluster, namespace) -> None:
    global _core, _cluster, _namespace, _job_id
    with _lock:
        _core, _cluster, _namespace = core, cluster, namespace
        _job_id = core.client_id
    if namespace is not None:
        from quanta.experimental import internal_kv

        internal_kv._internal_kv_put(_job_namespace_key(_job_id), namespace.encode(), namespace=_JOB_NAMESPACES_KV)


def start_worker(core) -> None:
    global _core, _is_worker
    _core, _is_worker = core, True


def stop() -> None:
    global _core, _cluster, _namespace
    with _lock:
        core, cluster, named = _core, _cluster, _namespace
        _core = _cluster = _namespace = None
    if core is not None and named is not None and not _is_worker and core.connected:
        from quanta._private import control
        from quanta.experimental import internal_kv

        try:  # the job's namespace entry goes with it (best effort: the head may be gone)
            core.control_call(control.KV_DELETE, internal_kv._ns(_JOB_NAMESPACES_KV), _job_namespace_key(_job_id),
                              b"", b"", False, 1000)
        except Exception:
            pass
    if core is not None:
        core.disconnect()
    if cluster is not None:
        cluster.stop()


atexit.register(stop)
