"""Dask (distributed) as a peer: a local cluster of two single-threaded
worker processes.  put/get map to scatter/gather, tasks to submit, actors to
``actor=True``; workloads with no natural Dask form are left out (``n/a``)."""

from .backends import READY, Backend
from .generic import ActorWorkloads, ObjectWorkloads, TaskWorkloads

CLUSTER = dict(processes=True, n_workers=2, threads_per_worker=1)  # as the issue asks


def _define():
    """Task functions and actor classes, defined here so that cloudpickle
    sends them by value (the workers never import this package)."""

    def small_value():
        return b"ok"

    def mat_f(m):
        return m + 1.0

    def mat_g(m):
        return m * 2.0

    class Actor:
        def small_value(self):
            return b"ok"

    class AsyncActor:
        async def small_value(self):
            return b"ok"

        async def small_value_with_arg(self, x):
            return b"ok"

    return small_value, mat_f, mat_g, Actor, AsyncActor


class DaskBackend(Backend, TaskWorkloads, ObjectWorkloads, ActorWorkloads):
    name = "dask"
    package = "distributed"

    def version(self):
        import dask
        import distributed

        return f"{dask.__version__} (distributed {distributed.__version__})"

    def start(self):
        from distributed import Client, LocalCluster

        self.cluster = LocalCluster(**CLUSTER)
        self.client = Client(self.cluster)
        self.small_value, self.mat_f, self.mat_g, self.Actor, self.AsyncActor = _define()
        self.client.submit(self.small_value, pure=False).result()

    def stop(self):
        self.client.close()
        self.cluster.close()

    def fresh_script(self, run_task):
        lines = ["from distributed import Client, LocalCluster", "if __name__ == '__main__':",
                 f"    cluster = LocalCluster(**{CLUSTER!r})", "    client = Client(cluster)"]
        if run_task:
            lines.append("    assert client.submit(abs, -1).result() == 1")
        lines += [f"    print({READY!r}, flush=True)", "    import sys", "    sys.stdin.read()",
                  "    client.close()", "    cluster.close()"]
        return "\n".join(lines)

    # pure=False everywhere: each submit is a new task, as each .remote() is.

    def _one_task(self):
        client, sv = self.client, self.small_value
        return lambda: client.submit(sv, pure=False).result()

    def _batch(self, count):
        client, sv = self.client, self.small_value
        return lambda: client.gather([client.submit(sv, pure=False) for _ in range(count)])

    def _dag(self, m):
        # Scatter the matrix first, as Dask advises for large arguments
        # (Ray puts a large argument into its store implicitly).
        client, f, g = self.client, self.mat_f, self.mat_g

        def run():
            first = client.submit(f, client.scatter(m, hash=False), pure=False)
            return client.submit(g, first, pure=False).result()

        return run

    def _put(self, value):
        return self.client.scatter(value, hash=False)

    def _get(self, ref):
        return self.client.gather(ref)

    def _new_actors(self, count, is_async=False, **options):
        cls = self.AsyncActor if is_async else self.Actor
        futures = [self.client.submit(cls, actor=True, pure=False) for _ in range(count)]
        return [f.result() for f in futures]

    def _ping_all(self, actors):
        for f in [a.small_value() for a in actors]:
            f.result()

    def _calls(self, actor, method, count=None, arg=False):
        call = getattr(actor, method)
        if count is None:
            return lambda: call().result()

        def many():
            for f in [call(i) for i in range(count)] if arg else [call() for _ in range(count)]:
                f.result()

        return many

    def _release(self, actors):
        actors.clear()
