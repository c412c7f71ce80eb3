"""Every Ray Core option listed in docs/ray-compatibility.md ("Every Ray Core option") is fed to
Quanta: a row marked "works" must work (the task, actor, call or cluster runs with it), a row
marked "refused" must raise an error whose message names the option, and an "in progress" row
may do either, but never accept the option and ignore it silently. The doc must list every option
of Ray 2.60 (checked against the installed Ray when there is one)."""

import os
import re
import subprocess
import sys
import time

import pytest

import quanta

DOC = os.path.join(os.path.dirname(__file__), "..", "docs", "ray-compatibility.md")
WHERES = ("task", "actor", "method", "init", "start", "get", "wait", "put", "kill", "cancel", "get_actor",
          "shutdown")


def _rows():
    with open(DOC) as f:
        text = f.read()
    section = text.split("## Every Ray Core option", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 3 and cells[0] in WHERES:
            rows.append((cells[0], cells[1].strip("`"), cells[2]))
    return rows


ROWS = _rows()

# Ray 2.60's names (ray._common.ray_option_utils, inspect.signature(ray.init) and the kwargs it
# pops, `ray start`'s click parameters), so that the doc cannot silently drop one.
RAY_TASK = {"_labels", "accelerator_type", "enable_task_events", "fallback_strategy", "label_selector", "memory",
            "name", "num_cpus", "num_gpus", "object_store_memory", "placement_group", "placement_group_bundle_index",
            "placement_group_capture_child_tasks", "resources", "runtime_env", "scheduling_strategy",
            "_generator_backpressure_num_objects", "_num_objects_per_yield", "max_calls", "max_retries",
            "num_returns", "retry_exceptions", "_metadata"}
RAY_ACTOR = (RAY_TASK - {"_generator_backpressure_num_objects", "_num_objects_per_yield", "max_calls", "max_retries",
                         "num_returns", "retry_exceptions"}) | {
    "_actor_generator_backpressure_num_objects", "allow_out_of_order_execution", "concurrency_groups",
    "enable_tensor_transport", "get_if_exists", "lifetime", "max_concurrency", "max_pending_calls", "max_restarts",
    "max_task_retries", "namespace"}
RAY_METHOD = {"num_returns", "concurrency_group", "max_task_retries", "retry_exceptions",
              "_generator_backpressure_num_objects", "_num_objects_per_yield", "enable_task_events",
              "tensor_transport"}
RAY_INIT = {"address", "num_cpus", "num_gpus", "resources", "labels", "object_store_memory", "local_mode",
            "ignore_reinit_error", "include_dashboard", "dashboard_host", "dashboard_port", "job_config",
            "configure_logging", "logging_level", "logging_format", "logging_config", "log_to_driver", "namespace",
            "runtime_env", "enable_resource_isolation", "cgroup_path", "system_reserved_cpu",
            "system_reserved_memory", "proxy_server_url", "storage", "_system_config", "_temp_dir",
            "_node_ip_address", "_plasma_directory", "_memory", "_metrics_export_port", "_node_name",
            "_skip_env_hook", "_driver_object_store_memory", "_enable_object_reconstruction", "_redis_password",
            "_redis_username", "_tracing_startup_hook"}
RAY_START = {"address", "autoscaling_config", "block", "cgroup_path", "dashboard_agent_grpc_port",
             "dashboard_agent_listen_port", "dashboard_host", "dashboard_port", "disable_usage_stats",
             "enable_object_reconstruction", "enable_resource_isolation", "head", "include_dashboard",
             "include_log_monitor", "labels", "labels_file", "log_color", "log_style", "max_worker_port", "memory",
             "metrics_export_port", "min_worker_port", "no_monitor", "no_redirect_output", "node_ip_address",
             "node_manager_port", "node_name", "num_cpus", "num_gpus", "object_manager_port",
             "object_spilling_directory", "object_store_memory", "plasma_directory", "port", "proxy_server_url",
             "ray_client_server_port", "ray_debugger_external", "redis_password", "redis_shard_ports",
             "redis_username", "resources", "runtime_env_agent_port", "system_config", "system_reserved_cpu",
             "system_reserved_memory", "temp_dir", "tracing_startup_hook", "verbose", "worker_port_list"}
RAY_CALLS = {("get", "timeout"), ("get", "_use_object_store"), ("wait", "num_returns"), ("wait", "timeout"),
             ("wait", "fetch_local"), ("put", "_owner"), ("put", "_tensor_transport"), ("kill", "no_restart"),
             ("cancel", "force"), ("cancel", "recursive"), ("get_actor", "namespace"),
             ("shutdown", "_exiting_interpreter")}


def _listed(where):
    return {opt for w, opt, _ in ROWS if w == where}


def test_the_doc_lists_every_option_of_ray_2_60_with_a_status():
    assert {s for _, _, s in ROWS} <= {"works", "refused", "in progress"}, sorted({s for _, _, s in ROWS})
    assert RAY_TASK <= _listed("task"), sorted(RAY_TASK - _listed("task"))
    assert RAY_ACTOR <= _listed("actor"), sorted(RAY_ACTOR - _listed("actor"))
    assert RAY_METHOD <= _listed("method"), sorted(RAY_METHOD - _listed("method"))
    assert RAY_INIT <= _listed("init"), sorted(RAY_INIT - _listed("init"))
    start = {o.lstrip("-").replace("-", "_") for o in _listed("start")}
    assert RAY_START <= start, sorted(RAY_START - start)
    calls = {(w, o) for w, o, _ in ROWS if w in ("get", "wait", "put", "kill", "cancel", "get_actor", "shutdown")}
    assert RAY_CALLS <= calls, sorted(RAY_CALLS - calls)
    assert len({(w, o) for w, o, _ in ROWS}) == len(ROWS), "an option is listed twice"


def test_the_installed_ray_has_no_option_the_doc_misses():
    ray_option_utils = pytest.importorskip("ray._common.ray_option_utils")
    import inspect

    import ray

    assert set(ray_option_utils.task_options) <= _listed("task")
    assert set(ray_option_utils.actor_options) <= _listed("actor")
    init_params = set(inspect.signature(ray.init).parameters) - {"kwargs"}
    assert init_params <= _listed("init"), sorted(init_params - _listed("init"))


def _expect(status, option, run):
    """Runs `run()`: "works" must return, "refused" must raise naming the option, "in progress"
    may do either (or leave the task waiting for a resource no node has yet, e.g. a GPU)."""
    try:
        run()
    except quanta.exceptions.GetTimeoutError:
        assert status == "in progress", f"{option}: the call did not finish"
        return "waiting"
    except (TypeError, ValueError, RuntimeError, NotImplementedError) as e:
        assert status != "works", f"{option} is documented as working but raised {type(e).__name__}: {e}"
        assert option.lstrip("-") in str(e) or option.lstrip("-").replace("-", "_") in str(e), (
            f"the error for {option} does not name it: {e}")
        return "refused"
    assert status != "refused", f"{option} is documented as refused but was accepted"
    return "works"


def _timeout(status):
    return 5 if status == "in progress" else 60


def ident(x=1):
    return x


def pair():
    return 1, 2


def gen():
    yield 1
    yield 2


class Holder:
    def __init__(self):
        self.v = 1

    def get(self, x=1):
        return x

    def stream(self):
        yield 1
        yield 2


# Values that differ from Ray's defaults (a default would prove nothing).
TASK_VALUES = {
    "num_cpus": 0.5, "num_gpus": 1, "resources": {"nonexistent_but_zero": 0}, "memory": 1 << 20,
    "accelerator_type": "A100", "object_store_memory": 1 << 20, "name": "renamed", "num_returns": 2,
    "max_retries": 0, "retry_exceptions": True, "max_calls": 1, "runtime_env": {"env_vars": {"A": "1"}},
    "scheduling_strategy": "SPREAD", "placement_group_bundle_index": 0, "placement_group_capture_child_tasks": True,
    "label_selector": {}, "fallback_strategy": [{"label_selector": {}}], "enable_task_events": False,
    "_generator_backpressure_num_objects": 1, "_num_objects_per_yield": 2, "_metadata": {"k": "v"},
    "_labels": {"a": "b"}, "timeout_s": 30, "priority": 1,
    "namespace": "option_ns", "lifetime": "detached", "get_if_exists": True, "max_concurrency": 2,
    "concurrency_groups": {"io": 2}, "max_restarts": 1, "max_task_retries": 1, "max_pending_calls": 5,
    "allow_out_of_order_execution": True, "enable_tensor_transport": True,
    "_actor_generator_backpressure_num_objects": 1, "concurrency_group": "io", "tensor_transport": "nccl",
}


PG_OPTIONS = ("placement_group", "placement_group_bundle_index", "placement_group_capture_child_tasks")


@pytest.fixture
def group(cluster, request):
    """A one-CPU placement group, for the tests of the placement-group options only."""
    if request.node.callspec.params.get("option") not in PG_OPTIONS:
        yield None
        return
    from quanta.util.placement_group import placement_group, remove_placement_group

    pg = placement_group([{"CPU": 1}])
    quanta.get(pg.ready(), timeout=60)
    yield pg
    remove_placement_group(pg)


@pytest.mark.parametrize("option,status", [(o, s) for w, o, s in ROWS if w == "task"])
def test_task_option(cluster, group, option, status):
    fn, value = ident, TASK_VALUES.get(option)
    if option == "num_returns":
        fn = pair
    if option == "_generator_backpressure_num_objects" or option == "_num_objects_per_yield":
        fn = gen
    if option == "placement_group":
        value = group
    extra = {"placement_group": group} if option in ("placement_group_bundle_index",
                                                     "placement_group_capture_child_tasks") else {}
    assert value is not None or option == "placement_group", f"no sample value for task option {option}"

    def run():
        remote = quanta.remote(**{option: value, **extra})(fn)
        remote.options(**{option: value, **extra})
        out = remote.remote()
        if fn is gen:
            assert [quanta.get(r, timeout=_timeout(status)) for r in out] == [1, 2]
        elif fn is pair:
            assert quanta.get(out, timeout=_timeout(status)) == [1, 2]
        else:
            assert quanta.get(out, timeout=_timeout(status)) == 1

    _expect(status, option, run)


def _kill_quietly(handle):
    try:
        quanta.kill(handle)
    except Exception:  # noqa: BLE001 - already gone
        pass


@pytest.mark.parametrize("option,status", [(o, s) for w, o, s in ROWS if w == "actor"])
def test_actor_option(cluster, group, option, status):
    value = group if option == "placement_group" else TASK_VALUES.get(option)
    assert value is not None, f"no sample value for actor option {option}"
    extra = {}
    if option in ("placement_group_bundle_index", "placement_group_capture_child_tasks"):
        extra = {"placement_group": group}
    if option in ("get_if_exists", "lifetime", "namespace"):
        extra = {"name": f"opt_{option}_{os.getpid()}"}
    if option == "num_cpus":
        value = 0.5
    handles = []

    def run():
        cls = quanta.remote(**{option: value, **extra})(Holder)
        cls.options(**{option: value, **extra})
        h = cls.remote()
        handles.append(h)
        assert quanta.get(h.get.remote(), timeout=_timeout(status)) == 1

    try:
        _expect(status, option, run)
    finally:
        for h in handles:
            _kill_quietly(h)


@pytest.mark.parametrize("option,status", [(o, s) for w, o, s in ROWS if w == "method"])
def test_method_option(cluster, option, status):
    value = TASK_VALUES.get(option, "renamed" if option == "name" else None)
    assert value is not None, f"no sample value for method option {option}"
    cls = quanta.remote(concurrency_groups={"io": 2})(Holder)
    h = cls.remote()
    streaming = option in ("_generator_backpressure_num_objects", "_num_objects_per_yield")
    method = h.stream if streaming else h.get
    if option == "num_returns":
        value = 1

    def run():
        quanta.method(**{option: value})
        out = method.options(**{option: value}).remote()
        if streaming:
            assert [quanta.get(r, timeout=60) for r in out] == [1, 2]
        else:
            assert quanta.get(out, timeout=60) == 1

    try:
        _expect(status, option, run)
    finally:
        _kill_quietly(h)


def test_method_name_option_names_the_call_in_the_task_list(cluster):
    """The method option `name` is not ignored: the call is listed under that name."""
    from quanta.util import state

    h = quanta.remote(Holder).remote()
    quanta.get(h.get.options(name="a_renamed_call").remote(), timeout=60)
    deadline = time.time() + 30
    names = set()
    def renamed():  # the task list adds the method when the name does not contain it
        return any(n == "a_renamed_call" or n.startswith("a_renamed_call.") for n in names)

    while time.time() < deadline and not renamed():
        names = {t["name"] for t in state.list_tasks(limit=10 ** 6)}
        time.sleep(0.2)
    _kill_quietly(h)
    assert renamed(), sorted(names)[:20]


INIT_VALUES = {
    "address": "local", "num_cpus": 1, "num_gpus": 1, "resources": {"custom": 2}, "labels": {"zone": "a"},
    "object_store_memory": 64 << 20, "local_mode": True, "ignore_reinit_error": True, "include_dashboard": False,
    "dashboard_host": "127.0.0.1", "dashboard_port": 0, "job_config": object(), "configure_logging": False,
    "logging_level": "WARNING", "logging_format": "%(message)s", "logging_config": object(), "log_to_driver": False,
    "namespace": "option_ns", "runtime_env": {"env_vars": {"A": "1"}}, "enable_resource_isolation": True,
    "cgroup_path": "/sys/fs/cgroup/x", "system_reserved_cpu": 1, "system_reserved_memory": 1 << 30,
    "proxy_server_url": "http://127.0.0.1:1", "storage": "/tmp/x", "_system_config": {"max_lineage_bytes": 1 << 20},
    "_node_ip_address": "127.0.0.1", "_plasma_directory": "/tmp", "_memory": 1 << 30, "_metrics_export_port": 1,
    "_node_name": "n", "_skip_env_hook": True, "_driver_object_store_memory": 1 << 20,
    "_enable_object_reconstruction": True, "_redis_password": "pw", "_redis_username": "u",
    "_tracing_startup_hook": "m:f", "object_spilling_directory": "/tmp", "_temp_dir": "/tmp",
}


@pytest.mark.parametrize("option,status", [(o, s) for w, o, s in ROWS if w == "init"])
def test_init_argument(no_cluster, tmp_path, option, status):
    assert option in INIT_VALUES, f"no sample value for init argument {option}"
    value = INIT_VALUES[option]
    if option == "_temp_dir":  # short: the sockets inside it must fit a Unix socket path
        import tempfile

        value = tempfile.mkdtemp(prefix="qo", dir="/tmp")
    if option == "object_spilling_directory":
        value = str(tmp_path)
    kwargs = {"num_cpus": 1, "include_dashboard": False}
    if option in ("dashboard_host", "dashboard_port"):
        kwargs["include_dashboard"] = True
    kwargs[option] = value
    cluster = None
    if option == "_node_ip_address":  # it is for joining a cluster: join one
        from quanta.cluster_utils import Cluster

        cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
        kwargs = {"address": cluster.address, option: value}

    def run():
        quanta.init(**kwargs)
        assert quanta.is_initialized()
        assert quanta.get(quanta.remote(ident).remote(), timeout=60) == 1
        if option == "labels":
            assert any(n.get("Labels", {}).get("zone") == "a" for n in quanta.nodes()), quanta.nodes()
        if option == "resources":
            assert quanta.cluster_resources().get("custom") == 2

    try:
        _expect(status, option, run)
        if status == "refused":
            assert not quanta.is_initialized()
    finally:
        if quanta.is_initialized():
            quanta.shutdown()
        if cluster is not None:
            cluster.shutdown()
        if option == "_temp_dir":
            import shutil

            shutil.rmtree(value, ignore_errors=True)


def test_configure_logging_false_leaves_logging_level_to_the_program(no_cluster):
    import logging

    logger = logging.getLogger("quanta")
    before = logger.level
    try:
        quanta.init(num_cpus=1, include_dashboard=False, configure_logging=False, logging_level="ERROR")
        assert logger.level == before
        quanta.shutdown()
        quanta.init(num_cpus=1, include_dashboard=False, logging_level="ERROR")
        assert logger.level == logging.ERROR
    finally:
        logger.setLevel(before)


@pytest.mark.parametrize("flag,status", [(o, s) for w, o, s in ROWS if w == "start"])
def test_start_flag(tmp_path, flag, status):
    """A working flag is one `quanta start` takes (each is exercised in test_cli_cluster.py and
    its neighbours); a refused one stops `quanta start` at once with an error naming it."""
    env = dict(os.environ, TMPDIR=str(tmp_path))
    help_text = subprocess.run([sys.executable, "-m", "quanta.scripts", "start", "--help"], capture_output=True,
                               text=True, timeout=60, env=env).stdout
    if status == "works":
        assert re.search(rf"(^|\s){re.escape(flag)}[\s,=]", help_text), f"{flag} is not a flag of quanta start"
        return
    if status == "in progress" and re.search(rf"(^|\s){re.escape(flag)}[\s,=]", help_text):
        return
    out = subprocess.run([sys.executable, "-m", "quanta.scripts", "start", "--head", "--num-cpus", "1", flag, "1"],
                         capture_output=True, text=True, timeout=60, env=env)
    assert out.returncode != 0, out
    assert flag in out.stderr, out.stderr
    assert "Traceback" not in out.stderr, out.stderr


@quanta.remote
class _Restartable:
    def pid(self):
        return os.getpid()


def test_call_arguments(cluster):
    statuses = {(w, o): s for w, o, s in ROWS}
    ref = quanta.put(5)
    # get(timeout=)
    assert quanta.get(ref, timeout=10) == 5
    with pytest.raises(quanta.exceptions.GetTimeoutError):
        quanta.get(quanta.remote(lambda: time.sleep(5)).remote(), timeout=0.1)
    _expect(statuses["get", "_use_object_store"], "_use_object_store", lambda: quanta.get(ref, _use_object_store=False))
    # wait(num_returns=, timeout=, fetch_local=)
    slow = quanta.remote(lambda: time.sleep(5)).remote()
    ready, not_ready = quanta.wait([ref, slow], num_returns=1, timeout=2, fetch_local=False)
    assert ready == [ref] and not_ready == [slow]
    quanta.cancel(slow, force=True, recursive=False)  # cancel(force=, recursive=)
    with pytest.raises((quanta.exceptions.TaskCancelledError, quanta.exceptions.WorkerCrashedError)):
        quanta.get(slow, timeout=30)
    # put(_owner=, _tensor_transport=)
    holder = quanta.remote(Holder).remote()
    _expect(statuses["put", "_owner"], "_owner", lambda: quanta.put(1, _owner=holder))
    _expect(statuses["put", "_tensor_transport"], "_tensor_transport", lambda: quanta.put(1, _tensor_transport="nccl"))
    # kill(no_restart=False): an actor that may restart comes back in a new process.
    a = _Restartable.options(max_restarts=1).remote()
    pid = quanta.get(a.pid.remote(), timeout=60)
    quanta.kill(a, no_restart=False)
    deadline = time.time() + 30
    new_pid = None
    while time.time() < deadline:
        try:
            new_pid = quanta.get(a.pid.remote(), timeout=10)
            break
        except (quanta.exceptions.ActorDiedError, quanta.exceptions.ActorUnavailableError):
            time.sleep(0.2)
    assert new_pid is not None and new_pid != pid
    quanta.kill(a)
    # get_actor(namespace=)
    named = quanta.remote(Holder).options(name="opt_named", namespace="opt_space").remote()
    assert quanta.get(quanta.get_actor("opt_named", namespace="opt_space").get.remote(), timeout=60) == 1
    with pytest.raises(ValueError):
        quanta.get_actor("opt_named", namespace="another_space")
    quanta.kill(named)
    _kill_quietly(holder)
    # shutdown(_exiting_interpreter=) is refused before anything is shut down.
    _expect(statuses["shutdown", "_exiting_interpreter"], "_exiting_interpreter",
            lambda: quanta.shutdown(_exiting_interpreter=True))
    assert quanta.is_initialized()
