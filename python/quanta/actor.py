"""Actors: @quanta.remote on a class.

`Cls.remote(...)` starts a worker process that holds one instance; `handle.method.remote(...)`
runs the method there and returns ObjectRef(s). Calls from one caller run in submission order,
one at a time unless max_concurrency says otherwise (or the class has `async def` methods).

An ActorHandle holds an ObjectRef to the actor's creation result (the "actor object"): handles
are picklable, travel to tasks and other actors, and the actor lives as long as any handle to
it exists anywhere (unless lifetime="detached").
"""

from __future__ import annotations

import inspect


from quanta import exceptions
from quanta._private import api, options as opts, serialization, session
from quanta import generator
from quanta.object_ref import ObjectRef

ACTOR_OPTIONS = {"num_cpus", "num_gpus", "resources", "memory", "name", "namespace", "lifetime",
                 "get_if_exists", "max_concurrency", "max_restarts", "max_task_retries",
                 "max_pending_calls", "scheduling_strategy", "runtime_env", "accelerator_type",
                 "placement_group", "placement_group_bundle_index", "concurrency_groups",
                 "placement_group_capture_child_tasks", "label_selector", "_metadata",
                 "enable_task_events", "allow_out_of_order_execution"}
METHOD_OPTIONS = {"num_returns", "max_task_retries", "retry_exceptions", "name",
                  "concurrency_group", "enable_task_events", "_metadata",
                  "_generator_backpressure_num_objects"}

KIND_CREATION = 1
KIND_METHOD = 2
_NAME_REGISTER, _NAME_LOOKUP = 0, 1
_NO_ID = bytes(16)


def method(*args, **options):
    """Decorator for actor methods: @quanta.method(num_returns=2)."""
    opts.validate(options, METHOD_OPTIONS, "an actor method")

    def decorate(fn):
        fn.__quanta_method_options__ = options
        return fn

    if len(args) == 1 and callable(args[0]) and not options:
        return decorate(args[0])
    if args:
        raise TypeError("@quanta.method takes keyword options only, e.g. @quanta.method(num_returns=2)")
    return decorate


def exit_actor():
    """Called inside an actor method: ends the actor once this call returns (no restart)."""
    if not session.is_worker():
        raise TypeError("exit_actor() can only be called inside an actor")
    raise ActorExit()


class ActorExit(BaseException):
    """Raised by exit_actor(); the worker reports the actor as exited and stops."""


def _method_table(cls) -> dict:
    table = {}
    for name, member in inspect.getmembers(cls, predicate=callable):
        if name.startswith("__") and name not in ("__call__",):
            continue
        raw = inspect.getattr_static(cls, name, None)
        is_static = isinstance(raw, (staticmethod, classmethod))
        options = getattr(member, "__quanta_method_options__", {})
        try:
            params = list(inspect.signature(member).parameters.values())
            if not is_static:
                params = params[1:]
            # Names and kinds only: defaults and annotations may not be picklable.
            sig = tuple((p.name, int(p.kind), p.default is not p.empty) for p in params)
        except (TypeError, ValueError):
            sig = None
        extra = {k: options[k] for k in ("max_task_retries", "retry_exceptions", generator.BACKPRESSURE_OPTION)
                 if k in options}
        is_gen = inspect.isgeneratorfunction(member) or inspect.isasyncgenfunction(member)
        table[name] = (options.get("num_returns", "streaming" if is_gen else 1), sig,
                       options.get("concurrency_group"), extra)
    return table


_signatures: dict = {}


def _signature_of(plain):
    sig = _signatures.get(plain)
    if sig is None:
        params = [inspect.Parameter(n, inspect._ParameterKind(k), default=None if d else inspect.Parameter.empty)
                  for n, k, d in plain]
        sig = _signatures[plain] = inspect.Signature(params)
    return sig


