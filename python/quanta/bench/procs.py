"""Process-tree helpers read straight from /proc (Linux only, stdlib only).

Used to find every process of a local cluster (the driver's descendants), to
sum their proportional set size, and to end a child run together with the
processes it started.
"""

import os
import signal
import time


def _stat(pid):
    """Fields of /proc/PID/stat after the command name, or None."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    # The command name is in parentheses and may itself contain spaces or
    # parentheses, so split after the last closing one: "state ppid ...".
    return data[data.rindex(b")") + 2 :].split()


def _parent_of(pid):
    fields = _stat(pid)
    return int(fields[1]) if fields else None


def snapshot(pid):
    """``{pid: start time}`` of ``pid``'s live descendants, to find them again
    after ``pid`` has died (they are then re-parented out of its tree)."""
    found = {}
    for p in descendants(pid):
        fields = _stat(p)
        if fields:
            found[p] = fields[19]
    return found


def end_leftovers(seen, grace_s=5.0):
    """End the processes of a :func:`snapshot` that are still alive (the same
    processes: same start time), after ``grace_s`` for them to exit by
    themselves.  Returns the names of those that had to be ended."""

    def alive():
        left = []
        for p, started in seen.items():
            fields = _stat(p)
            if fields and fields[19] == started and fields[0] != b"Z":
                left.append(p)
        return left

    deadline = time.monotonic() + grace_s
    while alive() and time.monotonic() < deadline:
        time.sleep(0.1)
    left = alive()
    names = [name_of(p) for p in left]
    for p in left:
        try:
            os.kill(p, signal.SIGKILL)
        except OSError:
            pass
    return names


def descendants(pid):
    """PIDs of all live descendants of ``pid`` (not ``pid`` itself)."""
    children = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            ppid = _parent_of(int(entry))
            if ppid is not None:
                children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), ()):
            found.append(child)
            todo.append(child)
    return found


def name_of(pid):
    """A short name for ``pid``: its command, or for a Python process the
    script or module it runs (``python -m foo``, ``python log_monitor.py``)."""
    try:
        with open(f"/proc/{pid}/comm") as f:
            comm = f.read().strip()
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
    except OSError:
        return "?"
    if not comm.startswith("python") or len(argv) < 2:
        return comm
    rest = [a for a in argv[1:] if not a.startswith("-") or a in ("-c", "-m")]
    if rest[:1] == ["-m"] and len(rest) > 1:
        return f"python -m {rest[1]}"
    if rest[:1] == ["-c"]:
        spawned = len(rest) > 1 and "multiprocessing" in rest[1]
        return "python (multiprocessing child)" if spawned else "python -c"
    return f"python {os.path.basename(rest[0])}" if rest else comm


def pss_kib(pid):
    """Proportional set size of ``pid`` in KiB from smaps_rollup, or None."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def wait_until_settled(pid, quiet_s, max_s, poll_s=0.25):
    """Wait until the set of ``pid``'s descendants stays unchanged for
    ``quiet_s`` seconds (at most ``max_s``).  Returns the seconds waited."""
    start = last_change = time.monotonic()
    seen = set(descendants(pid))
    while True:
        now = time.monotonic()
        if now - last_change >= quiet_s or now - start >= max_s:
            return now - start
        time.sleep(poll_s)
        current = set(descendants(pid))
        if current != seen:
            seen, last_change = current, time.monotonic()


def kill_tree(pid, grace_s=3.0):
    """End ``pid`` and every process it started, each by its own id.

    The descendants are listed before anything is signalled, since a child
    whose parent dies is re-parented and can no longer be found by walking
    down from ``pid``.
    """
    pids = [pid] + descendants(pid)
    for p in pids:
        try:
            os.kill(p, signal.SIGTERM)
        except OSError:
            pass
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and any(_alive(p) for p in pids):
        time.sleep(0.1)
    for p in pids:
        if _alive(p):
            try:
                os.kill(p, signal.SIGKILL)
            except OSError:
                pass


def _alive(pid):
    fields = _stat(pid)
    return bool(fields) and fields[0] != b"Z"
