"""A job's working directory travels to the head as a zip named by its content hash.

The client zips the folder (skipping __pycache__ and .git, at most MAX_PACKAGE_BYTES zipped),
uploads it once (PUT /api/packages/<sha256>.zip) and names it in the job's runtime_env as
"quanta_pkg://<sha256>.zip". The head checks the hash and unpacks it into
`<session>/job_packages/<sha256>/` refusing absolute paths, '..' and links, and files whose
unpacked total exceeds MAX_UNPACKED_BYTES.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import shutil
import stat
import zipfile

MAX_PACKAGE_BYTES = 100 << 20
MAX_UNPACKED_BYTES = 1 << 30
SCHEME = "quanta_pkg://"
NAME = re.compile(r"^[0-9a-f]{64}\.zip$")
SKIP = {"__pycache__", ".git", ".hg", ".svn", ".mypy_cache", ".pytest_cache"}


class PackageError(ValueError):
    """A working directory that cannot be packed, or a package that is refused."""


def zip_folder(path: str) -> bytes:
    path = os.path.abspath(path)
    if not os.path.isdir(path):
        raise PackageError(f"working_dir {path!r} is not a directory")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for root, dirs, files in os.walk(path):
            dirs[:] = sorted(d for d in dirs if d not in SKIP and not os.path.islink(os.path.join(root, d)))
            for name in sorted(files):
                full = os.path.join(root, name)
                if os.path.islink(full) or not os.path.isfile(full):
                    continue
                z.write(full, os.path.relpath(full, path))
                if buf.tell() > MAX_PACKAGE_BYTES:
                    raise PackageError(f"working_dir {path!r} zips to more than {MAX_PACKAGE_BYTES >> 20} MiB; "
                                       "leave data out of it (read it from shared storage instead)")
    return buf.getvalue()


def package_name(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest() + ".zip"


def packages_dir(session_dir: str) -> str:
    return os.path.join(session_dir, "job_packages")


def unpacked_path(session_dir: str, name: str) -> str:
    if not NAME.match(name):
        raise PackageError(f"invalid package name {name!r}: expected <sha256 hex>.zip")
    return os.path.join(packages_dir(session_dir), name[:-4])


def store(session_dir: str, name: str, data: bytes) -> str:
    """Unpacks an uploaded package (once); returns the folder."""
    from quanta._private import runtime_dir

    target = unpacked_path(session_dir, name)
    if package_name(data) != name:
        raise PackageError("the package's content does not match its name (sha256)")
    if os.path.isdir(target):
        return target
    root = packages_dir(session_dir)
    if not os.path.isdir(root):
        runtime_dir.make_private_dir(root)
    tmp = target + f".tmp{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    os.mkdir(tmp, 0o700)
    try:
        total = 0
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            for member in z.infolist():
                mode = member.external_attr >> 16
                name_ = member.filename
                parts = name_.replace("\\", "/").split("/")
                if name_.startswith("/") or ".." in parts or stat.S_ISLNK(mode):
                    raise PackageError(f"refusing package member {name_!r} (absolute path, '..' or link)")
                total += member.file_size
                if total > MAX_UNPACKED_BYTES:
                    raise PackageError(f"the package unpacks to more than {MAX_UNPACKED_BYTES >> 20} MiB")
                z.extract(member, tmp)
        os.rename(tmp, target)
    except zipfile.BadZipFile as e:
        raise PackageError(f"not a zip file: {e}") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target
