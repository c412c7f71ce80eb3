"""The Logs part of issue 15, the pieces not covered elsewhere: old session directories are
removed beyond the newest N (QUANTA_KEEP_SESSIONS) but never one in use or still starting, and a
bad setting is refused; a worker printing faster than the driver's rate limit has lines dropped
with one summary line whose count adds up. (Rotation by size with bounded backups:
src/common/rotating_file_test.cc and test_resource_bounds.py; a driver that stops reading:
test_resource_bounds.py.)"""

import fcntl
import os
import re
import subprocess
import sys
import time

import pytest

from quanta._private import runtime_dir


def _fake_session(base, i, age_s):
    path = os.path.join(base, f"session_2026-01-01_00-00-{i:02d}_{1000 + i}_abcdef")
    os.makedirs(os.path.join(path, "logs"), mode=0o700)
    os.chmod(path, 0o700)
    with open(os.path.join(path, "logs", "node.log"), "w") as f:
        f.write("old\n")
    t = time.time() - age_s
    os.utime(path, (t, t))
    return path


def test_old_sessions_beyond_the_newest_n_are_removed_but_not_one_in_use_or_starting(tmp_path):
    base = str(tmp_path / "root")
    os.makedirs(base, mode=0o700)
    paths = [_fake_session(base, i, 3600) for i in range(12)]
    in_use = paths[1]
    fd = os.open(os.path.join(in_use, "node.lock"), os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as a running node daemon holds it
    os.utime(in_use, (time.time() - 3600,) * 2)  # old, only its lock keeps it
    young = _fake_session(base, 40, 0)  # sorts last, but: started a moment ago
    os.utime(young, None)
    starting = paths[2]
    os.utime(starting, None)  # its daemons may not hold the lock yet
    try:
        runtime_dir.remove_old_sessions(base, keep=4)
    finally:
        os.close(fd)
    left = set(runtime_dir.sessions(base))
    assert left == set(paths[9:12]) | {young, in_use, starting}
    runtime_dir.remove_old_sessions(base, keep=0)  # the lock is released now; the young ones stay
    assert set(runtime_dir.sessions(base)) == {young, starting}


def test_new_session_keeps_quanta_keep_sessions_and_refuses_a_bad_value(tmp_path, monkeypatch):
    base = str(tmp_path / "root2")
    os.makedirs(base, mode=0o700)
    for i in range(6):
        _fake_session(base, i, 3600)
    monkeypatch.setattr(runtime_dir, "root", lambda temp_dir=None: base)
    monkeypatch.setenv("QUANTA_KEEP_SESSIONS", "2")
    new = runtime_dir.new_session()
    left = runtime_dir.sessions(base)
    assert new in left and len(left) == 2  # the newest old one, and the new one
    for bad in ("-1", "two", "1.5"):
        monkeypatch.setenv("QUANTA_KEEP_SESSIONS", bad)
        with pytest.raises(ValueError, match="QUANTA_KEEP_SESSIONS must be a whole number"):
            runtime_dir.new_session()


DRIVER = r"""
import quanta
quanta.init(num_cpus=1, include_dashboard=False)

@quanta.remote
def shout(n):
    import sys
    for i in range(n):
        sys.stdout.write(f"line {i}\n")
    sys.stdout.flush()
    return n

quanta.get(shout.remote(60000))
import time
time.sleep(1.5)  # the summary of what was dropped comes once the driver keeps up
quanta.shutdown()
"""


def test_output_beyond_the_rate_limit_is_dropped_with_a_summary_that_adds_up(tmp_path):
    r = subprocess.run([sys.executable, "-c", DRIVER], capture_output=True, text=True, timeout=120,
                       env={**os.environ, "QUANTA_INCLUDE_DASHBOARD": "0"})
    assert r.returncode == 0, r.stderr[-2000:]
    text = r.stdout + r.stderr
    shown = len(re.findall(r"\) line \d+", text))
    notes = re.findall(r"\.\.\. (\d+) lines", text)
    assert notes, text[-2000:]
    dropped = sum(int(n) for n in notes)
    print(f"[measure] shown {shown}, dropped {dropped} of 60000 lines")
    assert shown < 60000 and shown + dropped == 60000


def test_thirty_sessions_in_a_row_leave_at_most_quanta_keep_sessions_folders():
    """Programs that start and end clusters one after another (a test suite, a shell loop) do not
    pile up session folders: a session whose node daemon ran and ended is removed at once."""
    import shutil
    import tempfile

    tmp = tempfile.mkdtemp(prefix="qk", dir="/tmp")  # short: socket paths must fit
    try:
        code = ("import quanta\n"
                "for _ in range(30):\n"
                "    quanta.init(num_cpus=1, include_dashboard=False)\n"
                "    quanta.shutdown()\n")
        env = dict(os.environ, TMPDIR=tmp, QUANTA_KEEP_SESSIONS="4")
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600)
        assert out.returncode == 0, out.stderr
        base = runtime_dir.root(tmp)
        left = runtime_dir.sessions(base)
        assert 1 <= len(left) <= 4, left
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
