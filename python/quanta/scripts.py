"""The `quanta` command line (flags as Ray's `ray start`, `ray stop`, `ray status`).

    quanta start --head [--port 6380] [--node-ip-address IP] [--num-cpus N] [--block] ...
    quanta start --address HEAD_IP:PORT [--node-ip-address IP] [--resources JSON] [--block] ...
    quanta stop [--force]            stop what `quanta start` started on this host
    quanta status [--address A]      every node: address, resources, usage, store, alive/dead
    quanta memory [--address A]      object store usage, per object
    quanta get-auth-token [--generate]
    quanta list nodes|actors|jobs|placement-groups|objects|workers [--filter K=V] [--detail] [--format F]
    quanta get nodes|actors|jobs|placement-groups|objects|workers ID
    quanta summary actors|objects
    quanta logs [FILE] [--node-id ID] [--actor-id ID] [--task-id ID] [--pid PID] [--tail N] [--follow]
    quanta job submit|status|logs|stop|list|delete ...   (the jobs API of a head's dashboard)
    quanta microbenchmark [...]      the benchmark suite (python -m quanta.bench)
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time


def _fail(message: str, code: int = 2) -> int:
    print(f"quanta: {message}", file=sys.stderr)
    return code


def _json_object(text, flag):
    if not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError as e:
        raise ValueError(f"{flag} must be a JSON object, e.g. '{{\"gpu_box\": 1}}': {e}") from None
    if not isinstance(value, dict):
        raise ValueError(f"{flag} must be a JSON object, e.g. '{{\"gpu_box\": 1}}'")
    return value


def _resources_from(args) -> dict:
    resources = {}
    for name, amount in _json_object(args.resources, "--resources").items():
        if name in ("CPU", "GPU"):
            raise ValueError(f"use --num-cpus/--num-gpus, not --resources '{{\"{name}\": ...}}'")
        if isinstance(amount, bool) or not isinstance(amount, (int, float)) or amount < 0:
            raise ValueError(f"--resources: {name!r} must be a number >= 0, got {amount!r}")
        resources[name] = amount
    cpus = args.num_cpus if args.num_cpus is not None else (os.cpu_count() or 1)
    if cpus < 0:
        raise ValueError("--num-cpus must be >= 0")
    out = {"CPU": cpus, **resources}
    if args.num_gpus is not None:  # else detected (CUDA_VISIBLE_DEVICES, nvidia-smi), as in Ray
        if args.num_gpus < 0:
            raise ValueError("--num-gpus must be >= 0")
        out["GPU"] = args.num_gpus
    if getattr(args, "memory", None) is not None:
        if args.memory < 0:
            raise ValueError("--memory must be >= 0 bytes")
        out["memory"] = args.memory
    return out


def _storage_from(args):
    """Where a head persists its tables: --storage, or Ray's RAY_REDIS_ADDRESS (QUANTA_REDIS_ADDRESS)
    as redis://HOST:PORT with RAY_external_storage_namespace as its key prefix. None: in memory."""
    if args.redis_address:
        raise ValueError("--redis-address is not a flag of Ray's `ray start` any more (it named an old-style "
                         "cluster's Redis); persist the head's tables with --storage redis://HOST:PORT (or "
                         "RAY_REDIS_ADDRESS=HOST:PORT, as Ray's GCS fault tolerance), or --storage FILE for SQLite")
    storage = args.storage
    env_name = next((n for n in ("QUANTA_REDIS_ADDRESS", "RAY_REDIS_ADDRESS") if os.environ.get(n)), None)
    if args.head and env_name:
        addr = os.environ[env_name].strip()
        if addr.startswith("rediss://") or "," in addr:
            raise ValueError(f"{env_name}={addr}: only one plain redis://HOST:PORT (no TLS, no cluster) is supported")
        url = addr if addr.startswith("redis://") else "redis://" + addr
        prefix = os.environ.get("QUANTA_EXTERNAL_STORAGE_NAMESPACE") or os.environ.get("RAY_external_storage_namespace")
        if prefix and "/" not in url[len("redis://"):]:
            url += "/" + prefix
        if storage and storage != url:
            raise ValueError(f"--storage {storage} and {env_name}={addr} disagree: pass one")
        storage = url
    if storage and not args.head:
        raise ValueError("--storage (and RAY_REDIS_ADDRESS) go with --head: the head persists the cluster's tables")
    if args.redis_username not in (None, "", "default"):
        raise ValueError("--redis-username: only Redis's default user is supported; pass --redis-password alone")
    if args.redis_password and not (storage or "").startswith("redis://"):
        raise ValueError("--redis-password goes with --storage redis://HOST:PORT (or RAY_REDIS_ADDRESS)")
    if storage and not storage.startswith("redis://"):
        if "://" in storage:
            raise ValueError(f"--storage {storage}: use a file path (SQLite) or redis://HOST:PORT[/PREFIX]")
        storage = os.path.abspath(os.path.expanduser(storage))
        if not os.path.isdir(os.path.dirname(storage)):
            raise ValueError(f"--storage {storage}: its directory does not exist")
    return storage


