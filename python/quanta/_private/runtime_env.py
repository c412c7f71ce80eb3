"""Runtime environments (Ray's runtime_env), on the submitting side.

A runtime_env is checked when it is given (quanta.init, @remote, .options(), actor options),
merged over the job's default when a task or actor is submitted (env_vars merged by key, every
other field replaced, as Ray does), and resolved once per distinct value:
- local working_dir / py_modules are zipped (working_dir with `excludes`, gitignore-style),
  named by the SHA-256 of their content and put in the object store once per content, so any
  node fetches them over the cluster's own authenticated transfer path;
- a pip requirements.txt path is read into its list of requirements.
The resolved environment is canonical JSON; its hash (the first 32 hex digits of its SHA-256)
names it on the wire (TaskSpec.runtime_env_hash) and keys the node's worker pools. What the
worker does with it is in runtime_env_setup.py.

Thread-safety: the caches are guarded by one lock; resolution of a new environment (zipping)
runs under it, so concurrent submitters of the same environment pack it once.
"""

from __future__ import annotations

import fnmatch
import hashlib
import io
import json
import os
import threading
import zipfile

SUPPORTED_FIELDS = ("env_vars", "working_dir", "py_modules", "pip", "excludes", "config")
_CONFIG_FIELDS = ("setup_timeout_seconds", "eager_install")
_PIP_FIELDS = ("packages", "pip_check", "pip_install_options", "pip_version")
DEFAULT_SETUP_TIMEOUT_S = 600  # Ray's default
DEFAULT_PACKAGE_LIMIT = 500 << 20  # Ray's limit on a working_dir / py_module package
PACKAGE_SCHEME = "quanta-pkg://"

_lock = threading.Lock()
_resolved: dict = {}   # canonical JSON of a merged, unresolved env -> (hash, wire JSON, [ref ids])
_packages: dict = {}   # (kind, abs path, excludes) -> (uri, ObjectRef) ; the ref keeps it alive
_by_content: dict = {}  # uri -> ObjectRef


class RuntimeEnv(dict):
    """Ray's ray.runtime_env.RuntimeEnv: a dict of runtime_env fields, checked when built."""

    def __init__(self, *, env_vars=None, working_dir=None, py_modules=None, pip=None, excludes=None,
                 config=None, **other):
        fields = {"env_vars": env_vars, "working_dir": working_dir, "py_modules": py_modules, "pip": pip,
                  "excludes": excludes, "config": config, **other}
        super().__init__({k: v for k, v in fields.items() if v is not None})
        validate(dict(self))


def package_limit() -> int:
    """The largest working_dir / py_module package, in bytes (QUANTA_RUNTIME_ENV_MAX_PACKAGE_MB)."""
    mb = os.environ.get("QUANTA_RUNTIME_ENV_MAX_PACKAGE_MB")
    return int(float(mb) * (1 << 20)) if mb else DEFAULT_PACKAGE_LIMIT