class ActorClass:
    """What @quanta.remote makes of a class: call `.remote(...)` to start an actor."""

    def __init__(self, cls, options: dict):
        opts.validate(dict(options), ACTOR_OPTIONS, "an actor")
        self._cls = cls
        self._options = dict(options)
        self._name = cls.__name__
        self._methods = _method_table(cls)
        self._is_async = any(inspect.iscoroutinefunction(m) or inspect.isasyncgenfunction(m)
                             for _, m in inspect.getmembers(cls, predicate=inspect.isfunction))
        self._pickled = None
        self._function_id = None
        try:
            self._init_sig = inspect.signature(cls.__init__)
            self._init_sig = self._init_sig.replace(parameters=list(self._init_sig.parameters.values())[1:])
        except (TypeError, ValueError):
            self._init_sig = None
        self.__doc__ = cls.__doc__
        self.__name__ = cls.__name__

    def __call__(self, *args, **kwargs):
        raise TypeError(f"Actors cannot be instantiated directly. Instead of '{self._name}()', "
                        f"use '{self._name}.remote()'.")

    def options(self, **options):
        """Per-actor options: name, namespace, lifetime, num_cpus, max_concurrency, ..."""
        opts.validate(dict(options), ACTOR_OPTIONS, "an actor")
        parent = self

        class _Configured:
            def remote(self, *args, **kwargs):
                return parent._create(args, kwargs, {**parent._options, **options})

            def options(self, **more):
                return parent.options(**{**options, **more})

        return _Configured()

    def remote(self, *args, **kwargs):
        return self._create(args, kwargs, self._options)

    def _export(self, core):
        if self._function_id is None:
            import hashlib

            self._pickled = serialization.export_function(self._cls)
            self._function_id = hashlib.sha1(self._pickled).digest()[:16]
        if not core.is_function_registered(self._function_id):
            core.register_function(self._function_id, self._pickled)
        return self._function_id

    def _create(self, args, kwargs, o: dict):
        if self._init_sig is not None:
            try:
                self._init_sig.bind(*args, **kwargs)
            except TypeError as e:
                raise TypeError(f"{self._name}.remote(): {e}") from None
        core = api.ensure_core()
        name = o.get("name")
        namespace = o.get("namespace")
        if name is not None and (not isinstance(name, str) or not name):
            raise ValueError(f"actor name must be a non-empty string, got {name!r}")
        if namespace is not None and not isinstance(namespace, str):
            raise TypeError("namespace must be a string")
        ns = namespace if namespace is not None else _current_namespace()
        if name and o.get("get_if_exists"):
            found = _lookup(core, name, ns)
            if found is not None:
                return found
        lifetime = o.get("lifetime")
        if lifetime not in (None, "detached", "non_detached"):
            raise ValueError(f"lifetime must be 'detached' or 'non_detached', got {lifetime!r}")
        max_concurrency = o.get("max_concurrency")
        if max_concurrency is None:
            max_concurrency = 1000 if self._is_async else 1
        if isinstance(max_concurrency, bool) or not isinstance(max_concurrency, int) or max_concurrency < 1:
            raise ValueError(f"max_concurrency must be an int >= 1, got {max_concurrency!r}")
        groups = _concurrency_groups(o.get("concurrency_groups"))
        for method_name, info in self._methods.items():
            if info[2] is not None and info[2] not in groups:
                raise ValueError(f"method {self._name}.{method_name} is in concurrency group {info[2]!r}, "
                                 f"which the actor does not define; its groups are {sorted(groups)} "
                                 "(pass concurrency_groups={name: max_concurrency, ...})")
        fid = self._export(core)
        # Ray's rule: an actor needs 1 CPU to be placed but holds none while it lives, unless
        # num_cpus (or other resources) are given explicitly.
        explicit = o.get("num_cpus") is not None
        scheduling, group = opts.scheduling(o)
        placement = opts.demand_for(o, 1, group)
        lifetime_opts = o if explicit else {**o, "num_cpus": 0}
        lifetime_res = opts.resource_demand(lifetime_opts, 0)
        if lifetime_res and group is not None:
            lifetime_res = opts.demand_for(lifetime_opts, 0, group)
        blob, arg_refs, nested, keep = serialization.serialize_args(
            args, kwargs, ObjectRef, None, api.put, core.inline_threshold)
        task_id = core.next_task_id()
        actor_ref_id = task_id[:12] + (1).to_bytes(4, "little")
        handle = ActorHandle(task_id, self._name, self._methods, self._is_async,
                             ObjectRef._adopt(core, actor_ref_id), o.get("max_task_retries") or 0,
                             tuple(groups))
        if name:
            ok, _, error = core.actor_name(_NAME_REGISTER, name, ns, task_id,
                                           serialization.cloudpickle.dumps(handle._descriptor()), 10000)
            if not ok:
                handle._actor_ref = None
                if o.get("get_if_exists"):
                    # Another caller registered the name between our lookup and now: use theirs.
                    found = _lookup(core, name, ns)
                    if found is not None:
                        return found
                raise ValueError(f"{error}; use a different name, or pass get_if_exists=True to "
                                 "reuse it, or quanta.get_actor(name) to look it up")
        actor = (KIND_CREATION, _NO_ID, "", max_concurrency, o.get("max_restarts") or 0,
                 lifetime == "detached", self._is_async, self._name, lifetime_res,
                 sorted(groups.items()), "")
        from quanta._private import runtime_env

        renv, packages = runtime_env.for_submit(o.get("runtime_env"))
        if packages:
            nested = list(nested) + packages  # the creation keeps its packages alive
        core.submit_task(task_id, session.job_id(), fid, self._name, blob, arg_refs, nested, 1,
                         placement, 0, False, actor, scheduling, runtime_env=renv)
        return handle


