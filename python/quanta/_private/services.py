"""Starting, finding and stopping the daemons of a session on this host.

A session is one node daemon (and, on the head, the control service beside it) with its own
directory under the user's runtime root (runtime_dir.py). Three ways to get one:

* ``quanta.init()``: a local cluster, control service and node on Unix sockets only (no TCP
  but the dashboard's HTTP port, which needs a token), tied to the driver: both get the read end of a *lifeline* pipe whose write end only the driver
  holds, so when the driver exits for any reason, even SIGKILL, they see EOF and shut down (and
  the node kills its workers, which also die with it through PR_SET_PDEATHSIG).
* ``quanta start --head`` / ``quanta start --address``: daemons that outlive their starter, with
  authenticated TCP listeners, until ``quanta stop``.
* ``quanta.init(address="HOST:PORT")`` on a host with no node of that cluster: a *driver node*
  (no resources) joined to it and tied to the driver.

Each session has a record (node.json, 0600) of the processes started — pid, start time,
executable — so that `quanta stop` signals only processes proven to be this session's daemons.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time

from quanta._private import runtime_dir

# The folder holding this quanta package (a source checkout, or site-packages when installed).
_PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_BIN_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "_bin")
RESOURCE_UNIT = 10000  # fixed point used by the engine: 1 CPU == 10000
DEFAULT_PORT = 6380    # not Ray's 6379: that is Redis's port, and a Redis may be our --storage


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


def binary(name: str) -> str:
    path = os.path.join(_BIN_DIR, name)
    if not os.path.exists(path):
        raise RuntimeError(f"Quanta's {name} executable is missing at {path}; reinstall with `pip install .`")
    return path


def default_object_store_memory() -> int:
    """30% of physical memory, as Ray does (the arena is a sparse memfd: untouched pages cost
    nothing)."""
    return int(physical_memory() * 0.3)


def physical_memory() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        return 8 << 30


class JoinError(RuntimeError):
    """A node could not start or join its cluster (the reason is in the message)."""


class Session:
    """The daemons of one session on this host, as started by this process."""

    def __init__(self, session_dir: str):
        self.session_dir = session_dir
        self.control_socket = os.path.join(session_dir, "sockets", "control.sock")
        self.node_socket = os.path.join(session_dir, "sockets", "node.sock")
        self.control_address: str | None = None  # "ip:port" of the control service it belongs to
        self.node_index = 0
        self.node_id = ""
        self._procs: list[tuple[str, subprocess.Popen]] = []
        self.dashboard_url: str | None = None
        self._lifeline_w: int | None = None
        self.storage: str | None = None  # where the head persists its tables (--storage)
        self.control_args: list | None = None  # the control service's command line (to restart it)

    # ------------------------------------------------------------------ starting

    def start(self, *, head: bool, tied_to_driver: bool, resources: dict, store: dict,
              control_address: str | None = None, host: str | None = None, port: int | None = None,
              labels: dict | None = None, driver_node: bool = False, token: str | None = None,
              heartbeat_timeout_ms: int | None = None, prestart: int | None = None,
              dashboard: dict | None = None, storage: str | None = None,
              control_flags: list | None = None, control_env: dict | None = None) -> "Session":
        """Starts the control service (if `head`) and a node. With `host`/`port` (a head) or
        `control_address` (joining), TCP is used and `token` is required. On a head,
        `dashboard` ({"host", "port", "explicit", "token", "required"}) also starts the
        dashboard (quanta/dashboard), which dies with the head. `storage` (a head's): the SQLite
        file or redis://HOST:PORT its control service persists its tables to."""
        if store.get("spill_dir"):
            store = dict(store, spill_dir=runtime_dir.private_spill_dir(str(store["spill_dir"])))
        lifeline_r = -1
        if tied_to_driver:
            lifeline_r, self._lifeline_w = os.pipe()
        env = dict(os.environ)
        if token:
            env["QUANTA_AUTH_TOKEN"] = token
        try:
            if head:
                args = [binary("quanta_control"), "--session-dir", self.session_dir, "--socket", self.control_socket]
                if port is not None:
                    args += ["--host", host or "127.0.0.1", "--port", str(port)]
                if heartbeat_timeout_ms:
                    args += ["--heartbeat-timeout-ms", str(int(heartbeat_timeout_ms))]
                if storage:
                    args += ["--storage", storage]
                    self.storage = storage
                args += list(control_flags or ())
                self.control_args = list(args)
                bound = self._spawn("control", args, lifeline_r, dict(env, **(control_env or {})))
                if port is not None:
                    self.control_address = f"{host or '127.0.0.1'}:{bound[0]}"
            else:
                self.control_address = control_address
            args = [binary("quanta_node"), "--session-dir", self.session_dir, "--socket", self.node_socket,
                    "--python", sys.executable]
            if head:
                args += ["--control-socket", self.control_socket, "--head", "1"]
            else:
                args += ["--control-address", control_address]
            if host:
                args += ["--node-ip-address", host]
            if driver_node:
                args += ["--driver-node", "1"]
            from quanta._private import node_resources

            store_bytes = int(store.get("object_store_memory") or default_object_store_memory())
            gpu_ids = []
            if not driver_node:  # a driver node adds nothing to the cluster
                resources, gpu_ids = node_resources.resolve(resources, store_bytes)
            if gpu_ids:
                args += ["--gpu-ids", ",".join(gpu_ids)]
            cpus = resources.get("CPU", 0)
            args += ["--prestart", str(prestart if prestart is not None else max(1 if not driver_node else 0, int(cpus)))]
            for name, amount in resources.items():
                args += ["--resource", f"{name}={int(round(amount * RESOURCE_UNIT))}"]
            for key, value in (labels or {}).items():
                args += ["--label", f"{key}={value}"]
            args += ["--object-store-memory", str(store_bytes),
                     "--inline-threshold", str(int(store.get("inline_threshold") or 100 * 1024))]
            if store.get("spill_dir"):
                args += ["--spill-dir", str(store["spill_dir"])]
            args += list(store.get("node_flags") or ())
            args += _worker_env_args(self.session_dir)
            index, self.node_id = self._spawn("node", args, lifeline_r, env)
            self.node_index = int(index)
            if head and dashboard:
                self._start_dashboard(dashboard, lifeline_r, env)
        except BaseException:
            self.stop()
            raise
        finally:
            if lifeline_r >= 0:
                os.close(lifeline_r)
        return self

    def _start_dashboard(self, options: dict, lifeline_r: int, env: dict) -> None:
        """Starts the dashboard beside the head's daemons on a socket bound here, so the URL is
        known at once and nobody waits for the server to come up. A port that cannot be had is
        an error only if the dashboard was asked for explicitly (else the cluster runs without
        it, with a warning)."""
        from quanta.dashboard import launch

        host = options.get("host") or "127.0.0.1"
        try:
            sock = launch.bind(host, options["port"], options.get("explicit"))
        except OSError as e:
            if options.get("required"):
                raise JoinError(str(e)) from None
            print(f"quanta: the cluster runs without its dashboard: {e}", file=sys.stderr)
            return
        args = [sys.executable, "-m", "quanta.dashboard", "--session-dir", self.session_dir,
                "--listen-fd", str(sock.fileno())]
        for _, proc in self._procs:
            args += ["--watch-pid", str(proc.pid)]
        fds = (sock.fileno(),)
        if lifeline_r >= 0:
            args += ["--lifeline-fd", str(lifeline_r)]
            fds += (lifeline_r,)
        env = dict(env, QUANTA_DASHBOARD_TOKEN=options["token"])
        if not _on_default_path(_PACKAGE_ROOT):
            inherited = env.get("PYTHONPATH")
            env["PYTHONPATH"] = _PACKAGE_ROOT + (os.pathsep + inherited if inherited else "")
        out_path = os.path.join(self.session_dir, "logs", "dashboard.out")
        out_fd = os.open(out_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
        try:
            proc = subprocess.Popen(args, pass_fds=fds, stdout=out_fd, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, close_fds=True, start_new_session=True, env=env)
        finally:
            os.close(out_fd)
            port = sock.getsockname()[1]
            sock.close()
        self._procs.append(("dashboard", proc))
        shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
        self.dashboard_url = f"http://{shown}:{port}"

    def _spawn(self, role: str, args: list, lifeline_r: int, env: dict, timeout: float = 30.0) -> list:
        """Starts a daemon and waits for its "ready <details...>" line; returns the details."""
        ready_r, ready_w = os.pipe()
        args = args + ["--ready-fd", str(ready_w)]
        fds = (ready_w,)
        if lifeline_r >= 0:
            args += ["--lifeline-fd", str(lifeline_r)]
            fds += (lifeline_r,)
        out_path = os.path.join(self.session_dir, "logs", f"{role}.out")
        out_fd = os.open(out_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
        try:
            proc = subprocess.Popen(args, pass_fds=fds, stdout=out_fd, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, close_fds=True, start_new_session=True, env=env)
        finally:
            os.close(out_fd)
            os.close(ready_w)
        self._procs.append((role, proc))
        try:
            return self._wait_ready(role, proc, ready_r, timeout, out_path)
        finally:
            os.close(ready_r)

    def _wait_ready(self, role, proc, ready_r, timeout, out_path) -> list:
        deadline = time.monotonic() + timeout
        data = b""
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise JoinError(f"the Quanta {role} daemon did not start within {timeout:.0f} s; "
                                f"see {self.session_dir}/logs")
            readable, _, _ = select.select([ready_r], [], [], min(left, 0.2))
            if readable:
                chunk = os.read(ready_r, 256)
                data += chunk
                if data.endswith(b"\n"):
                    return data.decode().split()[1:]
                if not chunk:
                    break  # EOF without "ready": it exited
            elif proc.poll() is not None:
                break
        proc.wait(5)
        reason = _tail(out_path) or _tail(os.path.join(self.session_dir, "logs", f"{role}.log"))
        reason = "\n".join(line.removeprefix(f"quanta_{role}: ") for line in reason.splitlines())
        raise JoinError(f"the Quanta {role} daemon failed to start: {reason.strip() or 'no output'}\n"
                        f"(logs: {self.session_dir}/logs)")

    def pids(self) -> list:
        return [p.pid for _, p in self._procs]

    def write_record(self, *, head: bool, started_by: str, driver_node: bool = False) -> None:
        processes = []
        for role, p in self._procs:
            exe = sys.executable if role == "dashboard" else binary(f"quanta_{role}")
            processes.append({"role": role, "pid": p.pid, "start_time": process_start_time(p.pid),
                              "exe": os.path.realpath(exe)})
        record = {"version": 1, "session_dir": self.session_dir, "node_socket": self.node_socket,
                  "control_socket": self.control_socket if head else None,
                  "control_address": self.control_address, "head": head, "driver_node": driver_node,
                  "node_index": self.node_index, "node_id": self.node_id, "started_by": started_by,
                  "dashboard_url": self.dashboard_url, "processes": processes,
                  "storage": self.storage, "control_args": self.control_args}
        runtime_dir.write_private(os.path.join(self.session_dir, "node.json"), json.dumps(record, indent=1))

    # ------------------------------------------------------------------ stopping

    def stop(self, timeout: float = 2.0) -> None:
        if self._lifeline_w is not None:
            os.close(self._lifeline_w)  # daemons see EOF and exit, killing their workers
            self._lifeline_w = None
        else:
            for _, p in self._procs:
                if p.poll() is None:
                    p.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for _, p in reversed(self._procs):
            try:
                p.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        self._procs = []

    def wait(self) -> int:
        """Blocks until a daemon exits (for `quanta start --block`); returns its status, or 0
        once stop() (e.g. from a signal handler) has stopped them all."""
        while self._procs:
            for _, p in self._procs:
                code = p.poll()
                if code is not None:
                    return code
            time.sleep(0.2)
        return 0


def _worker_env_args(session_dir: str) -> list:
    args = ["--worker-env", "QUANTA_DRIVER_SYS_PATH=" + json.dumps([p for p in sys.path if p])]
    # Workers import the same quanta package as this driver (and its node daemon), even if another
    # copy is installed: `python -m quanta...` resolves before any code runs.
    if not _on_default_path(_PACKAGE_ROOT):
        inherited = os.environ.get("PYTHONPATH")
        args += ["--worker-env", "PYTHONPATH=" + _PACKAGE_ROOT + (os.pathsep + inherited if inherited else "")]
    args += ["--worker-env", "QUANTA_SESSION_DIR=" + session_dir]
    # As Ray does: one BLAS/OpenMP thread per worker unless the user chose otherwise, so workers
    # sharing the cores do not oversubscribe them with spinning BLAS threads.
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        if var not in os.environ:
            args += ["--worker-env", f"{var}=1"]
    return args


# ---------------------------------------------------------------------- process identity


def process_start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (field 22 of /proc/<pid>/stat)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[19])
    except (OSError, IndexError, ValueError):
        return None


def is_session_daemon(entry: dict, session_dir: str) -> bool:
    """True only if `entry`'s pid is, right now, the daemon this session recorded: same start
    time, same executable, started for this session directory, owned by this user."""
    pid = entry.get("pid")
    if not isinstance(pid, int) or pid <= 1:
        return False
    try:
        if os.stat(f"/proc/{pid}").st_uid != os.geteuid():
            return False
        if process_start_time(pid) != entry.get("start_time"):
            return False  # the pid was reused since
        if os.path.realpath(f"/proc/{pid}/exe") != entry.get("exe"):
            return False
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = f.read().split(b"\0")
    except OSError:
        return False
    try:
        i = argv.index(b"--session-dir")
    except ValueError:
        return False
    return i + 1 < len(argv) and argv[i + 1] == os.fsencode(session_dir)


def signal_daemon(entry: dict, session_dir: str, sig: int) -> bool:
    """Signals the recorded daemon if (and only if) it is proven to be it; True if signalled.
    A pidfd pins the process between the check and the signal, so a pid reused in between is
    never hit."""
    pid = entry.get("pid")
    try:
        pidfd = os.pidfd_open(pid)
    except (OSError, TypeError, AttributeError):
        return False
    try:
        if not is_session_daemon(entry, session_dir):
            return False
        signal.pidfd_send_signal(pidfd, sig)
        return True
    except OSError:
        return False
    finally:
        os.close(pidfd)


def alive(entry: dict, session_dir: str) -> bool:
    return is_session_daemon(entry, session_dir) and _state(entry["pid"]) not in ("Z", "X", None)


def _state(pid: int):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return None


def restart_control(record: dict, env: dict) -> int:
    """Starts the control service of a running head session again, with the command line it
    had (same socket, port and --storage: it reloads its tables and the session's nodes rejoin),
    and records its new pid. Returns the pid; raises JoinError if it does not start."""
    session = Session(record["session_dir"])
    session._spawn("control", list(record["control_args"]), -1, env)
    proc = session._procs[-1][1]
    record = dict(record)
    record["processes"] = [e for e in record.get("processes") or [] if e.get("role") != "control"] + [
        {"role": "control", "pid": proc.pid, "start_time": process_start_time(proc.pid),
         "exe": os.path.realpath(binary("quanta_control"))}]
    runtime_dir.write_private(os.path.join(record["session_dir"], "node.json"), json.dumps(record, indent=1))
    return proc.pid


# ---------------------------------------------------------------------- finding sessions


def running_sessions(*, base: str | None = None) -> list[dict]:
    """Records of this user's sessions on this host whose node daemon runs, newest first."""
    base = base or runtime_dir.root()
    out = []
    for path in reversed(runtime_dir.sessions(base)):
        record = runtime_dir.read_record(path)
        if record is None or record.get("session_dir") != path:
            continue
        if runtime_dir.session_in_use(path):
            out.append(record)
    return out


def _normalize(address: str) -> str:
    host, _, port = address.rpartition(":")
    if host in ("localhost", "0.0.0.0", ""):
        host = "127.0.0.1"
    return f"{host}:{port}"


def find_local_node(control_address: str) -> dict | None:
    """The record of a running node of this host that belongs to the cluster at
    `control_address` (the head's own node first)."""
    want = _normalize(control_address)
    candidates = [r for r in running_sessions() if r.get("control_address") and
                  _normalize(r["control_address"]) == want and not r.get("driver_node")]
    candidates.sort(key=lambda r: (not r.get("head"), r.get("node_index") or 0))
    return candidates[0] if candidates else None


def resolve_address(address: str) -> str:
    """The node socket for `address`: "auto" (QUANTA_ADDRESS, or the newest cluster started on
    this host with `quanta start`), a session directory, or a node socket path. HOST:PORT
    addresses are handled by the caller (a local node of that cluster, or a driver node)."""
    base = runtime_dir.root()
    if address == "auto":
        env = os.environ.get("QUANTA_ADDRESS")
        if env and env != "auto":
            return resolve_address(env)
        latest = runtime_dir.follow_link(base, "cluster_latest")
        if latest is None or not runtime_dir.session_in_use(latest):
            raise ConnectionError("quanta.init(address='auto') found no running cluster on this host; start one "
                                  "with `quanta start --head`, or call quanta.init() for a local one")
        address = latest
    if os.path.isdir(address):
        runtime_dir.check_private(address, want_dir=True)
        sock = os.path.join(address, "sockets", "node.sock")
    else:
        sock = address
    if not os.path.lexists(sock):
        raise ConnectionError(f"no Quanta cluster at {address!r} (no node socket {sock}); is it "
                              "running? (`quanta start --head` starts one)")
    runtime_dir.check_private(sock, want_socket=True)
    return sock


def _tail(path: str, lines: int = 20) -> str:
    try:
        with open(path, "rb") as f:
            return b"\n".join(f.read().splitlines()[-lines:]).decode("utf-8", "replace")
    except OSError:
        return ""
