"""Quanta's benchmark suite: Ray's microbenchmark workloads and a few more,
measured on Quanta and, with ``--compare``, on Ray, Dask and multiprocessing.

Run ``python -m quanta.bench --help``; ``bench/README.md`` at the top of the
repository explains how to read and rerun the results.

This package imports only the standard library at load time (numpy is used
inside workloads), and never imports ``quanta`` itself: every backend is
measured in a fresh child process.
"""


def main(argv=None) -> int:
    """Run the suite with command-line arguments ``argv``; returns an exit code
    (0 when every selected backend that is installed ran every workload)."""
    from .cli import main as cli_main

    return cli_main(argv)


__all__ = ["main"]
