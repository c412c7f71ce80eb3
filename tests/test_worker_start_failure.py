"""A Python environment in which workers cannot start gives the driver a clear warning with the
workers' error output, instead of respawning them forever or hanging silently."""

import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.subprocess_driver


def test_workers_that_cannot_start_are_reported(tmp_path):
    # A module on PYTHONPATH that shadows a standard one every worker imports (workers always
    # import the driver's own quanta package, so breaking that is not how environments break).
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "json.py").write_text("raise ImportError('deliberately broken json module')\n")
    code = textwrap.dedent(f"""
        import os
        import quanta                      # imported (with the real json) before the change below
        os.environ["PYTHONPATH"] = {str(broken)!r}   # what the workers will import
        quanta.init(num_cpus=1)

        @quanta.remote
        def f():
            return 1

        try:
            quanta.get(f.remote(), timeout=8)
        except quanta.exceptions.GetTimeoutError:
            print("get timed out", flush=True)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "get timed out" in out.stdout, out.stdout + out.stderr
    assert "worker processes exit before they can start" in out.stderr, out.stderr
    assert "deliberately broken json module" in out.stderr, out.stderr
