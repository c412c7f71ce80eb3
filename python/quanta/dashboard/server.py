"""The dashboard process: `python -m quanta.dashboard --session-dir HEAD_SESSION [...]`.

Started by the head's launcher after the head's node is up, with the listening socket the
launcher bound (--listen-fd: the launcher knows the port at once and never waits for this
process; connections queue in the kernel until it serves). It exits when the head goes: EOF on --lifeline-fd
(the driver that started a local cluster exited), the exit of any --watch-pid (the head's
daemons), or the loss of its connection to the head's node. Its token comes in the environment
(QUANTA_DASHBOARD_TOKEN), which it clears so that jobs do not inherit it.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import socket
import sys
import threading

log = logging.getLogger("quanta.dashboard")


def parse(argv):
    p = argparse.ArgumentParser(prog="quanta_dashboard")
    p.add_argument("--session-dir", required=True, help="the head's session directory")
    p.add_argument("--listen-fd", type=int, required=True, help="a listening TCP socket")
    p.add_argument("--lifeline-fd", type=int, default=-1)
    p.add_argument("--watch-pid", type=int, action="append", default=[])
    p.add_argument("--sample-interval", type=float, default=float(os.environ.get("QUANTA_DASHBOARD_SAMPLE_S", "2")))
    return p.parse_args(argv)


def main(argv=None) -> int:
    # Its log, job records and job output are the user's alone (docs/security.md); jobs get the
    # user's own umask back.
    os.environ["QUANTA_JOB_UMASK"] = str(os.umask(0o077))
    args = parse(sys.argv[1:] if argv is None else argv)
    token = os.environ.pop("QUANTA_DASHBOARD_TOKEN", "")
    os.environ.pop("QUANTA_AUTH_TOKEN", None)
    if not token:
        print("quanta_dashboard: no token (QUANTA_DASHBOARD_TOKEN); refusing to serve without one", file=sys.stderr)
        return 2
    logging.basicConfig(filename=os.path.join(args.session_dir, "logs", "dashboard.log"), level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    sock = socket.socket(fileno=args.listen_fd)
    try:
        os.nice(5)  # observing the cluster must never slow its work
    except OSError:
        pass
    from quanta.util.state._source import Source

    source = Source.open(args.session_dir)
    try:
        asyncio.run(serve(args, sock, source, token))
    finally:
        source.close()
    return 0


async def serve(args, sock, source, token) -> None:
    from aiohttp import web

    from quanta.dashboard import auth, job_routes, state_routes
    from quanta.dashboard.metrics import Sampler
    from quanta.job_submission.manager import JobManager
    from quanta.job_submission.package import MAX_PACKAGE_BYTES
    from quanta.util.state import _tables

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()

    def stop_soon(why):
        if not stop.is_set():
            log.info("stopping: %s", why)
            loop.call_soon_threadsafe(stop.set)

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop_soon, f"signal {sig}")
    if args.lifeline_fd >= 0:
        def lifeline():
            try:
                data = os.read(args.lifeline_fd, 64)
            except OSError:
                data = b""
            if not data:
                loop.remove_reader(args.lifeline_fd)
                stop_soon("the driver that started the cluster exited")
        loop.add_reader(args.lifeline_fd, lifeline)
    for pid in args.watch_pid:
        try:
            fd = os.pidfd_open(pid)
        except OSError:
            stop_soon(f"head daemon {pid} is already gone")
            continue
        loop.add_reader(fd, lambda fd=fd, pid=pid: (loop.remove_reader(fd), stop_soon(f"head daemon {pid} exited")))

    heads = [n for n in _tables.node_rows(source, 10) if n["is_head_node"]]
    sampler = Sampler()
    app = web.Application(client_max_size=MAX_PACKAGE_BYTES + (1 << 20))
    guard = auth.Guard(token)
    app.middlewares.append(guard.middleware)
    app["guard"] = guard
    app["source"] = source
    app["session_dir"] = args.session_dir
    app["sampler"] = sampler
    app["sample_interval"] = args.sample_interval
    app["jobs"] = JobManager(args.session_dir, heads[0]["node_index"] if heads else 0)
    app.router.add_route("*", "/login", auth.login)
    app.router.add_get("/logout", auth.logout)
    state_routes.add_routes(app)
    job_routes.add_routes(app)

    def sample_forever():
        while not stop.is_set():
            try:
                sampler.sample(source)
            except ConnectionError as e:
                stop_soon(f"lost the connection to the head's node ({e})")
                return
            except Exception:  # a bad sample must not end the charts
                log.exception("sampling failed")
            if not source.core.connected:
                stop_soon("the head's node closed the connection")
                return
            _sleep(stop, args.sample_interval)

    threading.Thread(target=sample_forever, name="sampler", daemon=True).start()
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.SockSite(runner, sock)
    await site.start()
    log.info("serving on %s:%s", *sock.getsockname()[:2])
    await stop.wait()
    app["jobs"].stop_all()
    await runner.cleanup()


def _sleep(event: asyncio.Event, seconds: float) -> None:
    # The sampler thread waits on a plain timer; the loop's event only tells it to stop.
    import time

    end = time.monotonic() + seconds
    while time.monotonic() < end and not event.is_set():
        time.sleep(min(0.2, end - time.monotonic()))
