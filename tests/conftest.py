"""Shared fixtures and helpers for the Quanta behaviour tests.

Everything here drives real processes through the public API; nothing is mocked.

* ``cluster``: one local cluster with ``num_cpus=4`` shared by the whole session. It is started
  lazily and restarted only if a test in between used ``no_cluster`` (which shuts it down).
  It is shut down once, at the end of the session.
* ``no_cluster``: for tests that call ``init``/``shutdown`` themselves in this process.
* ``run_driver`` / ``Driver``: run a separate driver program (``python -c CODE``), either to
  completion or interactively, line by line, for lifecycle, orphan and log-streaming tests.
* ``descendants`` / ``alive``: /proc-based process inspection (no psutil needed).
* A per-test watchdog: a test that hangs for ``QUANTA_TEST_TIMEOUT`` seconds (default 300) dumps
  every thread's stack and ends the run, instead of eating the whole CI budget.
"""

import faulthandler
import os
import queue
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

import quanta

SHARED_NUM_CPUS = 4


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "subprocess_driver: the test starts its own cluster from a separate driver process"
    )


@pytest.fixture(autouse=True)
def _hang_watchdog(request):
    limit = float(os.environ.get("QUANTA_TEST_TIMEOUT", "300"))

    def expire():
        capture = request.config.pluginmanager.getplugin("capturemanager")
        if capture is not None:
            capture.suspend_global_capture(in_=True)  # so the report reaches the real stderr
        sys.stderr.write(f"\n*** {request.node.nodeid} still running after {limit:.0f}s; stacks:\n")
        faulthandler.dump_traceback(file=sys.stderr, all_threads=True)
        sys.stderr.flush()
        os._exit(70)

    timer = threading.Timer(limit, expire)
    timer.daemon = True
    timer.start()
    yield
    timer.cancel()


# --------------------------------------------------------------------------- cluster fixtures


@pytest.fixture(scope="session")
def _shutdown_at_session_end():
    yield
    if quanta.is_initialized():
        quanta.shutdown()


@pytest.fixture
def cluster(_shutdown_at_session_end):
    """A running cluster with 4 CPUs, shared between tests (started once, reused)."""
    if quanta.is_initialized() and quanta.cluster_resources().get("CPU") != SHARED_NUM_CPUS:
        quanta.shutdown()  # e.g. left behind by an auto-initialising call
    if not quanta.is_initialized():
        quanta.init(num_cpus=SHARED_NUM_CPUS)
    yield


@pytest.fixture
def no_cluster(_shutdown_at_session_end):
    """No cluster in this process before the test; whatever the test started is shut down after."""
    if quanta.is_initialized():
        quanta.shutdown()
    yield
    if quanta.is_initialized():
        quanta.shutdown()


@pytest.fixture
def make_cluster(no_cluster):
    """Factory for ``quanta.cluster_utils.Cluster``s (head initialized); each is shut down (and
    checked to leave nothing behind) after the test."""
    from quanta.cluster_utils import Cluster

    made = []

    def make(**kwargs):
        c = Cluster(initialize_head=True, shutdown_at_exit=False, **kwargs)
        made.append(c)
        return c

    yield make
    for c in made:
        c.shutdown()


# --------------------------------------------------------------------------- /proc helpers


def _read_stat(pid):
    """Return (ppid, state, starttime) of a pid from /proc, or None if it does not exist."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            data = fh.read().decode("utf-8", "replace")
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # The command name (field 2) is in parentheses and may itself contain spaces or ')'.
    rest = data[data.rfind(")") + 2 :].split()
    state, ppid, starttime = rest[0], int(rest[1]), int(rest[19])
    return ppid, state, starttime


def process_identity(pid):
    """(pid, starttime), so a recycled pid is not mistaken for the original process."""
    stat = _read_stat(pid)
    return None if stat is None else (pid, stat[2])


def alive(identity):
    """True while the process exists and is not a zombie (and its pid was not recycled)."""
    pid, starttime = identity
    stat = _read_stat(pid)
    return stat is not None and stat[1] not in ("Z", "X") and stat[2] == starttime


def descendants(root_pid):
    """Identities of all living descendants of ``root_pid`` (children, grandchildren, ...)."""
    children = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        stat = _read_stat(int(name))
        if stat is None or stat[1] in ("Z", "X"):
            continue
        children.setdefault(stat[0], []).append((int(name), stat[2]))
    found, todo = set(), [root_pid]
    while todo:
        for pid, starttime in children.get(todo.pop(), []):
            if (pid, starttime) not in found:
                found.add((pid, starttime))
                todo.append(pid)
    return found


def wait_until_gone(identities, timeout):
    """Poll until none of ``identities`` is alive; return the ones still alive at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        left = {ident for ident in identities if alive(ident)}
        if not left or time.monotonic() >= deadline:
            return left
        time.sleep(0.05)


