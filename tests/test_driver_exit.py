"""A dead driver's work ends with it, on a cluster that outlives drivers (`quanta start --head`).

Driver A submits long sleeping tasks (one runs, two wait for a CPU), creates a non-detached
actor and a detached named one, and puts 150 MiB of objects; then it is SIGKILLed. Driver B, a
bystander with a task of its own running, watches: within ~2 s A's running task's worker and
its non-detached actor are gone, the CPU is free again, the store is back at its baseline, A's
queued tasks never run, while the detached actor still answers and B's task finishes untouched.

Before, a killed driver's tasks ran to the end (here: forever), holding their CPUs, and its
actors and objects stayed.
"""

import json
import os
import re
import signal
import time

import pytest

from conftest import alive, process_identity, wait_until_gone
from hostile import MiB, StartedCluster, wait_for

DEADLINE_S = 2.0   # what "with it" means here (the node learns of the death at once: EOF)
SLACK_S = 2.0      # extra allowance on a loaded 2-core machine before the test fails

BYSTANDER = """
import json, os, sys, time
import quanta

quanta.init(address="auto", namespace="driver-exit")

@quanta.remote
def bystander(run_dir):
    open(os.path.join(run_dir, "B-%d" % os.getpid()), "w").close()
    while not os.path.exists(os.path.join(run_dir, "release")):
        time.sleep(0.05)
    return "bystander finished"

ref = bystander.remote(os.environ["RUN_DIR"])
print("BASELINE=%d" % quanta.memory_summary(stats_only=True)["used"], flush=True)
for line in sys.stdin:
    cmd = line.strip()
    if cmd == "state":
        print("STATE=" + json.dumps({"cpu": quanta.available_resources().get("CPU", 0),
                                     "used": quanta.memory_summary(stats_only=True)["used"]}), flush=True)
    elif cmd == "detached":
        keeper = quanta.get_actor("keeper")
        print("DETACHED=" + quanta.get(keeper.ping.remote(), timeout=30), flush=True)
    elif cmd == "result":
        print("RESULT=" + quanta.get(ref, timeout=60), flush=True)
        break
"""

DOOMED = """
import os, time
import numpy as np
import quanta

quanta.init(address="auto", namespace="driver-exit")
run_dir = os.environ["RUN_DIR"]

@quanta.remote
class Keeper:
    def ping(self):
        return "pong from %d" % os.getpid()

    def pid(self):
        return os.getpid()

keeper = Keeper.options(name="keeper", lifetime="detached").remote()
temp = Keeper.remote()
print("KEEPER=%d" % quanta.get(keeper.pid.remote(), timeout=60), flush=True)
print("TEMP=%d" % quanta.get(temp.pid.remote(), timeout=60), flush=True)

@quanta.remote
def sleeper(run_dir, i):
    open(os.path.join(run_dir, "A-%d-%d" % (i, os.getpid())), "w").close()
    time.sleep(1000)

refs = [sleeper.remote(run_dir, i) for i in range(3)]     # one runs, two wait for a CPU
objs = [quanta.put(np.full(50 << 20, i, dtype=np.uint8)) for i in range(3)]   # 150 MiB
print("PUT=%d" % quanta.memory_summary(stats_only=True)["used"], flush=True)
time.sleep(1000)
"""


@pytest.fixture
def head():
    cluster = StartedCluster(num_cpus=2, prefix="qd-")
    yield cluster
    stopped = cluster.cleanup()
    assert stopped.returncode == 0, f"quanta stop failed:\n{stopped.stdout}\n{stopped.stderr}"


class Bystander:
    def __init__(self, driver):
        self.driver = driver
        self._n = 0

    def ask(self, cmd, key, timeout=30):
        before = len(self.driver.lines)
        self.driver.send(cmd)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.driver.lines[before:]:
                if line.startswith(key + "="):
                    return line.split("=", 1)[1]
            self.driver.collect(0.02)
        raise AssertionError(f"no {key}= answer to {cmd!r}:\n{self.driver.output[-3000:]}")

    def state(self):
        return json.loads(self.ask("state", "STATE"))


def _files(run_dir, prefix):
    return sorted(n for n in os.listdir(run_dir) if n.startswith(prefix))


