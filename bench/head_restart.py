"""Head restart: how long after the head's control service is started again a driver's first
call that needs it succeeds, beside Ray's GCS fault tolerance (Redis-backed).

    python bench/head_restart.py [--repeat 3] [--compare ray] [--json out.json]

Each backend runs a real head on this machine with persisted tables, and a driver (a child
process) that made a detached named actor and a KV key. The head's control process (Quanta:
quanta_control; Ray: gcs_server) is SIGKILLed; the driver starts asking, in a loop, for what
only the head answers; --down seconds later (default 2) the control process is started again with its own command line
and environment (as `quanta start --head --storage ...` run again does for Quanta; for Ray, as
a supervisor such as KubeRay would). Figures, from the moment the process is spawned:
  * kv_s: the first `_internal_kv_get` of the key made before that succeeds;
  * actor_s: the first `get_actor(name)` + a method call on it that succeeds;
Quanta is measured with SQLite (`--storage FILE`) and Redis (`--storage redis://`), Ray with
Redis (`RAY_REDIS_ADDRESS`; it has no other backend in 2.60 but an alpha RocksDB one). Also for
Quanta: cli_s, the whole `quanta start --head --storage ...` re-run (Python start-up included).
Ratios are Ray / Quanta (>1: Quanta is back sooner). JSON (--json, default
bench/head_restart-<date>.json) keeps every sample.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

DOWN_S = 2.0  # how long the head stays down (--down): a supervisor's restart takes about that

DRIVER = r'''
import sys, threading, time
backend, address = sys.argv[1], sys.argv[2]
if backend == "ray":
    import ray as rt
    from ray.experimental import internal_kv as kv
else:
    import quanta as rt
    from quanta.experimental import internal_kv as kv
extra = {"_node_ip_address": "127.0.0.1"} if backend == "ray" else {}  # the raylet's address, not eth0's
rt.init(address=address, namespace="bench", log_to_driver=False, **extra)

@rt.remote(num_cpus=0)
class Counter:
    def __init__(self):
        self.n = 0
    def incr(self):
        self.n += 1
        return self.n

c = Counter.options(name="keeper", lifetime="detached").remote()
assert rt.get(c.incr.remote()) == 1
kv._internal_kv_put(b"bench-key", b"v")
print("ready", flush=True)
assert sys.stdin.readline().strip() == "go"   # the control process was killed
done = {}

def poll(name, fn):
    while True:
        try:
            fn()
            done[name] = time.time()
            return
        except Exception:
            time.sleep(0.01)

def kv_ok():
    assert kv._internal_kv_get(b"bench-key") == b"v"

def actor_ok():
    a = rt.get_actor("keeper")
    rt.get(a.incr.remote(), timeout=60)

threads = [threading.Thread(target=poll, args=("kv_s", kv_ok)), threading.Thread(target=poll, args=("actor_s", actor_ok))]
for t in threads:
    t.start()
print("polling", flush=True)
for t in threads:
    t.join(120)
print("done " + " ".join(f"{k}={v!r}" for k, v in done.items()), flush=True)
rt.kill(rt.get_actor("keeper"))
'''


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


class Redis:
    def __init__(self, root):
        self.port = free_port()
        d = os.path.join(root, "redis")
        os.makedirs(d)
        self.proc = subprocess.Popen(["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir", d,
                                      "--save", "", "--appendonly", "yes", "--logfile", os.path.join(d, "log")])
        wait_port(self.port)

    def stop(self):
        self.proc.kill()
        self.proc.wait()


def proc_of(name_prefix, needle):
    """(pid, argv, env) of the process whose executable starts with `name_prefix` and whose
    command line contains `needle`."""
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            exe = os.path.basename(os.readlink(f"/proc/{pid}/exe"))
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = [a.decode() for a in f.read().split(b"\0") if a]
            with open(f"/proc/{pid}/environ", "rb") as f:
                env = dict(kv.decode().split("=", 1) for kv in f.read().split(b"\0") if b"=" in kv)
        except (OSError, ValueError):
            continue
        if exe.startswith(name_prefix) and any(needle in a for a in argv):
            return int(pid), argv, env
    raise RuntimeError(f"no {name_prefix} process with {needle!r}")


def kill_everything_with(needle):
    """SIGKILLs every process of ours whose command line names `needle` (this run's temp dir):
    never `ray stop`, which would stop other people's Ray clusters on the machine too."""
    for _ in range(3):
        for pid in os.listdir("/proc"):
            if not pid.isdigit() or int(pid) == os.getpid():
                continue
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    if needle.encode() in f.read():
                        os.kill(int(pid), signal.SIGKILL)
            except OSError:
                pass
        time.sleep(0.2)


def kill_and_wait(pid):
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X"):
                    return
        except OSError:
            return
        time.sleep(0.01)


def run_driver(backend, address, env):
    return subprocess.Popen([sys.executable, "-c", DRIVER, backend, address], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, env=env)


def expect(proc, word, timeout=120):
    line = proc.stdout.readline()
    if not line.startswith(word):
        raise RuntimeError(f"driver said {line!r}, wanted {word!r}")
    return line


def measure(driver, kill, respawn):
    """Kills the control process, lets the driver start polling, respawns it; the seconds from
    the spawn to each first success."""
    expect(driver, "ready")
    kill()
    driver.stdin.write("go\n")
    driver.stdin.flush()
    expect(driver, "polling")
    time.sleep(DOWN_S)  # the driver is asking a head that is not there
    t0 = time.time()
    extra = respawn()
    done = expect(driver, "done").split()[1:]
    out = {k: float(v) - t0 for k, v in (item.split("=") for item in done)}
    out.update(extra or {})
    driver.wait(60)
    return out


def quanta_sample(kind):
    root = tempfile.mkdtemp(prefix="qhrb-")
    home, rt_dir = os.path.join(root, "home"), os.path.join(root, "rt")
    os.makedirs(home)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("QUANTA_", "RAY_"))}
    env.update(HOME=home, QUANTA_RUNTIME_DIR=rt_dir)
    redis = Redis(root) if kind == "redis" else None
    storage = f"redis://127.0.0.1:{redis.port}" if redis else os.path.join(root, "head.db")
    port = free_port()
    cmd = [sys.executable, "-m", "quanta.scripts", "start", "--head", "--port", str(port), "--num-cpus", "1",
           "--node-ip-address", "127.0.0.1",
           "--include-dashboard", "false", "--storage", storage]
    try:
        subprocess.run(cmd, env=env, check=True, capture_output=True)
        driver = run_driver("quanta", f"127.0.0.1:{port}", env)
        holder = {}

        def kill():
            pid, argv, penv = proc_of("quanta_control", rt_dir)
            holder.update(argv=argv, env=penv)
            kill_and_wait(pid)

        def respawn_cli():
            t = time.time()
            subprocess.run(cmd, env=env, check=True, capture_output=True)
            return {"cli_s": time.time() - t}

        sample = measure(driver, kill, respawn_cli)
        # Once more with the daemon spawned directly (its own command line), as Ray's is below.
        driver = run_driver("quanta", f"127.0.0.1:{port}", env)

        def respawn_direct():
            argv = [a for a in holder["argv"]]
            if "--ready-fd" in argv:
                i = argv.index("--ready-fd")
                del argv[i:i + 2]
            subprocess.Popen(argv, env=dict(holder["env"], QUANTA_AUTH_TOKEN=open(
                os.path.join(home, ".quanta", "auth_token")).read().strip()), start_new_session=True,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        direct = measure(driver, kill, respawn_direct)
        sample.update({"direct_" + k: v for k, v in direct.items()})
        return sample
    finally:
        subprocess.run([sys.executable, "-m", "quanta.scripts", "stop", "--force"], env=env, capture_output=True)
        kill_everything_with(rt_dir)  # the directly respawned control service is in no record
        if redis:
            redis.stop()
        shutil.rmtree(root, ignore_errors=True)


def ray_sample():
    """Ray's own ray.cluster_utils.Cluster (one head on 127.0.0.1) with RAY_REDIS_ADDRESS set, so
    that its GCS persists to the Redis; the GCS respawned with its command line and environment."""
    from ray.cluster_utils import Cluster

    root = tempfile.mkdtemp(prefix="rhrb-")
    redis = Redis(root)
    saved = dict(os.environ)
    os.environ.update(RAY_REDIS_ADDRESS=f"127.0.0.1:{redis.port}", RAY_external_storage_namespace="bench",
                      RAY_USAGE_STATS_ENABLED="0")
    cluster = None
    try:
        cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
        session = cluster.head_node.get_session_dir_path()
        driver_env = {k: v for k, v in saved.items() if not k.startswith(("QUANTA_", "RAY_"))}
        driver = run_driver("ray", cluster.address, driver_env)
        holder = {}

        def kill():
            pid, argv, penv = proc_of("gcs_server", session)
            holder.update(argv=argv, env=penv)
            kill_and_wait(pid)

        gcs_port = cluster.address.rsplit(":", 1)[1]

        def respawn():
            # Its command line says port 0 (pick one): the nodes and drivers know the one it had.
            argv = [f"--gcs_server_port={gcs_port}" if a.startswith("--gcs_server_port=") else a
                    for a in holder["argv"]]
            with open(os.path.join(root, "gcs_respawn.out"), "w") as out:
                subprocess.Popen(argv, env=holder["env"], start_new_session=True, stdout=out,
                                 stderr=subprocess.STDOUT)

        return measure(driver, kill, respawn)
    finally:
        os.environ.clear()
        os.environ.update(saved)
        if cluster is not None:
            session = cluster.head_node.get_session_dir_path()
            try:
                cluster.shutdown()
            except Exception:  # noqa: BLE001 - its GCS was replaced under it
                pass
            kill_everything_with(session)
        redis.stop()
        if os.environ.get("HEAD_RESTART_KEEP"):
            print("kept", root)
        else:
            shutil.rmtree(root, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--compare", default="ray")
    ap.add_argument("--json")
    ap.add_argument("--down", type=float, default=DOWN_S, help="seconds the head stays down (default 2)")
    args = ap.parse_args()
    globals()["DOWN_S"] = args.down
    results = {"quanta_sqlite": [], "quanta_redis": [], "ray_redis": []}
    for _ in range(args.repeat):
        results["quanta_sqlite"].append(quanta_sample("sqlite"))
        results["quanta_redis"].append(quanta_sample("redis"))
        if "ray" in args.compare:
            results["ray_redis"].append(ray_sample())
    med = {name: {k: statistics.median(s[k] for s in samples) for k in samples[0]}
           for name, samples in results.items() if samples}
    ratios = {}
    if "ray_redis" in med:
        for name in ("quanta_sqlite", "quanta_redis"):
            for k in ("kv_s", "actor_s"):
                ratios[f"{name}.direct_{k}"] = med["ray_redis"][k] / med[name]["direct_" + k]
    print(f"{'backend':16} " + " ".join(f"{k:>16}" for k in ("kv_s", "actor_s", "direct_kv_s", "direct_actor_s",
                                                              "cli_s")))
    for name, m in med.items():
        print(f"{name:16} " + " ".join(f"{m[k]:16.3f}" if k in m else f"{'-':>16}"
                                       for k in ("kv_s", "actor_s", "direct_kv_s", "direct_actor_s", "cli_s")))
    for k, v in ratios.items():
        print(f"Ray / Quanta {k}: {v:.2f}x")
    out = args.json or os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                    f"head_restart-{time.strftime('%Y-%m-%d')}.json")
    with open(out, "w") as f:
        json.dump({"samples": results, "medians": med, "ratios_ray_over_quanta": ratios,
                   "load": os.getloadavg(), "down_s": DOWN_S, "note": "seconds from the control process's spawn to the first "
                   "successful call; Ray's gcs_server and Quanta's quanta_control both respawned directly with "
                   "their own command line (direct_*); Quanta's kv_s/actor_s are from the start of the "
                   "`quanta start --head --storage` re-run"}, f, indent=1)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
