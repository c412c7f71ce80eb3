"""runtime_env (Ray's): env_vars, working_dir, py_modules and pip, on tasks and actors, as the
job's default and per task, with workers pooled per environment. Everything is real: packages
travel through the object store, venvs are built with `python -m venv` and `pip install` of a
wheel the test writes itself (--no-index: never the network)."""

import base64
import hashlib
import os
import sys
import textwrap
import time
import zipfile

import pytest

import quanta
from quanta.exceptions import ActorDiedError, RuntimeEnvSetupError
from quanta.util.scheduling_strategies import NodeAffinitySchedulingStrategy


@quanta.remote
def probe(name="QRT_A"):
    return os.environ.get(name), os.getcwd(), sys.path[0], os.getpid()


@quanta.remote
def pid():
    return os.getpid()


@quanta.remote
class EnvActor:
    def read(self, name):
        return os.environ.get(name), os.getcwd()


def write_wheel(directory, name="qrt_tinypkg", version="0.1", value=42):
    """A pure-Python wheel, written with zipfile (what `pip wheel` would make of a 1-file package)."""
    files = {
        f"{name}/__init__.py": f"VALUE = {value}\n",
        f"{name}-{version}.dist-info/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{name}-{version}.dist-info/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
                                             "Tag: py3-none-any\n",
    }
    record = []
    for path, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(text.encode())}")
    record.append(f"{name}-{version}.dist-info/RECORD,,")
    files[f"{name}-{version}.dist-info/RECORD"] = "\n".join(record) + "\n"
    path = os.path.join(directory, f"{name}-{version}-py3-none-any.whl")
    with zipfile.ZipFile(path, "w") as z:
        for p, text in files.items():
            z.writestr(p, text)
    return path


@pytest.fixture
def session(no_cluster):
    def start(**kwargs):
        kwargs.setdefault("num_cpus", 2)
        quanta.init(**kwargs)
    return start


# --------------------------------------------------------------------------- env_vars and merging


def test_env_vars_in_task_and_actor_and_the_job_default_merged_by_key(session):
    session(runtime_env={"env_vars": {"QRT_A": "job", "QRT_B": "job"}})
    assert quanta.get(probe.remote())[0] == "job"
    # The task's env_vars merge over the job's by key.
    f = probe.options(runtime_env={"env_vars": {"QRT_B": "task"}})
    assert quanta.get(f.remote("QRT_A"))[0] == "job"
    assert quanta.get(f.remote("QRT_B"))[0] == "task"
    a = EnvActor.options(runtime_env={"env_vars": {"QRT_A": "actor"}}).remote()
    assert quanta.get(a.read.remote("QRT_A"))[0] == "actor"
    assert quanta.get(a.read.remote("QRT_B"))[0] == "job"
    # @remote(runtime_env=...) as well, and a task inherits nothing from another task's env.
    g = quanta.remote(runtime_env={"env_vars": {"QRT_A": "decorated"}})(probe._function)
    assert quanta.get(g.remote())[0] == "decorated"
    assert quanta.get(probe.remote())[0] == "job"


def test_fields_other_than_env_vars_are_replaced_not_merged(session, tmp_path):
    (tmp_path / "job").mkdir()
    (tmp_path / "task").mkdir()
    (tmp_path / "job" / "which").write_text("job")
    (tmp_path / "task" / "which").write_text("task")
    session(runtime_env={"working_dir": str(tmp_path / "job"), "env_vars": {"QRT_A": "1"}})
    v, job_cwd, _, _ = quanta.get(probe.remote())
    assert v == "1" and "runtime_resources" in job_cwd
    v, cwd, _, _ = quanta.get(probe.options(runtime_env={"working_dir": str(tmp_path / "task")}).remote())
    assert v == "1", "env_vars still come from the job"
    assert cwd != job_cwd, "working_dir is replaced by the task's"
    assert open(os.path.join(cwd, "which")).read() == "task"


def test_child_tasks_inherit_their_parents_environment(session):
    @quanta.remote
    def parent():
        return quanta.get(probe.remote())[0]

    session()
    assert quanta.get(parent.options(runtime_env={"env_vars": {"QRT_A": "inherited"}}).remote()) == "inherited"