@pytest.mark.subprocess_driver
def test_a_killed_drivers_work_ends_with_it(head, start_driver, tmp_path):
    run_dir = str(tmp_path)
    env = dict(head.env, RUN_DIR=run_dir)
    b = start_driver(BYSTANDER, env=env)
    baseline = int(b.wait_for(r"BASELINE=(\d+)", timeout=60).group(1))
    assert wait_for(lambda: _files(run_dir, "B-"), 30), "the bystander's task did not start"
    b_task = process_identity(int(_files(run_dir, "B-")[0].split("-")[1]))
    bystander = Bystander(b)

    a = start_driver(DOOMED, env=env)
    keeper = process_identity(int(a.wait_for(r"KEEPER=(\d+)", timeout=60).group(1)))
    temp = process_identity(int(a.wait_for(r"TEMP=(\d+)", timeout=60).group(1)))
    put = int(a.wait_for(r"PUT=(\d+)", timeout=60).group(1))
    assert wait_for(lambda: _files(run_dir, "A-"), 30), "the doomed driver's task did not start"
    time.sleep(0.3)
    started = _files(run_dir, "A-")
    assert len(started) == 1, f"with 2 CPUs and the bystander's task, one sleeper should run: {started}"
    a_task = process_identity(int(started[0].split("-")[2]))
    before = bystander.state()
    assert before["cpu"] == 0, before                       # B's task + A's sleeper
    assert put - baseline >= 150 * MiB and before["used"] - baseline >= 150 * MiB, (baseline, put, before)

    os.kill(a.pid, signal.SIGKILL)
    killed_at = time.monotonic()
    a.proc.wait()

    timings = {}

    def check(name, done):
        if name not in timings and done():
            timings[name] = time.monotonic() - killed_at
        return name in timings

    state = before
    while time.monotonic() - killed_at < DEADLINE_S + SLACK_S:
        state = bystander.state()
        results = [check("task worker gone", lambda: not alive(a_task)),
                   check("non-detached actor gone", lambda: not alive(temp)),
                   check("CPU free again", lambda: state["cpu"] == 1),
                   check("objects freed", lambda: state["used"] - baseline < 1 * MiB)]
        if all(results):
            break
        time.sleep(0.05)
    print("[measure] after SIGKILL of the driver: " +
          ", ".join(f"{k} {v:.2f} s" for k, v in sorted(timings.items(), key=lambda kv: kv[1])) +
          f"; store {before['used'] / MiB:.1f} -> {state['used'] / MiB:.1f} MiB (baseline {baseline / MiB:.1f})")
    for name in ("task worker gone", "non-detached actor gone", "CPU free again", "objects freed"):
        assert name in timings, f"{name}: not within {DEADLINE_S + SLACK_S} s of the driver's death ({state})"
        assert timings[name] <= DEADLINE_S + SLACK_S

    # What is not the dead driver's goes on.
    assert alive(keeper), "the detached actor died with its creator"
    assert bystander.ask("detached", "DETACHED") == f"pong from {keeper[0]}"
    assert alive(b_task), "the bystander's running task was touched"
    shown = head.cli("memory")
    assert shown.returncode == 0, shown.stderr
    sizes = [int(m.group(1)) for m in re.finditer(r"^[0-9a-f]{32}\s+(\d+)\s", shown.stdout, re.M)]
    assert not [s for s in sizes if s >= 50 * MiB], f"the dead driver's objects are still listed:\n{shown.stdout}"
    open(os.path.join(run_dir, "release"), "w").close()
    assert bystander.ask("result", "RESULT") == "bystander finished"
    time.sleep(1.0)   # both CPUs are free now: a queued task of the dead driver would start
    assert _files(run_dir, "A-") == started, "a queued task of the dead driver ran after it died"
    assert b.wait_exit(60) == 0


@pytest.mark.subprocess_driver
def test_a_driver_that_exits_normally_ends_its_running_tasks(head, start_driver, tmp_path):
    """The same for a driver that simply returns while its tasks still run."""
    run_dir = str(tmp_path)
    driver = start_driver("""
        import os, sys, time, quanta
        quanta.init(address="auto")

        @quanta.remote
        def sleeper(run_dir):
            open(os.path.join(run_dir, "T-%d" % os.getpid()), "w").close()
            time.sleep(1000)

        refs = [sleeper.remote(os.environ["RUN_DIR"]) for _ in range(2)]
        while len([n for n in os.listdir(os.environ["RUN_DIR"]) if n.startswith("T-")]) < 2:
            time.sleep(0.05)
        print("RUNNING", flush=True)
        sys.stdin.readline()
    """, env=dict(head.env, RUN_DIR=run_dir))
    driver.wait_for("RUNNING", timeout=60)
    tasks = {process_identity(int(n.split("-")[1])) for n in _files(run_dir, "T-")}
    assert all(tasks)
    driver.send("exit")       # the script ends: a normal exit, tasks still running
    assert driver.wait_exit(30) == 0
    left = wait_until_gone(tasks, DEADLINE_S + SLACK_S)
    assert not left, "tasks of a driver that exited are still running"
    out = head.driver("""
        import quanta
        quanta.init(address="auto")
        print("CPU=%g" % quanta.available_resources().get("CPU", 0))
    """).stdout
    assert "CPU=2\n" in out, out
