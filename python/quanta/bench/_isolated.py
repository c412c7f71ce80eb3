"""Load the benchmark package without importing ``quanta`` itself.

The benchmark runs each backend in a fresh child process.  A child that
measures Ray, Dask or multiprocessing must not import Quanta (its engine
would sit in the measured processes), and a child that measures Quanta must
be able to report a broken ``import quanta`` instead of dying on it.  So the
child is started as ``python _isolated.py ...``: this file loads the
``quanta/bench`` folder as a stand-alone package named ``ALIAS`` and hands
over to its ``child`` module.

This file uses the standard library only and no relative imports.
"""

import importlib.util
import os
import sys

ALIAS = "quanta_bench_isolated"
HERE = os.path.dirname(os.path.abspath(__file__))


def load():
    """Return the benchmark package loaded under ``ALIAS`` (loads it once)."""
    if ALIAS in sys.modules:
        return sys.modules[ALIAS]
    spec = importlib.util.spec_from_file_location(
        ALIAS, os.path.join(HERE, "__init__.py"), submodule_search_locations=[HERE]
    )
    pkg = importlib.util.module_from_spec(spec)
    sys.modules[ALIAS] = pkg
    spec.loader.exec_module(pkg)
    return pkg


if __name__ == "__main__":
    # Running as a script put this folder first on sys.path; drop it so that
    # our module names (report, child, ...) cannot shadow anything else.
    if sys.path and os.path.abspath(sys.path[0] or ".") == HERE:
        del sys.path[0]
    load()
    child = importlib.import_module(ALIAS + ".child")
    sys.exit(child.main(sys.argv[1:]))