def _control_flags(args) -> list:
    flags = []
    if (args.rejoin_grace_ms is not None or args.node_reconnect_timeout_ms is not None) and not args.storage_:
        raise ValueError("--rejoin-grace-ms and --node-reconnect-timeout-ms go with --storage: without it a "
                         "restarted head has no tables to take its nodes back with")
    if (args.rejoin_grace_ms or 0) < 0 or (args.node_reconnect_timeout_ms is not None and
                                           not 1 <= args.node_reconnect_timeout_ms <= 86400000):
        raise ValueError("--rejoin-grace-ms must be >= 0 and --node-reconnect-timeout-ms 1..86400000")
    if args.rejoin_grace_ms is not None:
        flags += ["--rejoin-grace-ms", str(args.rejoin_grace_ms)]
    if args.node_reconnect_timeout_ms is not None:
        flags += ["--node-reconnect-timeout-ms", str(args.node_reconnect_timeout_ms)]
    return flags


def _restart_head(args, storage, token):
    """With --storage: if this host runs the head of that storage and only its control service
    died, start that again (the same command restarts a failed head). None: no such head."""
    from quanta._private import runtime_dir, services

    for record in services.running_sessions(base=runtime_dir.root(args.temp_dir)):
        if not record.get("head") or record.get("storage") != storage or not record.get("control_args"):
            continue
        control = [e for e in record.get("processes") or [] if e.get("role") == "control"]
        if control and services.alive(control[0], record["session_dir"]):
            return _fail(f"the head of --storage {storage} runs already on this host (session "
                         f"{record['session_dir']}); stop it with `quanta stop` first", 1)
        env = dict(os.environ, QUANTA_AUTH_TOKEN=token)
        if args.redis_password:
            env["QUANTA_REDIS_PASSWORD"] = args.redis_password
        try:
            pid = services.restart_control(record, env)
        except services.JoinError as e:
            return _fail(str(e), 1)
        print(f"Restarted the control service of the head at {record['control_address']} (pid {pid}) from "
              f"{storage}.\n  Its nodes rejoin under their ids; drivers' waiting requests go on.\n"
              f"  session: {record['session_dir']}")
        return 0
    return None


