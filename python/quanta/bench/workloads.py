"""The catalogue of workloads: names, units, groups and sizes.

Nothing here runs a workload; the backends implement them (a backend that has
no implementation for a workload cannot express it, and the report marks it
``n/a``).  Workloads from Ray's microbenchmark keep Ray's names with the
spaces, colons and parentheses turned into underscores.
"""

from dataclasses import dataclass, field, fields, replace

HIGHER, LOWER = True, False


@dataclass(frozen=True)
class Row:
    name: str
    unit: str
    higher_is_better: bool
    baseline: bool = False  # a property of the machine, not of the backend: no ratio


@dataclass(frozen=True)
class Workload:
    name: str
    group: str  # runs are interleaved between backends group by group
    about: str
    rows: tuple  # of Row; most workloads report a single row named like them
    from_ray: bool = True
    standalone: bool = False  # must run with no cluster up (it starts its own)


def _w(name, group, unit, about, higher=HIGHER, **kw):
    return Workload(name, group, about, (Row(name, unit, higher),), **kw)


# Groups, in the order they run.
GROUPS = ("process", "objects", "tasks", "actors", "pools")

CATALOGUE = (
    # -- a fresh process, no cluster running in the measuring process
    _w("startup_to_first_result", "process", "s",
       "fresh `python -c` process: import, init, one task, until its result is read",
       LOWER, from_ray=False, standalone=True),
    _w("idle_footprint_pss", "process", "MiB",
       "total PSS of an idle local cluster: driver plus all its descendants, after init and settling",
       LOWER, from_ray=False, standalone=True),
    # -- objects
    _w("single_client_get_calls_Plasma_Store", "objects", "gets/s", "get of one small put object"),
    _w("single_client_put_calls_Plasma_Store", "objects", "puts/s", "put of a small int"),
    _w("multi_client_put_calls_Plasma_Store", "objects", "puts/s",
       "tasks that each put many small ints; the driver waits for all"),
    _w("single_client_put_gigabytes", "objects", "GB/s", "put of an 800 MB int64 array"),
    _w("multi_client_put_gigabytes", "objects", "GB/s", "tasks that each put several 80 MB arrays"),
    _w("single_client_get_object_containing_10k_refs", "objects", "gets/s",
       "get of a task result that is a list of 10k object refs"),
    Workload("put_1GiB_numpy", "objects",
             "put of a 1 GiB numpy array, beside np.copyto of 1 GiB in the same process",
             (Row("put_1GiB_numpy", "GB/s", HIGHER), Row("memcpy_1GiB", "GB/s", HIGHER, baseline=True)),
             from_ray=False),
    _w("get_1GiB_numpy", "objects", "ms", "get of a 1 GiB numpy array put once", LOWER, from_ray=False),
    # -- tasks
    _w("single_client_tasks_and_get_batch", "tasks", "batches/s",
       "submit 1000 no-op tasks, get them all"),
    _w("single_client_wait_1k_refs", "tasks", "rounds/s",
       "submit 1000 tasks, then wait for one at a time until none is left"),
    _w("single_client_tasks_sync", "tasks", "tasks/s", "submit one task and get it"),
    _w("single_client_tasks_async", "tasks", "tasks/s", "submit 1000 tasks, get them all"),
    _w("multi_client_tasks_async", "tasks", "tasks/s",
       "client actors that each submit a batch of tasks and get them"),
    _w("noop_task_round_trip", "tasks", "us", "one no-op task submitted and its result got",
       LOWER, from_ray=False),
    Workload("sync_task_latency", "tasks", "per-call latency of sync no-op tasks, percentiles per run",
             (Row("sync_task_latency_p50", "us", LOWER), Row("sync_task_latency_p99", "us", LOWER)),
             from_ray=False),
    _w("throughput_10k_noop_tasks", "tasks", "tasks/s", "submit 10,000 no-op tasks, then gather them",
       from_ray=False),
    _w("streaming_generator_items", "tasks", "items/s",
       "one streaming generator task yielding 10,000 small ints, each ref taken and got as it comes",
       from_ray=False),
    _w("matrix_1000x1000_two_task_dag", "tasks", "ms",
       "a 1000x1000 float64 matrix through f then g (g takes f's result), result got",
       LOWER, from_ray=False),
    # -- actors
    _w("1_1_actor_calls_sync", "actors", "calls/s", "one call, then get it"),
    _w("1_1_actor_calls_async", "actors", "calls/s", "1000 calls, then get them all"),
    _w("1_1_actor_calls_concurrent", "actors", "calls/s",
       "1000 calls to an actor with max_concurrency=16"),
    _w("1_n_actor_calls_async", "actors", "calls/s", "one client actor calling n actors"),
    _w("n_n_actor_calls_async", "actors", "calls/s", "tasks that each call n actors round-robin"),
    _w("n_n_actor_calls_with_arg_async", "actors", "calls/s",
       "n client actors, each calling its own actor with a put ref as argument"),
    _w("1_1_async_actor_calls_sync", "actors", "calls/s", "async actor: one call, then get it"),
    _w("1_1_async_actor_calls_async", "actors", "calls/s", "async actor: 1000 calls, then get them"),
    _w("1_1_async_actor_calls_with_args_async", "actors", "calls/s",
       "async actor: 1000 calls with an int argument"),
    _w("1_n_async_actor_calls_async", "actors", "calls/s", "one client actor calling n async actors"),
    _w("n_n_async_actor_calls_async", "actors", "calls/s", "tasks that each call n async actors"),
    _w("actor_creation_rate", "actors", "actors/s",
       "create a batch of actors and get one call from each", from_ray=False),
    # -- process pools with the standard library's multiprocessing.Pool API
    _w("pool_map_throughput", "pools", "items/s",
       "Pool(cpu_count).map(abs, range(N)), default chunking: quanta.util / ray.util / stdlib Pool",
       from_ray=False),
    _w("pool_map_10k_small_items", "pools", "items/s",
       "Pool(cpu_count).map(abs, range(10,000)), default chunking", from_ray=False),
    _w("pool_map_200_items_of_10ms", "pools", "items/s",
       "Pool(cpu_count).map(time.sleep, [0.01] * 200), default chunking: the work itself takes "
       "200 x 10 ms / cpu_count", from_ray=False),
)

