"""Object store capacity: spilling to disk and restoring on read, least-recently-used eviction,
objects being read are never spilled, and ObjectStoreFullError (with the sizes) for what cannot
fit, without hangs and without breaking the cluster.

Each test starts its own local cluster with a 512 MiB store, so absolute numbers from
``memory_summary()`` are meaningful. Releases are batched, so freed memory is polled for.
"""

import gc
import os
import re
import time

import numpy as np
import pytest

import quanta
import quanta.exceptions as qexc
from quanta._private import session

from conftest import MiB, STORE
from conftest import store_stats as stats, store_summary as summary

BIG = 200 * MiB  # two fit in the store, a third does not


def where(ref, s=None):
    s = s or summary()
    for o in s["objects"]:
        if o["object_id"] == ref.hex():
            return o["where"]
    return None


def wait_for(predicate, what, timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = predicate()
        if got:
            return got
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; store now: {summary()}")


def wait_store_empty(timeout=15.0):
    def empty():
        s = summary()
        return s["used"] == 0 and s["objects"] == [] and s["num_spilled"] == 0 and s["spilled_bytes"] == 0

    wait_for(empty, "the store to be empty", timeout)


def default_spill_dir():
    return os.path.join(session.current_core().session_dir, "spill")


def spill_files(directory):
    if not os.path.isdir(directory):
        return {}
    out = {}
    for root, _, names in os.walk(directory):
        for name in names:
            path = os.path.join(root, name)
            out[path] = os.path.getsize(path)
    return out


def block(seed, nbytes=BIG):
    """A recognisable uint8 array: every byte is ``seed``, except a counter in the first 8 KiB."""
    arr = np.full(nbytes, seed, dtype=np.uint8)
    arr[:8192] = np.arange(8192) % 251
    return arr


def is_block(arr, seed, nbytes=BIG):
    return (arr.nbytes == nbytes and np.array_equal(arr[:8192], np.arange(8192) % 251)
            and bool((arr[8192:] == seed).all()))


def mib_numbers(message):
    """The sizes given in a message as 'N MiB' / 'N.N MiB'."""
    return [float(x) for x in re.findall(r"(\d+(?:\.\d+)?)\s*MiB", message)]


# ------------------------------------------------------------------------------- spilling


def test_puts_beyond_capacity_spill_and_are_restored_transparently(store):
    refs = [quanta.put(block(i)) for i in range(5)]  # 1000 MiB through a 512 MiB store, all held

    s = summary()
    assert s["used"] <= s["capacity"]
    assert s["num_spilled"] >= 3, f"three of five 200 MiB objects cannot be in memory: {s}"
    assert s["num_in_memory"] + s["num_spilled"] == 5
    assert s["spilled_bytes"] >= 3 * BIG
    assert s["total_spilled"] >= 3
    assert sorted(where(r, s) for r in refs).count("spilled") == s["num_spilled"]

    files = spill_files(default_spill_dir())
    assert len(files) == s["num_spilled"], f"one spill file per spilled object expected: {files}"
    assert sum(files.values()) >= s["spilled_bytes"] >= 3 * BIG

    restored_before = s["total_restored"]
    for i, ref in enumerate(refs):
        arr = quanta.get(ref, timeout=60)
        assert is_block(arr, i), f"object {i} came back with different contents"
        del arr
    s = stats()
    assert s["total_restored"] >= restored_before + 3
    assert s["used"] <= s["capacity"]

    # Twice more, in a different order: restores keep working and stay correct.
    for i in [4, 0, 3, 1, 2, 0]:
        assert is_block(quanta.get(refs[i], timeout=60), i)

    del refs, ref
    gc.collect()
    wait_store_empty()
    assert spill_files(default_spill_dir()) == {}, "spill files of freed objects must be deleted"


@pytest.mark.parametrize("how", ["keyword", "system_config"])
def test_spill_directory_is_configurable(no_cluster, tmp_path, how):
    spill_dir = tmp_path / "my-spill"
    if how == "keyword":
        quanta.init(num_cpus=1, object_store_memory=256 * MiB, object_spilling_directory=str(spill_dir))
    else:
        quanta.init(num_cpus=1, object_store_memory=256 * MiB,
                    _system_config={"object_spilling_directory": str(spill_dir)})
    refs = [quanta.put(block(i, 100 * MiB)) for i in range(4)]
    s = stats()
    assert s["num_spilled"] >= 2
    files = spill_files(str(spill_dir))
    assert len(files) == s["num_spilled"], f"spill files should be in {spill_dir}: {files}"
    assert sum(files.values()) >= s["spilled_bytes"]
    assert spill_files(default_spill_dir()) == {}, "nothing should be spilled to the default directory"

    for i, ref in enumerate(refs):
        assert is_block(quanta.get(ref, timeout=60), i, 100 * MiB)
    del refs, ref
    gc.collect()
    wait_store_empty()
    assert spill_files(str(spill_dir)) == {}


def test_least_recently_used_object_is_spilled_first(store):
    a = quanta.put(block(1))
    b = quanta.put(block(2))
    touched = quanta.get(a)  # a is now more recently used than b
    del touched
    gc.collect()
    wait_for(lambda: stats()["num_pinned"] == 0, "the read of a to finish")
    c = quanta.put(block(3))
    s = summary()
    assert where(b, s) == "spilled", f"b was used least recently and should be spilled: {s}"
    assert where(a, s) == "shared_memory"
    assert where(c, s) == "shared_memory"
    assert is_block(quanta.get(b), 2)


def test_objects_being_read_are_not_spilled_and_a_put_that_cannot_fit_raises(store):
    a = quanta.put(block(1))
    b = quanta.put(block(2))
    held_a, held_b = quanta.get(a), quanta.get(b)  # 400 MiB pinned by readers
    used_before = stats()["used"]

    start = time.monotonic()
    with pytest.raises(qexc.ObjectStoreFullError) as info:
        quanta.put(block(3))
    assert time.monotonic() - start < 30, "a put that cannot fit must fail, not wait"
    message = str(info.value)
    sizes = mib_numbers(message)
    assert 200 in sizes and 512 in sizes, f"the message should give the object and store sizes: {message}"
    assert where(a) == "shared_memory" and where(b) == "shared_memory"
    assert stats()["used"] == used_before, "the refused put must not leave anything allocated"
    assert is_block(held_a, 1) and is_block(held_b, 2)

    # Once one reader lets go, the same put succeeds (by spilling the unpinned object).
    del held_a
    gc.collect()
    c = wait_for(lambda: _try_put(block(3)), "a put to succeed after a reader let go")
    assert is_block(held_b, 2)
    assert where(a) == "spilled"
    assert is_block(quanta.get(c), 3)


def _try_put(value):
    try:
        return quanta.put(value)
    except qexc.ObjectStoreFullError:
        return None


def test_restoring_when_everything_in_memory_is_being_read_raises_then_recovers(store):
    refs = [quanta.put(block(i)) for i in range(3)]  # the first one gets spilled
    assert where(refs[0]) == "spilled"
    held = [quanta.get(refs[1]), quanta.get(refs[2])]
    with pytest.raises(qexc.ObjectStoreFullError) as info:
        quanta.get(refs[0], timeout=30)
    assert 200 in mib_numbers(str(info.value)), str(info.value)
    del held
    gc.collect()
    (arr,) = wait_for(lambda: _try_get(refs[0]), "the spilled object to be restorable again")
    assert is_block(arr, 0)


def _try_get(ref):
    try:
        return (quanta.get(ref, timeout=30),)
    except qexc.ObjectStoreFullError:
        return None


def test_spilled_objects_are_restored_as_task_arguments(store):
    @quanta.remote
    def check(arr, seed):
        import numpy as np

        ok = bool((arr[8192:] == seed).all()) and bool(np.array_equal(arr[:8192], np.arange(8192) % 251))
        return ok, bool(arr.flags.writeable), int(arr.nbytes)

    refs = [quanta.put(block(i)) for i in range(5)]
    spilled = [i for i, r in enumerate(refs) if where(r) == "spilled"]
    assert len(spilled) >= 3
    results = quanta.get([check.remote(refs[i], i) for i in range(5)], timeout=120)
    assert results == [(True, False, BIG)] * 5


def test_a_finished_task_no_longer_pins_its_argument(no_cluster):
    """One CPU, so tasks run one after the other. The driver reads y (200 MiB pinned); task 1
    reads z (in memory); task 2 reads x (spilled). Once task 1 has finished, z is no longer being
    read, so restoring x can spill z: 400 MiB of the 512 MiB store are never needed at once
    beyond what fits. Task 2 must not fail with ObjectStoreFullError."""
    quanta.init(num_cpus=1, object_store_memory=STORE)

    @quanta.remote
    def last_byte(arr):
        return int(arr[-1])

    for trial in range(3):
        x, y, z = (quanta.put(block(seed)) for seed in (1, 2, 3))
        assert where(x) == "spilled"
        held_y = quanta.get(y)
        first, second = last_byte.remote(z), last_byte.remote(x)
        assert quanta.get([first, second], timeout=60) == [3, 1], f"trial {trial}"
        del held_y, x, y, z, first, second
        gc.collect()
        wait_store_empty()


def test_task_return_values_spill_and_restore(store):
    @quanta.remote
    def produce(seed, nbytes):
        import numpy as np

        arr = np.full(nbytes, seed, dtype=np.uint8)
        arr[:8192] = np.arange(8192) % 251
        return arr

    refs = [produce.remote(i, BIG) for i in range(4)]
    quanta.wait(refs, num_returns=4, timeout=120)
    s = summary()
    assert s["num_spilled"] >= 2, s
    for i, ref in enumerate(refs):
        assert is_block(quanta.get(ref, timeout=60), i)
    del refs, ref
    gc.collect()
    wait_store_empty()


# ------------------------------------------------------------------------------- overflow


def test_object_larger_than_the_store_raises_with_the_sizes(store):
    keep = [quanta.put(block(i)) for i in range(2)]  # 400 MiB in memory that must stay put
    before = stats()
    start = time.monotonic()
    with pytest.raises(qexc.ObjectStoreFullError) as info:
        quanta.put(np.zeros(600 * MiB, dtype=np.uint8))
    assert time.monotonic() - start < 30
    message = str(info.value)
    sizes = mib_numbers(message)
    assert 600 in sizes and 512 in sizes, f"the message should give both sizes: {message}"
    assert isinstance(info.value, qexc.QuantaError)

    after = stats()
    assert after["used"] == before["used"], "a refused object must not leave space allocated"
    assert after["total_spilled"] == before["total_spilled"], \
        "an object that can never fit must not make the store spill others"

    # The cluster keeps working: values already stored, new puts, tasks.
    @quanta.remote
    def add(a, b):
        return a + b

    assert quanta.get(add.remote(2, 3), timeout=60) == 5
    assert is_block(quanta.get(keep[0]), 0) and is_block(quanta.get(keep[1]), 1)
    fresh = quanta.put(block(7, 100 * MiB))
    assert is_block(quanta.get(fresh), 7, 100 * MiB)
    assert quanta.get(quanta.put("still fine")) == "still fine"


def test_task_returning_an_object_larger_than_the_store_fails_at_get(store):
    @quanta.remote(max_retries=0)
    def too_big():
        import numpy as np

        return np.zeros(600 * MiB, dtype=np.uint8)

    @quanta.remote
    def fine(n):
        import numpy as np

        return np.full(n, 4, dtype=np.uint8)

    ref = too_big.remote()
    start = time.monotonic()
    with pytest.raises(qexc.ObjectStoreFullError) as info:
        quanta.get(ref, timeout=120)
    assert time.monotonic() - start < 120
    sizes = mib_numbers(str(info.value))
    assert 600 in sizes and 512 in sizes, str(info.value)
    assert stats()["used"] == 0
    assert stats()["num_in_memory"] == 0

    # Retrying the get gives the same error; the cluster and its workers keep working.
    with pytest.raises(qexc.ObjectStoreFullError):
        quanta.get(ref, timeout=30)
    arr = quanta.get(fine.remote(300 * MiB), timeout=60)
    assert arr.nbytes == 300 * MiB and arr[0] == 4 and arr[-1] == 4


def test_many_large_puts_with_all_refs_held_never_hang(store):
    """More data than memory, all of it referenced: everything spills, nothing errors."""
    refs = []
    for i in range(8):
        refs.append(quanta.put(block(i, 150 * MiB)))
        assert stats()["used"] <= STORE
    s = stats()
    assert s["num_in_memory"] + s["num_spilled"] == 8
    assert s["spilled_bytes"] >= 8 * 150 * MiB - STORE
    for i in (7, 0, 5):
        assert is_block(quanta.get(refs[i], timeout=60), i, 150 * MiB)
