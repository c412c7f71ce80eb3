"""Exceptions raised by Quanta, with Ray's names available as aliases.

`import quanta as ray; ray.exceptions.RayTaskError` works, so programs written for Ray catch
the same errors.
"""

from __future__ import annotations


class QuantaError(Exception):
    """Base class of every error raised by Quanta itself."""


class TaskError(QuantaError):
    """A task (or actor method) raised an exception.

    `quanta.get` raises it as an instance of both TaskError and the user's exception class, so
    `except ValueError:` still catches a ValueError raised inside a task. `cause` is the original
    exception (None when it could not be unpickled on this side) and the message carries the
    remote traceback. `via` names the tasks the failure passed on to, innermost first: for
    h(g(f())) where f raised, function_name is "f" and via is ["g", "h"].
    """

    def __init__(self, function_name="", traceback_str="", cause=None, pid=None, cause_repr=None, via=()):
        self.function_name = function_name
        self.via = list(via)
        self.traceback_str = traceback_str
        self.cause = cause
        self.pid = pid
        self.cause_repr = cause_repr if cause_repr is not None else repr(cause)
        # Not super(): in a TaskError(UserError) class that would run the user's __init__,
        # which could reset attributes copied from the original exception.
        Exception.__init__(self, self._message())

    def _message(self):
        where = f"task {self.function_name}" + (f" (pid={self.pid})" if self.pid else "")
        chain = [f"task {name}" for name in reversed(self.via)] + [where]
        where = chain[0] + "".join(f" failed: a value it needed came from {t}, which" for t in chain[1:])
        text = self.traceback_str.rstrip() if self.traceback_str else self.cause_repr
        if self.cause is None and self.cause_repr and self.cause_repr not in text:
            text += f"\n(the exception could not be unpickled here: {self.cause_repr})"
        return f"{where} failed:\n{text}"

    def __str__(self):
        return self._message()

    def __reduce__(self):
        return (TaskError, (self.function_name, self.traceback_str, self.cause, self.pid, self.cause_repr,
                            self.via))

    def as_instanceof_cause(self):
        """Returns an exception that is an instance of both TaskError and type(cause)."""
        cause = self.cause
        if cause is None or isinstance(cause, TaskError) or not isinstance(cause, Exception):
            return self
        cls = _dual_class(type(cause))
        if cls is None:
            return self
        try:
            err = cls.__new__(cls)
            err.__dict__.update(getattr(cause, "__dict__", {}))
            TaskError.__init__(err, self.function_name, self.traceback_str, cause, self.pid, self.cause_repr,
                               self.via)
            err.args = (self._message(),)
            return err
        except Exception:
            return self


_dual_classes: dict = {}


def _dual_class(cause_cls):
    if cause_cls in _dual_classes:
        return _dual_classes[cause_cls]
    try:
        name = f"TaskError({cause_cls.__name__})"

        def __init__(self, *args, **kwargs):  # instances are built by as_instanceof_cause
            TaskError.__init__(self, *args, **kwargs)

        cls = type(name, (TaskError, cause_cls), {
            "__init__": __init__,
            "__str__": TaskError.__str__,
            "__reduce__": TaskError.__reduce__,
            "__module__": cause_cls.__module__,
            "__qualname__": name,
        })
    except TypeError:  # incompatible layouts (e.g. some C exception types)
        cls = None
    _dual_classes[cause_cls] = cls
    return cls


class QuantaSystemError(QuantaError):
    """The runtime itself failed (e.g. the node daemon is gone)."""


class WorkerCrashedError(QuantaError):
    """The worker process running the task died (and retries, if any, were exhausted)."""


class TaskCancelledError(QuantaError):
    """The task was cancelled with quanta.cancel()."""

    def __init__(self, message="the task was cancelled"):
        super().__init__(message)


class TaskTimeoutError(TaskCancelledError, TimeoutError):
    """The task ran longer than its `timeout_s` option and was stopped (beyond Ray). Retried
    only when its retry_exceptions covers TaskTimeoutError (or is True)."""

    def __init__(self, message="the task ran longer than its timeout_s"):
        super().__init__(message)


class GetTimeoutError(QuantaError, TimeoutError):
    """quanta.get() did not finish within its timeout. The object can still be fetched later."""


class ObjectLostError(QuantaError):
    """The object's value is no longer available anywhere."""


class ObjectFreedError(ObjectLostError):
    """The object was freed because every reference to it was dropped."""


class ObjectReconstructionFailedError(ObjectLostError):
    """The object was lost and re-running the task that made it failed."""


class ObjectReconstructionFailedMaxAttemptsExceededError(ObjectReconstructionFailedError):
    """The object was lost and the task that made it has no retries left to rebuild it."""


class ObjectReconstructionFailedLineageEvictedError(ObjectReconstructionFailedError):
    """The object was lost and the task that made it is no longer kept (lineage budget)."""


class OwnerDiedError(ObjectLostError):
    """The node that owned the object (the node of the process that created it) died, so its
    value and where it lived are gone."""


class NodeDiedError(QuantaError):
    """The node running the task died, and the task had no retries left."""


class TaskUnschedulableError(QuantaError):
    """No node of the cluster can run the task (its resources, label selector or node affinity
    match no alive node) and none joined within `infeasible_task_timeout_s`."""


class ActorUnschedulableError(QuantaError):
    """No node of the cluster can host the actor, and none joined in time."""


class ObjectStoreFullError(QuantaError):
    """The object store (and its spill space) cannot hold the object."""


class ActorDiedError(QuantaError):
    """The actor is dead: its constructor failed, it was killed, or its process exited."""


class ActorUnavailableError(QuantaError):
    """The actor is temporarily unreachable (e.g. restarting)."""


class PendingCallsLimitExceeded(QuantaError):
    """Too many calls are queued on an actor."""


class RuntimeEnvSetupError(QuantaError):
    """A task's or actor's runtime_env could not be set up (a bad pip requirement, a missing
    working_dir, the setup timeout); the message carries the setup's output."""


# Ray's names.
RayError = QuantaError
RayTaskError = TaskError
RaySystemError = QuantaSystemError
RayActorError = ActorDiedError

__all__ = [
    "QuantaError", "TaskError", "QuantaSystemError", "WorkerCrashedError", "TaskCancelledError",
    "TaskTimeoutError", "ObjectReconstructionFailedError",
    "ObjectReconstructionFailedMaxAttemptsExceededError", "ObjectReconstructionFailedLineageEvictedError",
    "GetTimeoutError", "ObjectLostError", "ObjectFreedError", "OwnerDiedError", "ObjectStoreFullError",
    "NodeDiedError", "TaskUnschedulableError", "ActorUnschedulableError",
    "ActorDiedError", "ActorUnavailableError", "PendingCallsLimitExceeded", "RuntimeEnvSetupError",
    "RayError", "RayTaskError", "RaySystemError", "RayActorError",
]