BY_NAME = {w.name: w for w in CATALOGUE}
ROWS = {r.name: (w, r) for w in CATALOGUE for r in w.rows}


def select(names):
    """Workloads named by ``names`` (workload or row names), catalogue order."""
    if not names:
        return list(CATALOGUE)
    wanted = set()
    for n in names:
        if n in BY_NAME:
            wanted.add(n)
        elif n in ROWS:
            wanted.add(ROWS[n][0].name)
        else:
            raise ValueError(f"unknown workload {n!r}; see --list")
    return [w for w in CATALOGUE if w.name in wanted]


def _size(value, reference, source, what, *workloads):
    meta = {"ref": reference, "src": source, "what": what, "for": workloads}
    return field(default=value, metadata=meta)


_BATCH_USERS = ("single_client_tasks_and_get_batch", "single_client_wait_1k_refs",
                "single_client_tasks_async", "1_1_actor_calls_async", "1_1_actor_calls_concurrent",
                "1_1_async_actor_calls_async", "1_1_async_actor_calls_with_args_async")
_FANOUT_USERS = ("1_n_actor_calls_async", "n_n_actor_calls_async", "n_n_actor_calls_with_arg_async",
                 "1_n_async_actor_calls_async", "n_n_async_actor_calls_async")
GIB = 1 << 30


