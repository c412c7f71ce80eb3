"""Remote tracebacks name the user's files and show their source lines, even for functions
and classes shipped by value (cloudpickle replaces their file names)."""

import os

import pytest

import quanta


def test_task_traceback_shows_file_and_source_line(cluster):
    @quanta.remote
    def outer():
        def inner():
            raise ValueError("boom from inner")

        return inner()

    with pytest.raises(ValueError) as info:
        quanta.get(outer.remote())
    text = str(info.value)
    assert os.path.basename(__file__) in text, text
    assert 'raise ValueError("boom from inner")' in text, text
    assert "in inner" in text and "in outer" in text, text
    assert "<dynamic-code>" not in text, text


def test_actor_constructor_traceback_shows_file(cluster):
    @quanta.remote
    class Broken:
        def __init__(self):
            raise KeyError("no config")

        def ping(self):
            return 1

    with pytest.raises(quanta.exceptions.ActorDiedError) as info:
        quanta.get(Broken.remote().ping.remote())
    text = str(info.value)
    assert os.path.basename(__file__) in text and 'raise KeyError("no config")' in text, text


DRIVER_SCRIPT = '''
import quanta

def helper(x):
    return 1 / x  # the helper's own line

@quanta.remote
def f(x):
    return helper(x)

@quanta.remote
def g(y):
    return y + 1

@quanta.remote
def h(z):
    return z

@quanta.remote
def calls_get(refs):
    return quanta.get(refs[0])

quanta.init(num_cpus=2)
for make in (lambda: f.remote(0), lambda: h.remote(g.remote(f.remote(0))), lambda: calls_get.remote([f.remote(0)])):
    try:
        quanta.get(make())
    except ZeroDivisionError as e:
        print("ERROR", e.function_name, e.via)
        print(e)
        print("END")
quanta.shutdown()
'''


def _errors_of(script, tmp_path):
    import subprocess
    import sys

    path = tmp_path / "driver_script.py"
    path.write_text(DRIVER_SCRIPT)
    out = subprocess.run([sys.executable, str(path)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    blocks = out.stdout.split("ERROR ")[1:]
    assert len(blocks) == 3, out.stdout + out.stderr
    return str(path), [b.split("END")[0] for b in blocks]


def test_helper_in_a_driver_script_shows_its_file_and_line_and_chains_name_every_task(no_cluster, tmp_path):
    path, (direct, through_args, through_get) = _errors_of(DRIVER_SCRIPT, tmp_path)
    # A module-level helper of __main__ travels by value: its frame names the script and the line.
    for text in (direct, through_args, through_get):
        assert f'File "{path}", line 5, in helper' in text, text
        assert "return 1 / x  # the helper's own line" in text, text
        assert f'File "{path}", line 9, in f' in text, text
        assert "<dynamic-code>" not in text, text
    assert direct.startswith("f []\ntask f (pid="), direct
    # h(g(f(0))): the node failed g and h without running them; both are named, outermost first.
    assert through_args.startswith("f ['g', 'h']\ntask h failed: a value it needed came from task g, "
                                   "which failed: a value it needed came from task f (pid="), through_args
    # A task that called quanta.get on f's result and let the error propagate.
    assert through_get.startswith("f ['calls_get']\ntask calls_get failed: a value it needed came from "
                                  "task f (pid="), through_get


def test_source_lines_travel_with_the_function_to_a_host_without_the_file(tmp_path):
    """A worker on another host has no copy of the driver's file: the exported function carries
    its source, so the traceback there still shows the lines."""
    import subprocess
    import sys

    module = tmp_path / "gone_module.py"
    module.write_text("def explode():\n    raise RuntimeError('from a file that is gone')\n")
    exporter = f"""
import sys, runpy
from quanta._private import serialization
ns = runpy.run_path({str(module)!r})
sys.stdout.buffer.write(serialization.export_function(ns["explode"]))
"""
    payload = subprocess.run([sys.executable, "-c", exporter], capture_output=True, check=True,
                             timeout=60).stdout
    module.unlink()
    importer = """
import sys
from quanta._private import serialization
fn = serialization.import_function(sys.stdin.buffer.read())
try:
    fn()
except RuntimeError as e:
    print(serialization.format_traceback(e))
"""
    out = subprocess.run([sys.executable, "-c", importer], input=payload, capture_output=True,
                         timeout=60)
    text = out.stdout.decode()
    assert f'File "{module}", line 2, in explode' in text, text + out.stderr.decode()
    assert "raise RuntimeError('from a file that is gone')" in text, text