def describe(identities):
    out = []
    for pid, _ in sorted(identities):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                cmd = fh.read().replace(b"\0", b" ").decode("utf-8", "replace").strip()
        except OSError:
            cmd = "?"
        out.append(f"{pid}: {cmd[:160]}")
    return "\n".join(out)


def kill_all(identities):
    for ident in identities:
        if alive(ident):
            try:
                os.kill(ident[0], signal.SIGKILL)
            except ProcessLookupError:
                pass


# --------------------------------------------------------------------------- driver programs


def _driver_env(extra=None):
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    if extra:
        env.update(extra)
    return env


def run_driver(code, timeout=120, env=None):
    """Run ``python -c CODE`` to completion; return the CompletedProcess (text, both streams)."""
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=_driver_env(env),
    )


class Driver:
    """An interactive driver program: read its merged stdout/stderr line by line, talk on stdin."""

    def __init__(self, code, env=None):
        self.proc = subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(code)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
            env=_driver_env(env),
        )
        self.pid = self.proc.pid
        self.lines = []
        self._queue = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.tracked = set()  # process identities to clean up if the test fails

    def _read(self):
        for line in self.proc.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def _drain(self, block_for):
        try:
            line = self._queue.get(timeout=block_for)
        except queue.Empty:
            return False
        if line is None:
            self._queue.put(None)  # keep the end marker for later callers
            return None
        self.lines.append(line)
        return True

    def wait_for(self, pattern, timeout=60):
        """Wait for an output line matching ``pattern`` (regex); return the match."""
        regex = re.compile(pattern)
        for line in self.lines:
            m = regex.search(strip_ansi(line))
            if m:
                return m
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self._drain(min(0.2, max(0.0, deadline - time.monotonic())))
            if got is None:
                break
            if got:
                m = regex.search(strip_ansi(self.lines[-1]))
                if m:
                    return m
        raise AssertionError(
            f"no line matching {pattern!r} within {timeout}s; driver output so far:\n" + self.output
        )

    def collect(self, seconds):
        """Keep reading output for ``seconds`` (or until the driver closes its output)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self._drain(min(0.2, max(0.0, deadline - time.monotonic()))) is None:
                break

    @property
    def output(self):
        return "\n".join(self.lines)

    def send(self, text):
        self.proc.stdin.write(text + "\n")
        self.proc.stdin.flush()

    def wait_exit(self, timeout=60):
        rc = self.proc.wait(timeout=timeout)
        self._reader.join(timeout=5)
        self.collect(0)
        while self._drain(0):
            pass
        return rc

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        kill_all(self.tracked)


@pytest.fixture
def start_driver():
    """Factory for interactive drivers; kills them (and tracked processes) at teardown."""
    drivers = []

    def start(code, env=None):
        d = Driver(code, env=env)
        drivers.append(d)
        return d

    yield start
    for d in drivers:
        d.close()


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def strip_ansi(text):
    return _ANSI.sub("", text)


# ------------------------------------------------------------------ object store helpers

MiB = 1 << 20
STORE = 512 * MiB  # small enough that tests can fill it


@pytest.fixture
def store(no_cluster):
    """A fresh cluster with a 512 MiB object store and the default spill directory."""
    quanta.init(num_cpus=2, object_store_memory=STORE)
    yield


def store_summary():
    return quanta.memory_summary()


def store_stats():
    return quanta.memory_summary(stats_only=True)
