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
    session_dir = os.environ.get("QUANTA_SESSION_DIR") or os.path.join(os.environ.get("TMPDIR", "/tmp"), "quanta-worker")
    # A runtime environment (runtime_env_setup.py): env_vars and a pip venv before connecting
    # (the venv means a re-exec with its python), packages once connected. A failure is kept
    # and answered to the task as RuntimeEnvSetupError.
    from quanta._private import runtime_env_setup as rt

    env, env_wire = rt.load()
    failure = None
    deadline = 0.0
    if env is not None:
        rt.apply_env_vars(env)
        deadline = rt.deadline_of(env)
        if env.get("pip") and not os.environ.get(rt._IN_VENV):
            try:
                python = rt.ensure_venv(env, session_dir, deadline)
                rt.reexec_in_venv(python, socket_path, token, deadline, os.path.dirname(os.path.dirname(python)))
            except rt.SetupFailed as e:
                failure = str(e)
            except Exception as e:  # noqa: BLE001 - any failure of the setup is the task's error
                failure = f"{type(e).__name__}: {e}"
    from quanta import _core
    from quanta._private import executor, session

    if os.environ.get("QUANTA_SESSION_DIR"):
        _core.init_logging("worker", os.path.join(session_dir, "logs", f"worker-{index}.log"))
    core = _core.CoreClient.connect(socket_path, True, token, True)
    session.start_worker(core)
    if env is not None and failure is None:
        try:
            rt.setup_packages(env, session_dir, deadline)
            from quanta._private import runtime_env

            runtime_env.adopt_worker_env(env_wire)
        except rt.SetupFailed as e:
            failure = str(e)
        except Exception as e:  # noqa: BLE001
            failure = f"{type(e).__name__}: {e}"
    if failure is not None:
        executor.fail_setup(core, failure)
        return 0
    # quanta.cancel() on a running task sends SIGINT: raise KeyboardInterrupt in the task.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    executor.run_loop(core)
    return 0


if __name__ == "__main__":
    sys.exit(main())
