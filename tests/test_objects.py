"""Objects: put/get round trips, ObjectRef behaviour, get timeouts and wait."""

import pickle
import time

import numpy as np
import pytest

import quanta
import quanta.exceptions as qexc


@pytest.fixture
def sleeper(cluster):
    @quanta.remote
    def sleeper(seconds, value):
        time.sleep(seconds)
        return value

    return sleeper


def is_subsequence(part, whole):
    it = iter(whole)
    return all(any(x == y for y in it) for x in part)


# ------------------------------------------------------------------------------------ put/get


def test_put_get_round_trip_of_many_kinds(cluster):
    class Point:
        def __init__(self, x, y):
            self.x, self.y = x, y

    values = [
        None,
        0,
        -7,
        3.25,
        "text ✓",
        b"\x00\xffbytes",
        [1, [2, [3]]],
        (1, "two"),
        {"a": {"b": [1.5, None]}},
        {1, 2, 3},
        b"x" * (5 * 1024 * 1024),
    ]
    refs = [quanta.put(v) for v in values]
    assert all(isinstance(r, quanta.ObjectRef) for r in refs)
    assert quanta.get(refs) == values

    arr = np.random.rand(300, 200)
    np.testing.assert_array_equal(quanta.get(quanta.put(arr)), arr)

    point = quanta.get(quanta.put(Point(1, 2)))
    assert (type(point).__name__, point.x, point.y) == ("Point", 1, 2)


def test_put_stores_a_snapshot(cluster):
    data = [1, 2, 3]
    ref = quanta.put(data)
    data.append(4)
    assert quanta.get(ref) == [1, 2, 3]


def test_get_of_a_list_keeps_order_and_empty_list_is_empty(sleeper):
    refs = [sleeper.remote(0.6 - 0.2 * i, f"v{i}") for i in range(3)]
    assert quanta.get(refs) == ["v0", "v1", "v2"]
    assert quanta.get([]) == []


def test_get_of_the_same_ref_twice_and_in_one_list(cluster):
    ref = quanta.put({"k": 1})
    assert quanta.get(ref) == {"k": 1}
    assert quanta.get(ref) == {"k": 1}
    assert quanta.get([ref, ref]) == [{"k": 1}, {"k": 1}]


def test_put_ref_is_usable_by_tasks(cluster):
    @quanta.remote
    def total(a):
        return float(a.sum())

    arr = np.ones((1000, 1000))
    ref = quanta.put(arr)
    assert quanta.get([total.remote(ref), total.remote(ref)]) == [1e6, 1e6]


def test_large_object_round_trip(cluster):
    arr = np.random.randint(0, 255, size=40 * 1024 * 1024, dtype=np.uint8)  # 40 MB
    out = quanta.get(quanta.put(arr))
    assert out.shape == arr.shape
    assert np.array_equal(out, arr)


# ------------------------------------------------------------------------------------ ObjectRef


def test_objectref_hash_and_equality(cluster):
    a = quanta.put(1)
    b = quanta.put(1)
    assert a == a and not (a != a)
    assert a != b, "two puts of equal values are different objects"
    assert a != 1 and a != None  # noqa: E711
    assert len({a, b, a}) == 2
    lookup = {a: "a", b: "b"}
    assert lookup[a] == "a" and lookup[b] == "b"
    [same_a] = [r for r in [b, a] if r == a]
    assert hash(same_a) == hash(a)


def test_objectref_repr_is_readable_and_distinct(cluster):
    a, b = quanta.put(1), quanta.put(2)
    assert "ObjectRef" in repr(a)
    assert repr(a) != repr(b)
    assert repr(a) == repr(a)
    assert len(repr(a)) < 200


def test_objectref_is_picklable(cluster):
    ref = quanta.put({"payload": [1, 2, 3]})
    copy = pickle.loads(pickle.dumps(ref))
    assert isinstance(copy, quanta.ObjectRef)
    assert copy == ref and hash(copy) == hash(ref)
    assert quanta.get(copy) == {"payload": [1, 2, 3]}


# ------------------------------------------------------------------------------------ timeouts


def test_get_timeout_raises_and_object_can_be_fetched_later(sleeper):
    ref = sleeper.remote(2.5, "late")
    start = time.monotonic()
    with pytest.raises(qexc.GetTimeoutError) as info:
        quanta.get(ref, timeout=0.3)
    assert time.monotonic() - start < 2.0, "get(timeout=0.3) must not wait for the task"
    assert isinstance(info.value, TimeoutError)
    assert quanta.get(ref) == "late"


def test_get_timeout_on_a_list(sleeper):
    refs = [sleeper.remote(0, "fast"), sleeper.remote(2.0, "slow")]
    with pytest.raises(TimeoutError):
        quanta.get(refs, timeout=0.3)
    assert quanta.get(refs) == ["fast", "slow"]


def test_get_timeout_zero_on_pending_and_ready_objects(sleeper):
    pending = sleeper.remote(1.5, "p")
    with pytest.raises(qexc.GetTimeoutError):
        quanta.get(pending, timeout=0)
    ready = quanta.put("here")
    assert quanta.get(ready, timeout=0) == "here"
    assert quanta.get(pending) == "p"


# ------------------------------------------------------------------------------------ wait


def test_wait_default_returns_first_ready(sleeper):
    slow = sleeper.remote(2.0, "slow")
    fast = sleeper.remote(0, "fast")
    ready, not_ready = quanta.wait([slow, fast])
    assert ready == [fast]
    assert not_ready == [slow]
    assert quanta.get(slow) == "slow"


def test_wait_with_timeout_returns_partial_result(sleeper):
    refs = [sleeper.remote(0, 0), sleeper.remote(3.0, 1), sleeper.remote(0, 2)]
    start = time.monotonic()
    ready, not_ready = quanta.wait(refs, num_returns=3, timeout=1.0)
    assert time.monotonic() - start < 2.5
    assert ready == [refs[0], refs[2]], "ready refs come back in input order"
    assert not_ready == [refs[1]]
    assert quanta.get(refs) == [0, 1, 2]


def test_wait_timeout_zero_polls(sleeper):
    pending = sleeper.remote(1.5, "p")
    done = quanta.put("d")
    ready, not_ready = quanta.wait([pending, done], num_returns=2, timeout=0)
    assert ready == [done] and not_ready == [pending]
    quanta.get(pending)


def test_wait_blocks_until_num_returns_are_ready(sleeper):
    refs = [sleeper.remote(0.8, "a"), sleeper.remote(0, "b"), sleeper.remote(0.4, "c")]
    ready, not_ready = quanta.wait(refs, num_returns=3)
    assert ready == refs and not_ready == []
    assert quanta.get(ready, timeout=0) == ["a", "b", "c"]


def test_wait_results_partition_input_and_keep_its_order(sleeper):
    refs = [sleeper.remote(0.1 * (i % 3), i) for i in range(8)]
    quanta.get(refs)
    ready, not_ready = quanta.wait(refs, num_returns=3)
    assert len(ready) == 3 and len(not_ready) == 5
    assert sorted(map(refs.index, ready + not_ready)) == list(range(8))
    assert is_subsequence(ready, refs) and is_subsequence(not_ready, refs)


def test_wait_then_get_in_completion_order(sleeper):
    refs = [sleeper.remote(s, s) for s in (1.5, 0, 0.7)]
    order = []
    pending = list(refs)
    while pending:
        [done], pending = quanta.wait(pending)
        order.append(quanta.get(done))
    assert sorted(order) == [0, 0.7, 1.5]
    assert order[0] == 0
