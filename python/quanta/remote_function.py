"""RemoteFunction: what @quanta.remote makes of a function."""

from __future__ import annotations

import hashlib
import inspect


from quanta import generator as gen
from quanta._private import api, options as opts, runtime_env, serialization, session
from quanta.object_ref import ObjectRef

_DEFAULTS = {"num_cpus": 1, "num_returns": 1, "max_retries": 3, "retry_exceptions": False}


class RemoteFunction:
    """A function that runs as a task: call `.remote(*args)` to submit it and get ObjectRef(s)."""

    def __init__(self, function, options: dict):
        if not callable(function) or inspect.isclass(function):
            raise TypeError(f"@quanta.remote expects a function or a class, got {type(function).__name__}")
        self._function = function
        self._options = {**_DEFAULTS, **opts.validate(dict(options), opts.TASK_OPTIONS, "a task")}
        self._name = options.get("name") or getattr(function, "__name__", "task")
        self._pickled = None
        self._function_id = None
        self._signature = None
        self._scheduling, group = opts.scheduling(self._options)
        self._demand = opts.demand_for(self._options, 1, group)
        self._retry = opts.retry_policy(self._options["retry_exceptions"])
        self._timeout_ms = opts.timeout_ms(self._options)
        self._priority = opts.priority(self._options)
        self._is_generator = inspect.isgeneratorfunction(function)
        if inspect.isasyncgenfunction(function):
            raise TypeError(f"{self._name}: async generator functions can run as methods of async actors, "
                            "not as tasks; make it a plain generator (def with yield)")
        self._explicit_returns = "num_returns" in options
        self.__doc__ = getattr(function, "__doc__", None)
        self.__name__ = self._name
        self.__wrapped__ = function

    def __call__(self, *args, **kwargs):
        raise TypeError(f"Remote functions cannot be called directly. Instead of running "
                        f"'{self._name}()', try '{self._name}.remote()'.")

    def options(self, **options):
        """A copy of this remote function with some options changed, e.g. f.options(num_cpus=2)."""
        merged = {**self._options, **opts.validate(dict(options), opts.TASK_OPTIONS, "a task")}
        clone = RemoteFunction.__new__(RemoteFunction)
        clone.__dict__.update(self.__dict__)
        clone._options = merged
        clone._name = merged.get("name") or self._name
        clone._scheduling, group = opts.scheduling(merged)
        clone._demand = opts.demand_for(merged, 1, group)
        clone._retry = opts.retry_policy(merged["retry_exceptions"])
        clone._timeout_ms = opts.timeout_ms(merged)
        clone._priority = opts.priority(merged)
        clone._explicit_returns = self._explicit_returns or "num_returns" in options
        return clone

    def _export(self, core):
        if self._function_id is None:
            self._pickled = serialization.export_function(self._function)
            self._function_id = hashlib.sha1(self._pickled).digest()[:16]
        if not core.is_function_registered(self._function_id):
            core.register_function(self._function_id, self._pickled)
        return self._function_id

    def _check_arguments(self, args, kwargs):
        sig = self._signature
        if sig is None:
            try:
                sig = self._signature = inspect.signature(self._function)
            except (TypeError, ValueError):
                sig = self._signature = False
        if sig is not False:
            try:
                sig.bind(*args, **kwargs)
            except TypeError as e:
                raise TypeError(f"{self._name}.remote(): {e}") from None

    def remote(self, *args, **kwargs):
        """Submits the task; returns an ObjectRef (a list of them if num_returns > 1; an
        ObjectRefGenerator for a generator function)."""
        self._check_arguments(args, kwargs)
        core = api.ensure_core()
        fid = self._export(core)
        for a in args:
            if type(a) is ObjectRef:
                api._check_ref_session(a, core)
        blob, arg_refs, nested, keep = serialization.serialize_args(
            args, kwargs, ObjectRef, self._signature, api.put, core.inline_threshold)
        o = self._options
        num_returns, mode = gen.mode_of(o["num_returns"], self._is_generator, self._explicit_returns)
        backpressure = gen.backpressure_for(o, mode, self._name)
        renv, packages = runtime_env.for_submit(o.get("runtime_env"))
        if packages:
            nested = list(nested) + packages  # the task keeps its packages alive
        ids = core.submit_task(core.next_task_id(), session.job_id(), fid, self._name, blob,
                               arg_refs, nested, num_returns, self._demand, o["max_retries"],
                               self._retry[0], None, self._scheduling, self._retry[1], self._timeout_ms,
                               mode, backpressure, self._priority, renv)
        return gen.wrap_returns(core, ids, num_returns, mode)

    def __repr__(self):
        return f"<quanta remote function {self._name}>"
