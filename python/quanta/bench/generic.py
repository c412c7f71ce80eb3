"""Workloads written once over a few primitives that each backend supplies.

A backend mixes in the groups it can express and implements their
primitives; everything else about a workload (its sizes, how it is timed,
what it reports) lives here, so every backend is measured the same way.
"""

import os
import time

from . import procs
from .backends import workload
from .measure import percentile


class TaskWorkloads:
    """Needs ``_one_task()`` (a callable: submit one no-op task and wait for
    its result), ``_batch(n)`` (submit n, then wait for all) and
    ``_dag(m)`` (a callable: m through f then g, returning g's result)."""

    @workload("single_client_tasks_and_get_batch")
    def tasks_and_get_batch(self):
        return self.m.rates(self._batch(self.sizes.batch)), {}

    @workload("single_client_tasks_sync")
    def tasks_sync(self):
        return self.m.rates(self._one_task()), {}

    @workload("single_client_tasks_async")
    def tasks_async(self):
        return self.m.rates(self._batch(self.sizes.batch), self.sizes.batch), {}

    @workload("noop_task_round_trip")
    def round_trip(self):
        return self.m.latencies(self._one_task(), 1e6), {}

    @workload("sync_task_latency")
    def latency_percentiles(self):
        runs = self.m.sequences(self._one_task(), self.sizes.latency_calls)
        details = {"calls_per_run": self.sizes.latency_calls}
        return {f"sync_task_latency_p{q}": ([percentile(r, q) * 1e6 for r in runs], details)
                for q in (50, 99)}

    @workload("throughput_10k_noop_tasks")
    def throughput(self):
        n = self.sizes.throughput_tasks
        return self.m.rates(self._batch(n), n), {}

    @workload("matrix_1000x1000_two_task_dag")
    def matrix_dag(self):
        import numpy as np

        m = np.random.default_rng(0).random((self.sizes.matrix_n,) * 2)
        run = self._dag(m)
        assert np.allclose(run(), (m + 1.0) * 2.0), "wrong DAG result"
        return self.m.latencies(run, 1e3), {}


class ObjectWorkloads:
    """Needs ``_put(value)`` returning a reference and ``_get(ref)``."""

    @workload("single_client_get_calls_Plasma_Store")
    def get_calls(self):
        ref = self._put(0)
        return self.m.rates(lambda: self._get(ref)), {}

    @workload("single_client_put_calls_Plasma_Store")
    def put_calls(self):
        return self.m.rates(lambda: self._put(0)), {}

    @workload("single_client_put_gigabytes")
    def put_gigabytes(self):
        import numpy as np

        arr = np.zeros(self.sizes.put_gb_elems, dtype=np.int64)
        return self.m.rates(lambda: self._put(arr), arr.nbytes / 1e9), {"bytes_per_put": arr.nbytes}

    @workload("put_1GiB_numpy")
    def put_big(self):
        import numpy as np

        src = np.ones(self.sizes.big_bytes, dtype=np.uint8)
        dst = np.empty_like(src)
        gb = src.nbytes / 1e9
        memcpy = self.m.rates(lambda: np.copyto(dst, src), gb)
        del dst
        put = self.m.rates(lambda: self._put(src), gb)
        return {"put_1GiB_numpy": (put, {"put_over_memcpy": round(sum(put) / sum(memcpy), 3)}),
                "memcpy_1GiB": (memcpy, {"how": "np.copyto into a touched buffer, one thread"})}

    @workload("get_1GiB_numpy")
    def get_big(self):
        import numpy as np

        ref = self._put(np.ones(self.sizes.big_bytes, dtype=np.uint8))
        got = self._get(ref)
        assert got.nbytes == self.sizes.big_bytes and got[0] == 1 and got[-1] == 1, "wrong array"
        del got
        return self.m.latencies(lambda: self._get(ref), 1e3), {}


class ActorWorkloads:
    """Needs ``_new_actors(count, is_async=False, **options)`` returning
    handles of actors with methods ``small_value()`` (and, when async,
    ``small_value_with_arg(x)``), ``_calls(actor, method, count, arg)``
    returning a callable that makes ``count`` calls (one and waits, if
    ``count`` is None) and waits for them, ``_ping_all(actors)`` and
    ``_release(actors)``."""

    def _on_one(self, is_async, count=None, method="small_value", arg=False, **options):
        actors = self._new_actors(1, is_async, **options)
        self._ping_all(actors)
        samples = self.m.rates(self._calls(actors[0], method, count, arg), count or 1)
        self._release(actors)
        return samples, {}

    @workload("1_1_actor_calls_sync")
    def actor_sync(self):
        return self._on_one(False)

    @workload("1_1_actor_calls_async")
    def actor_async(self):
        return self._on_one(False, self.sizes.batch)

    @workload("1_1_async_actor_calls_sync")
    def async_actor_sync(self):
        return self._on_one(True)

    @workload("1_1_async_actor_calls_async")
    def async_actor_async(self):
        return self._on_one(True, self.sizes.batch)

    @workload("1_1_async_actor_calls_with_args_async")
    def async_actor_args(self):
        return self._on_one(True, self.sizes.batch, "small_value_with_arg", arg=True)

    @workload("actor_creation_rate")
    def actor_creation(self):
        me, timing = os.getpid(), self.m.timing

        def batch(count):
            start = time.perf_counter()
            actors = self._new_actors(count)
            self._ping_all(actors)
            rate = count / (time.perf_counter() - start)
            self._release(actors)
            # Let the actors' processes, if any, go before the next batch.
            procs.wait_until_settled(me, timing.quiet_s, max_s=60)
            return rate

        # One timed batch per round: 200 process-backed actors can take over a
        # minute on 2 cores.  More rounds (--rounds) give more samples.
        if timing.oneshot_warmup:
            batch(min(10, self.sizes.actors))
        return [batch(self.sizes.actors)], {"actors_per_batch": self.sizes.actors}


class PoolWorkloads:
    """Needs ``_pool(processes)`` returning ``(pool, release)``: an object with
    multiprocessing.Pool's ``map``, and a callable that gives it back."""

    @workload("pool_map_throughput")
    def pool_map(self):
        n = self.sizes.pool_items
        processes = os.cpu_count()
        pool, release = self._pool(processes)
        try:
            assert pool.map(abs, range(-3, 3)) == [3, 2, 1, 0, 1, 2], "wrong Pool.map result"
            items = range(-n, 0)
            samples = self.m.rates(lambda: pool.map(abs, items), n)
        finally:
            release()
        return samples, {"items_per_map": n, "processes": processes}

    def _pool_rates(self, fn, items, check):
        processes = os.cpu_count()
        pool, release = self._pool(processes)
        try:
            assert check(pool.map(fn, items)), "wrong Pool.map result"
            samples = self.m.rates(lambda: pool.map(fn, items), len(items))
        finally:
            release()
        return samples, {"items_per_map": len(items), "processes": processes}

    @workload("pool_map_10k_small_items")
    def pool_map_small(self):
        items = list(range(-self.sizes.pool_small_items, 0))
        return self._pool_rates(abs, items, lambda out: out == [-i for i in items])

    @workload("pool_map_200_items_of_10ms")
    def pool_map_sleep(self):
        items = [0.01] * self.sizes.pool_sleep_items
        return self._pool_rates(time.sleep, items, lambda out: out == [None] * len(items))
