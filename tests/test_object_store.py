"""The shared-memory object store: placement, zero-copy reads, reference counting across
processes, crash safety, and the `quanta memory` view.

Every test gets a fresh local cluster with a small store (``STORE`` bytes), so absolute numbers
from ``memory_summary()`` (used == 0, no objects) are meaningful. Releases are batched, so
expectations about freed memory are polled (``wait_for``), never asserted instantly.
Spilling and overflow are in test_spilling.py.
"""

import gc
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time

import numpy as np
import pytest

import quanta
import quanta.exceptions as qexc
from quanta._private import session

from conftest import MiB, STORE
from conftest import store_stats as stats, store_summary as summary

MEMFD_NAME = "memfd:quanta-object-store"


# ------------------------------------------------------------------------------------ helpers


def entry(ref, s=None):
    """memory_summary()'s entry for ``ref``, or None if the store does not list it."""
    s = s or summary()
    for o in s["objects"]:
        if o["object_id"] == ref.hex():
            return o
    return None


def where(ref):
    e = entry(ref)
    return None if e is None else e["where"]


def wait_for(predicate, what, timeout=15.0):
    """Polls ``predicate`` (returns a truthy value when satisfied) until it holds."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; store now: {summary()}")


def wait_store_empty(timeout=15.0):
    def empty():
        s = summary()
        return s["used"] == 0 and s["objects"] == [] and s["num_inline"] == 0 and s["num_spilled"] == 0

    wait_for(empty, "the store to be empty (no objects, nothing used)", timeout)


def wait_used_at_most(limit, timeout=15.0):
    wait_for(lambda: stats()["used"] <= limit, f"store usage to drop to <= {limit} bytes", timeout)


def arena_ranges():
    out = []
    with open("/proc/self/maps") as fh:
        for line in fh:
            if MEMFD_NAME in line:
                lo, hi = line.split()[0].split("-")
                out.append((int(lo, 16), int(hi, 16)))
    return out


def in_arena(arr):
    """True if all of ``arr``'s bytes lie inside this process's mapping of the store's memfd."""
    start = arr.__array_interface__["data"][0]
    end = start + arr.nbytes
    return any(lo <= start and end <= hi for lo, hi in arena_ranges())


def address(arr):
    return arr.__array_interface__["data"][0]


