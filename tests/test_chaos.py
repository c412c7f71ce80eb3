"""Chaos (issue 13): DAGs of tasks with large intermediate objects and restartable actors on a
4-node `quanta.cluster_utils.Cluster`, while a killer thread, every 2 s in turn, removes a random
non-head node with `remove_node(allow_graceful=False)` (and adds a fresh one at once) or
SIGKILLs a random worker or actor process of any node.

Checks, all on the real processes:
  * every task result is right (each DAG's checksum, and for some DAGs the large intermediate
    itself, got at the end after more failures, so that lost copies are rebuilt by lineage);
  * every actor call is accounted for: each returned its value, and its effect (a line in its
    actor's journal file, written before it returns) is there at least once;
  * the object store of every surviving node is back to its baseline once the refs are gone;
  * no process is orphaned: every process of a removed node is gone soon after, and every
    process the cluster ever had is gone after shutdown.

Size: QUANTA_CHAOS_TASKS tasks (4 per DAG; default 1,000: 20 s to a minute on 2 cores, by load).
The full issue-13 run is `QUANTA_CHAOS_TASKS=2000 pytest -m chaos tests/test_chaos.py`
(its duration and outcome are in docs/fault-tolerance.md). QUANTA_CHAOS_SEED fixes the killer's
choices (default: random, printed on failure).
"""

import os
import random
import signal
import threading
import time

import numpy as np
import pytest

import quanta
from conftest import describe, descendants, process_identity, wait_until_gone
from quanta.cluster_utils import Cluster

pytestmark = pytest.mark.chaos

MiB = 1 << 20
TASKS = int(os.environ.get("QUANTA_CHAOS_TASKS", "1000"))
SEED = int(os.environ.get("QUANTA_CHAOS_SEED", str(random.randrange(1 << 30))))
KILL_EVERY_S = 2.0
WORKER_NODES = 3
STORE = 256 * MiB
ACTORS = 10
WINDOW = 6  # DAGs in flight at once (each holds up to 30 MB of intermediates)
KEEP_EVERY = 10  # every 10th DAG's intermediate is held and read back at the end


# ------------------------------------------------------------------------------ the workload


_BASE = []


