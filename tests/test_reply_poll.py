"""The client's reply poll (core/core_reader.cc, docs/architecture.md "Waiting for an answer"):
a caller waiting for one value or one reply may busy-poll before sleeping, bounded by
QUANTA_CLIENT_SPIN_US; bulk gets never poll, 0 turns polling off, and a bad value is refused
before anything starts."""

import json
import os
import subprocess
import sys
import textwrap

import pytest

CHILD = textwrap.dedent("""
    import json, quanta
    from quanta._private import session
    quanta.init(num_cpus=1, include_dashboard=False)
    core = session.current_core()

    @quanta.remote
    class Echo:
        def f(self, x):
            return x

    a = Echo.remote()
    for i in range(200):
        assert quanta.get(a.f.remote(i)) == i
    after_sync = core.reply_spin_counts()
    refs = [a.f.remote(i) for i in range(300)]
    assert quanta.get(refs) == list(range(300))
    after_bulk = core.reply_spin_counts()
    print(json.dumps({"sync": after_sync, "bulk": after_bulk}))
    quanta.shutdown()
""")


def run_child(spin):
    env = dict(os.environ)
    env.pop("QUANTA_CLIENT_SPIN_US", None)
    if spin is not None:
        env["QUANTA_CLIENT_SPIN_US"] = spin
    return subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, timeout=120)


def test_sync_gets_poll_and_bulk_gets_do_not():
    r = run_child(None)
    assert r.returncode == 0, r.stderr
    counts = json.loads(r.stdout.strip().splitlines()[-1])
    assert counts["sync"]["budget_us"] == 100
    # 200 sync calls wait for one value each; the budget adapts, so not every wait polls, but the
    # first ones do and a stopped budget probes again every 32 waits.
    assert counts["sync"]["spins"] >= 5
    assert counts["bulk"]["spins"] == counts["sync"]["spins"]  # one get of 300 refs never polls


def test_zero_turns_polling_off():
    r = run_child("0")
    assert r.returncode == 0, r.stderr
    counts = json.loads(r.stdout.strip().splitlines()[-1])
    assert counts["bulk"] == {"spins": 0, "caught": 0, "budget_us": 0}


@pytest.mark.parametrize("bad", ["abc", "-5", "20000", "1.5"])
def test_bad_value_is_refused_before_anything_starts(bad):
    r = run_child(bad)
    assert r.returncode != 0
    assert "QUANTA_CLIENT_SPIN_US=" + bad in r.stderr
    assert "whole number of microseconds from 0" in r.stderr
    assert "Traceback" in r.stderr and "ValueError" in r.stderr


def test_quanta_start_refuses_a_bad_value(tmp_path):
    env = dict(os.environ, QUANTA_CLIENT_SPIN_US="often", TMPDIR=str(tmp_path))
    r = subprocess.run([sys.executable, "-m", "quanta", "start", "--head"], env=env, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode != 0
    assert "QUANTA_CLIENT_SPIN_US=often" in r.stderr + r.stdout