def test_bad_values_are_refused_clearly(session):
    with pytest.raises(TypeError, match=r"env_vars'\] must be a dict of str to str"):
        probe.options(runtime_env={"env_vars": {"A": 1}})
    with pytest.raises(TypeError, match="env_vars"):
        quanta.remote(runtime_env={"env_vars": ["A=1"]})(probe._function)
    with pytest.raises(ValueError, match=r"runtime_env field\(s\) \['conda'\] are not supported; Quanta supports"):
        probe.options(runtime_env={"conda": "base"})
    with pytest.raises(ValueError, match="remote URIs are not supported"):
        probe.options(runtime_env={"working_dir": "s3://bucket/x.zip"})
    with pytest.raises(ValueError, match="setup_timeout_seconds"):
        probe.options(runtime_env={"config": {"setup_timeout_seconds": 0}})
    with pytest.raises(TypeError, match="runtime_env must be a dict"):
        probe.options(runtime_env="env_vars=A")
    from quanta.runtime_env import RuntimeEnv

    with pytest.raises(ValueError, match="not supported"):
        RuntimeEnv(conda="base")
    assert quanta.get(probe.options(runtime_env=RuntimeEnv(env_vars={"QRT_A": "typed"})).remote())[0] == "typed"


# --------------------------------------------------------------------------- worker pools


def test_workers_are_pooled_per_environment(session):
    session(num_cpus=1)
    plain = quanta.get(pid.remote())
    e1 = pid.options(runtime_env={"env_vars": {"QRT_A": "1"}})
    e2 = pid.options(runtime_env={"env_vars": {"QRT_A": "2"}})
    first = quanta.get(e1.remote())
    assert first != plain, "a worker of the node's own environment never runs an env's task"
    assert quanta.get(e1.remote()) == first, "the same environment reuses its worker"
    other = quanta.get(e2.remote())
    assert other not in (plain, first)
    assert quanta.get(probe.options(runtime_env={"env_vars": {"QRT_A": "2"}}).remote())[0] == "2"
    assert quanta.get(probe.remote())[0] is None, "the plain worker never saw an env's variables"


def test_idle_workers_of_an_environment_are_reaped(session):
    session(num_cpus=1)
    env_pid = quanta.get(pid.options(runtime_env={"env_vars": {"QRT_A": "x"}}).remote())
    quanta.get(pid.remote())
    deadline = time.time() + 15
    while os.path.exists(f"/proc/{env_pid}") and time.time() < deadline:
        with open(f"/proc/{env_pid}/stat") as f:
            if f.read().split(") ")[1].startswith("Z"):
                break
        time.sleep(0.2)
    assert not os.path.exists(f"/proc/{env_pid}") or open(f"/proc/{env_pid}/stat").read().split(") ")[1][0] == "Z", \
        "an idle worker beyond the pool size exits"


# --------------------------------------------------------------------------- working_dir, py_modules


def test_working_dir_is_cwd_and_first_on_sys_path_with_excludes(session, tmp_path):
    wd = tmp_path / "wd"
    (wd / "data").mkdir(parents=True)
    (wd / "data" / "input.txt").write_text("hello from working_dir")
    (wd / "qrt_helper.py").write_text("def answer():\n    return 'imported'\n")
    (wd / "big.bin").write_bytes(b"x" * 1000)
    (wd / "logs").mkdir()
    (wd / "logs" / "old.log").write_text("x")

    @quanta.remote
    def look():
        import qrt_helper

        return (open("data/input.txt").read(), qrt_helper.answer(), os.getcwd(), sys.path[0],
                sorted(os.listdir(".")), oct(os.stat(os.getcwd()).st_mode & 0o777))

    session(runtime_env={"working_dir": str(wd), "excludes": ["*.bin", "logs/"]})
    text, answer, cwd, first, listing, mode = quanta.get(look.remote())
    assert text == "hello from working_dir" and answer == "imported"
    assert cwd == first and cwd != str(wd), "an unpacked copy under the session dir"
    assert "runtime_resources" in cwd
    assert listing == ["data", "qrt_helper.py"], "excludes left out big.bin and logs/"
    assert oct(os.stat(os.path.dirname(cwd)).st_mode & 0o777) == "0o700"


