"""The `quanta` command line.

    quanta start --head [--num-cpus N] [--resources '{"GPU": 1}']   start a cluster that outlives drivers
    quanta stop                                                     stop clusters started with `start`
    quanta status                                                   nodes and resources of the running cluster
    quanta memory                                                   object store usage, per object
    quanta microbenchmark [...]                                     the benchmark suite (python -m quanta.bench)
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
import time


def _root() -> str:
    return os.path.join(tempfile.gettempdir(), "quanta")


def cmd_start(args) -> int:
    from quanta._private import services

    if not args.head:
        print("quanta start: only --head is supported (multi-node joining is on the roadmap)", file=sys.stderr)
        return 2
    resources = json.loads(args.resources) if args.resources else {}
    if not isinstance(resources, dict):
        print("quanta start: --resources must be a JSON object, e.g. '{\"GPU\": 1}'", file=sys.stderr)
        return 2
    num_cpus = args.num_cpus if args.num_cpus is not None else (os.cpu_count() or 1)
    session_dir = services.make_session_dir()
    store = {"object_store_memory": args.object_store_memory or services.default_object_store_memory(),
             "spill_dir": args.object_spilling_directory}
    cluster = services.LocalCluster(session_dir, num_cpus, resources, tied_to_driver=False, store=store)
    with open(os.path.join(session_dir, "pids"), "w") as f:
        f.write("\n".join(str(p) for p in cluster.pids()))
    latest = os.path.join(_root(), "cluster_latest")
    tmp = latest + f".{os.getpid()}"
    os.symlink(session_dir, tmp)
    os.replace(tmp, latest)
    print(f"Started a Quanta cluster at {session_dir}\n"
          f"Connect with quanta.init(address='auto') or quanta.init(address='{session_dir}').\n"
          f"Stop it with `quanta stop`.")
    return 0


def _started_sessions():
    root = _root()
    if not os.path.isdir(root):
        return []
    out = []
    for name in sorted(os.listdir(root)):
        pids = os.path.join(root, name, "pids")
        if name.startswith("session_") and not os.path.islink(os.path.join(root, name)) and os.path.exists(pids):
            out.append(os.path.join(root, name))
    return out


def cmd_stop(args) -> int:
    stopped = 0
    for session_dir in _started_sessions():
        pids_file = os.path.join(session_dir, "pids")
        with open(pids_file) as f:
            pids = [int(p) for p in f.read().split()]
        for pid in pids:
            try:
                os.kill(pid, signal.SIGTERM)  # the node kills its workers on the way out
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 3
        for pid in pids:
            while time.monotonic() < deadline and _alive(pid):
                time.sleep(0.05)
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
        os.remove(pids_file)
        stopped += 1
    latest = os.path.join(_root(), "cluster_latest")
    if os.path.lexists(latest):
        os.remove(latest)
    print(f"Stopped {stopped} Quanta cluster(s).")
    return 0


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def cmd_status(args) -> int:
    import quanta

    quanta.init(address=args.address)
    for node in quanta.nodes():
        state = "alive" if node["Alive"] else "dead"
        print(f"node {node['NodeID']} ({state}): {node['Resources']}")
    print("available:", quanta.available_resources())
    quanta.shutdown()
    return 0


def cmd_memory(args) -> int:
    import quanta

    quanta.init(address=args.address)
    s = quanta.memory_summary()
    mib = 1 << 20
    print(f"object store: {s['used'] / mib:.1f} MiB used of {s['capacity'] / mib:.1f} MiB; "
          f"{s['num_in_memory']} objects in shared memory, {s['num_spilled']} spilled "
          f"({s['spilled_bytes'] / mib:.1f} MiB), {s['num_inline']} inline ({s['inline_bytes'] / 1024:.1f} KiB)")
    print(f"spilled since start: {s['total_spilled']}, restored: {s['total_restored']}")
    print(f"{'object id':34} {'size':>12} {'where':14} {'refs':>5} {'readers':>7}")
    for o in sorted(s["objects"], key=lambda o: -o["size"])[: args.limit]:
        print(f"{o['object_id']:34} {o['size']:>12} {o['where']:14} {o['references']:>5} {o['readers']:>7}")
    quanta.shutdown()
    return 0


def cmd_microbenchmark(argv) -> int:
    from quanta.bench import main as bench_main

    return bench_main(argv)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "microbenchmark":
        return cmd_microbenchmark(argv[1:])
    parser = argparse.ArgumentParser(prog="quanta", description="Quanta cluster tools")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("start", help="start a cluster that outlives drivers")
    p.add_argument("--head", action="store_true")
    p.add_argument("--num-cpus", type=float)
    p.add_argument("--resources", help="JSON object of custom resources")
    p.add_argument("--object-store-memory", type=int, help="bytes of shared memory for objects")
    p.add_argument("--object-spilling-directory", help="where objects spill when the store is full")
    p.set_defaults(func=cmd_start)
    p = sub.add_parser("stop", help="stop clusters started with `quanta start`")
    p.set_defaults(func=cmd_stop)
    p = sub.add_parser("status", help="show the nodes of a running cluster")
    p.add_argument("--address", default="auto")
    p.set_defaults(func=cmd_status)
    p = sub.add_parser("memory", help="show the object store of a running cluster")
    p.add_argument("--address", default="auto")
    p.add_argument("--limit", type=int, default=50)
    p.set_defaults(func=cmd_memory)
    sub.add_parser("microbenchmark", help="run the benchmark suite (see --help there)")
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