def _concurrency_groups(groups) -> dict:
    """Ray's concurrency_groups option, checked: {name: max_concurrency >= 1}."""
    if groups is None:
        return {}
    if not isinstance(groups, dict):
        raise TypeError(f"concurrency_groups must be a dict of group name -> max concurrency, got "
                        f"{type(groups).__name__}")
    for name, limit in groups.items():
        if not isinstance(name, str) or not name:
            raise ValueError(f"concurrency group names must be non-empty strings, got {name!r}")
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ValueError(f"concurrency group {name!r} needs a max concurrency >= 1, got {limit!r}")
    return dict(groups)


def _current_namespace() -> str:
    ns = session.namespace()
    if ns is None:
        ns = f"anonymous-{session.job_id():016x}"
    return ns


def _lookup(core, name, ns):
    ok, blob, _ = core.actor_name(_NAME_LOOKUP, name, ns, _NO_ID, b"", 10000)
    if not ok:
        return None
    return ActorHandle._from_descriptor(serialization.cloudpickle.loads(blob))


def get_actor(name: str, namespace: str | None = None) -> "ActorHandle":
    """The handle of the named actor, or ValueError if there is none."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"get_actor() needs a non-empty actor name, got {name!r}")
    core = api.ensure_core()
    ns = namespace if namespace is not None else _current_namespace()
    handle = _lookup(core, name, ns)
    if handle is None:
        raise ValueError(f"Failed to look up actor with name '{name}' in namespace '{ns}': no such "
                         "actor (it may have died or never existed)")
    return handle


def kill(actor, *, no_restart=True):
    """Kills an actor's process at once; pending and future calls raise ActorDiedError."""
    if not isinstance(actor, ActorHandle):
        raise TypeError(f"quanta.kill() takes an actor handle, got {type(actor).__name__}; "
                        "use quanta.cancel() for tasks")
    core = api.ensure_core()
    core.kill_actor(actor._actor_id, bool(no_restart))


