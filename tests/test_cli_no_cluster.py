"""Every `quanta` subcommand, run where no cluster is running, says so in one line and exits
non-zero (or does its harmless job), never with a traceback."""

import os
import subprocess
import sys

import pytest

NEEDS_A_CLUSTER = [
    ["status"], ["status", "--format", "json"], ["memory"],
    ["list", "nodes"], ["list", "actors"], ["list", "tasks"], ["list", "objects"], ["list", "workers"],
    ["list", "jobs"], ["list", "placement-groups"],
    ["get", "actors", "01000000010000000100000000000000"], ["get", "nodes", "ab"],
    ["summary", "actors"], ["summary", "objects"], ["summary", "tasks"],
    ["timeline"], ["logs"], ["logs", "--actor-id", "01000000010000000100000000000000"],
]
NEEDS_A_DASHBOARD = [
    ["job", "list"], ["job", "status", "x"], ["job", "logs", "x"], ["job", "stop", "x"], ["job", "delete", "x"],
    ["job", "submit", "--no-wait", "--", "true"],
]


def _quanta(args, tmp_path):
    env = dict(os.environ)
    env.pop("QUANTA_ADDRESS", None)
    env.pop("RAY_ADDRESS", None)
    env["TMPDIR"] = str(tmp_path)  # a runtime root of its own: no cluster of any other test is seen
    # Port 1 refuses connections: never another cluster's dashboard on the default port 8265.
    env["QUANTA_DASHBOARD_ADDRESS"] = "http://127.0.0.1:1"
    return subprocess.run([sys.executable, "-m", "quanta.scripts", *args], capture_output=True, text=True,
                          timeout=60, env=env, cwd=tmp_path)


@pytest.mark.parametrize("args", NEEDS_A_CLUSTER, ids=" ".join)
def test_commands_that_need_a_cluster_say_none_is_running(args, tmp_path):
    out = _quanta(args, tmp_path)
    assert out.returncode == 1, out
    assert "Traceback" not in out.stderr + out.stdout, out.stderr
    assert out.stderr.strip() == ("quanta: no cluster running on this host. Start one with `quanta start "
                                  "--head`, or pass --address HEAD_IP:PORT"), out.stderr


@pytest.mark.parametrize("args", NEEDS_A_DASHBOARD, ids=" ".join)
def test_job_commands_say_the_dashboard_cannot_be_reached_and_how_to_start_one(args, tmp_path):
    out = _quanta(args, tmp_path)
    assert out.returncode == 1, out
    assert "Traceback" not in out.stderr + out.stdout, out.stderr
    assert out.stderr.startswith("quanta: cannot reach the dashboard at http://127.0.0.1:1"), out.stderr
    assert "`quanta start --head`" in out.stderr, out.stderr


def test_stop_with_nothing_running_says_so_and_succeeds(tmp_path):
    out = _quanta(["stop"], tmp_path)
    assert out.returncode == 0, out
    assert "Stopped 0 Quanta session(s)" in out.stdout, out


def test_get_auth_token_without_one_says_how_to_make_one(tmp_path):
    env_home = tmp_path / "home"
    env_home.mkdir()
    env = dict(os.environ, HOME=str(env_home), TMPDIR=str(tmp_path))
    env.pop("QUANTA_AUTH_TOKEN", None)
    env.pop("RAY_AUTH_TOKEN", None)
    out = subprocess.run([sys.executable, "-m", "quanta.scripts", "get-auth-token"], capture_output=True,
                         text=True, timeout=60, env=env)
    assert "Traceback" not in out.stderr, out.stderr
    if out.returncode != 0:
        assert "quanta get-auth-token --generate" in out.stderr, out.stderr
