"""`quanta list|get|summary|logs`: the state API on the command line (Ray's `ray list ...`).

    quanta list actors [--filter "state=ALIVE"] [--limit 100] [--detail] [--format table|json|yaml]
    quanta get actors ACTOR_ID
    quanta summary actors|objects|tasks
    quanta timeline [-o FILE]
    quanta logs [--node-id ID | --node-ip IP] [FILE] | --actor-id ID | --pid PID [--tail N] [--follow]
"""

from __future__ import annotations

import json
import sys

RESOURCES = ("nodes", "actors", "jobs", "placement-groups", "objects", "workers", "tasks")
_GET_KEYS = {"nodes": "node_id", "actors": "actor_id", "jobs": "job_id", "placement-groups": "placement_group_id",
             "objects": "object_id", "workers": "worker_id", "tasks": "task_id"}


def add_parsers(sub) -> None:
    p = sub.add_parser("list", help="list a resource of the cluster: " + ", ".join(RESOURCES))
    p.add_argument("resource", choices=RESOURCES)
    p.add_argument("--filter", action="append", default=[], metavar="KEY=VALUE",
                   help='keep rows whose column KEY equals (KEY=VALUE) or differs from (KEY!=VALUE) VALUE; repeatable')
    p.add_argument("--limit", type=int, default=100)
    p.add_argument("--detail", action="store_true", help="all columns")
    _common(p)
    p.set_defaults(func=cmd_list)
    p = sub.add_parser("get", help="one resource by id, with every column")
    p.add_argument("resource", choices=RESOURCES)
    p.add_argument("id")
    _common(p, default_format="yaml")
    p.set_defaults(func=cmd_get)
    p = sub.add_parser("summary", help="actors per class, objects per storage kind, tasks per function")
    p.add_argument("resource", choices=("actors", "objects", "tasks"))
    _common(p)
    p.set_defaults(func=cmd_summary)
    p = sub.add_parser("timeline", help="write a Chrome trace (chrome://tracing, Perfetto) of the tasks that ran")
    p.add_argument("--output", "-o", default=None, help="file to write (default: timeline-<time>.json here)")
    p.add_argument("--address", default=None)
    p.set_defaults(func=cmd_timeline)
    p = sub.add_parser("logs", help="list a node's log files, or print one (--follow to keep reading)")
    p.add_argument("filename", nargs="?", help="a log file name (from `quanta logs` without it)")
    p.add_argument("--node-id")
    p.add_argument("--node-ip")
    p.add_argument("--actor-id", help="the stdout (or --err: stderr) of the worker hosting this actor")
    p.add_argument("--task-id", help="the stdout (or --err: stderr) of the worker that ran this task")
    p.add_argument("--pid", type=int, help="the stdout (or --err: stderr) of the worker with this pid")
    p.add_argument("--err", action="store_true")
    p.add_argument("--tail", type=int, default=1000, help="last N lines (-1: all)")
    p.add_argument("--follow", "-f", action="store_true")
    p.add_argument("--address", default=None)
    p.add_argument("--timeout", type=float, default=30)
    p.set_defaults(func=cmd_logs)


def _common(p, default_format="table"):
    p.add_argument("--address", default=None, help="HEAD_IP:PORT, a session directory, or auto (default)")
    p.add_argument("--format", choices=("table", "json", "yaml"), default=default_format)
    p.add_argument("--timeout", type=float, default=30)


def _filters(texts) -> list:
    out = []
    for t in texts:
        if "!=" in t:
            key, value = t.split("!=", 1)
            out.append((key.strip(), "!=", value.strip()))
        elif "=" in t:
            key, value = t.split("=", 1)
            out.append((key.strip(), "=", value.strip()))
        else:
            raise ValueError(f"--filter takes KEY=VALUE or KEY!=VALUE, got {t!r}")
    return out


def _fail(text, code=1) -> int:
    from quanta.scripts import cli_error_text

    print(f"quanta: {cli_error_text(text)}", file=sys.stderr)
    return code


def _dump(value, fmt) -> str:
    if fmt == "json":
        return json.dumps(value, indent=2, default=str)
    try:
        import yaml
    except ImportError:
        return json.dumps(value, indent=2, default=str)
    return yaml.safe_dump(json.loads(json.dumps(value, default=str)), sort_keys=False, default_flow_style=False).rstrip()


def _cell(v, width=40) -> str:
    if v is None:
        return ""
    if isinstance(v, (dict, list)):
        v = json.dumps(v, separators=(",", ":"), default=str)
    text = str(v)
    return text if len(text) <= width else text[: width - 1] + "…"


