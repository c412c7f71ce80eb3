"""The task examples of the seed tutorial (seeds/ray-tutorial.md), run on ``init(num_cpus=4)``.

Covers: four parallel tasks; the matrix DAG with numpy; chained vs tree aggregation, both written
out and as ``while`` loops. Timing assertions are coarse "shape" checks only.
"""

import time

import numpy as np
import pytest

import quanta


@pytest.fixture
def warm_workers(cluster):
    """Make sure four workers can run at once before a timing-shaped assertion."""

    @quanta.remote
    def nap(x):
        time.sleep(0.3)
        return x

    assert quanta.get([nap.remote(i) for i in range(4)]) == [0, 1, 2, 3]


def test_four_parallel_tasks(warm_workers):
    @quanta.remote
    def f(x):
        time.sleep(1)
        return x

    start = time.monotonic()
    result_ids = []
    for i in range(4):
        result_ids.append(f.remote(i))
    submitted = time.monotonic() - start
    results = quanta.get(result_ids)
    elapsed = time.monotonic() - start

    assert results == [0, 1, 2, 3]
    assert all(isinstance(r, quanta.ObjectRef) for r in result_ids)
    assert submitted < 0.9, f".remote() should return at once, submitting 4 took {submitted:.2f}s"
    assert 1.0 <= elapsed < 2.5, f"4 one-second tasks on 4 CPUs took {elapsed:.2f}s"


def test_matrix_dag_with_numpy(cluster):
    @quanta.remote
    def create_matrix(size):
        return np.random.normal(size=size)

    @quanta.remote
    def multiply_matrices(x, y):
        return np.dot(x, y)

    x_id = create_matrix.remote([1000, 1000])
    y_id = create_matrix.remote([1000, 1000])
    z_id = multiply_matrices.remote(x_id, y_id)

    z = quanta.get(z_id)
    x, y = quanta.get([x_id, y_id])

    assert isinstance(z, np.ndarray)
    assert z.shape == (1000, 1000)
    assert x.shape == y.shape == (1000, 1000)
    assert not np.array_equal(x, y), "two create_matrix tasks should draw different matrices"
    np.testing.assert_allclose(z, np.dot(x, y), rtol=1e-7, atol=1e-7)


@pytest.fixture
def add(warm_workers):
    @quanta.remote
    def add(x, y):
        time.sleep(1)
        return x + y

    return add


def test_chained_aggregation_is_linear(add):
    start = time.monotonic()
    id1 = add.remote(1, 2)
    id2 = add.remote(id1, 3)
    id3 = add.remote(id2, 4)
    id4 = add.remote(id3, 5)
    id5 = add.remote(id4, 6)
    id6 = add.remote(id5, 7)
    id7 = add.remote(id6, 8)
    result = quanta.get(id7)
    elapsed = time.monotonic() - start

    assert result == 36
    assert elapsed >= 7.0, f"a chain of 7 one-second tasks cannot finish in {elapsed:.2f}s"


def test_tree_aggregation_is_logarithmic(add):
    start = time.monotonic()
    id1 = add.remote(1, 2)
    id2 = add.remote(3, 4)
    id3 = add.remote(5, 6)
    id4 = add.remote(7, 8)
    id5 = add.remote(id1, id2)
    id6 = add.remote(id3, id4)
    id7 = add.remote(id5, id6)
    result = quanta.get(id7)
    elapsed = time.monotonic() - start

    assert result == 36
    assert 3.0 <= elapsed < 5.0, f"a depth-3 tree of one-second tasks took {elapsed:.2f}s"


def test_while_loop_slow_approach(add):
    start = time.monotonic()
    values = [1, 2, 3, 4, 5, 6, 7, 8]
    while len(values) > 1:
        values = [add.remote(values[0], values[1])] + values[2:]
    result = quanta.get(values[0])
    elapsed = time.monotonic() - start

    assert result == 36
    assert elapsed >= 7.0, f"the slow while-loop builds a chain of 7; took {elapsed:.2f}s"


def test_while_loop_fast_approach(add):
    start = time.monotonic()
    values = [1, 2, 3, 4, 5, 6, 7, 8]
    while len(values) > 1:
        values = values[2:] + [add.remote(values[0], values[1])]
    result = quanta.get(values[0])
    elapsed = time.monotonic() - start

    assert result == 36
    assert 3.0 <= elapsed < 5.0, f"the fast while-loop builds a depth-3 tree; took {elapsed:.2f}s"
