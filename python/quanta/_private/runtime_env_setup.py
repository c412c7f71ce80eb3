"""Runtime environments (Ray's runtime_env), on the worker side: the "env agent" step of a
worker's start (worker_main.py).

The node starts a worker for one environment, passing its hash and resolved JSON in
QUANTA_RUNTIME_ENV_HASH / QUANTA_RUNTIME_ENV (runtime_env.py made them). The worker:
1. sets env_vars in its own environment (before anything is imported);
2. with `pip`, before it connects: builds (or finds) the node's virtualenv for that requirement
   set under <session>/runtime_resources/pip/<hash> (`python -m venv --system-site-packages
   --without-pip`, a .pth naming this interpreter's site-packages so quanta and pip stay
   importable, then `pip install -r requirements.txt`), then re-execs itself with the venv's
   python (same pid, so the node still knows it);
3. after it connects: fetches each working_dir / py_modules package from the object store
   (over the cluster's authenticated transfer path when it lives on another node) and unpacks
   it once per node under <session>/runtime_resources/packages/<content hash>; working_dir
   becomes its cwd and first on sys.path, py_modules go on sys.path.
Each build or unpack runs under an exclusive file lock, so the workers of one environment that
start together wait for the one that builds. Everything under runtime_resources is mode 0700.
All of it must finish within config.setup_timeout_seconds. A failure raises SetupFailed with
the setup's output; the worker then answers its task with RuntimeEnvSetupError and exits.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
import zipfile

_READY = ".quanta-ready"
_IN_VENV = "QUANTA_RUNTIME_ENV_VENV"   # set across the re-exec: the venv is in place
_DEADLINE = "QUANTA_RUNTIME_ENV_DEADLINE"  # set across the re-exec: the setup's deadline (time.time())


class SetupFailed(Exception):
    pass


def load():
    """The environment this worker was started for (its wire JSON), or None."""
    raw = os.environ.get("QUANTA_RUNTIME_ENV")
    return (json.loads(raw), raw) if raw else (None, None)


def deadline_of(env) -> float:
    d = os.environ.get(_DEADLINE)
    if d:
        return float(d)
    t = (env.get("config") or {}).get("setup_timeout_seconds", 600)
    return float("inf") if t == -1 else time.time() + float(t)


def _timeout_text(env) -> str:
    t = (env.get("config") or {}).get("setup_timeout_seconds", 600)
    return (f"the runtime_env setup did not finish within setup_timeout_seconds={t}; raise "
            "runtime_env['config']['setup_timeout_seconds'] if it needs longer")


def _root(session_dir: str, *parts) -> str:
    path = os.path.join(session_dir, "runtime_resources", *parts)
    os.makedirs(path, mode=0o700, exist_ok=True)
    os.chmod(os.path.join(session_dir, "runtime_resources"), 0o700)
    return path


class _Lock:
    """An exclusive flock on `path`, waited for until `deadline` (released when the holder dies)."""

    def __init__(self, path, deadline, env):
        self.path, self.deadline, self.env = path, deadline, env

    def __enter__(self):
        self.fd = os.open(self.path, os.O_CREAT | os.O_RDWR | os.O_CLOEXEC, 0o600)
        while True:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return self
            except BlockingIOError:
                if time.time() > self.deadline:
                    os.close(self.fd)
                    raise SetupFailed(_timeout_text(self.env) + " (waiting for another worker's build)") from None
                time.sleep(0.05)

    def __exit__(self, *exc):
        os.close(self.fd)  # releases the lock


def apply_env_vars(env) -> None:
    for k, v in (env.get("env_vars") or {}).items():
        os.environ[k] = v


# ---------------------------------------------------------------------------- pip (before connecting)

def pip_key(pip: dict) -> str:
    return hashlib.sha256(json.dumps(pip, sort_keys=True).encode()).hexdigest()[:24]


def ensure_venv(env, session_dir, deadline) -> str:
    """The venv python for env['pip'], built on this node if it is not yet."""
    pip = env["pip"]
    base = _root(session_dir, "pip")
    venv = os.path.join(base, pip_key(pip))
    python = os.path.join(venv, "bin", "python")
    if os.path.exists(os.path.join(venv, _READY)):
        return python
    with _Lock(venv + ".lock", deadline, env):
        if os.path.exists(os.path.join(venv, _READY)):
            return python  # another worker built it while we waited
        shutil.rmtree(venv, ignore_errors=True)  # a half-built one (its builder died or failed)
        log = []
        try:
            _run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", venv], log, deadline, env)
            _inherit_site_packages(python)
            req = os.path.join(venv, "requirements.txt")
            with open(req, "w") as f:
                f.write("\n".join(pip["packages"]) + "\n")
            if pip["packages"]:
                _run([python, "-m", "pip", "install", "--disable-pip-version-check", "--no-input",
                      *pip.get("pip_install_options", []), "-r", req], log, deadline, env)
            if pip.get("pip_check"):
                _run([python, "-m", "pip", "check", "--disable-pip-version-check"], log, deadline, env)
            # The worker re-execs with this python: it must still find quanta's engine.
            _run([python, "-c", "import quanta._core"], log, deadline, env)
        except BaseException:
            shutil.rmtree(venv, ignore_errors=True)
            raise
        open(os.path.join(venv, _READY), "w").close()
    return python


def _inherit_site_packages(venv_python):
    """A .pth in the venv naming this interpreter's site-packages (quanta, pip, what the node
    has), after the venv's own, so what pip installs there wins."""
    import sysconfig

    venv = os.path.dirname(os.path.dirname(venv_python))
    out = sysconfig.get_path("purelib", "venv" if "venv" in sysconfig.get_scheme_names() else "posix_prefix",
                             vars={"base": venv, "platbase": venv})
    os.makedirs(out, exist_ok=True)
    dirs = [p for p in sys.path if p and ("site-packages" in p or "dist-packages" in p) and os.path.isdir(p)]
    with open(os.path.join(out, "_quanta_node_site.pth"), "w") as f:
        f.write("\n".join(dict.fromkeys(dirs)) + "\n")


