"""Every program in examples/ (the seed tutorial's examples) runs to completion on Quanta, each
as `python examples/NAME.py` would run it; each checks its own results."""

import os
import subprocess
import sys

import pytest

EXAMPLES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "examples")
sys.path.insert(0, EXAMPLES)
from run_all import EXAMPLES as NAMES  # noqa: E402

sys.path.remove(EXAMPLES)


def test_run_all_lists_every_example_in_the_folder():
    on_disk = {n for n in os.listdir(EXAMPLES) if n.endswith(".py") and n != "run_all.py"}
    assert on_disk == set(NAMES)
    with open(os.path.join(EXAMPLES, "README.md")) as f:
        readme = f.read()
    for name in NAMES:
        assert f"`{name}`" in readme, f"examples/README.md does not list {name}"


@pytest.mark.parametrize("name", NAMES)
def test_example_runs(name, tmp_path):
    pytest.importorskip("numpy")
    env = dict(os.environ, TMPDIR=str(tmp_path) if len(str(tmp_path)) < 60 else os.environ.get("TMPDIR", "/tmp"))
    out = subprocess.run([sys.executable, os.path.join(EXAMPLES, name), "--quick"], capture_output=True, text=True,
                         timeout=300, env=env, cwd=tmp_path)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "Traceback" not in out.stderr, out.stderr[-3000:]
