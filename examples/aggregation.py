"""Aggregating values: adding eight numbers with one-second additions, as a chain (7 steps, ~7 s)
and as a tree (3 levels, ~3 s with 4 cores), written out and then as while loops.

    python examples/aggregation.py      # about 20 s
"""

import time

import quanta as ray

ray.init()


@ray.remote
def add(x, y):
    time.sleep(1)
    return x + y


def timed(label, expected_s, run):
    start = time.time()
    result = run()
    print(f"{label}: {result} in {time.time() - start:.1f} s ({expected_s})")
    assert result == 36


def chain():
    # Each addition waits for the previous one: O(n).
    id1 = add.remote(1, 2)
    id2 = add.remote(id1, 3)
    id3 = add.remote(id2, 4)
    id4 = add.remote(id3, 5)
    id5 = add.remote(id4, 6)
    id6 = add.remote(id5, 7)
    id7 = add.remote(id6, 8)
    return ray.get(id7)


def tree():
    # Independent pairs first, then pairs of pairs: O(log n).
    id1 = add.remote(1, 2)
    id2 = add.remote(3, 4)
    id3 = add.remote(5, 6)
    id4 = add.remote(7, 8)
    id5 = add.remote(id1, id2)
    id6 = add.remote(id3, id4)
    id7 = add.remote(id5, id6)
    return ray.get(id7)


def while_slow():
    values = [1, 2, 3, 4, 5, 6, 7, 8]
    while len(values) > 1:
        values = [add.remote(values[0], values[1])] + values[2:]  # the new sum goes first: a chain
    return ray.get(values[0])


def while_fast():
    values = [1, 2, 3, 4, 5, 6, 7, 8]
    while len(values) > 1:
        values = values[2:] + [add.remote(values[0], values[1])]  # the new sum goes last: a tree
    return ray.get(values[0])


timed("chained", "7 s expected", chain)
timed("tree", "3 s expected with 4 cores", tree)
timed("while loop, slow", "7 s expected", while_slow)
timed("while loop, fast", "3 s expected with 4 cores", while_fast)
ray.shutdown()
