"""Whether and how a head starts its dashboard (used by quanta.init, `quanta start --head` and
cluster_utils.Cluster). Imports nothing heavy: the server's libraries load in its own process.
"""

from __future__ import annotations

import errno
import importlib.util
import os
import secrets
import socket

from quanta.dashboard import DEFAULT_PORT

TOKEN_FILE = "dashboard_token"


def options(include_dashboard, host, port, token, session_dir) -> dict | None:
    """The `dashboard` argument of services.Session.start, or None for no dashboard.

    include_dashboard None: on if its server library (aiohttp) is installed and
    QUANTA_INCLUDE_DASHBOARD is not 0/false; True: on, or
    ValueError; False: off. port None: 8265, or the next free port after it; an explicit port
    must be free. Without a cluster token (a local quanta.init() cluster and none configured),
    a token for this session is made and kept in <session>/dashboard_token (0600)."""
    if include_dashboard is None and os.environ.get("QUANTA_INCLUDE_DASHBOARD", "").lower() in ("0", "false", "no"):
        include_dashboard = False  # the default, turned off for this environment (e.g. a test suite)
    if include_dashboard is False:
        return None
    if importlib.util.find_spec("aiohttp") is None:
        if include_dashboard:
            raise ValueError("the dashboard needs aiohttp (pip install aiohttp), or start without it "
                             "(include_dashboard=False / --include-dashboard=false)")
        return None
    if port is not None and (isinstance(port, bool) or not isinstance(port, int) or not 0 <= port < 65536):
        raise ValueError(f"dashboard_port must be a port number (0 for any free port), got {port!r}")
    if not token:
        from quanta._private import runtime_dir

        token = secrets.token_hex(32)
        runtime_dir.write_private(os.path.join(session_dir, TOKEN_FILE), token + "\n")
    return {"host": host, "port": DEFAULT_PORT if port is None else port, "explicit": port is not None,
            "token": token, "required": bool(include_dashboard)}


PORT_TRIES = 50


def bind(host: str, port: int, explicit: bool) -> socket.socket:
    """A listening socket on host:port; when the port is the default and taken, the next free
    one after it (an explicit port must be free: OSError saying so)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    last = None
    for p in ([port] if explicit or port == 0 else range(port, port + PORT_TRIES)):
        s = socket.socket(family, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, p))
            s.listen(128)
            return s
        except OSError as e:
            s.close()
            last = e
            if e.errno != errno.EADDRINUSE:
                break
    where = f"{host}:{port}" if explicit or port == 0 else f"{host}:{port}..{port + PORT_TRIES - 1}"
    hint = "; pass another dashboard port (0: any free port)" if explicit else ""
    raise OSError(f"the dashboard cannot listen on {where}: {last}{hint}")
