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


def namespace():
    return _namespace


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


def start_worker(core) -> None:
    global _core, _is_worker
    _core, _is_worker = core, True


def stop() -> None:
    global _core, _cluster, _namespace
    with _lock:
        core, cluster = _core, _cluster
        _core = _cluster = _namespace = None
    if core is not None:
        core.disconnect()
    if cluster is not None:
        cluster.stop()


atexit.register(stop)
