"""Entry point of a worker process: `python -m quanta._private.worker_main SOCKET`.

Started by the node daemon, which passes the worker's secret token in QUANTA_WORKER_TOKEN (an
environment variable is readable only by the process's own user, unlike its command line).
Connects to the node, then runs the tasks it is given, one at a time, until the connection
closes.
"""

from __future__ import annotations

import json
import os
import signal
import sys


def main() -> int:
    socket_path = sys.argv[1]
    token = os.environ.pop("QUANTA_WORKER_TOKEN", "")
    index = os.environ.get("QUANTA_WORKER_INDEX", "0")
    for p in reversed(json.loads(os.environ.get("QUANTA_DRIVER_SYS_PATH", "[]"))):
        if p not in sys.path:
            sys.path.insert(1, p)
    from quanta import _core
    from quanta._private import executor, session

    session_dir = os.environ.get("QUANTA_SESSION_DIR")
    if session_dir:
        _core.init_logging("worker", os.path.join(session_dir, "logs", f"worker-{index}.log"))
    core = _core.CoreClient.connect(socket_path, True, token, True)
    session.start_worker(core)
    # quanta.cancel() on a running task sends SIGINT: raise KeyboardInterrupt in the task.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    executor.run_loop(core)
    return 0


if __name__ == "__main__":
    sys.exit(main())
