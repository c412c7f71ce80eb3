"""Quanta and Ray: one implementation of every workload, parameterised by the
module it drives (``quanta`` or ``ray``), which expose the same API."""

import importlib
import inspect
import os

from .backends import READY, Backend, BackendUnavailable, workload
from .generic import ActorWorkloads, ObjectWorkloads, PoolWorkloads, TaskWorkloads


def _define(rt):
    """Remote functions and classes for runtime module ``rt``.

    They are defined inside this function so that cloudpickle sends them to
    the workers by value: the workers then never import this package (nor,
    when ``rt`` is Ray, Quanta).  Their bodies may only use their closure,
    builtins and importable modules.
    """

    @rt.remote
    def small_value():
        return b"ok"

    @rt.remote
    def put_small(count):
        for _ in range(count):
            rt.put(0)

    @rt.remote
    def put_large(count, elems):
        import numpy as np

        for _ in range(count):
            rt.put(np.zeros(elems, dtype=np.int64))

    @rt.remote
    def object_with_refs(count):
        return [rt.put(1) for _ in range(count)]

    @rt.remote
    def call_actors(actors, calls):
        rt.get([actors[i % len(actors)].small_value.remote() for i in range(calls)])

    @rt.remote(num_returns="streaming")
    def stream_items(n):
        for i in range(n):
            yield i

    @rt.remote
    def mat_f(m):
        return m + 1.0

    @rt.remote
    def mat_g(m):
        return m * 2.0

    return dict(
        small_value=small_value, put_small=put_small, put_large=put_large,
        object_with_refs=object_with_refs, call_actors=call_actors, mat_f=mat_f, mat_g=mat_g,
        stream_items=stream_items,
    )


def _define_actors(rt, small_value):
    """Actor classes, apart from the tasks so that an engine without actors
    can still run the task and object workloads."""

    # Actors hold no CPU (as in Ray's benchmark), so that on 2 cores the
    # tasks that call them can still be scheduled.
    @rt.remote(num_cpus=0)
    class Actor:
        def small_value(self):
            return b"ok"

        def small_value_arg(self, x):
            return b"ok"

        def submit_tasks(self, count):
            rt.get([small_value.remote() for _ in range(count)])

    @rt.remote(num_cpus=0)
    class AsyncActor:
        async def small_value(self):
            return b"ok"

        async def small_value_with_arg(self, x):
            return b"ok"

    @rt.remote(num_cpus=0)
    class Client:
        def __init__(self, servers):
            self.servers = servers if isinstance(servers, list) else [servers]

        def small_value_batch(self, calls):
            rt.get([s.small_value.remote() for s in self.servers for _ in range(calls)])

        def small_value_batch_arg(self, calls):
            x = rt.put(0)
            rt.get([s.small_value_arg.remote(x) for s in self.servers for _ in range(calls)])

    return dict(Actor=Actor, AsyncActor=AsyncActor, Client=Client)


class _Remotes:
    def __init__(self, entries):
        self.__dict__.update(entries)


