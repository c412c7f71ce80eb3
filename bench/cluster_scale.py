"""Cluster scale figures: many node daemons joining one head on this machine.

    python bench/cluster_scale.py [--nodes 50] [--compare ray] [--ray-nodes 8] [--json out.json]

Quanta (each figure measured in a fresh child process, with a private runtime root and token):
  * join_all_s: 50 node daemons (num_cpus=0, no prestarted workers) started at once against a
    head, until the control service lists every one alive (as 50 hosts booting together);
  * join_one_s: the median time of one more node started alone (spawn -> joined -> ready);
  * idle node PSS: /proc/<pid>/smaps_rollup of each idle quanta_node, averaged (also RSS), and
    the control service's with 50 nodes;
  * status: wall time of `quanta status --format json` with 50 nodes (median of several), from
    the head's host (it connects a driver through the local node) and from a host with no node
    (it asks the head over TCP); also quanta._core.query_cluster() alone, in process, and
    `python -c "import quanta.scripts"` (interpreter + import, the floor of any CLI call);
  * handshake: median of connect + full handshake (a Python client, hmac) + close, minus a
    plain connect + close to the same port; also query_cluster round trips minus plain connects.
Ray (--compare ray), where it has the figure: ray.cluster_utils.Cluster.add_node(num_cpus=0)
time per node join (fewer nodes: --ray-nodes, default 8, since every Ray node is a raylet plus
agent processes), idle raylet PSS (alone, and with the processes it started), `ray status`.

Prints one table with ratios (Ray / Quanta, >1 means Quanta is smaller or faster) and writes
JSON (--json, default bench/cluster_scale-<date>.json).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import bench_common

HERE = os.path.dirname(os.path.abspath(__file__))
TARGETS = {"join_all_s": 10.0, "idle_node_pss_mib": 20.0, "status_s": 0.1, "handshake_ms": 1.0}


def pss_rss_kib(pid):
    pss = rss = None
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    pss = int(line.split()[1])
                elif line.startswith("Rss:"):
                    rss = int(line.split()[1])
    except OSError:
        pass
    return pss, rss


descendants = bench_common.descendants


def comm(pid):
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return "?"


def timed_runs(argv, env, runs):
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        r = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
        times.append(time.perf_counter() - t0)
        if r.returncode != 0:
            raise RuntimeError(f"{argv} failed: {r.stderr[-2000:]}")
    return times, r.stdout


def med(xs):
    return statistics.median(xs) if xs else None


# ----------------------------------------------------------------------------- Quanta


def quanta_child(args):
    import hashlib
    import hmac
    import secrets

    root = tempfile.mkdtemp(prefix="qscale-")  # short: Unix socket paths are limited to 107 bytes
    token = secrets.token_hex(32)
    os.environ.update(QUANTA_RUNTIME_DIR=os.path.join(root, "rt"), QUANTA_AUTH_TOKEN=token,
                      QUANTA_KEEP_SESSIONS="1000")
    from quanta import _core
    from quanta._private import runtime_dir, services

    out = {"nodes": args.nodes}
    sessions = []
    store = {"object_store_memory": 128 << 20}

    def start(head=False, address=None):
        s = services.Session(runtime_dir.new_session())
        s.start(head=head, tied_to_driver=True, resources={"CPU": 0}, store=store, control_address=address,
                host="127.0.0.1", port=0 if head else None, token=token, prestart=0)
        s.write_record(head=head, started_by="cluster_utils")
        return s

    def alive():
        return sum(1 for n in _core.query_cluster(address, 5000) if n["alive"])

    try:
        t0 = time.perf_counter()
        head = start(head=True)
        out["head_start_s"] = time.perf_counter() - t0
        sessions.append(head)
        address = head.control_address

        # All at once, as many hosts booting together.
        joined = [None] * args.nodes
        errors = []

        def one(i):
            try:
                joined[i] = start(address=address)
            except Exception as e:  # noqa: BLE001
                errors.append(repr(e))

        threads = [threading.Thread(target=one, args=(i,)) for i in range(args.nodes)]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        while alive() < args.nodes + 1:
            if errors:
                raise RuntimeError(errors[0])
            if time.perf_counter() - t0 > 120:
                raise RuntimeError(f"only {alive() - 1} of {args.nodes} nodes joined in 120 s")
            time.sleep(0.01)
        out["join_all_s"] = time.perf_counter() - t0
        for t in threads:
            t.join()
        sessions += [s for s in joined if s]

        # One more at a time.
        one_times = []
        for _ in range(5):
            t0 = time.perf_counter()
            sessions.append(start(address=address))
            one_times.append(time.perf_counter() - t0)
        out["join_one_s"] = med(one_times)
        out["join_one_samples"] = one_times
        # Back to the requested count for the rest (stop the extra five).
        for s in sessions[-5:]:
            s.stop()
        del sessions[-5:]
        while alive() != args.nodes + 1:
            time.sleep(0.05)

        time.sleep(args.settle)
        node_pids = [p.pid for s in sessions[1:] for role, p in s._procs if role == "node"]
        figures = [pss_rss_kib(p) for p in node_pids]
        pss = [f[0] for f in figures if f[0] is not None]
        rss = [f[1] for f in figures if f[1] is not None]
        out["idle_node_pss_mib"] = statistics.mean(pss) / 1024
        out["idle_node_pss_mib_min_max"] = [min(pss) / 1024, max(pss) / 1024]
        out["idle_node_rss_mib"] = statistics.mean(rss) / 1024
        out["idle_node_descendants"] = sum(len(descendants(p)) for p in node_pids)
        roles = dict((role, p.pid) for role, p in head._procs)
        out["control_pss_mib"], out["control_rss_mib"] = [x / 1024 for x in pss_rss_kib(roles["control"])]
        out["head_node_pss_mib"] = pss_rss_kib(roles["node"])[0] / 1024

        env = dict(os.environ)
        status_head, text = timed_runs([sys.executable, "-m", "quanta.scripts", "status", "--address", address,
                                        "--format", "json"], env, args.runs)
        assert len(json.loads(text)["nodes"]) == args.nodes + 1 + 5  # with the five stopped ones (dead)
        other = dict(env, QUANTA_RUNTIME_DIR=os.path.join(root, "other-host"))
        status_remote, text = timed_runs([sys.executable, "-m", "quanta.scripts", "status", "--address", address,
                                          "--format", "json"], other, args.runs)
        assert sum(n["alive"] for n in json.loads(text)["nodes"]) == args.nodes + 1
        table, _ = timed_runs([sys.executable, "-m", "quanta.scripts", "status", "--address", address], other,
                              args.runs)
        imports, _ = timed_runs([sys.executable, "-c", "import quanta.scripts, quanta._core"], env, args.runs)
        out["status_s"] = med(status_head)
        out["status_samples"] = status_head
        out["status_remote_s"] = med(status_remote)
        out["status_table_remote_s"] = med(table)
        out["python_import_floor_s"] = med(imports)
        qc = []
        for _ in range(50):
            t0 = time.perf_counter()
            _core.query_cluster(address, 5000)
            qc.append(time.perf_counter() - t0)
        out["query_cluster_s"] = med(qc)

        # Handshake cost: a correct Python client (hmac) against the head's control port.
        host, port = address.rsplit(":", 1)
        port = int(port)

        def plain():
            s = socket.create_connection((host, port))
            s.close()

        def recv_exact(s, n):
            data = b""
            while len(data) < n:
                chunk = s.recv(n - len(data))
                if not chunk:
                    raise ConnectionError("closed")
                data += chunk
            return data

        def handshake():
            s = socket.create_connection((host, port))
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            nonce_c = os.urandom(32)
            from quanta._core import PROTOCOL_VERSION  # the engine's, not a copy that goes stale

            s.sendall(b"QNTA" + PROTOCOL_VERSION.to_bytes(2, "little") * 2 + b"\x04\x00\x00\x00" + nonce_c)
            ch = recv_exact(s, 76)
            nonce_s = ch[12:44]
            want = hmac.new(token.encode(), b"quanta server\x04" + nonce_c + nonce_s, hashlib.sha256).digest()
            assert hmac.compare_digest(ch[44:], want)
            s.sendall(hmac.new(token.encode(), b"quanta client\x04" + nonce_s + nonce_c, hashlib.sha256).digest())
            assert recv_exact(s, 4)[0] == 1
            s.close()

        def sample(fn, n):
            xs = []
            for _ in range(n):
                t0 = time.perf_counter()
                fn()
                xs.append(time.perf_counter() - t0)
            return xs

        for fn in (plain, handshake):
            sample(fn, 20)  # warm up
        plain_s, hs_s = [], []
        for _ in range(10):  # interleaved, so drift touches both alike
            plain_s += sample(plain, 30)
            hs_s += sample(handshake, 30)
        out["tcp_connect_ms"] = med(plain_s) * 1e3
        out["connect_handshake_ms"] = med(hs_s) * 1e3
        out["handshake_ms"] = out["connect_handshake_ms"] - out["tcp_connect_ms"]
        out["query_cluster_minus_connect_ms"] = out["query_cluster_s"] * 1e3 - out["tcp_connect_ms"]
        nonces = os.urandom(64)
        t0 = time.perf_counter()
        for _ in range(10000):
            hmac.new(token.encode(), b"quanta client\x04" + nonces, hashlib.sha256).digest()
        out["python_hmac_us"] = (time.perf_counter() - t0) / 10000 * 1e6
    finally:
        for s in reversed(sessions):
            s.stop()
        shutil.rmtree(root, ignore_errors=True)
    return out


# ----------------------------------------------------------------------------- Ray


def ray_child(args):
    import ray
    from ray import ray_constants
    from ray.cluster_utils import Cluster

    out = {"nodes": args.ray_nodes, "version": ray.__version__}
    t0 = time.perf_counter()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
    out["head_start_s"] = time.perf_counter() - t0
    try:
        joins = []
        for _ in range(args.ray_nodes):
            t0 = time.perf_counter()
            cluster.add_node(num_cpus=0)
            joins.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        cluster.wait_for_nodes()
        out["wait_for_nodes_s"] = time.perf_counter() - t0
        out["join_one_s"] = med(joins)
        out["join_samples"] = joins
        out["join_all_sequential_s"] = sum(joins)
        time.sleep(args.settle)
        raylet_pss, tree_pss, tree_names = [], [], {}
        for node in cluster.worker_nodes:
            (info,) = node.all_processes[ray_constants.PROCESS_TYPE_RAYLET]
            pid = info.process.pid
            raylet_pss.append(pss_rss_kib(pid)[0])
            kids = descendants(pid)
            tree_pss.append(sum(pss_rss_kib(p)[0] or 0 for p in [pid] + kids))
            for k in kids:
                tree_names[comm(k)] = tree_names.get(comm(k), 0) + 1
        out["idle_node_pss_mib"] = statistics.mean(raylet_pss) / 1024
        out["idle_node_tree_pss_mib"] = statistics.mean(tree_pss) / 1024
        out["node_children"] = {k: v / len(cluster.worker_nodes) for k, v in tree_names.items()}
        env = dict(os.environ)
        status, _ = timed_runs([shutil.which("ray") or "ray", "status", "--address", cluster.address], env, args.runs)
        out["status_s"] = med(status)
        out["status_samples"] = status
    finally:
        cluster.shutdown()
    return out


# ----------------------------------------------------------------------------- report


ROWS = [
    # key, label, unit, quanta key, ray key, target
    ("join_all_s", "{n} nodes join at once (until all alive)", "s", "join_all_s", None, "join_all_s"),
    ("join_one_s", "one node join (start -> ready)", "s", "join_one_s", "join_one_s", None),
    ("idle_node_pss_mib", "idle node daemon PSS (Ray: raylet)", "MiB", "idle_node_pss_mib", "idle_node_pss_mib",
     "idle_node_pss_mib"),
    ("idle_node_tree_pss_mib", "idle node incl. processes it started", "MiB", "idle_node_pss_mib",
     "idle_node_tree_pss_mib", None),
    ("idle_node_rss_mib", "idle node daemon RSS", "MiB", "idle_node_rss_mib", None, None),
    ("control_pss_mib", "control service PSS with {n} nodes", "MiB", "control_pss_mib", None, None),
    ("status_s", "status CLI (json) with {n} nodes, head host", "s", "status_s", "status_s", "status_s"),
    ("status_remote_s", "status CLI (json), host with no node", "s", "status_remote_s", None, None),
    ("python_import_floor_s", "  python -c 'import quanta.scripts' floor", "s", "python_import_floor_s", None, None),
    ("query_cluster_s", "query_cluster() in process ({n} nodes)", "s", "query_cluster_s", None, None),
    ("tcp_connect_ms", "plain TCP connect + close", "ms", "tcp_connect_ms", None, None),
    ("handshake_ms", "handshake (connect+hs - connect)", "ms", "handshake_ms", None, "handshake_ms"),
]


def fmt(v, unit):
    if v is None:
        return "-"
    if unit == "s":
        v *= 1000
        unit = "ms"
    if unit == "ms":
        if v < 1:
            return f"{v * 1000:.0f} us"
        return f"{v:.0f} ms" if v < 1000 else f"{v / 1000:.2f} s"
    return f"{v:.1f} {unit}"


def report(q, r):
    n = q.get("nodes")
    lines = [f"{'figure':46} {'quanta':>11} {'ray':>11} {'ray/quanta':>10}  target"]
    for _, label, unit, qk, rk, tk in ROWS:
        qv = q.get(qk)
        rv = r.get(rk) if (r and rk) else None
        ratio = f"{rv / qv:.1f}x" if (qv and rv) else ""
        target = ""
        if tk:
            limit = TARGETS[tk]
            target = f"{'ok' if qv is not None and qv < limit else 'MISSED'} (< {fmt(limit, unit)})"
        lines.append(f"{label.format(n=n):46} {fmt(qv, unit):>11} {fmt(rv, unit):>11} {ratio:>10}  {target}")
    if r:
        lines.append(f"Ray {r.get('version')}: {r.get('nodes')} nodes added one by one with ray.cluster_utils.Cluster "
                     f"(num_cpus=0), {r.get('join_all_sequential_s', 0):.1f} s in all; processes under each raylet: "
                     f"{r.get('node_children')}")
    return "\n".join(lines)


def run_child(which, args):
    argv = [sys.executable, os.path.abspath(__file__), "--_child", which, "--nodes", str(args.nodes),
            "--ray-nodes", str(args.ray_nodes), "--runs", str(args.runs), "--settle", str(args.settle)]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=1800)
    if r.returncode != 0:
        raise RuntimeError(f"the {which} child failed:\n{r.stderr[-4000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--nodes", type=int, default=50)
    p.add_argument("--ray-nodes", type=int, default=8)
    p.add_argument("--compare", default="", help="ray")
    p.add_argument("--runs", type=int, default=7, help="runs of each CLI timing (median reported)")
    p.add_argument("--settle", type=float, default=3.0, help="seconds idle before memory is read")
    p.add_argument("--json", default=None)
    p.add_argument("--_child", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args._child:
        result = quanta_child(args) if args._child == "quanta" else ray_child(args)
        print(json.dumps(result))
        return 0
    load = os.getloadavg()
    print(f"cluster scale: {args.nodes} Quanta nodes on {os.cpu_count()} cores (load average {load[0]:.1f})",
          flush=True)
    q = run_child("quanta", args)
    r = run_child("ray", args) if "ray" in args.compare.split(",") else None
    print(report(q, r))
    path = args.json or os.path.join(HERE, f"cluster_scale-{time.strftime('%Y-%m-%d')}.json")
    with open(path, "w") as f:
        json.dump({"quanta": q, "ray": r, "targets": TARGETS, "cpus": os.cpu_count(), "load_average": load,
                   "argv": sys.argv[1:]}, f, indent=1)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
