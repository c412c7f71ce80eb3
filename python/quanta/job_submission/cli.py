"""`quanta job ...`: the jobs API on the command line (Ray's `ray job ...`).

    quanta job submit [--address http://HEAD:8265] [--working-dir DIR] [--entrypoint-num-cpus N]
                      [--submission-id ID] [--no-wait] -- python script.py
    quanta job status|logs [--follow]|stop|delete ID
    quanta job list
"""

from __future__ import annotations

import json
import shlex
import sys
import time


def add_parsers(sub) -> None:
    job = sub.add_parser("job", help="submit and manage jobs through a head's dashboard")
    jsub = job.add_subparsers(dest="job_command", required=True)
    p = jsub.add_parser("submit", help="run a command on the head; follows its output unless --no-wait")
    _address(p)
    p.add_argument("--submission-id", "--job-id", dest="submission_id")
    p.add_argument("--working-dir", help="a local folder, uploaded and made the job's working directory")
    p.add_argument("--runtime-env-json", help='e.g. \'{"env_vars": {"A": "1"}}\'')
    p.add_argument("--metadata-json")
    p.add_argument("--entrypoint-num-cpus", type=float)
    p.add_argument("--entrypoint-num-gpus", type=float)
    p.add_argument("--entrypoint-resources", help='JSON object, e.g. \'{"gpu_box": 1}\'')
    p.add_argument("--no-wait", action="store_true", help="print the submission id and return")
    p.add_argument("entrypoint", nargs="+", help="the command (after --)")
    p.set_defaults(func=cmd_submit)
    for name, func, text in (("status", cmd_status, "a job's status"), ("stop", cmd_stop, "stop a running job"),
                             ("delete", cmd_delete, "forget an ended job and its output"),
                             ("logs", cmd_logs, "a job's output")):
        p = jsub.add_parser(name, help=text)
        _address(p)
        p.add_argument("submission_id")
        if name == "logs":
            p.add_argument("--follow", "-f", action="store_true", help="keep printing until the job ends")
        if name == "stop":
            p.add_argument("--no-wait", action="store_true")
        p.set_defaults(func=func)
    p = jsub.add_parser("list", help="every submitted job")
    _address(p)
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.set_defaults(func=cmd_list)


def _address(p):
    p.add_argument("--address", default=None, help="the dashboard: http://HEAD:8265 (default: QUANTA_DASHBOARD_ADDRESS, "
                                                   "or the cluster on this host)")
    p.add_argument("--token", default=None, help=argparse_suppress())


def argparse_suppress():
    import argparse

    return argparse.SUPPRESS


def _client(args):
    from quanta.job_submission import JobSubmissionClient

    return JobSubmissionClient(args.address, token=args.token)


def _json(text, flag):
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError as e:
        raise ValueError(f"{flag} must be JSON: {e}") from None


def _run(fn, args) -> int:
    from quanta.job_submission import JobSubmissionError

    try:
        return fn(args)
    except (JobSubmissionError, ValueError, TimeoutError) as e:
        print(f"quanta: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def cmd_submit(args) -> int:
    def go(args):
        client = _client(args)
        runtime_env = _json(args.runtime_env_json, "--runtime-env-json") or {}
        if args.working_dir:
            runtime_env["working_dir"] = args.working_dir
        entrypoint = " ".join(args.entrypoint) if len(args.entrypoint) == 1 else shlex.join(args.entrypoint)
        sid = client.submit_job(entrypoint=entrypoint, submission_id=args.submission_id, runtime_env=runtime_env or None,
                                metadata=_json(args.metadata_json, "--metadata-json"),
                                entrypoint_num_cpus=args.entrypoint_num_cpus, entrypoint_num_gpus=args.entrypoint_num_gpus,
                                entrypoint_resources=_json(args.entrypoint_resources, "--entrypoint-resources"))
        print(f"Job '{sid}' submitted to {client.address}.", file=sys.stderr)
        if args.no_wait:
            print(sid)
            print(f"  quanta job status {sid} / quanta job logs --follow {sid} / quanta job stop {sid}", file=sys.stderr)
            return 0
        for text in client.follow_job_logs(sid):
            sys.stdout.write(text)
            sys.stdout.flush()
        info = client.get_job_info(sid)
        print(f"Job '{sid}' {info.status}" + (f": {info.message.splitlines()[0]}" if info.message else ""),
              file=sys.stderr)
        return 0 if str(info.status) == "SUCCEEDED" else 1

    return _run(go, args)


def cmd_status(args) -> int:
    def go(args):
        info = _client(args).get_job_info(args.submission_id)
        print(info.status)
        if info.message:
            print(info.message, file=sys.stderr)
        return 0

    return _run(go, args)


def cmd_logs(args) -> int:
    def go(args):
        client = _client(args)
        if args.follow:
            for text in client.follow_job_logs(args.submission_id):
                sys.stdout.write(text)
                sys.stdout.flush()
        else:
            sys.stdout.write(client.get_job_logs(args.submission_id))
        return 0

    return _run(go, args)


def cmd_stop(args) -> int:
    def go(args):
        client = _client(args)
        if not client.stop_job(args.submission_id):
            print(f"Job '{args.submission_id}' had already ended ({client.get_job_status(args.submission_id)}).")
            return 0
        if args.no_wait:
            print(f"Stopping job '{args.submission_id}'.")
            return 0
        print(f"Job '{args.submission_id}' {client.wait_until_finished(args.submission_id, timeout=60)}.")
        return 0

    return _run(go, args)


def cmd_delete(args) -> int:
    def go(args):
        _client(args).delete_job(args.submission_id)
        print(f"Job '{args.submission_id}' deleted.")
        return 0

    return _run(go, args)


def cmd_list(args) -> int:
    def go(args):
        jobs = _client(args).list_jobs()
        if args.format == "json":
            print(json.dumps([j.to_dict() for j in jobs], indent=2, default=str))
            return 0
        from quanta.util.state._cli import table

        rows = [{"submission_id": j.submission_id, "status": str(j.status), "entrypoint": j.entrypoint,
                 "start_time": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(j.start_time / 1000)) if j.start_time else "",
                 "job_id": j.job_id or ""} for j in jobs]
        print(table(rows, width=60))
        return 0

    return _run(go, args)
