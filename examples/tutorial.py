"""Every example of the seed tutorial ("Modern Parallel and Distributed Python: A Quick
Tutorial on Ray", shared/seeds/ray-tutorial.md), run on Quanta through `import quanta as ray`.

    python tutorial.py          # as written in the tutorial (the message loop runs ~100 s)
    python tutorial.py --quick  # the same programs with the message loop cut to 5 rounds
"""

import sys
import time

import numpy as np

import quanta as ray

QUICK = "--quick" in sys.argv
ROUNDS = 5 if QUICK else 100


def section(title):
    print(f"\n=== {title} ===", flush=True)


# Starting Ray
ray.init()

# Parallelism with Tasks
section("Parallelism with tasks")


@ray.remote
def f(x):
    time.sleep(1)
    return x


start = time.time()
result_ids = []
for i in range(4):
    result_ids.append(f.remote(i))
results = ray.get(result_ids)  # [0, 1, 2, 3]
print(results, f"in {time.time() - start:.2f} s (1 s with at least 4 cores)")
assert results == [0, 1, 2, 3]

# Task dependencies
section("Task dependencies")


@ray.remote
def create_matrix(size):
    return np.random.normal(size=size)


@ray.remote
def multiply_matrices(x, y):
    return np.dot(x, y)


x_id = create_matrix.remote([1000, 1000])
y_id = create_matrix.remote([1000, 1000])
z_id = multiply_matrices.remote(x_id, y_id)
z = ray.get(z_id)
print("z has shape", z.shape)
assert z.shape == (1000, 1000)

# Aggregating values efficiently
section("Aggregating values")


@ray.remote
def add(x, y):
    time.sleep(1)
    return x + y


start = time.time()
id1 = add.remote(1, 2)
id2 = add.remote(id1, 3)
id3 = add.remote(id2, 4)
id4 = add.remote(id3, 5)
id5 = add.remote(id4, 6)
id6 = add.remote(id5, 7)
id7 = add.remote(id6, 8)
result = ray.get(id7)
print(f"chained: {result} in {time.time() - start:.1f} s (7 s expected)")
assert result == 36

start = time.time()
id1 = add.remote(1, 2)
id2 = add.remote(3, 4)
id3 = add.remote(5, 6)
id4 = add.remote(7, 8)
id5 = add.remote(id1, id2)
id6 = add.remote(id3, id4)
id7 = add.remote(id5, id6)
result = ray.get(id7)
print(f"tree: {result} in {time.time() - start:.1f} s (3 s expected with 4 cores)")
assert result == 36

start = time.time()
values = [1, 2, 3, 4, 5, 6, 7, 8]
while len(values) > 1:
    values = [add.remote(values[0], values[1])] + values[2:]
result = ray.get(values[0])
print(f"while loop, slow: {result} in {time.time() - start:.1f} s")
assert result == 36

start = time.time()
values = [1, 2, 3, 4, 5, 6, 7, 8]
while len(values) > 1:
    values = values[2:] + [add.remote(values[0], values[1])]
result = ray.get(values[0])
print(f"while loop, fast: {result} in {time.time() - start:.1f} s")
assert result == 36

# From classes to actors
section("Actors")


@ray.remote
class Counter(object):
    def __init__(self):
        self.x = 0

    def inc(self):
        self.x += 1

    def get_value(self):
        return self.x


c = Counter.remote()
print(ray.get(c.get_value.remote()))  # 0
c.inc.remote()
c.inc.remote()
print(ray.get(c.get_value.remote()))  # 2
assert ray.get(c.get_value.remote()) == 2

# Actor handles
section("Actor handles")


@ray.remote
class MessageActor(object):
    def __init__(self):
        self.messages = []

    def add_message(self, message):
        self.messages.append(message)

    def get_and_clear_messages(self):
        messages = self.messages
        self.messages = []
        return messages


@ray.remote
def worker(message_actor, j):
    for i in range(ROUNDS):
        time.sleep(1)
        message_actor.add_message.remote("Message {} from worker {}.".format(i, j))


message_actor = MessageActor.remote()
[worker.remote(message_actor, j) for j in range(3)]

received = []
for _ in range(ROUNDS):
    new_messages = ray.get(message_actor.get_and_clear_messages.remote())
    print("New messages:", new_messages)
    received += new_messages
    time.sleep(1)
assert received, "the workers' messages should have reached the actor"

ray.shutdown()
print("\nAll tutorial examples ran.")
