"""Parallelism with tasks: four one-second calls of a remote function run at once.

    python examples/parallel_tasks.py      # about 1 s with at least 4 cores
"""

import time

import quanta as ray

ray.init()


@ray.remote
def f(x):
    time.sleep(1)
    return x


start = time.time()
# Start 4 tasks in parallel: each .remote() returns a future (ObjectRef) at once.
result_ids = []
for i in range(4):
    result_ids.append(f.remote(i))
# Wait for the tasks to complete and retrieve the results.
results = ray.get(result_ids)
print(results, f"in {time.time() - start:.2f} s (1 s with at least 4 cores)")
assert results == [0, 1, 2, 3]
ray.shutdown()