def table(rows, width=40) -> str:
    if not rows:
        return "(none)"
    cols = list(rows[0].keys())
    cells = [[_cell(r.get(c), width) for c in cols] for r in rows]
    widths = [max(len(c.upper()), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
    lines = ["  ".join(c.upper().ljust(widths[i]) for i, c in enumerate(cols)).rstrip()]
    for row in cells:
        lines.append("  ".join(v.ljust(widths[i]) for i, v in enumerate(row)).rstrip())
    return "\n".join(lines)


def _run(fn):
    from quanta.util import state

    try:
        return fn(state)
    except BrokenPipeError:  # the reader went away (| head): nothing more to say
        sys.stderr.close()
        return 0
    except NotImplementedError as e:
        return _fail(str(e))
    except (state.QuantaStateApiException, ValueError, ConnectionError, TimeoutError) as e:
        return _fail(str(e))


def _lister(state, resource):
    return getattr(state, "list_" + resource.replace("-", "_"))


def cmd_list(args) -> int:
    def go(state):
        import warnings

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            rows = _lister(state, args.resource)(address=args.address, filters=_filters(args.filter), limit=args.limit,
                                                 timeout=args.timeout, detail=args.detail)
        if args.format == "table":
            print(table(rows))
        else:
            print(_dump(rows, args.format))
        for w in caught:
            print(f"quanta: {w.message}", file=sys.stderr)
        return 0

    return _run(go)


def cmd_get(args) -> int:
    def go(state):
        key = _GET_KEYS[args.resource]
        if args.resource == "jobs":
            row = state.get_job(args.id, address=args.address, timeout=args.timeout)
            rows = [row] if row else []
        else:
            rows = _lister(state, args.resource)(address=args.address, filters=[(key, "=", args.id)], limit=10 ** 9,
                                                 timeout=args.timeout, detail=True)
        if not rows:
            return _fail(f"no {args.resource[:-1].replace('-', ' ')} with {key} {args.id}")
        value = rows if args.resource == "objects" else rows[0]
        print(table(rows, width=80) if args.format == "table" else _dump(value, args.format))
        return 0

    return _run(go)


def cmd_summary(args) -> int:
    def go(state):
        fn = getattr(state, "summarize_" + args.resource)
        s = fn(address=args.address, timeout=args.timeout)
        if args.format != "table":
            print(_dump(s, args.format))
            return 0
        summary = s["cluster"]["summary"]
        if args.resource == "actors":
            rows = [{"class_name": k, **{st: n for st, n in v["state_counts"].items()}} for k, v in summary.items()]
            states = sorted({st for v in summary.values() for st in v["state_counts"]})
            rows = [{"class_name": r["class_name"], **{st: r.get(st, 0) for st in states}} for r in rows]
            print(table(rows))
            print(f"total actors: {s['cluster']['total_actors']}")
        elif args.resource == "tasks":
            states = sorted({st for v in summary.values() for st in v["state_counts"]})
            print(table([{"func_or_class_name": k, "type": v["type"], **{st: v["state_counts"].get(st, 0) for st in states}}
                         for k, v in summary.items()], width=60))
            c = s["cluster"]
            print(f"total tasks: {c['total_tasks']}, actor tasks: {c['total_actor_tasks']}, "
                  f"actors created: {c['total_actor_scheduled']}")
        else:
            print(table([{"storage": k, **v} for k, v in summary.items()]))
            print(f"total objects: {s['cluster']['total_objects']}, {s['cluster']['total_size_mb']} MB")
        return 0

    return _run(go)


def cmd_timeline(args) -> int:
    def go(state):
        import time

        from quanta.util.state import _timeline

        path = args.output or time.strftime("timeline-%Y-%m-%d_%H-%M-%S.json")
        trace = _timeline.events(args.address)
        with open(path, "w") as f:
            json.dump(trace, f)
        spans = [e for e in trace if e.get("ph") == "X"]
        transfers = sum(1 for e in spans if e.get("cat") == "transfer")
        print(f"wrote {len(spans) - transfers} tasks and {transfers} object transfers to {path}; "
              "open it in chrome://tracing or https://ui.perfetto.dev")
        return 0

    return _run(go)


def cmd_logs(args) -> int:
    def go(state):
        if args.filename is None and args.actor_id is None and args.pid is None and args.task_id is None:
            files = state.list_logs(address=args.address, node_id=args.node_id, node_ip=args.node_ip,
                                    timeout=args.timeout)
            for kind in sorted(files):
                print(f"{kind}:")
                for name in files[kind]:
                    print(f"  {name}")
            return 0
        try:
            for text in state.get_log(address=args.address, node_id=args.node_id, node_ip=args.node_ip,
                                      filename=args.filename, actor_id=args.actor_id, pid=args.pid,
                                      task_id=args.task_id, follow=args.follow, tail=args.tail, timeout=args.timeout,
                                      suffix="err" if args.err else "out", errors="replace"):
                sys.stdout.write(text)
                sys.stdout.flush()
        except KeyboardInterrupt:
            pass
        return 0

    return _run(go)
