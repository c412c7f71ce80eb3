"""The cluster token, as the daemons look for it (src/net/auth.h), and its generation.

Sources, first found wins: ``QUANTA_AUTH_TOKEN``, the file named by ``QUANTA_AUTH_TOKEN_PATH``,
``~/.quanta/auth_token``. `quanta start --head` generates a random token into
``~/.quanta/auth_token`` (mode 0600) when none exists. The launcher hands the token to the
daemons in their environment; they read it once and drop it, and workers never see it.
"""

from __future__ import annotations

import os
import secrets
import stat

SOURCES = ("the QUANTA_AUTH_TOKEN environment variable, the file named by QUANTA_AUTH_TOKEN_PATH, "
           "or ~/.quanta/auth_token (`quanta get-auth-token` on the head prints its token)")
MIN_LENGTH = 16


class TokenError(RuntimeError):
    """No usable cluster token."""


def default_path() -> str:
    return os.path.join(os.path.expanduser("~"), ".quanta", "auth_token")


def _read_file(path: str) -> str:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        raise TokenError(f"no cluster token: {path} does not exist; set {SOURCES}") from None
    except OSError as e:
        raise TokenError(f"cannot read the token file {path}: {e}") from None
    with os.fdopen(fd) as f:
        st = os.fstat(f.fileno())
        if st.st_uid != os.geteuid():
            raise TokenError(f"the token file {path} belongs to uid {st.st_uid}, not to you; refusing to use it")
        if st.st_mode & 0o077:
            raise TokenError(f"the token file {path} is accessible to other users (mode "
                             f"{stat.S_IMODE(st.st_mode):03o}); run `chmod 600 {path}`")
        return f.read(4097).strip()


def load() -> tuple[str, str]:
    """(token, where it came from); raises TokenError naming the sources."""
    token = os.environ.get("QUANTA_AUTH_TOKEN", "").strip()
    source = "QUANTA_AUTH_TOKEN"
    if not token:
        path = os.environ.get("QUANTA_AUTH_TOKEN_PATH") or default_path()
        token, source = _read_file(path), path
    if not MIN_LENGTH <= len(token) <= 4096:
        raise TokenError(f"the cluster token from {source} must be {MIN_LENGTH}-4096 characters long "
                         f"(got {len(token)})")
    return token, source


def load_or_generate() -> tuple[str, str, bool]:
    """(token, source, generated): the token in use, or a new one in ~/.quanta/auth_token."""
    try:
        token, source = load()
        return token, source, False
    except TokenError:
        if os.environ.get("QUANTA_AUTH_TOKEN") or os.environ.get("QUANTA_AUTH_TOKEN_PATH"):
            raise  # the user named a source: do not paper over it
        if os.path.lexists(default_path()):
            raise
    return generate(), default_path(), True


def generate() -> str:
    """Writes a new random token to ~/.quanta/auth_token (0600, never over an existing file)."""
    path = default_path()
    folder = os.path.dirname(path)
    os.makedirs(folder, mode=0o700, exist_ok=True)
    os.chmod(folder, 0o700)
    token = secrets.token_hex(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "w") as f:
        os.fchmod(f.fileno(), 0o600)
        f.write(token + "\n")
    return token