class ActorHandle:
    """A reference to an actor. Call methods with `handle.method.remote(...)`."""

    def __init__(self, actor_id, class_name, methods, is_async, actor_ref, max_task_retries=0, groups=()):
        self._actor_id = actor_id
        self._groups = groups
        self._class_name = class_name
        self._methods = methods
        self._is_async = is_async
        self._actor_ref = actor_ref  # keeps the actor alive while this handle exists
        self._max_task_retries = max_task_retries

    def _descriptor(self):
        return (self._actor_id, self._class_name, self._methods, self._is_async, self._max_task_retries,
                self._groups)

    @classmethod
    def _from_descriptor(cls, d):
        actor_id, class_name, methods, is_async, retries, groups = d
        ref = ObjectRef(actor_id[:12] + (1).to_bytes(4, "little"))
        return cls(actor_id, class_name, methods, is_async, ref, retries, groups)

    def __getattr__(self, name):
        if name.startswith("__") or name in ("_actor_id", "_class_name", "_methods", "_actor_ref", "_groups"):
            raise AttributeError(name)
        info = self._methods.get(name)
        if info is None:
            raise AttributeError(f"'{self._class_name}' actor has no method '{name}'")
        options = dict(info[3]) if len(info) > 3 else {}
        if info[2]:
            options["concurrency_group"] = info[2]
        return ActorMethod(self, name, info[0], info[1], options)

    def __reduce__(self):
        return (_rebuild_handle, (self._descriptor(), self._actor_ref))

    def __repr__(self):
        return f"Actor({self._class_name}, {self._actor_id.hex()})"

    def __hash__(self):
        return hash(self._actor_id)

    def __eq__(self, other):
        return isinstance(other, ActorHandle) and other._actor_id == self._actor_id


def _rebuild_handle(descriptor, actor_ref):
    actor_id, class_name, methods, is_async, retries, groups = descriptor
    return ActorHandle(actor_id, class_name, methods, is_async, actor_ref, retries, groups)


class ActorMethod:
    """`handle.method`: call `.remote(...)` to run it on the actor."""

    def __init__(self, handle, name, num_returns, signature, options=None):
        self._handle = handle
        self._name = name
        self._num_returns = num_returns
        self._signature = signature
        self._options = options or {}

    def __call__(self, *args, **kwargs):
        raise TypeError(f"Actor methods cannot be called directly. Instead of "
                        f"'{self._name}()', try '{self._name}.remote()'.")

    def options(self, **options):
        opts.validate(dict(options), METHOD_OPTIONS, "an actor method")
        return ActorMethod(self._handle, self._name, options.get("num_returns", self._num_returns),
                           self._signature, {**self._options, **options})

    def remote(self, *args, **kwargs):
        h = self._handle
        if self._signature is not None:
            try:
                _signature_of(self._signature).bind(*args, **kwargs)
            except TypeError as e:
                raise TypeError(f"{h._class_name}.{self._name}.remote(): {e}") from None
        core = api.ensure_core()
        blob, arg_refs, nested, keep = serialization.serialize_args(
            args, kwargs, ObjectRef, None, api.put, core.inline_threshold)
        if h._actor_ref is not None:
            nested.append(h._actor_ref._id)  # the call keeps the actor alive until it ran
        num_returns, mode = generator.mode_of(self._num_returns, False, True)
        backpressure = generator.backpressure_for(self._options, mode, f"{h._class_name}.{self._name}")
        retries = self._options.get("max_task_retries", h._max_task_retries)
        group = self._options.get("concurrency_group") or ""
        if group and group not in h._groups:
            raise ValueError(f"{h._class_name}.{self._name}: concurrency group {group!r} is not one of the "
                             f"actor's groups {sorted(h._groups)}")
        actor = (KIND_METHOD, h._actor_id, self._name, 1, 0, False, False, "", [], [], group)
        retry, retry_types = opts.retry_policy(self._options.get("retry_exceptions", False))
        ids = core.submit_task(core.next_task_id(), session.job_id(), b"",
                               self._options.get("name") or f"{h._class_name}.{self._name}", blob, arg_refs, nested,
                               num_returns, [], retries, retry, actor, None, retry_types, 0, mode, backpressure)
        return generator.wrap_returns(core, ids, num_returns, mode)


__all__ = ["ActorClass", "ActorHandle", "ActorMethod", "method", "exit_actor", "get_actor", "kill",
           "exceptions"]
