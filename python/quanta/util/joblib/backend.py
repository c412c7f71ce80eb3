"""The joblib parallel backend behind quanta.util.joblib.register_quanta().

Each batch of calls joblib dispatches runs as one Quanta task, through a quanta.util.Executor
with `n_jobs` slots, so at most n_jobs batches run at once (n_jobs=-1: one per CPU of the
cluster). Tasks run on the node's reusable workers, so modules imported by one batch (e.g.
scikit-learn) stay imported for the next, across Parallel calls. Batch sizes adapt to batch
durations as with joblib's process backends.

Backend options (`joblib.parallel_backend("quanta", ray_remote_args={"num_cpus": 2})`):
`ray_remote_args`, task options for every batch. Other options are refused.
"""

from __future__ import annotations

from joblib._parallel_backends import AutoBatchingMixin, ParallelBackendBase

import quanta


_PARALLEL_SETTINGS = {"max_nbytes", "mmap_mode", "temp_folder", "verbose", "context"}


class QuantaBackend(AutoBatchingMixin, ParallelBackendBase):
    """joblib backend running batches as Quanta tasks."""

    supports_retrieve_callback = True
    supports_sharedmem = False
    uses_threads = False

    def __init__(self, nesting_level=None, inner_max_num_threads=None, ray_remote_args=None,
                 **backend_kwargs):
        if backend_kwargs:
            raise TypeError(f"the Quanta joblib backend got unexpected options "
                            f"{sorted(backend_kwargs)}; its only option is ray_remote_args "
                            "(task options for each batch, e.g. {'num_cpus': 2})")
        if ray_remote_args is not None and not isinstance(ray_remote_args, dict):
            raise TypeError("ray_remote_args must be a dict of task options")
        super().__init__(nesting_level=nesting_level, inner_max_num_threads=inner_max_num_threads)
        self._remote_args = dict(ray_remote_args or {})
        self._executor = None

    def effective_n_jobs(self, n_jobs):
        if n_jobs == 0:
            raise ValueError("n_jobs == 0 in Parallel has no meaning")
        if n_jobs is None:
            return 1
        if n_jobs < 0:
            if not quanta.is_initialized():
                quanta.init()
            cpus = int(quanta.cluster_resources().get("CPU", 1))
            return max(cpus + 1 + n_jobs, 1)
        return n_jobs

    def configure(self, n_jobs=1, parallel=None, prefer=None, require=None, **parallel_kwargs):
        from quanta.util.executor import Executor

        # Parallel passes its memmapping settings (max_nbytes, mmap_mode, temp_folder), verbose
        # and a multiprocessing context to every backend. They do not apply here: large numpy
        # arguments travel through Quanta's shared-memory object store instead of memmaps.
        unknown = set(parallel_kwargs) - _PARALLEL_SETTINGS
        if unknown:
            raise TypeError(f"the Quanta joblib backend got unexpected options {sorted(unknown)}")
        n_jobs = self.effective_n_jobs(n_jobs)
        self.parallel = parallel
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
        self._executor = Executor(max_workers=n_jobs, ray_remote_args=self._remote_args)
        return n_jobs

    def submit(self, func, callback=None):
        future = self._executor.submit(func)
        if callback is not None:
            future.add_done_callback(callback)
        return future

    def retrieve_result_callback(self, future):
        return future.result()

    def terminate(self):
        if self._executor is not None:
            self._executor.shutdown(wait=False)
            self._executor = None
        self.reset_batch_stats()

    def abort_everything(self, ensure_ready=True):
        """Cancels the batches not started yet (running ones finish; their results are dropped)."""
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None
        if ensure_ready:
            self.configure(n_jobs=self.parallel.n_jobs, parallel=self.parallel,
                           **self.parallel._backend_kwargs)


__all__ = ["QuantaBackend"]