def cmd_start(args) -> int:
    from quanta._private import auth_token, runtime_dir, services

    if args.head == bool(args.address):
        return _fail("pass either --head (start a cluster) or --address HEAD_IP:PORT (join one)")
    from quanta import _core

    try:
        _core.check_client_environment()  # the node's workers inherit this environment
    except ValueError as e:
        return _fail(str(e))
    try:
        storage = args.storage_ = _storage_from(args)
        control_flags = _control_flags(args)
        resources = _resources_from(args)
        labels = {str(k): str(v) for k, v in _json_object(args.labels, "--labels").items()}
    except ValueError as e:
        return _fail(str(e))
    if args.head:
        try:
            token, source, generated = auth_token.load_or_generate()
        except (auth_token.TokenError, OSError) as e:
            return _fail(str(e))
    else:
        try:
            token, source = auth_token.load()
        except auth_token.TokenError as e:
            return _fail(f"cannot join {args.address}: {e}")
        generated = False
    if storage:
        restarted = _restart_head(args, storage, token)
        if restarted is not None:
            return restarted
    store = {"object_store_memory": args.object_store_memory or services.default_object_store_memory(),
             "spill_dir": args.object_spilling_directory}
    base = runtime_dir.root(args.temp_dir)
    session_dir = runtime_dir.new_session(args.temp_dir)
    host = args.node_ip_address or "127.0.0.1"
    dashboard = None
    if args.head:
        from quanta.dashboard import launch

        try:
            dashboard = launch.options(args.include_dashboard, args.dashboard_host or host, args.dashboard_port,
                                       token, session_dir)
        except ValueError as e:
            return _fail(str(e))
    elif args.include_dashboard or args.dashboard_port is not None or args.dashboard_host:
        return _fail("the dashboard runs on the head: --include-dashboard/--dashboard-host/--dashboard-port "
                     "go with --head")
    try:
        node = services.Session(session_dir).start(
            head=args.head, tied_to_driver=False, resources=resources, store=store,
            control_address=args.address, host=host, port=args.port if args.head else None,
            labels=labels, token=token, heartbeat_timeout_ms=args.heartbeat_timeout_ms, dashboard=dashboard,
            storage=storage, control_flags=control_flags,
            control_env={"QUANTA_REDIS_PASSWORD": args.redis_password} if args.redis_password else None)
    except services.JoinError as e:
        return _fail(str(e), 1)
    node.write_record(head=args.head, started_by="quanta start")
    runtime_dir.point_link(base, "cluster_latest", session_dir)
    address = node.control_address
    if args.head:
        note = " (generated now)" if generated else ""
        kept = (f"  tables:        persisted to {storage} (run this command again to restart a failed head)\n"
                if storage else "  tables:        in memory (pass --storage FILE|redis://HOST:PORT to survive a head restart)\n")
        print(f"Started the head of a Quanta cluster at {address} (node {node.node_index}).\n"
              f"{kept}"
              f"  cluster token: {source}{note}\n"
              f"  session:       {session_dir}\n"
              f"Join another host (with the same token in ~/.quanta/auth_token or QUANTA_AUTH_TOKEN):\n"
              f"  quanta start --address {address} --node-ip-address <that host's IP>\n"
              f"Connect a driver: quanta.init(address='{address}') (or address='auto' on this host).")
        if node.dashboard_url:
            print(f"Dashboard and jobs API: {node.dashboard_url} (log in with the cluster token)\n"
                  f"  quanta job submit --address {node.dashboard_url} -- python script.py")
        if host == "127.0.0.1":
            print("Listening on 127.0.0.1 only: pass --node-ip-address to let other hosts join.")
    else:
        print(f"Joined the Quanta cluster at {address} as node {node.node_index} ({host}).\n"
              f"  session: {session_dir}")
    print("Stop with `quanta stop`.")
    sys.stdout.flush()
    if not args.block:
        return 0
    stopping = []

    def stop(signum, frame):
        stopping.append(signum)
        node.stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    code = node.wait()
    if not stopping:
        node.stop()
        return _fail(f"a Quanta daemon exited (status {code}); see {session_dir}/logs", 1)
    return 0


def cmd_stop(args) -> int:
    from quanta._private import runtime_dir, services

    stopped = skipped = 0
    for path in runtime_dir.sessions(runtime_dir.root(args.temp_dir)):
        record = runtime_dir.read_record(path)
        if record is None or record.get("session_dir") != path or record.get("started_by") != "quanta start":
            continue
        entries = record.get("processes") or []
        live = [e for e in entries if services.alive(e, path)]
        if not live:
            continue
        sig = signal.SIGKILL if args.force else signal.SIGTERM  # the node kills its workers on the way out
        for e in live:
            if not services.signal_daemon(e, path, sig):
                skipped += 1
        deadline = time.monotonic() + args.grace_period
        while time.monotonic() < deadline and any(services.alive(e, path) for e in live):
            time.sleep(0.05)
        for e in live:
            if services.alive(e, path):
                services.signal_daemon(e, path, signal.SIGKILL)
        stopped += 1
    print(f"Stopped {stopped} Quanta session(s) started with `quanta start` on this host.")
    if skipped:
        print(f"({skipped} recorded process(es) were left alone: not proven to be this session's daemons)")
    return 0