def validate(env) -> dict:
    """The runtime_env checked and normalised (a plain dict; {} for None). Raises TypeError or
    ValueError saying what is wrong and what is supported."""
    if env is None:
        return {}
    if not isinstance(env, dict):
        raise TypeError(f"runtime_env must be a dict, got {type(env).__name__}")
    unknown = sorted(set(env) - set(SUPPORTED_FIELDS))
    if unknown:
        raise ValueError(f"runtime_env field(s) {unknown} are not supported; Quanta supports "
                         f"{list(SUPPORTED_FIELDS)} (conda, container, image_uri, uv and plugins are not; "
                         "see docs/ray-compatibility.md)")
    out = {}
    ev = env.get("env_vars")
    if ev is not None:
        if not isinstance(ev, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in ev.items()):
            raise TypeError(f"runtime_env['env_vars'] must be a dict of str to str, got {ev!r}")
        if any(not k or "=" in k or "\0" in k or "\0" in v for k, v in ev.items()):
            raise ValueError("runtime_env['env_vars'] names must be non-empty without '=' or NUL")
        out["env_vars"] = dict(ev)
    wd = env.get("working_dir")
    if wd is not None:
        out["working_dir"] = _path(wd, "working_dir")
    mods = env.get("py_modules")
    if mods is not None:
        if not isinstance(mods, (list, tuple)):
            raise TypeError(f"runtime_env['py_modules'] must be a list of paths, got {type(mods).__name__}")
        out["py_modules"] = [_path(m, "py_modules") for m in mods]
    ex = env.get("excludes")
    if ex is not None:
        if not isinstance(ex, (list, tuple)) or not all(isinstance(p, str) for p in ex):
            raise TypeError(f"runtime_env['excludes'] must be a list of patterns (str), got {ex!r}")
        out["excludes"] = list(ex)
    if env.get("pip") is not None:
        out["pip"] = _pip(env["pip"])
    cfg = env.get("config")
    if cfg is not None:
        if not isinstance(cfg, dict):
            raise TypeError(f"runtime_env['config'] must be a dict, got {type(cfg).__name__}")
        bad = sorted(set(cfg) - set(_CONFIG_FIELDS))
        if bad:
            raise ValueError(f"runtime_env['config'] field(s) {bad} are not supported; supported: {list(_CONFIG_FIELDS)}")
        t = cfg.get("setup_timeout_seconds", DEFAULT_SETUP_TIMEOUT_S)
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not (t > 0 or t == -1):
            raise ValueError(f"runtime_env['config']['setup_timeout_seconds'] must be > 0 seconds (or -1: no "
                             f"limit), got {t!r}")
        eager = cfg.get("eager_install", True)
        if not isinstance(eager, bool):
            raise TypeError(f"runtime_env['config']['eager_install'] must be True or False, got {eager!r}")
        out["config"] = {"setup_timeout_seconds": t, "eager_install": eager}
    return out


def _path(p, field) -> str:
    if isinstance(p, os.PathLike):
        p = os.fspath(p)
    if not isinstance(p, str) or not p:
        raise TypeError(f"runtime_env['{field}'] entries must be local paths (str), got {p!r}")
    if "://" in p and not p.startswith(PACKAGE_SCHEME):
        raise ValueError(f"runtime_env['{field}']={p!r}: remote URIs are not supported; give a local directory, "
                         ".zip" + (", .py or .whl" if field == "py_modules" else "") + " path")
    return p


def _pip(pip) -> dict:
    if isinstance(pip, (list, tuple)):
        pip = {"packages": list(pip)}
    elif isinstance(pip, (str, os.PathLike)):
        pip = {"packages": os.fspath(pip)}
    if not isinstance(pip, dict):
        raise TypeError(f"runtime_env['pip'] must be a list of requirements, a requirements.txt path or "
                        f"a dict with 'packages', got {type(pip).__name__}")
    bad = sorted(set(pip) - set(_PIP_FIELDS))
    if bad:
        raise ValueError(f"runtime_env['pip'] field(s) {bad} are not supported; supported: {list(_PIP_FIELDS)}")
    if pip.get("pip_version"):
        raise ValueError("runtime_env['pip']['pip_version'] is not supported: the venv uses the node's pip "
                         "(installing another pip would need the network)")
    pkgs = pip.get("packages")
    if isinstance(pkgs, str):
        pkgs = _read_requirements(pkgs)
    if not isinstance(pkgs, (list, tuple)) or not all(isinstance(r, str) for r in pkgs):
        raise TypeError(f"runtime_env['pip']['packages'] must be a list of requirement strings, got {pkgs!r}")
    opts = pip.get("pip_install_options", [])
    if not isinstance(opts, (list, tuple)) or not all(isinstance(o, str) for o in opts):
        raise TypeError("runtime_env['pip']['pip_install_options'] must be a list of str")
    check = pip.get("pip_check", False)
    if not isinstance(check, bool):
        raise TypeError("runtime_env['pip']['pip_check'] must be True or False")
    return {"packages": [r.strip() for r in pkgs if r.strip()], "pip_check": check,
            "pip_install_options": list(opts)}


def _read_requirements(path) -> list:
    try:
        with open(path, encoding="utf-8") as f:
            return [ln.strip() for ln in f if ln.strip() and not ln.lstrip().startswith("#")]
    except OSError as e:
        raise ValueError(f"runtime_env['pip']: cannot read requirements file {path!r}: {e}") from None


