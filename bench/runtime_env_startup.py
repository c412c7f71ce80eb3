"""Time to the first task of a new runtime_env, Quanta beside Ray (same script, same machine).

    python bench/runtime_env_startup.py [--out bench/runtime_env-DATE.json]

Per system, on a fresh 2-CPU local cluster:
- working_dir at the job level (all Ray accepts for a local directory): init(runtime_env=...)
  to the first task's result, beside init() to the first result of the same task without it;
- working_dir per task (Quanta only: Ray refuses a local directory there), a small new
  directory (20 files, 40 KB): submit-to-result of the first task, then again;
- pip: a local wheel written here, installed with --no-index --find-links (no network):
  first task (venv built), the same env again (its worker reused), and the same requirements
  with other env_vars (a new worker, the venv already built: "cached").
Each system runs in its own subprocess. A system whose step fails reports the error.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import zipfile

JOB_LEVEL = r'''
import json, os, sys, time
name, wd = sys.argv[1], sys.argv[2]
mod = __import__(name)
t = time.perf_counter()
mod.init(num_cpus=2, include_dashboard=False, **({"runtime_env": {"working_dir": wd}} if wd else {}))

@mod.remote
def look():
    return os.listdir(".")[:1]

mod.get(look.remote())
print("RESULT " + json.dumps({"s": time.perf_counter() - t}))
mod.shutdown()
'''

CHILD = r'''
import json, os, sys, time
name, wd, wheel_dir = sys.argv[1], sys.argv[2], sys.argv[3]
mod = __import__(name)
mod.init(num_cpus=2, include_dashboard=False)

@mod.remote
def look():
    return open("f0.txt").read()[:3]

@mod.remote
def use():
    import qrt_benchpkg
    return qrt_benchpkg.VALUE

@mod.remote
def noop():
    return 1

mod.get(noop.remote())  # the plain pool is warm
out = {}
def timed(key, fn):
    t = time.perf_counter()
    try:
        fn()
        out[key] = time.perf_counter() - t
    except Exception as e:
        out[key] = f"failed: {type(e).__name__}: {str(e)[:400]}"
timed("task_working_dir_first_task_s", lambda: mod.get(look.options(runtime_env={"working_dir": wd}).remote(), timeout=600))
timed("task_working_dir_again_s", lambda: mod.get(look.options(runtime_env={"working_dir": wd}).remote(), timeout=600))
pip = ["--no-index", "--find-links=" + wheel_dir, "qrt_benchpkg"]
timed("pip_first_task_s", lambda: mod.get(use.options(runtime_env={"pip": pip}).remote(), timeout=600))
timed("pip_same_env_again_s", lambda: mod.get(use.options(runtime_env={"pip": pip}).remote(), timeout=600))
timed("pip_cached_venv_new_worker_s", lambda: mod.get(use.options(
    runtime_env={"pip": pip, "env_vars": {"X": "1"}}).remote(), timeout=600))
print("RESULT " + json.dumps(out))
mod.shutdown()
'''


def write_wheel(directory, name="qrt_benchpkg", version="0.1"):
    files = {f"{name}/__init__.py": "VALUE = 1\n",
             f"{name}-{version}.dist-info/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
             f"{name}-{version}.dist-info/WHEEL": "Wheel-Version: 1.0\nGenerator: bench\nRoot-Is-Purelib: true\nTag: py3-none-any\n"}
    record = [f"{p},sha256={base64.urlsafe_b64encode(hashlib.sha256(t.encode()).digest()).rstrip(b'=').decode()},{len(t)}"
              for p, t in files.items()] + [f"{name}-{version}.dist-info/RECORD,,"]
    files[f"{name}-{version}.dist-info/RECORD"] = "\n".join(record) + "\n"
    with zipfile.ZipFile(os.path.join(directory, f"{name}-{version}-py3-none-any.whl"), "w") as z:
        for p, t in files.items():
            z.writestr(p, t)


def run(system):
    with tempfile.TemporaryDirectory() as tmp:
        wd = os.path.join(tmp, "wd")
        os.makedirs(wd)
        for i in range(20):
            with open(os.path.join(wd, f"f{i}.txt"), "w") as f:
                f.write(f"{system}-{i}-" + "x" * 2000)
        wheels = os.path.join(tmp, "wheels")
        os.makedirs(wheels)
        write_wheel(wheels)
        env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0")
        out = {}
        for key, args in (("init_to_first_task_plain_s", [JOB_LEVEL, system, ""]),
                          ("init_to_first_task_job_working_dir_s", [JOB_LEVEL, system, wd])):
            r = subprocess.run([sys.executable, "-c", *args], capture_output=True, text=True, timeout=600, env=env)
            got = [json.loads(ln[7:]) for ln in r.stdout.splitlines() if ln.startswith("RESULT ")]
            out[key] = got[0]["s"] if got else "failed: " + (r.stdout + r.stderr)[-600:]
        for f in os.listdir(wd):  # new content: the per-task steps see a directory not seen before
            with open(os.path.join(wd, f), "a") as fh:
                fh.write("2")
        r = subprocess.run([sys.executable, "-c", CHILD, system, wd, wheels], capture_output=True, text=True,
                           timeout=1800, env=env)
        for line in r.stdout.splitlines():
            if line.startswith("RESULT "):
                return {**out, **json.loads(line[7:])}
        return {**out, "error": (r.stdout + r.stderr)[-2000:]}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out")
    args = ap.parse_args()
    results = {"quanta": run("quanta"), "ray": run("ray")}
    ratios = {}
    for k, q in results["quanta"].items():
        r = results["ray"].get(k)
        if isinstance(q, float) and isinstance(r, float):
            ratios[k] = round(r / q, 2)
    results["ray_over_quanta"] = ratios
    text = json.dumps(results, indent=2)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
