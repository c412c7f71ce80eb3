"""The per-user runtime root and the session directories in it, which nothing is trusted from
until checked.

Every user gets their own root, ``<tmp>/quanta-<uid>`` (or ``$QUANTA_RUNTIME_DIR``), created
with mode 0700. Before anything in it is used — the root, a session directory, a ``*_latest``
link, a node record, a socket — it must be owned by the current user and writable by nobody
else; otherwise Quanta refuses with an error that says what is wrong and why (another user
may have planted it to capture your session). Files are created 0600 and directories 0700
whatever the umask.

Layout::

    <root>/session_<time>_<pid>_<rand>/   one per node daemon (or local cluster)
        logs/  sockets/  spill/           0700
        node.json                         what was started and how to find it (0600)
        node.lock                         held (flock) by the node daemon while it runs
    <root>/session_latest -> session_...  the newest session started on this host
    <root>/cluster_latest -> session_...  the newest session started by `quanta start`
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import shutil
import stat
import tempfile
import time
import uuid

KEEP_SESSIONS = 10  # finished sessions kept per host (QUANTA_KEEP_SESSIONS overrides)


def keep_sessions() -> int:
    """How many finished sessions new_session keeps: QUANTA_KEEP_SESSIONS (a whole number >= 0),
    else KEEP_SESSIONS; a value that is not one is refused, not ignored."""
    text = os.environ.get("QUANTA_KEEP_SESSIONS")
    if text is None or text.strip() == "":
        return KEEP_SESSIONS
    try:
        n = int(text)
    except ValueError:
        n = -1
    if n < 0:
        raise ValueError(f"QUANTA_KEEP_SESSIONS must be a whole number of sessions to keep (0 or more), got {text!r}")
    return n


class UnsafePathError(PermissionError):
    """A runtime path is not owned by this user, or others may write it."""


def root(temp_dir: str | None = None) -> str:
    """The current user's runtime root, created (0700) if missing and checked."""
    path = os.environ.get("QUANTA_RUNTIME_DIR") if temp_dir is None else None
    if not path:
        path = os.path.join(temp_dir or tempfile.gettempdir(), f"quanta-{os.geteuid()}")
    make_private_dir(path)
    return path


def check_private(path: str, *, want_dir: bool | None = None, want_socket: bool = False) -> os.stat_result:
    """Checks that `path` itself (not a link's target) belongs to this user and that no other
    user may write it; raises UnsafePathError saying what is wrong and what to do."""
    st = os.lstat(path)
    problem = None
    if stat.S_ISLNK(st.st_mode):
        problem = "is a symbolic link"
    elif st.st_uid != os.geteuid():
        problem = f"belongs to uid {st.st_uid}, not to you (uid {os.geteuid()})"
    elif want_dir is True and not stat.S_ISDIR(st.st_mode):
        problem = "is not a directory"
    elif want_dir is False and not stat.S_ISREG(st.st_mode):
        problem = "is not a regular file"
    elif want_socket and not stat.S_ISSOCK(st.st_mode):
        problem = "is not a socket"
    elif st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        problem = f"is writable by other users (mode {stat.S_IMODE(st.st_mode):03o})"
    elif stat.S_ISDIR(st.st_mode) and st.st_mode & 0o077:
        problem = f"is accessible to other users (mode {stat.S_IMODE(st.st_mode):03o})"
    if problem:
        raise UnsafePathError(
            f"refusing to use {path}: it {problem}. Another user may have created it to intercept "
            "your Quanta sessions. Remove it (or fix its owner and mode), or point TMPDIR or "
            "QUANTA_RUNTIME_DIR at a private directory.")
    return st


def make_private_dir(path: str) -> None:
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    else:
        os.chmod(path, 0o700)  # whatever the umask
    check_private(path, want_dir=True)


def private_spill_dir(path: str) -> str:
    """A spill directory the user chose (object_spilling_directory), created 0700 if missing;
    returns its real path. Spilled objects are read back and unpickled, so a directory that
    another user owns or may write (where they could swap a spilled file for their own pickle)
    is refused, like a planted runtime path."""
    path = os.path.realpath(os.path.expanduser(path))  # later changes to a link in the path do not matter
    try:
        os.makedirs(path, mode=0o700)
        os.chmod(path, 0o700)  # whatever the umask
    except FileExistsError:
        pass
    st = os.stat(path)
    problem = None
    if not stat.S_ISDIR(st.st_mode):
        problem = "is not a directory"
    elif st.st_uid != os.geteuid():
        problem = f"belongs to uid {st.st_uid}, not to you (uid {os.geteuid()})"
    elif st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        problem = f"is writable by other users (mode {stat.S_IMODE(st.st_mode):03o})"
    if problem:
        raise UnsafePathError(
            f"refusing to spill objects to {path}: it {problem}. Spilled objects are read back and "
            "unpickled, so whoever can write there could run code in your processes. Use a directory "
            "only you can write, e.g. a new subdirectory (it is created with mode 0700).")
    return path


