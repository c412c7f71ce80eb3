"""Starting and stopping the daemons of a local cluster.

A driver that calls `quanta.init()` without an address starts a control service and a node
daemon (C++ executables shipped in quanta/_bin) in a fresh session directory. Both get the
read end of a "lifeline" pipe whose write end only the driver holds: when the driver exits for
any reason, even SIGKILL, the kernel closes it, the daemons see EOF and shut down, and the node
kills its workers (which also die with the node through PR_SET_PDEATHSIG). So no process
outlives the driver that started it.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import tempfile
import time
import uuid

# The folder holding this quanta package (a source checkout, or site-packages when installed).
_PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _on_default_path(folder: str) -> bool:
    """True if a fresh interpreter finds packages in `folder` without PYTHONPATH (site-packages):
    putting such a folder on PYTHONPATH would move it ahead of the standard library."""
    import site
    import sysconfig

    paths = sysconfig.get_paths()
    defaults = {paths.get("purelib"), paths.get("platlib"), *site.getsitepackages()}
    user_site = site.getusersitepackages() if site.ENABLE_USER_SITE else None
    if user_site:
        defaults.add(user_site)
    return os.path.realpath(folder) in {os.path.realpath(p) for p in defaults if p}

_BIN_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "_bin")
RESOURCE_UNIT = 10000  # fixed point used by the engine: 1 CPU == 10000


def binary(name: str) -> str:
    path = os.path.join(_BIN_DIR, name)
    if not os.path.exists(path):
        raise RuntimeError(f"Quanta's {name} executable is missing at {path}; reinstall with `pip install .`")
    return path


def make_session_dir(temp_dir: str | None = None) -> str:
    root = os.path.join(temp_dir or tempfile.gettempdir(), "quanta")
    stamp = time.strftime("%Y-%m-%d_%H-%M-%S")
    path = os.path.join(root, f"session_{stamp}_{os.getpid()}_{uuid.uuid4().hex[:6]}")
    os.makedirs(os.path.join(path, "logs"), exist_ok=True)
    os.makedirs(os.path.join(path, "sockets"), exist_ok=True)
    latest = os.path.join(root, "session_latest")
    try:
        tmp = latest + f".{os.getpid()}"
        os.symlink(path, tmp)
        os.replace(tmp, latest)
    except OSError:
        pass
    return path


class LocalCluster:
    """The daemons of one local cluster.

    Started by a driver (`tied_to_driver=True`: they exit with it) or by `quanta start`
    (they run until `quanta stop`; their pids are written to <session>/pids)."""

    def __init__(self, session_dir: str, num_cpus: float, resources: dict, tied_to_driver: bool = True,
                 store: dict | None = None):
        self.session_dir = session_dir
        self.control_socket = os.path.join(session_dir, "sockets", "control.sock")
        self.node_socket = os.path.join(session_dir, "sockets", "node.sock")
        self._procs: list[subprocess.Popen] = []
        self._lifeline_w = None
        self._start(num_cpus, resources, tied_to_driver, store or {})

    def pids(self) -> list:
        return [p.pid for p in self._procs]

    def _start(self, num_cpus: float, resources: dict, tied_to_driver: bool, store: dict) -> None:
        if tied_to_driver:
            lifeline_r, self._lifeline_w = os.pipe()
        else:
            lifeline_r = -1  # no lifeline: the cluster runs until `quanta stop`
        ready_r, ready_w = os.pipe()
        logs = os.path.join(self.session_dir, "logs")
        common = dict(close_fds=True, start_new_session=True, stdin=subprocess.DEVNULL)
        try:
            with open(os.path.join(logs, "control.out"), "ab") as out:
                self._procs.append(subprocess.Popen(
                    [binary("quanta_control"), "--session-dir", self.session_dir,
                     "--socket", self.control_socket, "--lifeline-fd", str(lifeline_r)],
                    pass_fds=_fds(lifeline_r), stdout=out, stderr=subprocess.STDOUT, **common))
            args = [binary("quanta_node"), "--session-dir", self.session_dir,
                    "--socket", self.node_socket, "--control-socket", self.control_socket,
                    "--python", sys.executable, "--lifeline-fd", str(lifeline_r),
                    "--ready-fd", str(ready_w), "--prestart", str(max(1, int(num_cpus)))]
            for name, amount in {"CPU": num_cpus, **resources}.items():
                args += ["--resource", f"{name}={int(round(amount * RESOURCE_UNIT))}"]
            args += ["--object-store-memory", str(int(store.get("object_store_memory") or default_object_store_memory())),
                     "--inline-threshold", str(int(store.get("inline_threshold") or 100 * 1024))]
            if store.get("spill_dir"):
                args += ["--spill-dir", str(store["spill_dir"])]
            args += ["--worker-env", "QUANTA_DRIVER_SYS_PATH=" + json.dumps([p for p in sys.path if p])]
            # Workers import the same quanta package as this driver (and its node daemon), even
            # if another copy is installed: `python -m quanta...` resolves before any code runs.
            if not _on_default_path(_PACKAGE_ROOT):
                inherited = os.environ.get("PYTHONPATH")
                args += ["--worker-env", "PYTHONPATH=" + _PACKAGE_ROOT + (os.pathsep + inherited if inherited else "")]
            args += ["--worker-env", "QUANTA_SESSION_DIR=" + self.session_dir]
            # As Ray does: one BLAS/OpenMP thread per worker unless the user chose otherwise, so
            # workers sharing the cores do not oversubscribe them with spinning BLAS threads.
            for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
                if var not in os.environ:
                    args += ["--worker-env", f"{var}=1"]
            with open(os.path.join(logs, "node.out"), "ab") as out:
                self._procs.append(subprocess.Popen(
                    args, pass_fds=_fds(lifeline_r, ready_w), stdout=out, stderr=subprocess.STDOUT, **common))
        finally:
            if lifeline_r >= 0:
                os.close(lifeline_r)
            os.close(ready_w)
        try:
            self._wait_ready(ready_r)
        except BaseException:
            self.stop()
            raise
        finally:
            os.close(ready_r)

    def _wait_ready(self, ready_r: int, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise RuntimeError(f"the Quanta node daemon did not start within {timeout:.0f} s; "
                                   f"see {self.session_dir}/logs")
            readable, _, _ = select.select([ready_r], [], [], min(left, 0.2))
            if readable:
                if os.read(ready_r, 64):
                    return
                break  # EOF without "ready": the node exited
            if any(p.poll() is not None for p in self._procs):
                break
        tail = _tail(os.path.join(self.session_dir, "logs", "node.out")) or _tail(
            os.path.join(self.session_dir, "logs", "node.log"))
        raise RuntimeError(f"the Quanta node daemon failed to start:\n{tail}\n(logs: {self.session_dir}/logs)")

    def stop(self, timeout: float = 2.0) -> None:
        if self._lifeline_w is not None:
            os.close(self._lifeline_w)  # daemons see EOF and exit, killing their workers
            self._lifeline_w = None
        deadline = time.monotonic() + timeout
        for p in self._procs:
            try:
                p.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        self._procs = []


def default_object_store_memory() -> int:
    """30% of physical memory, as Ray does (the arena is a sparse memfd: untouched pages cost
    nothing)."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        total = 8 << 30
    return int(total * 0.3)


def _fds(*fds):
    return tuple(fd for fd in fds if fd >= 0)


def resolve_address(address: str) -> str:
    """The node socket for `address`: "auto" (the newest cluster started with `quanta start`),
    a session directory, or a node socket path."""
    if address == "auto":
        env = os.environ.get("QUANTA_ADDRESS")
        if env:
            return resolve_address(env)
        latest = os.path.join(tempfile.gettempdir(), "quanta", "cluster_latest")
        if not os.path.exists(latest):
            raise ConnectionError("quanta.init(address='auto') found no running cluster; start one "
                                  "with `quanta start --head`, or call quanta.init() for a local one")
        address = os.path.realpath(latest)
    if os.path.isdir(address):
        sock = os.path.join(address, "sockets", "node.sock")
    else:
        sock = address
    if not os.path.exists(sock):
        raise ConnectionError(f"no Quanta cluster at {address!r} (no node socket {sock}); is it "
                              "running? (`quanta start --head` starts one)")
    return sock


def _tail(path: str, lines: int = 20) -> str:
    try:
        with open(path, "rb") as f:
            return b"\n".join(f.read().splitlines()[-lines:]).decode("utf-8", "replace")
    except OSError:
        return ""