class RayLikeBackend(Backend, TaskWorkloads, ObjectWorkloads, ActorWorkloads, PoolWorkloads):
    package = ""

    def start(self):
        try:
            self.rt = importlib.import_module(self.package)
        except Exception as exc:  # an engine that fails to load is a result, not a crash
            raise BackendUnavailable(f"import {self.package} failed: {type(exc).__name__}: {exc}")
        if not hasattr(self.rt, "init"):
            where = getattr(self.rt, "__file__", None) or list(getattr(self.rt, "__path__", []))
            raise BackendUnavailable(f"{self.package} (from {where}) has no init()")
        self.rt.init(num_cpus=os.cpu_count(), object_store_memory=self.sizes.store_bytes)
        self.r = _Remotes(_define(self.rt))
        try:
            self._wait_fetch_local = "fetch_local" in inspect.signature(self.rt.wait).parameters
        except (TypeError, ValueError):
            self._wait_fetch_local = False

    def stop(self):
        self.rt.shutdown()

    def fresh_script(self, run_task):
        mod = self.package
        lines = [f"import {mod}", f"{mod}.init()"]
        if run_task:
            lines += [f"@{mod}.remote", "def f():", "    return 1",
                      f"assert {mod}.get(f.remote()) == 1"]
        lines += [f"print({READY!r}, flush=True)", "import sys", "sys.stdin.read()",
                  f"{mod}.shutdown()"]
        return "\n".join(lines)

    # -- primitives of the generic workloads --------------------------------

    def _one_task(self):
        rt, sv = self.rt, self.r.small_value
        return lambda: rt.get(sv.remote())

    def _batch(self, count):
        rt, sv = self.rt, self.r.small_value
        return lambda: rt.get([sv.remote() for _ in range(count)])

    def _dag(self, m):
        rt, f, g = self.rt, self.r.mat_f, self.r.mat_g
        return lambda: rt.get(g.remote(f.remote(m)))

    def _put(self, value):
        return self.rt.put(value)

    def _get(self, ref):
        return self.rt.get(ref)

    @property
    def a(self):
        """The actor classes, defined on first use."""
        if not hasattr(self, "_a"):
            self._a = _Remotes(_define_actors(self.rt, self.r.small_value))
        return self._a

    def _new_actors(self, count, is_async=False, **options):
        cls = self.a.AsyncActor if is_async else self.a.Actor
        if options:
            cls = cls.options(**options)
        return [cls.remote() for _ in range(count)]

    def _ping_all(self, actors):
        self.rt.get([a.small_value.remote() for a in actors])

    def _calls(self, actor, method, count=None, arg=False):
        rt, call = self.rt, getattr(actor, method).remote
        if count is None:
            return lambda: rt.get(call())
        if arg:
            return lambda: rt.get([call(i) for i in range(count)])
        return lambda: rt.get([call() for _ in range(count)])

    def _release(self, handles):
        kill = getattr(self.rt, "kill", None)
        for h in handles if kill else ():
            kill(h)
        handles.clear()

    def _pool(self, processes):
        # quanta.util.multiprocessing.Pool or ray.util.multiprocessing.Pool
        pool = importlib.import_module(f"{self.package}.util.multiprocessing").Pool(processes)
        return pool, pool.terminate

    # -- workloads that need Ray's API -------------------------------------

    @workload("multi_client_put_calls_Plasma_Store")
    def multi_put_calls(self):
        s, rt, put_small = self.sizes, self.rt, self.r.put_small
        fn = lambda: rt.get([put_small.remote(s.multi_put_each) for _ in range(s.multi_put_tasks)])
        return self.m.rates(fn, s.multi_put_tasks * s.multi_put_each), {}

    @workload("multi_client_put_gigabytes")
    def multi_put_gigabytes(self):
        s, rt, put_large = self.sizes, self.rt, self.r.put_large
        fn = lambda: rt.get([put_large.remote(s.multi_put_gb_each, s.multi_put_gb_elems)
                             for _ in range(s.multi_put_gb_tasks)])
        total = s.multi_put_gb_tasks * s.multi_put_gb_each * s.multi_put_gb_elems * 8
        return self.m.rates(fn, total / 1e9), {"bytes_per_call": total}

    @workload("single_client_get_object_containing_10k_refs")
    def get_object_with_refs(self):
        ref = self.r.object_with_refs.remote(self.sizes.refs_in_object)
        assert len(self.rt.get(ref)) == self.sizes.refs_in_object
        return self.m.rates(lambda: self.rt.get(ref)), {}

    @workload("single_client_wait_1k_refs")
    def wait_refs(self):
        rt, sv, count = self.rt, self.r.small_value, self.sizes.batch

        def fn():
            not_ready = [sv.remote() for _ in range(count)]
            # As Ray's benchmark does: ask for the fetch once, not per wait.
            kw = {"fetch_local": True} if self._wait_fetch_local else {}
            while not_ready:
                _, not_ready = rt.wait(not_ready, num_returns=1, **kw)
                if kw:
                    kw = {"fetch_local": False}

        return self.m.rates(fn), {"fetch_local_passed": self._wait_fetch_local}

    @workload("streaming_generator_items")
    def streaming_generator(self):
        rt, stream_items, n = self.rt, self.r.stream_items, self.sizes.stream_items

        def fn():
            got = 0
            for ref in stream_items.remote(n):
                rt.get(ref)
                got += 1
            assert got == n, f"the generator yielded {got} of {n} items"

        return self.m.rates(fn, n), {"items_per_run": n}

    @workload("multi_client_tasks_async")
    def multi_client_tasks(self):
        s, rt = self.sizes, self.rt
        clients = self._new_actors(s.mc_clients)
        samples = self.m.rates(lambda: rt.get([c.submit_tasks.remote(s.mc_tasks) for c in clients]),
                               s.mc_clients * s.mc_tasks)
        self._release(clients)
        return samples, {}

    @workload("1_1_actor_calls_concurrent")
    def actor_concurrent(self):
        return self._on_one(False, self.sizes.batch, max_concurrency=self.sizes.max_concurrency)

    def _one_to_n(self, is_async):
        s, rt = self.sizes, self.rt
        servers = self._new_actors(s.fanout, is_async)
        client = self.a.Client.remote(servers)
        samples = self.m.rates(lambda: rt.get(client.small_value_batch.remote(s.fanout_calls)),
                               s.fanout_calls * s.fanout)
        self._release(servers + [client])
        return samples, {}

    def _n_to_n(self, is_async):
        s, rt, call_actors = self.sizes, self.rt, self.r.call_actors
        servers = self._new_actors(s.fanout, is_async)
        samples = self.m.rates(
            lambda: rt.get([call_actors.remote(servers, s.fanout_calls) for _ in range(s.n_n_tasks)]),
            s.n_n_tasks * s.fanout_calls)
        self._release(servers)
        return samples, {}

    @workload("1_n_actor_calls_async")
    def one_to_n(self):
        return self._one_to_n(False)

    @workload("1_n_async_actor_calls_async")
    def one_to_n_async(self):
        return self._one_to_n(True)

    @workload("n_n_actor_calls_async")
    def n_to_n(self):
        return self._n_to_n(False)

    @workload("n_n_async_actor_calls_async")
    def n_to_n_async(self):
        return self._n_to_n(True)

    @workload("n_n_actor_calls_with_arg_async")
    def n_to_n_arg(self):
        s, rt = self.sizes, self.rt
        servers = self._new_actors(s.fanout)
        clients = [self.a.Client.remote(a) for a in servers]
        samples = self.m.rates(
            lambda: rt.get([c.small_value_batch_arg.remote(s.arg_calls) for c in clients]),
            s.arg_calls * len(clients))
        self._release(servers + clients)
        return samples, {}


class QuantaBackend(RayLikeBackend):
    name = package = "quanta"


class RayBackend(RayLikeBackend):
    name = package = "ray"