def merge(parent: dict, child: dict) -> dict:
    """`child` over `parent`, as Ray merges a task's runtime_env over the job's: env_vars merged
    by key (the child's win), every other field replaced."""
    if not parent:
        return dict(child or {})
    if not child:
        return dict(parent)
    out = {**parent, **child}
    if "env_vars" in parent and "env_vars" in child:
        out["env_vars"] = {**parent["env_vars"], **child["env_vars"]}
    return out


def resolve(env: dict):
    """(hash, wire JSON, [package ObjectRef ids]) for a merged, validated env; None if empty.
    Packs and uploads local packages the first time their content is seen."""
    if not env:
        return None
    key = json.dumps(env, sort_keys=True)
    hit = _resolved.get(key)
    if hit is not None:
        return hit
    with _lock:
        hit = _resolved.get(key)
        if hit is not None:
            return hit
        resolved, refs = {}, {}
        for k, v in env.items():
            if k == "working_dir":
                resolved[k] = _upload("working_dir", v, env.get("excludes") or [], refs)
            elif k == "py_modules":
                resolved[k] = [_upload("py_modules", m, [], refs) for m in v]
            elif k == "excludes":
                continue  # applied when packing working_dir
            elif k == "config":
                continue  # added below, with its defaults
            else:
                resolved[k] = v
        cfg = env.get("config") or {}
        resolved["config"] = {"setup_timeout_seconds": cfg.get("setup_timeout_seconds", DEFAULT_SETUP_TIMEOUT_S),
                              "eager_install": cfg.get("eager_install", True)}
        canonical = json.dumps(resolved, sort_keys=True, separators=(",", ":"))
        env_hash = hashlib.sha256(canonical.encode()).hexdigest()[:32]
        wire = json.dumps({**resolved, "_packages": {u: r.hex() for u, r in refs.items()}},
                          sort_keys=True, separators=(",", ":"))
        if len(wire) > 60_000:
            raise ValueError(f"runtime_env is too large once resolved ({len(wire)} bytes; at most 60,000): "
                             "ship big values as files in working_dir instead of env_vars")
        hit = _resolved[key] = (env_hash, wire, [r.binary() for r in refs.values()])
        return hit


def _upload(kind, path, excludes, refs) -> str:
    from quanta import exceptions

    if path.startswith(PACKAGE_SCHEME):  # already resolved (a worker passing its own env on)
        from quanta.object_ref import ObjectRef

        ref = _by_content.get(path)
        if ref is None:
            raise ValueError(f"runtime_env {kind} names {path}, which this process did not upload")
        refs[path] = ref
        return path
    apath = os.path.abspath(os.path.expanduser(path))
    cache_key = (kind, apath, tuple(excludes))
    cached = _packages.get(cache_key)
    if cached is not None:
        refs[cached[0]] = cached[1]
        return cached[0]
    if not os.path.exists(apath):
        raise exceptions.RuntimeEnvSetupError(
            f"runtime_env {kind} {path!r} does not exist (looked for {apath}); give an existing local "
            "directory" + (", .zip, .py or .whl file" if kind == "py_modules" else " or .zip file"))
    data, ext = pack(kind, apath, excludes)
    uri = f"{PACKAGE_SCHEME}{hashlib.sha256(data).hexdigest()[:40]}{ext}"
    ref = _by_content.get(uri)
    if ref is None:
        from quanta._private import api

        ref = _by_content[uri] = api.put(data)
    _packages[cache_key] = (uri, ref)
    refs[uri] = ref
    return uri