def _run(cmd, log, deadline, env):
    remaining = deadline - time.time()
    if remaining <= 0:
        raise SetupFailed(_timeout_text(env) + "\n" + "".join(log)[-4000:])
    log.append(f"$ {' '.join(cmd)}\n")
    try:
        r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           timeout=None if remaining == float("inf") else remaining,
                           env={k: v for k, v in os.environ.items() if k != "QUANTA_WORKER_TOKEN"})
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
        log.append(out)
        raise SetupFailed(_timeout_text(env) + "; the output so far:\n" + "".join(log)[-4000:]) from None
    log.append(r.stdout)
    if r.returncode != 0:
        raise SetupFailed(f"`{' '.join(cmd)}` failed (exit status {r.returncode}); its output:\n"
                          + "".join(log)[-8000:])


def reexec_in_venv(python, socket_path, token, deadline, venv) -> None:
    env = dict(os.environ)
    env["QUANTA_WORKER_TOKEN"] = token
    env[_IN_VENV] = venv
    env[_DEADLINE] = repr(deadline)
    env["VIRTUAL_ENV"] = venv
    env["PATH"] = os.path.join(venv, "bin") + os.pathsep + env.get("PATH", "")
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(python, [python, "-u", "-m", "quanta._private.worker_main", socket_path], env)


# ---------------------------------------------------------------------------- packages (after connecting)

def setup_packages(env, session_dir, deadline) -> None:
    packages = env.get("_packages") or {}
    mods = env.get("py_modules") or []
    for uri in reversed(mods):
        path = _unpacked(uri, packages, session_dir, deadline, env)
        if path not in sys.path:
            sys.path.insert(0, path)
    wd = env.get("working_dir")
    if wd:
        path = _unpacked(wd, packages, session_dir, deadline, env)
        os.chdir(path)
        sys.path.insert(0, path)
        os.environ["PYTHONPATH"] = path + (os.pathsep + os.environ["PYTHONPATH"] if os.environ.get("PYTHONPATH") else "")


def _unpacked(uri, packages, session_dir, deadline, env) -> str:
    name = uri.rsplit("/", 1)[-1]
    stem, ext = os.path.splitext(name)
    dest = os.path.join(_root(session_dir, "packages"), stem)
    ready = dest + _READY  # beside it: the unpacked directory holds only the package
    if not os.path.exists(ready):
        with _Lock(dest + ".lock", deadline, env):
            if not os.path.exists(ready):
                data = _fetch(uri, packages, deadline, env)
                shutil.rmtree(dest, ignore_errors=True)
                tmp = dest + f".tmp{os.getpid()}"
                shutil.rmtree(tmp, ignore_errors=True)
                os.makedirs(tmp, mode=0o700)
                import io

                try:
                    with zipfile.ZipFile(io.BytesIO(data)) as z:
                        _safe_extract(z, tmp)
                except zipfile.BadZipFile as e:
                    raise SetupFailed(f"package {uri} is not a valid zip ({e})") from None
                os.rename(tmp, dest)
                open(ready, "w").close()
    if ext == ".zip":
        # A .zip working_dir holding a single top-level directory runs in that directory.
        entries = os.listdir(dest)
        if len(entries) == 1 and os.path.isdir(os.path.join(dest, entries[0])) and env.get("working_dir") == uri:
            return os.path.join(dest, entries[0])
    return dest


def _safe_extract(z, dest):
    root = os.path.realpath(dest)
    for info in z.infolist():
        target = os.path.realpath(os.path.join(dest, info.filename))
        if target != root and not target.startswith(root + os.sep):
            raise SetupFailed(f"package entry {info.filename!r} would land outside its directory")
        z.extract(info, dest)
        mode = (info.external_attr >> 16) & 0o777
        if mode and not info.is_dir():
            os.chmod(target, mode | 0o600)


def _fetch(uri, packages, deadline, env) -> bytes:
    ref_hex = packages.get(uri)
    if ref_hex is None:
        raise SetupFailed(f"the runtime_env names package {uri} but not where it is stored")
    import quanta
    from quanta.object_ref import ObjectRef

    remaining = deadline - time.time()
    if remaining <= 0:
        raise SetupFailed(_timeout_text(env))
    try:
        data = quanta.get(ObjectRef(bytes.fromhex(ref_hex)),
                          timeout=None if remaining == float("inf") else remaining)
    except quanta.exceptions.GetTimeoutError:
        raise SetupFailed(_timeout_text(env) + f" (fetching {uri})") from None
    except Exception as e:  # noqa: BLE001 - its owner (the driver) is gone, or the object lost
        raise SetupFailed(f"cannot fetch package {uri}: {type(e).__name__}: {e}") from None
    if hashlib.sha256(bytes(data)).hexdigest()[:40] != os.path.splitext(uri.rsplit("/", 1)[-1])[0]:
        raise SetupFailed(f"package {uri} arrived with other content than its hash names")
    return bytes(data)