def _cluster_nodes(address):
    """The node table: through this host's node when it runs one, else from the control service."""
    import quanta
    from quanta import _core
    from quanta._private import api, services

    if address in (None, "auto") or ":" not in address or services.find_local_node(address):
        quanta.init(address=address or "auto", log_to_driver=False)
        try:
            return api._nodes_raw(), quanta.memory_summary(stats_only=True)
        finally:
            quanta.shutdown()
    return _core.query_cluster(address, 5000), None


_BYTE_RESOURCES = ("memory", "object_store_memory")


def _fmt_amount(name, fixed_point):
    value = fixed_point / 10000
    if name in _BYTE_RESOURCES:  # bytes, shown as Ray's status does
        return f"{value / (1 << 30):.2f}GiB"
    return f"{value:g}"


def _fmt_resources(total, available, alive=True):
    if not alive:  # its resources left the cluster with it; nothing of them is in use
        return "had " + (", ".join(f"{_fmt_amount(name, amount)} {name}" for name, amount in total) or "none")
    parts = []
    for name, amount in total:
        free = dict(available).get(name, 0)
        parts.append(f"{_fmt_amount(name, amount - free)}/{_fmt_amount(name, amount)} {name}")
    return ", ".join(parts) or "none"


def cli_error_text(text: str) -> str:
    """What a CLI command says for an error: "no cluster" in the CLI's words (the API's message
    talks about quanta.init)."""
    if "found no running cluster" in text or "no Quanta cluster" in text:
        return ("no cluster running on this host. Start one with `quanta start --head`, or pass "
                "--address HEAD_IP:PORT")
    return text


def cmd_status(args) -> int:
    try:
        nodes, store = _cluster_nodes(args.address)
    except (ConnectionError, ValueError, TimeoutError) as e:
        return _fail(cli_error_text(str(e)), 1)
    alive = [n for n in nodes if n["alive"]]
    if args.format == "json":
        print(json.dumps({"nodes": nodes, "object_store": store}, indent=1, default=str))
        return 0
    print(f"{len(alive)} node(s) alive, {len(nodes) - len(alive)} dead")
    print(f"{'index':>5}  {'node id':32}  {'address':21}  {'state':5}  resources used/total")
    for n in nodes:
        where = f"{n['address']}:{n['port']}" if n["address"] else "local"
        state = "alive" if n["alive"] else "dead"
        kind = " (head)" if n["is_head"] else " (driver)" if n["is_driver_node"] else ""
        print(f"{n['node_index']:>5}  {n['node_id']:32}  {where:21}  {state:5}  "
              f"{_fmt_resources(n['total'], n['available'], n['alive'])}{kind}")
        if not n["alive"] and n["death_reason"]:
            print(f"{'':>7}dead: {n['death_reason']}")
    if store:
        mib = 1 << 20
        print(f"object store of this host's node: {store['used'] / mib:.1f} / {store['capacity'] / mib:.1f} MiB used, "
              f"{store['num_spilled']} objects spilled")
    return 0


def cmd_memory(args) -> int:
    import quanta

    try:
        quanta.init(address=args.address, log_to_driver=False)
    except (ConnectionError, ValueError) as e:
        return _fail(cli_error_text(str(e)), 1)
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


def cmd_get_auth_token(args) -> int:
    from quanta._private import auth_token

    try:
        if args.generate:
            token, source, generated = auth_token.load_or_generate()
        else:
            token, source = auth_token.load()
    except (auth_token.TokenError, OSError) as e:
        return _fail(f"{e} (`quanta get-auth-token --generate` makes one)", 1)
    print(token)
    print(f"(from {source})", file=sys.stderr)
    return 0


def cmd_microbenchmark(argv) -> int:
    from quanta.bench import main as bench_main

    return bench_main(argv)