def pattern(seed, n):
    if not _BASE or _BASE[0].size < n:  # 0, 1, ..., 255, 0, 1, ... (made once per process)
        _BASE[:] = [np.tile(np.arange(256, dtype=np.uint8), 10 * MiB // 256 + 1)]
    out = np.multiply(_BASE[0][:n], np.uint8((2 * seed + 1) % 256))
    out += np.uint8(seed % 256)  # wraps mod 256
    return out


@quanta.remote(max_retries=-1)
def produce(seed, n):
    return pattern(seed, n)


@quanta.remote(max_retries=-1)
def combine(a, b):
    return np.bitwise_xor(a, b)


@quanta.remote(max_retries=-1)
def checksum(c):
    return int(c.sum(dtype=np.uint64)), int(c.size)


def expected_intermediate(seed, n):
    return np.bitwise_xor(pattern(seed, n), pattern(seed + 1, n))


def expected_checksum(seed, n):
    # The intermediate repeats every 256 bytes.
    block = expected_intermediate(seed, 256).astype(np.uint64)
    return int(block.sum()) * (n // 256) + int(block[: n % 256].sum()), n


@quanta.remote(num_cpus=0, max_restarts=-1, max_task_retries=-1)
class Journal:
    """Appends each call's id to its own file before answering: the effect survives restarts."""

    def __init__(self, path):
        self.path = path
        self.pid = os.getpid()

    def record(self, call_id):
        with open(self.path, "a") as f:
            f.write(f"{call_id}\n")
            f.flush()
            os.fsync(f.fileno())
        return call_id * 3 + 1

    def pid_and_node(self):
        return self.pid, quanta.get_runtime_context().get_node_id()


# ------------------------------------------------------------------------------ the killer


def node_daemon_pid(node):
    return next(p.pid for role, p in node._session._procs if role == "node")


class Killer(threading.Thread):
    """Every KILL_EVERY_S, in turn: remove a random non-head node without grace (and add a fresh
    one), or SIGKILL a random worker process of any node. Records every process it sees."""

    def __init__(self, cluster, rng):
        super().__init__(daemon=True)
        self.cluster, self.rng = cluster, rng
        self.stop = threading.Event()
        self.seen = set()  # identities of every cluster process observed
        self.of_removed = set()  # identities of every process of a removed node
        self.log = []
        self.error = None

    def snapshot(self):
        for node in self.cluster.list_all_nodes():
            for pid in node.pids:
                ident = process_identity(pid)
                if ident:
                    self.seen.add(ident)
                    self.seen |= descendants(pid)

    def workers(self):
        out = []
        for node in self.cluster.list_all_nodes():
            out += [ident for ident in descendants(node_daemon_pid(node))]
        return out

    def run(self):
        try:
            tick = 0
            while not self.stop.wait(KILL_EVERY_S):
                self.snapshot()
                tick += 1
                if tick % 2 == 0:  # the kinds alternate (a node first), the victims are random
                    victims = self.workers()
                    if victims:
                        pid, _ = self.rng.choice(sorted(victims))
                        try:
                            os.kill(pid, signal.SIGKILL)
                            self.log.append(("worker", pid))
                        except ProcessLookupError:
                            pass
                        continue
                node = self.rng.choice(self.cluster.worker_nodes)
                ours = {process_identity(p) for p in node.pids} | descendants(node_daemon_pid(node))
                self.of_removed |= {i for i in ours if i}
                self.seen |= self.of_removed
                self.cluster.remove_node(node, allow_graceful=False)
                self.log.append(("node", node.node_index))
                self.cluster.add_node(num_cpus=1, object_store_memory=STORE)
            self.snapshot()
        except BaseException as e:  # noqa: BLE001 - reported by the test
            self.error = e


# ------------------------------------------------------------------------------ store checks


def store_used_by_node():
    """{node_id: (bytes in its object store, objects in it, bytes spilled)} for every alive node."""
    from quanta.util.state import node_host_stats

    return {node_id: (stats["store_used"], stats["objects"], stats["store_spilled_bytes"])
            for node_id, stats in node_host_stats().items()}


def wait_for_store_baseline(baseline, timeout):
    deadline = time.monotonic() + timeout
    while True:
        used = store_used_by_node()
        over = {n: u for n, u in used.items() if any(x > b for x, b in zip(u, baseline.get(n, (0, 0, 0))))}
        if not over or time.monotonic() > deadline:
            return used, over
        time.sleep(0.2)


# ------------------------------------------------------------------------------ the test


def test_chaos(no_cluster, tmp_path):
    t_test = time.monotonic()
    phases = {}
    rng = random.Random(SEED)
    cluster = Cluster(initialize_head=True, shutdown_at_exit=False,
                      head_node_args={"num_cpus": 1, "object_store_memory": STORE})
    killer = None
    try:
        for _ in range(WORKER_NODES):
            cluster.add_node(num_cpus=1, object_store_memory=STORE)
        cluster.connect()
        actors = [Journal.options(scheduling_strategy="SPREAD").remote(str(tmp_path / f"journal-{i}"))
                  for i in range(ACTORS)]
        quanta.get([a.pid_and_node.remote() for a in actors], timeout=120)
        quanta.get(checksum.remote(combine.remote(produce.remote(0, MiB), produce.remote(1, MiB))), timeout=120)
        baseline = store_used_by_node()

        killer = Killer(cluster, random.Random(SEED + 1))
        t_start = time.monotonic()
        phases["setup"] = t_start
        killer.start()

        dags = TASKS // 4
        sizes = [rng.randint(1 * MiB, 10 * MiB) for _ in range(dags)]
        kept = {}  # dag -> ref of its intermediate, read at the end
        calls = {}  # call id -> (actor index, ref)
        in_flight = {}  # checksum ref -> dag
        results = {}
        failures = []

        def drain(block_until):
            while len(in_flight) > block_until:
                ready, _ = quanta.wait(list(in_flight), num_returns=1, timeout=180)
                if not ready:
                    raise AssertionError(f"no DAG finished within 180 s; killer log: {killer.log[-10:]}")
                for ref in ready:
                    dag = in_flight.pop(ref)
                    try:
                        results[dag] = quanta.get(ref, timeout=60)
                    except Exception as e:  # noqa: BLE001 - every failure is listed below
                        failures.append(f"DAG {dag}: {type(e).__name__}: {e}")

        for dag, n in enumerate(sizes):
            a = produce.options(scheduling_strategy="SPREAD").remote(2 * dag, n)
            b = produce.options(scheduling_strategy="SPREAD").remote(2 * dag + 1, n)
            c = combine.remote(a, b)
            in_flight[checksum.remote(c)] = dag
            if dag % KEEP_EVERY == 0:
                kept[dag] = c
            call_id = dag
            calls[call_id] = (dag % ACTORS, actors[dag % ACTORS].record.remote(call_id))
            drain(WINDOW)
        drain(0)
        phases["tasks"] = time.monotonic()

        for call_id, (_, ref) in calls.items():
            try:
                assert quanta.get(ref, timeout=120) == call_id * 3 + 1
            except Exception as e:  # noqa: BLE001
                failures.append(f"actor call {call_id}: {type(e).__name__}: {e}")

        killer.stop.set()
        phases["actor calls"] = time.monotonic()
        killer.join(60)
        chaos_s = time.monotonic() - t_start
        assert not killer.is_alive(), "the killer thread is stuck"
        assert killer.error is None, f"the killer failed: {killer.error!r}"
        assert not failures, f"seed {SEED}, killer log {killer.log}:\n" + "\n".join(failures[:20])

        phases["killer stopped"] = time.monotonic()
        # Every DAG's checksum is right.
        for dag, n in enumerate(sizes):
            assert results[dag] == expected_checksum(2 * dag, n), f"DAG {dag} (seed {SEED})"
        # The held intermediates, read after all the failures (rebuilt when their copies died).
        t_kept = time.monotonic()
        for dag, ref in kept.items():
            value = quanta.get(ref, timeout=120)
            assert np.array_equal(value, expected_intermediate(2 * dag, sizes[dag])), f"DAG {dag}"
            del value

        phases["results checked"] = time.monotonic()
        # Every actor call's effect was observed at least once, and no call that was never made.
        for i in range(ACTORS):
            path = tmp_path / f"journal-{i}"
            seen = [int(x) for x in path.read_text().split()] if path.exists() else []
            want = {c for c, (actor, _) in calls.items() if actor == i}
            assert want <= set(seen), f"actor {i} lost calls {sorted(want - set(seen))[:10]}"
            assert set(seen) <= want, f"actor {i} ran calls never made: {sorted(set(seen) - want)[:10]}"

        kills = [k for k, _ in killer.log]
        print(f"\nchaos: {TASKS} tasks, {len(calls)} actor calls in {chaos_s:.1f} s; "
              f"{kills.count('worker')} workers and {kills.count('node')} nodes killed (seed {SEED}); "
              f"{len(kept)} held intermediates read back in {time.monotonic() - t_kept:.1f} s")
        assert kills.count("node") >= 1, f"the run was too short to lose a node: {killer.log}"

        # The stores go back to their baseline once nothing references the objects.
        del kept, calls, a, b, c, ref  # ref: the last kept intermediate
        t_store = time.monotonic()
        used, over = wait_for_store_baseline(baseline, 30)
        print(f"store back to baseline in {time.monotonic() - t_store:.1f} s")
        assert not over, f"store use above baseline {baseline} after the run: {used}"

        phases["journals and stores"] = time.monotonic()
        # Every process of a removed node is gone (workers do not outlive their node).
        left = wait_until_gone(killer.of_removed, 15)
        assert not left, "processes of removed nodes still alive:\n" + describe(left)
        phases["removed nodes' processes gone"] = time.monotonic()
    finally:
        if killer is not None:
            killer.stop.set()
            killer.join(60)
        seen = set(killer.seen) if killer is not None else set()
        for node in cluster.list_all_nodes():
            for pid in node.pids:
                seen |= {process_identity(pid)} | descendants(pid)
        seen.discard(None)
        cluster.shutdown()
    left = wait_until_gone(seen, 30)
    assert not left, "processes still alive after the cluster was shut down:\n" + describe(left)
    phases["shutdown"] = time.monotonic()
    marks = [t_test] + list(phases.values())
    print(f"chaos: {len(seen)} cluster processes seen, all gone; {time.monotonic() - t_test:.1f} s in all ("
          + ", ".join(f"{k} {b - a:.1f} s" for k, a, b in zip(phases, marks, marks[1:])) + ")")
