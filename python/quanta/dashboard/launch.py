"""Whether and how a head starts its dashboard (used by quanta.init, `quanta start --head` and
cluster_utils.Cluster). Imports nothing heavy: the server's libraries load in its own process.
"""

from __future__ import annotations

import importlib.util
import os
import secrets

from quanta.dashboard import DEFAULT_PORT

TOKEN_FILE = "dashboard_token"


def options(include_dashboard, host, port, token, session_dir) -> dict | None:
    """The `dashboard` argument of services.Session.start, or None for no dashboard.

    include_dashboard None: on if its server library (aiohttp) is installed; True: on, or
    ValueError; False: off. port None: 8265, or the next free port after it; an explicit port
    must be free. Without a cluster token (a local quanta.init() cluster and none configured),
    a token for this session is made and kept in <session>/dashboard_token (0600)."""
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