def pattern(nbytes, seed):
    """A recognisable int64 array of ``nbytes`` bytes (different for each seed)."""
    return np.arange(nbytes // 8, dtype=np.int64) * 3 + seed


def is_pattern(arr, nbytes, seed):
    return arr.dtype == np.int64 and arr.nbytes == nbytes and np.array_equal(arr, pattern(nbytes, seed))


@pytest.fixture
def probe(store):
    """A task that describes the array it receives: whether it views the store's memfd (checked
    against the worker's own /proc/self/maps), whether it is writeable, whether writing raises
    ValueError, and a checksum."""

    @quanta.remote
    def probe(arr):
        import numpy as np

        start = arr.__array_interface__["data"][0]
        end = start + arr.nbytes
        inside = False
        with open("/proc/self/maps") as fh:
            for line in fh:
                if "memfd:quanta-object-store" in line:
                    lo, hi = (int(x, 16) for x in line.split()[0].split("-"))
                    inside = inside or (lo <= start and end <= hi)
        checksum = int(arr.sum(dtype=np.int64))
        try:
            arr[0] = arr[0]
            write_raises = False
        except ValueError:
            write_raises = True
        return {
            "in_arena": inside,
            "writeable": bool(arr.flags.writeable),
            "write_raises": write_raises,
            "sum": checksum,
            "nbytes": int(arr.nbytes),
        }

    return probe


@pytest.fixture
def make_array(store):
    """A task returning a recognisable int64 array of ``nbytes`` bytes."""

    @quanta.remote
    def make_array(nbytes, seed):
        import numpy as np

        return np.arange(nbytes // 8, dtype=np.int64) * 3 + seed

    return make_array


# ---------------------------------------------------------------------------------- placement


def test_small_values_are_inline_and_large_values_in_shared_memory(store):
    small = [42, "text", np.arange(100), b"x" * (10 * 1024), {"k": [1.5, None]}]
    large = [
        np.ones(MiB, dtype=np.uint8),              # out-of-band buffer
        b"y" * (300 * 1024),                        # in-band bytes above the threshold
        ["s%04d" % i * 100 for i in range(2000)],   # ~1 MB of plain pickled Python objects
    ]
    small_refs = [quanta.put(v) for v in small]
    large_refs = [quanta.put(v) for v in large]

    s = summary()
    for ref, value in zip(small_refs, small):
        assert entry(ref, s) is not None, f"put of {type(value).__name__} not listed: {s}"
        assert entry(ref, s)["where"] == "inline", f"small {type(value).__name__} should be inline"
    for ref, value in zip(large_refs, large):
        assert entry(ref, s) is not None, f"put of large {type(value).__name__} not listed: {s}"
        assert entry(ref, s)["where"] == "shared_memory", f"large {type(value).__name__} should be stored"
        assert entry(ref, s)["size"] >= 100 * 1024

    assert s["num_inline"] == len(small)
    assert s["num_in_memory"] == len(large)
    assert s["inline_bytes"] > 0
    assert s["used"] >= sum(entry(r, s)["size"] for r in large_refs) >= MiB + 300 * 1024 + 1_000_000

    got_small = quanta.get(small_refs)
    assert got_small[0] == 42 and got_small[1] == "text" and got_small[3] == small[3]
    np.testing.assert_array_equal(got_small[2], small[2])
    got_large = quanta.get(large_refs)
    np.testing.assert_array_equal(got_large[0], large[0])
    assert got_large[1] == large[1]
    assert got_large[2] == large[2]


def test_task_return_values_follow_the_same_rule(store):
    @quanta.remote
    def small():
        return list(range(10))

    @quanta.remote
    def large():
        import numpy as np

        return np.full(2 * MiB, 5, dtype=np.uint8)

    @quanta.remote(num_returns=2)
    def both():
        import numpy as np

        return "tiny", np.full(MiB, 9, dtype=np.uint8)

    r_small, r_large = small.remote(), large.remote()
    r_tiny, r_big = both.remote()
    assert quanta.get(r_small) == list(range(10))
    assert quanta.get(r_tiny) == "tiny"
    big = quanta.get(r_large)
    assert big.nbytes == 2 * MiB and big[0] == 5 and big[-1] == 5
    big2 = quanta.get(r_big)
    assert big2.nbytes == MiB and big2[0] == 9
    del big, big2

    s = summary()
    assert entry(r_small, s)["where"] == "inline"
    assert entry(r_tiny, s)["where"] == "inline"
    assert entry(r_large, s)["where"] == "shared_memory"
    assert entry(r_big, s)["where"] == "shared_memory"
    assert entry(r_large, s)["size"] >= 2 * MiB


@pytest.mark.parametrize(
    "threshold, nbytes, expected",
    [
        (4 * MiB, MiB, "inline"),             # raised threshold: 1 MiB now travels inline
        (4 * MiB, 8 * MiB, "shared_memory"),
        (1024, 10 * 1024, "shared_memory"),   # lowered threshold: 10 KiB is already "large"
    ],
)
def test_inline_threshold_is_configurable(no_cluster, threshold, nbytes, expected):
    quanta.init(num_cpus=1, object_store_memory=STORE,
                _system_config={"max_direct_call_object_size": threshold})

    @quanta.remote
    def make(n):
        import numpy as np

        return np.full(n, 3, dtype=np.uint8)

    put_ref = quanta.put(np.full(nbytes, 3, dtype=np.uint8))
    task_ref = make.remote(nbytes)
    assert quanta.get(task_ref).nbytes == nbytes
    assert quanta.get(put_ref)[-1] == 3
    assert where(put_ref) == expected
    assert where(task_ref) == expected


# ---------------------------------------------------------------------------------- zero copy


def test_get_of_a_large_array_is_a_read_only_view_of_shared_memory(store):
    ref = quanta.put(pattern(64 * MiB, 1))
    arr = quanta.get(ref)
    assert arena_ranges(), "the driver has no mapping of the object store's memfd"
    assert in_arena(arr), "get() of a large array must view the shared memory, not a copy"
    assert not arr.flags.writeable
    assert not arr.flags.owndata
    with pytest.raises(ValueError):
        arr[0] = 7
    with pytest.raises(ValueError):
        arr += 1
    assert is_pattern(arr, 64 * MiB, 1), "a failed write must not change the stored value"


def test_two_gets_of_the_same_object_view_the_same_memory(store):
    ref = quanta.put(pattern(32 * MiB, 2))
    first = quanta.get(ref)
    second = quanta.get(ref)
    third, fourth = quanta.get([ref, ref])
    assert in_arena(first)
    assert address(first) == address(second) == address(third) == address(fourth)


def test_task_returned_array_is_zero_copy_at_get(make_array):
    arr = quanta.get(make_array.remote(48 * MiB, 3))
    assert in_arena(arr)
    assert not arr.flags.writeable
    assert is_pattern(arr, 48 * MiB, 3)


def test_array_stays_valid_after_its_ref_is_dropped(store):
    nbytes = 100 * MiB
    ref = quanta.put(pattern(nbytes, 4))
    arr = quanta.get(ref)
    start = address(arr)
    del ref
    gc.collect()
    time.sleep(0.3)  # let the release reach the node

    # The reader still pins the bytes: they count as used and may not be moved or reused.
    assert stats()["used"] >= nbytes
    assert stats()["num_pinned"] >= 1

    # Fill the store well past capacity; unpinned objects get spilled, ours must stay put.
    others = [quanta.put(pattern(nbytes, 100 + i)) for i in range(6)]
    gc.collect()
    assert address(arr) == start
    assert in_arena(arr)
    assert is_pattern(arr, nbytes, 4), "an array kept after its ref was dropped was overwritten"

    # A slice alone keeps the memory alive too.
    tail = arr[-1000:]
    del arr
    gc.collect()
    more = [quanta.put(pattern(nbytes, 200 + i)) for i in range(3)]
    assert np.array_equal(tail, pattern(nbytes, 4)[-1000:])
    for i, r in enumerate(others):
        assert is_pattern(quanta.get(r), nbytes, 100 + i)

    del tail, others, more, r
    gc.collect()
    wait_store_empty()


def test_readers_are_counted_while_an_array_is_in_use(store):
    ref = quanta.put(np.zeros(20 * MiB, dtype=np.uint8))
    assert entry(ref)["readers"] == 0
    arr = quanta.get(ref)
    view = arr[10:20]
    assert entry(ref)["readers"] >= 1
    del arr
    gc.collect()
    time.sleep(0.2)
    assert entry(ref)["readers"] >= 1, "a slice of the array still uses the shared memory"
    del view
    gc.collect()
    wait_for(lambda: entry(ref)["readers"] == 0, "the reader count to return to 0")
    assert entry(ref)["where"] == "shared_memory"


def test_task_argument_ref_arrives_as_a_read_only_view_of_the_store(probe, make_array):
    nbytes = 40 * MiB
    expected_sum = int(pattern(nbytes, 5).sum())
    from_put = quanta.put(pattern(nbytes, 5))
    from_task = make_array.remote(nbytes, 5)
    for ref in (from_put, from_task):
        info = quanta.get(probe.remote(ref))
        assert info["in_arena"], "a large task argument must view the store's shared memory"
        assert not info["writeable"]
        assert info["write_raises"]
        assert info["sum"] == expected_sum and info["nbytes"] == nbytes
    # The failed write attempts inside the task did not change the stored values.
    assert is_pattern(quanta.get(from_put), nbytes, 5)
    assert is_pattern(quanta.get(from_task), nbytes, 5)


def test_ref_nested_in_a_task_argument_gets_a_view_of_the_store(store):
    @quanta.remote
    def inspect(refs):
        import numpy as np
        import quanta

        arr = quanta.get(refs[0])
        start = arr.__array_interface__["data"][0]
        with open("/proc/self/maps") as fh:
            inside = any(
                int(l.split()[0].split("-")[0], 16) <= start < int(l.split()[0].split("-")[1], 16)
                for l in fh if "memfd:quanta-object-store" in l)
        return inside, bool(arr.flags.writeable), int(arr[-1])

    ref = quanta.put(np.full(16 * MiB, 11, dtype=np.uint8))
    assert quanta.get(inspect.remote([ref])) == (True, False, 11)


def test_large_array_passed_by_value_arrives_through_the_store(probe):
    """A large value passed directly (not as a ref) is too big to travel inline: like any
    value above the threshold it goes through the store, so the task sees a read-only view of
    shared memory (as in Ray), not a private writeable copy."""
    nbytes = 40 * MiB
    info = quanta.get(probe.remote(pattern(nbytes, 6)))
    assert info["sum"] == int(pattern(nbytes, 6).sum()) and info["nbytes"] == nbytes
    assert info["in_arena"], "a large by-value argument should be placed in the shared store"
    assert not info["writeable"]


# ------------------------------------------------------------------ reference counting


def test_put_and_drop_loop_keeps_used_flat(store):
    nbytes = 100 * MiB
    value = np.ones(nbytes, dtype=np.uint8)
    before = stats()
    peak = 0
    for i in range(1000):  # 100 GB through a 512 MiB store
        ref = quanta.put(value)
        if i % 25 == 0:
            s = stats()
            peak = max(peak, s["used"])
            assert s["used"] <= s["capacity"]
            assert entry(ref)["where"] == "shared_memory"
        del ref
    after = stats()
    assert peak >= nbytes
    # Each value is dropped before the next put: at most ~one lives at a time (plus a little slack
    # for a release still in flight), so nothing ever needs spilling.
    assert peak <= 2 * nbytes + MiB, f"used grew to {peak} bytes while only one 100 MiB object was live"
    assert after["total_spilled"] == before["total_spilled"], "a put/drop loop should never spill"
    wait_store_empty()


def test_task_results_dropped_in_a_loop_keep_used_flat(make_array):
    nbytes = 64 * MiB
    peak = 0
    for i in range(60):
        arr = quanta.get(make_array.remote(nbytes, i))
        assert arr[0] == i and arr[-1] == (nbytes // 8 - 1) * 3 + i
        del arr
        if i % 5 == 0:
            peak = max(peak, stats()["used"])
    assert peak <= 2 * nbytes + MiB, f"used grew to {peak} bytes while one result was live"
    assert stats()["total_spilled"] == 0
    wait_store_empty()

    # Results dropped without ever being fetched are freed as well.
    for i in range(40):
        make_array.remote(nbytes, i)  # the ref is discarded at once
    wait_store_empty(timeout=60)
    assert stats()["used"] == 0


@pytest.mark.parametrize("outer_kind", ["inline", "shared_memory"])
def test_nested_ref_stays_alive_until_the_outer_object_is_dropped(store, outer_kind):
    nbytes = 50 * MiB
    inner = quanta.put(pattern(nbytes, 7))
    inner_hex = inner.hex()
    payload = [inner] if outer_kind == "inline" else [inner, np.zeros(MiB, dtype=np.uint8)]
    outer = quanta.put(payload)
    assert where(outer) == outer_kind
    del inner, payload
    gc.collect()
    time.sleep(0.3)

    listed = {o["object_id"]: o for o in summary()["objects"]}
    assert inner_hex in listed, "a ref held only inside a stored object must keep its object alive"
    assert listed[inner_hex]["where"] == "shared_memory"

    # Memory pressure must not lose it either (it may be spilled, but not freed).
    pressure = [quanta.put(pattern(100 * MiB, 300 + i)) for i in range(5)]
    del pressure
    got = quanta.get(outer)
    arr = quanta.get(got[0])
    assert is_pattern(arr, nbytes, 7)
    del arr, got
    gc.collect()

    del outer
    gc.collect()
    wait_store_empty()


def test_ref_returned_inside_a_task_result_outlives_the_worker_ref(store):
    @quanta.remote
    def wrap(n):
        import numpy as np
        import quanta

        return [quanta.put(np.full(n, 8, dtype=np.uint8))]

    outer = wrap.remote(30 * MiB)
    inner = quanta.get(outer)[0]
    time.sleep(0.3)  # the worker dropped its own ref when the task finished
    arr = quanta.get(inner)
    assert arr.nbytes == 30 * MiB and arr[0] == 8 and arr[-1] == 8
    del arr, inner, outer
    gc.collect()
    wait_store_empty()


@pytest.mark.parametrize("how", ["top_level", "nested_in_list"])
def test_argument_of_a_pending_task_stays_alive_after_the_driver_drops_it(store, how):
    @quanta.remote
    def gate(seconds):
        import time

        time.sleep(seconds)
        return 0

    @quanta.remote
    def checksum(arg, _gate):
        import numpy as np
        import quanta

        arr = quanta.get(arg[0]) if isinstance(arg, list) else arg
        return int(arr.sum(dtype=np.int64)), int(arr.nbytes)

    nbytes = 100 * MiB
    expected = (int(pattern(nbytes, 9).sum()), nbytes)
    ref = quanta.put(pattern(nbytes, 9))
    ref_hex = ref.hex()
    result = checksum.remote(ref if how == "top_level" else [ref], gate.remote(1.5))
    del ref
    gc.collect()
    time.sleep(0.3)
    assert ref_hex in {o["object_id"] for o in summary()["objects"]}, \
        "the argument of a pending task was freed when the driver dropped its ref"

    # Pressure while the task waits: the argument may be spilled, but must come back intact.
    pressure = [quanta.put(pattern(nbytes, 400 + i)) for i in range(5)]
    assert quanta.get(result, timeout=60) == expected
    del pressure, result
    gc.collect()
    wait_store_empty()


def test_objects_of_a_driver_that_dies_are_freed(store):
    session_dir = session.current_core().session_dir
    code = f"""
        import time
        import numpy as np
        import quanta

        quanta.init(address={session_dir!r})
        held = quanta.put(np.ones(100 << 20, dtype=np.uint8))
        reading = quanta.get(held)
        other = quanta.put(np.ones(100 << 20, dtype=np.uint8))
        small = quanta.put("small")
        print("READY", flush=True)
        time.sleep(120)
    """
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        line = proc.stdout.readline()
        assert "READY" in line, line + proc.stdout.read() if proc.poll() is not None else line
        s = stats()
        assert s["used"] >= 200 * MiB and s["num_in_memory"] == 2 and s["num_inline"] == 1
        assert s["num_pinned"] >= 1
    finally:
        proc.kill()
        proc.wait()
    wait_store_empty()


def test_store_is_empty_once_everything_is_dropped(store, make_array):
    @quanta.remote
    def wrap(ref_list):
        return ref_list

    refs = [quanta.put(i) for i in range(20)]
    refs += [quanta.put(pattern(20 * MiB, i)) for i in range(4)]
    refs += [make_array.remote(10 * MiB, i) for i in range(4)]
    refs += [quanta.put([refs[-1], refs[0]]), wrap.remote([refs[21]])]
    values = quanta.get(refs[20:24])
    assert len(summary()["objects"]) == len(refs)
    assert stats()["used"] > 0

    del values
    del refs
    gc.collect()
    wait_store_empty()
    s = summary()
    assert s["num_in_memory"] == 0 and s["inline_bytes"] == 0 and s["spilled_bytes"] == 0


# ------------------------------------------------------------------ crash safety


@pytest.fixture
def die_when_pickled():
    """A class whose pickling kills the process, after signalling through a marker file and
    pausing (so the test can look at the store while the worker is between writing and
    sealing). Defined locally so that cloudpickle ships it by value to the worker."""

    class DieWhenPickled:
        def __init__(self, marker, pause):
            self.marker = marker
            self.pause = pause

        def __reduce__(self):
            import os
            import time

            open(self.marker, "w").close()
            time.sleep(self.pause)
            os._exit(1)

    return DieWhenPickled


def test_worker_dying_while_serialising_a_return_value_leaves_nothing_behind(store, tmp_path,
                                                                             die_when_pickled):
    """The large array comes first in the tuple; the process dies while pickling what follows."""
    baseline = stats()["used"]
    marker = str(tmp_path / "dying")

    @quanta.remote(max_retries=0)
    def doomed(marker):
        import numpy as np

        return (np.ones(150 * MiB, dtype=np.uint8), die_when_pickled(marker, 0.0))

    ref = doomed.remote(marker)
    with pytest.raises(qexc.WorkerCrashedError):
        quanta.get(ref, timeout=60)
    assert os.path.exists(marker)
    wait_used_at_most(baseline)
    e = entry(ref)
    assert e is None or e["where"] == "inline", f"no half-written object may stay visible: {e}"
    del ref
    wait_store_empty()


def test_worker_dying_between_writing_and_sealing_leaves_nothing_behind(store, tmp_path, make_array,
                                                                         die_when_pickled):
    """Return 0 (150 MiB) is written into the store; the worker dies while pickling return 1,
    before sealing anything. The half-finished creation must vanish and its space come back."""
    marker = str(tmp_path / "dying")
    nbytes = 150 * MiB

    @quanta.remote(max_retries=0, num_returns=2)
    def doomed(marker):
        import numpy as np

        return np.ones(nbytes, dtype=np.uint8), die_when_pickled(marker, 1.5)

    first, second = doomed.remote(marker)
    wait_for(lambda: os.path.exists(marker), "the worker to start pickling its second return", 60)

    # Mid-flight: the space is reserved, but the object is not readable yet.
    s = summary()
    assert s["used"] >= nbytes, f"return 0 should have been written to the store by now: {s}"
    for ref in (first, second):
        with pytest.raises(qexc.GetTimeoutError):
            quanta.get(ref, timeout=0.2)

    for ref in (first, second):
        with pytest.raises(qexc.WorkerCrashedError):
            quanta.get(ref, timeout=60)
    wait_used_at_most(0)
    s = summary()
    assert s["num_in_memory"] == 0, f"an unsealed object survived its writer: {s}"
    assert all(o["where"] in ("inline",) for o in s["objects"]), s

    # The freed space is really usable: the whole store can be filled again.
    arr = quanta.get(make_array.remote(400 * MiB, 1))
    assert arr[0] == 1
    del arr, first, second, ref
    gc.collect()
    wait_store_empty()


# ------------------------------------------------------------------ quanta memory (CLI)


@pytest.fixture
def started_cluster(no_cluster):
    """A cluster from `python -m quanta start --head` under a private TMPDIR (so `quanta stop`
    stops only this one). Yields (cli, env)."""
    tmp = tempfile.mkdtemp(prefix="qos-")  # short: the node socket path must fit in sun_path
    env = dict(os.environ, TMPDIR=tmp, PYTHONUNBUFFERED="1")
    env.pop("QUANTA_ADDRESS", None)

    def cli(*args, timeout=60):
        return subprocess.run([sys.executable, "-m", "quanta", *args], env=env, capture_output=True,
                              text=True, timeout=timeout)

    try:
        started = cli("start", "--head", "--num-cpus", "1")
        assert started.returncode == 0, f"quanta start failed:\n{started.stdout}\n{started.stderr}"
        yield cli, env
    finally:
        stopped = cli("stop")
        shutil.rmtree(tmp, ignore_errors=True)
        assert stopped.returncode == 0, f"quanta stop failed:\n{stopped.stdout}\n{stopped.stderr}"


@pytest.mark.subprocess_driver
def test_quanta_memory_cli_shows_capacity_and_objects(started_cluster, start_driver):
    cli, env = started_cluster
    driver = start_driver("""
        import sys
        import numpy as np
        import quanta

        quanta.init(address="auto")
        big = quanta.put(np.ones(30 << 20, dtype=np.uint8))
        small = quanta.put("a small value")
        s = quanta.memory_summary()
        print("BIG=" + big.hex())
        print("SMALL=" + small.hex())
        print("CAPACITY=%d" % s["capacity"])
        print("READY")
        sys.stdin.readline()
        quanta.shutdown()
        print("DONE")
    """, env={"TMPDIR": env["TMPDIR"]})
    driver.wait_for("READY", timeout=60)
    big = driver.wait_for(r"BIG=(\w+)").group(1)
    small = driver.wait_for(r"SMALL=(\w+)").group(1)
    capacity = int(driver.wait_for(r"CAPACITY=(\d+)").group(1))
    assert capacity > 0

    shown = cli("memory", "--address", "auto")
    assert shown.returncode == 0, f"quanta memory failed:\n{shown.stdout}\n{shown.stderr}"
    out = shown.stdout
    assert f"{capacity / MiB:.1f} MiB" in out, f"capacity not shown:\n{out}"
    lines = {line.split()[0]: line for line in out.splitlines() if line.strip()}
    assert big in lines, f"the large object is not listed:\n{out}"
    assert small in lines, f"the inline object is not listed:\n{out}"
    assert "shared_memory" in lines[big]
    assert "inline" in lines[small]
    assert int(lines[big].split()[1]) >= 30 * MiB  # its size, in bytes
    assert "30.0 MiB used" in out

    # Once the driver is gone, its objects are gone too.
    driver.send("")
    driver.wait_for("DONE", timeout=60)
    assert driver.wait_exit(timeout=60) == 0
    deadline = time.monotonic() + 15
    while True:
        out = cli("memory", "--address", "auto").stdout
        if big not in out and small not in out and "0.0 MiB used" in out:
            break
        assert time.monotonic() < deadline, f"objects of a finished driver are still listed:\n{out}"
        time.sleep(0.2)