def _bool(text: str) -> bool:
    if text.lower() in ("1", "true", "yes"):
        return True
    if text.lower() in ("0", "false", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "microbenchmark":
        return cmd_microbenchmark(argv[1:])
    parser = argparse.ArgumentParser(prog="quanta", description="Quanta cluster tools")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("start", help="start a head, or join a cluster, on this host")
    p.add_argument("--head", action="store_true", help="start a new cluster: control service and a node")
    p.add_argument("--address", help="HEAD_IP:PORT of the cluster to join")
    p.add_argument("--port", type=int, default=6380, help="the head's TCP port (default 6380)")
    p.add_argument("--node-ip-address", help="the address other hosts reach this one at (default 127.0.0.1)")
    p.add_argument("--num-cpus", type=float)
    p.add_argument("--num-gpus", type=int, help="GPUs of this node (default: CUDA_VISIBLE_DEVICES, else nvidia-smi)")
    p.add_argument("--memory", type=int, help="bytes of the memory resource (default: 70%% of available RAM)")
    p.add_argument("--resources", help='JSON object of custom resources, e.g. \'{"gpu_box": 1}\'')
    p.add_argument("--labels", help='JSON object of node labels, e.g. \'{"zone": "a"}\'')
    p.add_argument("--object-store-memory", type=int, help="bytes of shared memory for objects")
    p.add_argument("--object-spilling-directory", help="where objects spill when the store is full")
    p.add_argument("--temp-dir", help="root for the runtime directory (default: the system temp dir)")
    p.add_argument("--heartbeat-timeout-ms", type=int, help="declare a silent node dead after this (head; default 3000)")
    p.add_argument("--block", action="store_true", help="stay in the foreground until stopped")
    p.add_argument("--disable-usage-stats", action="store_true",
                   help="accepted for Ray's scripts: Quanta collects no usage statistics at all")
    p.add_argument("--storage", help="persist the head's tables to FILE (SQLite) or redis://HOST:PORT[/PREFIX], so "
                   "that a failed head restarts with them (run the same command again); also RAY_REDIS_ADDRESS")
    p.add_argument("--redis-password", help="the password of --storage redis://... (as Ray's, for RAY_REDIS_ADDRESS)")
    p.add_argument("--redis-username", help="Redis's user (only 'default' is supported)")
    p.add_argument("--rejoin-grace-ms", type=int,
                   help="with --storage: how long a restarted head waits for its nodes to rejoin (default 10000)")
    p.add_argument("--node-reconnect-timeout-ms", type=int,
                   help="with --storage: how long nodes wait for a head that went away (default 60000)")
    p.add_argument("--redis-address", help=argparse.SUPPRESS)
    p.add_argument("--include-dashboard", type=_bool, default=None,
                   help="serve the dashboard and jobs API on the head (default: true when aiohttp is installed)")
    p.add_argument("--dashboard-host", help="address the dashboard listens on (default: the head's address)")
    p.add_argument("--dashboard-port", type=int, help="default 8265 (or the next free port); 0: any free port")
    p.set_defaults(func=cmd_start)
    p = sub.add_parser("stop", help="stop what `quanta start` started on this host")
    p.add_argument("--force", action="store_true", help="SIGKILL instead of a clean shutdown")
    p.add_argument("--grace-period", type=float, default=3.0)
    p.add_argument("--temp-dir")
    p.set_defaults(func=cmd_stop)
    p = sub.add_parser("status", help="the nodes of a running cluster")
    p.add_argument("--address", default=None, help="HEAD_IP:PORT, or auto (the cluster started on this host)")
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.set_defaults(func=cmd_status)
    p = sub.add_parser("memory", help="the object store of this host's node")
    p.add_argument("--address", default="auto")
    p.add_argument("--limit", type=int, default=50)
    p.set_defaults(func=cmd_memory)
    p = sub.add_parser("get-auth-token", help="print the cluster token (or make one with --generate)")
    p.add_argument("--generate", action="store_true")
    p.set_defaults(func=cmd_get_auth_token)
    sub.add_parser("microbenchmark", help="run the benchmark suite (see --help there)")
    from quanta.util.state import _cli as state_cli

    state_cli.add_parsers(sub)
    from quanta.job_submission import cli as job_cli

    job_cli.add_parsers(sub)
    args = parser.parse_args(argv)
    from quanta._private.runtime_dir import UnsafePathError

    try:
        return args.func(args)
    except UnsafePathError as e:  # a planted or loose runtime path: say so, without a traceback
        return _fail(str(e), 1)


if __name__ == "__main__":
    sys.exit(main())