def test_working_dir_over_the_size_limit_is_refused_naming_the_limit(session, tmp_path, monkeypatch):
    (tmp_path / "big.bin").write_bytes(os.urandom(2 << 20))
    session()
    monkeypatch.setenv("QUANTA_RUNTIME_ENV_MAX_PACKAGE_MB", "1")
    with pytest.raises(ValueError, match=r"larger than the 1 MiB limit.*excludes"):
        probe.options(runtime_env={"working_dir": str(tmp_path)}).remote()
    # Excluding the big file makes it fit.
    ok = probe.options(runtime_env={"working_dir": str(tmp_path), "excludes": ["big.bin"],
                                    "env_vars": {"QRT_A": "fits"}})
    assert quanta.get(ok.remote())[0] == "fits"


def test_py_modules_directory_file_and_wheel(session, tmp_path):
    pkg = tmp_path / "qrt_modpkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("NAME = 'dir'\n")
    single = tmp_path / "qrt_single.py"
    single.write_text("NAME = 'file'\n")
    wheel = write_wheel(str(tmp_path), name="qrt_wheelmod", value=7)

    @quanta.remote
    def use():
        import qrt_modpkg
        import qrt_single
        import qrt_wheelmod

        return qrt_modpkg.NAME, qrt_single.NAME, qrt_wheelmod.VALUE

    session()
    env = {"py_modules": [str(pkg), str(single), wheel]}
    assert quanta.get(use.options(runtime_env=env).remote()) == ("dir", "file", 7)
    with pytest.raises(quanta.exceptions.TaskError, match="No module named 'qrt_modpkg'"):
        quanta.get(use.remote())


def test_missing_working_dir_is_a_setup_error(session, tmp_path):
    session()
    with pytest.raises(RuntimeEnvSetupError, match="does not exist"):
        probe.options(runtime_env={"working_dir": str(tmp_path / "nope")}).remote()
    assert quanta.get(probe.remote())[0] is None, "other tasks are not affected"


# --------------------------------------------------------------------------- pip


def test_pip_env_from_a_local_wheel_is_built_once_and_reused(session, tmp_path):
    write_wheel(str(tmp_path))

    @quanta.remote
    def use():
        import qrt_tinypkg

        return qrt_tinypkg.VALUE, sys.prefix, os.getpid()

    session(num_cpus=2)
    env = {"pip": ["--no-index", f"--find-links={tmp_path}", "qrt_tinypkg"]}
    # Two tasks of the new environment submitted together: one build, one venv.
    (value, prefix, first_pid), (_, prefix_b, _) = quanta.get([use.options(runtime_env=env).remote()
                                                               for _ in range(2)])
    assert value == 42 and "runtime_resources" in prefix and prefix != sys.prefix
    assert prefix_b == prefix
    # Concurrent tasks of the same environment use the one venv.
    again = quanta.get([use.options(runtime_env=env).remote() for _ in range(3)])
    assert {p for _, p, _ in again} == {prefix}
    assert first_pid in {w for _, _, w in again}, "its worker is reused"
    # The same requirements with other env_vars: other workers, the same venv.
    same_pip = {**env, "env_vars": {"QRT_A": "1"}}
    value, prefix2, other_pid = quanta.get(use.options(runtime_env=same_pip).remote())
    assert prefix2 == prefix and other_pid != first_pid
    # A task without the env cannot import the package.
    with pytest.raises(quanta.exceptions.TaskError, match="No module named 'qrt_tinypkg'"):
        quanta.get(use.remote())
    # requirements.txt path and the dict form are the same requirement set.
    req = tmp_path / "requirements.txt"
    req.write_text("\n".join(env["pip"]) + "\n")
    assert quanta.get(use.options(runtime_env={"pip": str(req)}).remote())[1] == prefix
    assert quanta.get(use.options(runtime_env={"pip": {"packages": env["pip"]}}).remote())[1] == prefix
    venvs = [d for d in os.listdir(os.path.dirname(prefix)) if os.path.isdir(os.path.join(os.path.dirname(prefix), d))]
    assert venvs == [os.path.basename(prefix)], "one venv per requirement set per node"