def write_private(path: str, data: str) -> None:
    """Writes `data` to `path` (replacing it atomically), mode 0600."""
    tmp = f"{path}.{os.getpid()}.{uuid.uuid4().hex[:6]}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, data.encode())
    finally:
        os.close(fd)
    os.replace(tmp, path)


def read_private(path: str) -> str:
    check_private(path, want_dir=False)
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    with os.fdopen(fd) as f:
        return f.read()


def new_session(temp_dir: str | None = None) -> str:
    """A fresh session directory (logs/, sockets/ inside), linked as session_latest."""
    base = root(temp_dir)
    keep = keep_sessions()
    stamp = time.strftime("%Y-%m-%d_%H-%M-%S")
    path = os.path.join(base, f"session_{stamp}_{os.getpid()}_{uuid.uuid4().hex[:6]}")
    make_private_dir(path)
    for sub in ("logs", "sockets"):
        make_private_dir(os.path.join(path, sub))
    point_link(base, "session_latest", path)
    remove_old_sessions(base, keep=keep)
    return path


def point_link(base: str, name: str, target: str) -> None:
    link = os.path.join(base, name)
    tmp = f"{link}.{os.getpid()}.{uuid.uuid4().hex[:6]}"
    try:
        os.symlink(os.path.basename(target), tmp)
        os.replace(tmp, link)
    except OSError:
        pass


def follow_link(base: str, name: str) -> str | None:
    """The session a *_latest link names, if it is one of ours; None if there is no link."""
    link = os.path.join(base, name)
    try:
        st = os.lstat(link)
    except FileNotFoundError:
        return None
    if not stat.S_ISLNK(st.st_mode) or st.st_uid != os.geteuid():
        raise UnsafePathError(f"refusing to follow {link}: it is not a symbolic link of yours")
    target = os.readlink(link)
    if os.sep in target or not target.startswith("session_"):
        raise UnsafePathError(f"refusing to follow {link}: it points outside {base} ({target!r})")
    path = os.path.join(base, target)
    if not os.path.lexists(path):
        return None
    check_private(path, want_dir=True)
    return path


def session_in_use(path: str) -> bool:
    """True while a node daemon of this session runs (it holds node.lock)."""
    lock = os.path.join(path, "node.lock")
    try:
        fd = os.open(lock, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
        return e.errno in (errno.EWOULDBLOCK, errno.EAGAIN)
    finally:
        os.close(fd)
    return False


def sessions(base: str) -> list[str]:
    """Session directories under `base`, oldest first: by the second in their name, then (for
    sessions started within one second, whose names end in random letters) by modification time."""
    out = []
    for name in os.listdir(base):
        path = os.path.join(base, name)
        if name.startswith("session_") and not name.endswith("_latest") and not os.path.islink(path) \
                and os.path.isdir(path):
            try:
                mtime = os.lstat(path).st_mtime
            except OSError:
                continue
            out.append((name[:len("session_YYYY-MM-DD_HH-MM-SS")], mtime, path))
    return [path for _, _, path in sorted(out)]


def remove_old_sessions(base: str, keep: int) -> None:
    """Deletes the oldest finished sessions beyond the newest `keep` (never one in use)."""
    if keep < 0:
        return
    old = sessions(base)[:-keep] if keep else sessions(base)
    for path in old:
        try:
            check_private(path, want_dir=True)
            if not session_in_use(path) and not _starting(path):
                shutil.rmtree(path, ignore_errors=True)
        except (OSError, UnsafePathError):
            continue


def _starting(path: str) -> bool:
    """Whether a session whose node.lock nobody holds may still be starting. Its record
    (node.json) is written once its node daemon runs, and so holds node.lock: a session with a
    record and a free lock has ended, and is removed however young it is, so programs that start
    and end clusters one after another do not pile up folders. Without a record, a session
    younger than a minute may be starting its daemons."""
    if os.path.exists(os.path.join(path, "node.json")):
        return False
    try:
        return time.time() - os.lstat(path).st_mtime < 60
    except OSError:
        return False


def read_record(session_dir: str) -> dict | None:
    path = os.path.join(session_dir, "node.json")
    try:
        return json.loads(read_private(path))
    except FileNotFoundError:
        return None
    except (ValueError, UnsafePathError):
        return None
