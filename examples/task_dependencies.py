"""Task dependencies: a task takes other tasks' futures as arguments and runs once they are ready.
The two 1000x1000 matrices (8 MB each) go through the shared-memory object store, not copies.

    python examples/task_dependencies.py      # needs numpy (pip install .[examples])
"""

import numpy as np

import quanta as ray

ray.init()


@ray.remote
def create_matrix(size):
    return np.random.normal(size=size)


@ray.remote
def multiply_matrices(x, y):
    return np.dot(x, y)


x_id = create_matrix.remote([1000, 1000])
y_id = create_matrix.remote([1000, 1000])
z_id = multiply_matrices.remote(x_id, y_id)  # starts when both matrices exist
z = ray.get(z_id)
print("z has shape", z.shape)
assert z.shape == (1000, 1000)
ray.shutdown()