def pack(kind, apath, excludes) -> tuple:
    """(bytes, extension) of the package for a local path: a deterministic zip of a directory
    (its name kept for py_modules, so `import name` works), a .py file, or the bytes of a .zip
    or .whl as they are."""
    limit = package_limit()
    if os.path.isfile(apath):
        ext = os.path.splitext(apath)[1].lower()
        allowed = (".zip", ".py", ".whl") if kind == "py_modules" else (".zip",)
        if ext not in allowed:
            raise ValueError(f"runtime_env {kind} {apath!r} must be a directory or a {'/'.join(allowed)} file")
        size = os.path.getsize(apath)
        _check_size(kind, apath, size, limit)
        if ext == ".py":
            buf = io.BytesIO()
            with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
                _add(z, apath, os.path.basename(apath))
            return buf.getvalue(), ".zip"
        with open(apath, "rb") as f:
            return f.read(), ext
    if not os.path.isdir(apath):
        raise ValueError(f"runtime_env {kind} {apath!r} is neither a file nor a directory")
    prefix = os.path.basename(apath.rstrip("/")) if kind == "py_modules" else ""
    files, total = [], 0
    for root, dirs, names in os.walk(apath):
        rel_root = os.path.relpath(root, apath)
        rel_root = "" if rel_root == "." else rel_root.replace(os.sep, "/")
        dirs[:] = sorted(d for d in dirs if not _excluded(_join(rel_root, d), True, excludes)
                         and d != "__pycache__")
        for n in sorted(names):
            rel = _join(rel_root, n)
            full = os.path.join(root, n)
            if _excluded(rel, False, excludes) or not os.path.isfile(full):
                continue
            total += os.path.getsize(full)
            _check_size(kind, apath, total, limit)
            files.append((full, _join(prefix, rel)))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for full, arc in files:
            _add(z, full, arc)
    return buf.getvalue(), ".zip"


def _join(a, b):
    return f"{a}/{b}" if a else b


def _add(z, full, arc):
    info = zipfile.ZipInfo(arc, date_time=(1980, 1, 1, 0, 0, 0))  # content alone decides the hash
    info.external_attr = (os.stat(full).st_mode & 0o777) << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    with open(full, "rb") as f:
        z.writestr(info, f.read())


def _check_size(kind, apath, size, limit):
    if size > limit:
        raise ValueError(f"runtime_env {kind} {apath!r} is larger than the {limit / (1 << 20):.0f} MiB limit on a "
                         f"package (at least {size / (1 << 20):.1f} MiB): leave large files out with "
                         "runtime_env['excludes'] (gitignore-style patterns), or raise the limit with "
                         "QUANTA_RUNTIME_ENV_MAX_PACKAGE_MB")


def _excluded(rel: str, is_dir: bool, patterns) -> bool:
    """gitignore-style: a pattern with no '/' matches a name at any depth; one with a '/' (a
    leading one anchors it) matches the path from the top; a trailing '/' matches directories
    only; '**' matches across directories; '!' re-includes."""
    excluded = False
    name = rel.rsplit("/", 1)[-1]
    for pat in patterns:
        neg = pat.startswith("!")
        p = pat[1:] if neg else pat
        if p.endswith("/"):
            if not is_dir:
                continue
            p = p.rstrip("/")
        if not p:
            continue
        if "/" in p:
            p = p.lstrip("/")
            hit = fnmatch.fnmatchcase(rel, p) or fnmatch.fnmatchcase(rel, p.replace("**/", ""))
        else:
            hit = fnmatch.fnmatchcase(name, p)
        if hit:
            excluded = not neg
    return excluded


# ---------------------------------------------------------------------------- per process

_job_env: dict = {}   # the job's default (quanta.init(runtime_env=...)), validated
_inherited = None     # in a worker: the env it runs (its tasks' children inherit it)


def set_job_env(env) -> None:
    global _job_env
    _job_env = validate(env)


def job_env() -> dict:
    return _job_env


def clear() -> None:
    global _job_env
    _job_env = {}
    with _lock:
        _resolved.clear()
        _packages.clear()
        _by_content.clear()


def adopt_worker_env(wire_json: str) -> None:
    """In a worker started for an environment: tasks it submits inherit it (Ray's rule), its
    packages named by the refs the submitter gave."""
    global _job_env
    from quanta.object_ref import ObjectRef

    env = json.loads(wire_json)
    for uri, ref_hex in (env.pop("_packages", None) or {}).items():
        _by_content[uri] = ObjectRef(bytes.fromhex(ref_hex))
    _job_env = {k: v for k, v in env.items() if k in SUPPORTED_FIELDS}


def for_submit(task_env):
    """The (hash, wire JSON) to put on a task or actor spec, and the package ref ids the task
    must keep alive; (None, []) when neither the task nor the job has a runtime_env."""
    if not task_env and not _job_env:
        return None, []
    resolved = resolve(merge(_job_env, validate(task_env) if task_env else {}))
    if resolved is None:
        return None, []
    return (resolved[0], resolved[1]), resolved[2]