@dataclass(frozen=True)
class Sizes:
    """Sizes of the workloads.  Each field records the size Ray's benchmark
    (or the issue that asked for the workload) uses, so a run can say what it
    scaled down."""

    batch: int = _size(1000, 1000, "Ray", "tasks or calls per batch", *_BATCH_USERS)
    multi_put_tasks: int = _size(10, 10, "Ray", "putting tasks", "multi_client_put_calls_Plasma_Store")
    multi_put_each: int = _size(100, 100, "Ray", "small puts per task",
                                "multi_client_put_calls_Plasma_Store")
    put_gb_elems: int = _size(100 << 20, 100 << 20, "Ray", "int64 elements put",
                              "single_client_put_gigabytes")
    multi_put_gb_tasks: int = _size(10, 10, "Ray", "putting tasks", "multi_client_put_gigabytes")
    multi_put_gb_each: int = _size(10, 10, "Ray", "puts per task", "multi_client_put_gigabytes")
    multi_put_gb_elems: int = _size(10 << 20, 10 << 20, "Ray", "int64 elements per put",
                                    "multi_client_put_gigabytes")
    refs_in_object: int = _size(10000, 10000, "Ray", "refs in the object",
                                "single_client_get_object_containing_10k_refs")
    mc_clients: int = _size(2, 4, "Ray", "client actors (2 cores)", "multi_client_tasks_async")
    mc_tasks: int = _size(5000, 10000, "Ray", "tasks per client", "multi_client_tasks_async")
    fanout: int = _size(2, 1, "Ray (cpu_count // 2)", "actors n (kept at 2 so n > 1)", *_FANOUT_USERS)
    # 2,500 x n=2 makes the 5,000 calls per call that Ray's n=1 makes on 2 cores.
    fanout_calls: int = _size(2500, 5000, "Ray", "calls per actor or per task",
                              "1_n_actor_calls_async", "n_n_actor_calls_async",
                              "1_n_async_actor_calls_async", "n_n_async_actor_calls_async")
    n_n_tasks: int = _size(2, 4, "Ray", "calling tasks (2 cores)",
                           "n_n_actor_calls_async", "n_n_async_actor_calls_async")
    arg_calls: int = _size(1000, 1000, "Ray", "calls per client", "n_n_actor_calls_with_arg_async")
    max_concurrency: int = _size(16, 16, "Ray", "max_concurrency", "1_1_actor_calls_concurrent")
    actors: int = _size(200, 200, "issue", "actors per batch", "actor_creation_rate")
    big_bytes: int = _size(GIB, GIB, "issue", "bytes", "put_1GiB_numpy", "get_1GiB_numpy")
    throughput_tasks: int = _size(10000, 10000, "issue", "tasks", "throughput_10k_noop_tasks")
    matrix_n: int = _size(1000, 1000, "issue", "matrix side", "matrix_1000x1000_two_task_dag")
    stream_items: int = _size(10000, 10000, "issue", "items yielded", "streaming_generator_items")
    latency_calls: int = _size(500, 500, "suite", "calls per run", "sync_task_latency")
    pool_items: int = _size(100000, 100000, "issue", "items per map", "pool_map_throughput")
    pool_small_items: int = _size(10000, 10000, "issue", "items per map", "pool_map_10k_small_items")
    pool_sleep_items: int = _size(200, 200, "issue", "10 ms items per map", "pool_map_200_items_of_10ms")
    store_bytes: int = _size(4 * GIB, 4 * GIB, "suite", "object store bytes", )


SIZES = {
    "full": Sizes(),
    "quick": replace(Sizes(), mc_tasks=2000, fanout_calls=1000, actors=50,
                     put_gb_elems=25 << 20, multi_put_gb_tasks=2),
    "smoke": Sizes(batch=10, multi_put_tasks=2, multi_put_each=5, put_gb_elems=1 << 14,
                   multi_put_gb_tasks=2, multi_put_gb_each=2, multi_put_gb_elems=1 << 12,
                   refs_in_object=50, mc_clients=2, mc_tasks=10, fanout=2, fanout_calls=10,
                   n_n_tasks=2, arg_calls=10, max_concurrency=4, actors=3, big_bytes=1 << 20,
                   throughput_tasks=20, matrix_n=20, stream_items=20, latency_calls=10, store_bytes=256 << 20,
                   pool_items=100, pool_small_items=100, pool_sleep_items=8),
}


def scaling_notes(sizes, workloads):
    """Lines saying which selected workloads run smaller than their source."""
    chosen = {w.name for w in workloads}
    notes = []
    for f in fields(sizes):
        meta, value = f.metadata, getattr(sizes, f.name)
        users = [w for w in meta.get("for", ()) if w in chosen]
        if users and value != meta["ref"]:
            notes.append(f"{', '.join(users)}: {meta['what']} "
                         f"{meta['ref']:,} ({meta['src']}) -> {value:,}")
    return notes