def test_bad_pip_requirement_fails_with_its_output_and_others_go_on(session, tmp_path):
    session()
    env = {"pip": ["--no-index", f"--find-links={tmp_path}", "qrt-no-such-package==9.9"]}
    t0 = time.time()
    with pytest.raises(RuntimeEnvSetupError) as info:
        quanta.get(probe.options(runtime_env=env).remote(), timeout=120)
    assert time.time() - t0 < 120
    text = str(info.value)
    assert "qrt-no-such-package" in text and "pip" in text
    assert "No matching distribution" in text or "Could not find a version" in text, text
    assert quanta.get(probe.remote())[0] is None, "other tasks are not affected"
    a = EnvActor.options(runtime_env=env).remote()
    with pytest.raises(ActorDiedError, match="RuntimeEnvSetupError"):
        quanta.get(a.read.remote("X"), timeout=120)


def test_setup_timeout_fails_the_task(session, tmp_path):
    slow = tmp_path / "qrt_slowpkg"
    slow.mkdir()
    (slow / "setup.py").write_text(textwrap.dedent("""
        import time
        time.sleep(120)
        from setuptools import setup
        setup(name="qrt_slowpkg", version="0.1")
    """))
    session()
    env = {"pip": {"packages": ["--no-index", str(slow)], "pip_install_options": ["--no-build-isolation"]},
           "config": {"setup_timeout_seconds": 3}}
    t0 = time.time()
    with pytest.raises(RuntimeEnvSetupError, match="setup_timeout_seconds=3"):
        quanta.get(probe.options(runtime_env=env).remote(), timeout=100)
    assert time.time() - t0 < 60


# --------------------------------------------------------------------------- across nodes


def test_working_dir_and_py_modules_reach_a_task_on_the_second_node(no_cluster, tmp_path):
    from quanta.cluster_utils import Cluster

    wd = tmp_path / "wd"
    wd.mkdir()
    (wd / "note.txt").write_text("shipped")
    (wd / "weights.bin").write_bytes(os.urandom(1 << 20))  # over the inline size: a stored object
    mod = tmp_path / "qrt_remote_mod"
    mod.mkdir()
    (mod / "__init__.py").write_text("WHERE = 'py_module'\n")

    @quanta.remote
    def received():
        from quanta._private import api

        return api.node_stats()["transfer_bytes_received"]

    @quanta.remote
    def there():
        import qrt_remote_mod

        return open("note.txt").read(), qrt_remote_mod.WHERE, quanta.get_runtime_context().get_node_id(), os.getcwd()

    c = Cluster(initialize_head=True, shutdown_at_exit=False, head_node_args={"num_cpus": 1})
    try:
        second = c.add_node(num_cpus=1)
        quanta.init(address=c.address)
        there = there.options(runtime_env={"working_dir": str(wd), "py_modules": [str(mod)]})
        strategy = NodeAffinitySchedulingStrategy(second.node_id, soft=False)
        before = quanta.get(received.options(scheduling_strategy=strategy).remote(), timeout=60)
        text, where, node, cwd = quanta.get(there.options(scheduling_strategy=strategy).remote(), timeout=120)
        assert (text, where, node) == ("shipped", "py_module", second.node_id)
        after = quanta.get(received.options(scheduling_strategy=strategy).remote(), timeout=60)
        assert after - before >= 1 << 20, "the package crossed to the second node over the transfer path"
        assert os.path.getsize(os.path.join(cwd, "weights.bin")) == 1 << 20
        here = quanta.get(there.options(scheduling_strategy=NodeAffinitySchedulingStrategy(
            c.head_node.node_id, soft=False)).remote(), timeout=120)
        assert here[0] == "shipped" and here[3] != cwd, "each node unpacks it under its own session dir"
    finally:
        quanta.shutdown()
        c.shutdown()
