"""Task events (issue 15): every node records what happens to the tasks it handles and ships the
events to the head, whose bounded table `quanta.util.state.list_tasks`, `quanta list tasks`, the
dashboard and `quanta.timeline` read. On a real three-node Cluster: tasks placed on each node are
listed with that node and the worker pid that ran them (as the task itself reports), with Ray's
filters, limit and detail; a failed task carries its traceback; an actor's calls are listed; the
timeline is valid Chrome-trace JSON with one event per task; and on a cluster with tiny bounds the
nodes' ring buffers and the head's table stay within them and report what they dropped.
"""

import json
import os
import re
import subprocess
import sys
import time
import warnings

import pytest

import quanta
from quanta.cluster_utils import Cluster
from quanta.util import state


@quanta.remote
def where(tag):
    return tag, os.getpid(), quanta.get_runtime_context().get_node_id()


@quanta.remote
def explode(text):
    raise ValueError(f"boom: {text}")


@quanta.remote
def nap(seconds):
    time.sleep(seconds)
    return seconds


@quanta.remote
class Tally:
    def __init__(self):
        self.n = 0

    def add(self, k):
        self.n += k
        return self.n, os.getpid()


def until(predicate, timeout=20.0, what="condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def quanta_cli(*args, timeout=60):
    return subprocess.run([sys.executable, "-m", "quanta.scripts", *args], capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(scope="module")
def cluster():
    if quanta.is_initialized():
        quanta.shutdown()
    os.environ["QUANTA_TASK_EVENTS_FLUSH_MS"] = "200"  # quick to show up (the default is 1 s)
    c = Cluster(initialize_head=True, shutdown_at_exit=False, head_node_args={"num_cpus": 1, "resources": {"h": 4}})
    a = c.add_node(num_cpus=1, resources={"a": 4})
    b = c.add_node(num_cpus=1, resources={"b": 4})
    quanta.init(address=c.address)
    yield c, a, b
    quanta.shutdown()
    c.shutdown()
    os.environ.pop("QUANTA_TASK_EVENTS_FLUSH_MS", None)


def tasks_where(**eq):
    return state.list_tasks(filters=[(k, "=", v) for k, v in eq.items()], limit=10000, detail=True)


def test_tasks_on_several_nodes_are_listed_with_their_node_worker_and_state(cluster):
    c, a, b = cluster
    refs = {"head": [where.options(resources={"h": 1}).remote("head") for _ in range(3)],
            "a": [where.options(resources={"a": 1}).remote("a") for _ in range(3)],
            "b": [where.options(resources={"b": 1}).remote("b") for _ in range(3)]}
    ran = {r.task_id().hex(): quanta.get(r) for rs in refs.values() for r in rs}
    expect_node = {"head": c.head_node.node_id, "a": a.node_id, "b": b.node_id}
    def finished():
        rows = [t for t in tasks_where(name="where", state="FINISHED") if t["task_id"] in ran]
        return rows if len(rows) == 9 else None

    rows = until(finished, what="the nine tasks FINISHED in the head's table")
    for t in rows:
        tag, pid, node_id = ran[t["task_id"]]
        assert node_id == expect_node[tag]
        assert t["node_id"] == node_id, (tag, dict(t), expect_node)  # where it ran, not where it was submitted
        assert t["worker_pid"] == pid
        assert t["type"] == "NORMAL_TASK" and t["func_or_class_name"] == "where" and t["language"] == "PYTHON"
        assert t["error_type"] is None and t["error_message"] is None
        assert t["creation_time_ms"] <= t["start_time_ms"] <= t["end_time_ms"]
        assert [e["state"] for e in t["events"]][-2:] == ["RUNNING", "FINISHED"]
        assert t["required_resources"].get("CPU") == 1.0
    assert {t["node_id"] for t in rows} == set(expect_node.values())
    # Filters pushed to the head (node_id) and applied here (worker_pid) agree with the rows.
    on_a = tasks_where(node_id=a.node_id, name="where")
    assert {t["task_id"] for t in on_a} >= {r.task_id().hex() for r in refs["a"]}
    assert all(t["node_id"] == a.node_id for t in on_a)
    pid = ran[refs["b"][0].task_id().hex()][1]
    assert all(t["worker_pid"] == pid for t in tasks_where(worker_pid=pid))
    assert all(t["state"] != "FINISHED" for t in state.list_tasks(filters=[("state", "!=", "FINISHED")], limit=10000))
    # get_task: one row with the detail columns, or None.
    one = state.get_task(refs["head"][0].task_id().hex())
    assert one["node_id"] == c.head_node.node_id and "error_message" in one
    assert state.get_task("ab" * 16) is None


def test_limit_detail_and_bad_filters(cluster):
    quanta.get([where.remote(i) for i in range(5)])
    until(lambda: len(tasks_where(name="where")) >= 5, what="five rows")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rows = state.list_tasks(limit=2)
    assert len(rows) == 2 and "error_message" not in rows[0] and "worker_pid" in rows[0]
    assert any("showing the first 2" in str(w.message) for w in caught)
    with pytest.raises(ValueError, match="not a filterable column"):
        state.list_tasks(filters=[("bogus", "=", 1)])
    with pytest.raises(ValueError, match="predicate"):
        state.list_tasks(filters=[("state", "<", "RUNNING")])
    assert state.list_tasks(filters=[("state", "=", "NOT_A_STATE")]) == []


def test_a_failed_task_carries_its_error_and_traceback(cluster):
    ref = explode.remote("seven")
    with pytest.raises(ValueError, match="boom: seven"):
        quanta.get(ref)
    tid = ref.task_id().hex()
    t = until(lambda: (lambda r: r if r and r["state"] == "FAILED" else None)(state.get_task(tid)),
              what="the failed task")
    assert t["error_type"] == "TASK_EXECUTION_EXCEPTION"
    assert "ValueError: boom: seven" in t["error_message"]
    assert "Traceback" in t["error_message"] and "explode" in t["error_message"]
    assert any(r["task_id"] == tid for r in tasks_where(state="FAILED"))
    # The CLI shows it too, as JSON and YAML.
    r = quanta_cli("get", "tasks", tid, "--format", "json", "--address", cluster[0].address)
    assert r.returncode == 0, r.stderr
    assert "boom: seven" in json.loads(r.stdout)["error_message"]
    r = quanta_cli("list", "tasks", "--filter", "state=FAILED", "--detail", "--format", "yaml",
                   "--address", cluster[0].address)
    assert r.returncode == 0 and tid in r.stdout and "TASK_EXECUTION_EXCEPTION" in r.stdout, r.stderr


def test_actor_tasks_and_the_summary(cluster):
    t = Tally.options(resources={"b": 1}).remote()
    out = [quanta.get(t.add.remote(k)) for k in (1, 2, 3)]
    assert [n for n, _ in out] == [1, 3, 6]
    actor_pid = out[0][1]
    calls = until(lambda: (lambda rows: rows if len(rows) == 3 else None)(
        [r for r in tasks_where(actor_id=t._actor_id.hex(), state="FINISHED") if r["type"] == "ACTOR_TASK"]),
        what="three finished actor calls")
    assert {r["worker_pid"] for r in calls} == {actor_pid}
    assert {r["node_id"] for r in calls} == {cluster[2].node_id}
    assert all(r["name"].endswith("add") for r in calls), [r["name"] for r in calls]
    s = state.summarize_tasks()["cluster"]
    assert s["summary"]["where"]["state_counts"]["FINISHED"] >= 9
    assert s["summary"]["explode"]["state_counts"]["FAILED"] >= 1
    assert s["total_actor_tasks"] >= 3 and s["total_actor_scheduled"] >= 1
    r = quanta_cli("summary", "tasks", "--address", cluster[0].address)
    assert r.returncode == 0 and "where" in r.stdout and "FINISHED" in r.stdout, r.stderr
    quanta.kill(t)


def test_a_running_task_is_listed_as_running(cluster):
    ref = nap.options(resources={"a": 1}).remote(3)
    tid = ref.task_id().hex()
    t = until(lambda: (lambda r: r if r and r["state"] == "RUNNING" else None)(state.get_task(tid)), timeout=10,
              what="the task RUNNING")
    assert t["node_id"] == cluster[1].node_id and t["end_time_ms"] is None
    quanta.get(ref)
    until(lambda: state.get_task(tid)["state"] == "FINISHED", what="it FINISHED")


def test_cli_list_tasks_table_and_json(cluster):
    addr = cluster[0].address
    r = quanta_cli("list", "tasks", "--filter", "name=where", "--limit", "3", "--address", addr)
    assert r.returncode == 0 and "TASK_ID" in r.stdout and "FINISHED" in r.stdout, r.stderr
    r = quanta_cli("list", "tasks", "--filter", "name=where", "--format", "json", "--limit", "1000", "--address", addr)
    rows = json.loads(r.stdout)
    assert rows and all(t["name"] == "where" for t in rows)


def test_timeline_is_chrome_trace_json_with_one_event_per_task(cluster, tmp_path):
    refs = [where.options(resources={"a": 1}).remote(i) for i in range(4)] + [where.remote(9)]
    quanta.get(refs)
    ids = {r.task_id().hex() for r in refs}
    until(lambda: ids <= {t["task_id"] for t in tasks_where(state="FINISHED")}, what="the tasks finished")
    path = tmp_path / "trace.json"
    quanta.timeline(str(path))
    trace = json.loads(path.read_text())
    spans = [e for e in trace if e.get("ph") == "X" and e["cat"] != "transfer"]
    by_id = {}
    for e in spans:
        by_id.setdefault(e["args"]["task_id"], []).append(e)
    assert all(len(v) == 1 for v in by_id.values())  # one event per task
    assert ids <= set(by_id)
    ran = [t for t in state.list_tasks(limit=100000, detail=True) if t["start_time_ms"]]
    assert len(spans) == len(ran)
    for tid in ids:
        e = by_id[tid][0]
        assert e["name"] == "where" and e["dur"] >= 0 and e["ts"] > 1.7e15
        assert e["tid"].startswith("worker ") and e["pid"].startswith("Node ")
    # Tasks on node a sit in node a's group.
    a_ip_index = {e["pid"] for tid in ids for e in by_id[tid]}
    assert len(a_ip_index) == 2  # node a and the head
    # The CLI writes the same.
    out = tmp_path / "cli.json"
    r = quanta_cli("timeline", "-o", str(out), "--address", cluster[0].address)
    assert r.returncode == 0, r.stderr
    assert len([e for e in json.loads(out.read_text()) if e.get("ph") == "X"]) >= len(ids)


@quanta.remote
def say(text):
    print(text, flush=True)
    return os.getpid()


def test_cli_logs_by_task_id_print_the_output_of_the_worker_that_ran_it(cluster):
    text = f"said by a task {time.time_ns()}"
    ref = say.options(resources={"b": 1}).remote(text)
    quanta.get(ref)
    tid = ref.task_id().hex()
    until(lambda: tid in {t["task_id"] for t in tasks_where(state="FINISHED")}, what="the task finished")
    r = quanta_cli("logs", "--task-id", tid, "--tail", "-1", "--address", cluster[0].address)
    assert r.returncode == 0 and text in r.stdout, (r.stdout[-2000:], r.stderr)
    r = quanta_cli("logs", "--task-id", "00" * 16, "--address", cluster[0].address)
    assert r.returncode == 1 and "no task with task_id" in r.stderr


@quanta.remote
def make_bytes(n):
    return b"x" * n


@quanta.remote
def size_of(data):
    return len(data), quanta.get_runtime_context().get_node_id()


def test_timeline_shows_an_object_transfer_between_two_nodes(cluster, tmp_path):
    # 20 MB made on node a and read by a task on node b: node b pulls it from node a, once.
    n = 20 * 1000 * 1000
    ref = make_bytes.options(resources={"a": 1}).remote(n)
    a_id = quanta.get(where.options(resources={"a": 1}).remote(0))[2]
    got, b_id = quanta.get(size_of.options(resources={"b": 1}).remote(ref))
    assert got == n and b_id != a_id
    oid = ref.hex()

    def mine():
        return [e for e in quanta.timeline() if e.get("cat") == "transfer" and e["args"]["object_id"] == oid]

    spans = until(mine, what="the transfer in the timeline")
    time.sleep(0.5)  # a second pull would have been shipped by now
    spans = mine()
    assert len(spans) == 1, spans
    e = spans[0]
    assert n <= e["args"]["bytes"] < n + 64 * 1024  # the stored object: the bytes and a small header
    assert e["args"]["from_node_id"] == a_id and e["args"]["to_node_id"] == b_id
    assert e["tid"] == "transfers" and e["ph"] == "X" and e["dur"] > 0 and e["ts"] > 1.7e15
    nodes = {r["node_id"]: r for r in state.list_nodes()}
    assert e["pid"] == f"Node {nodes[b_id]['node_ip']} (index {nodes[b_id]['node_index']})"
    assert e["args"]["from_node_index"] == nodes[a_id]["node_index"]
    # In the file too, with a process name for the transfers row's node.
    path = tmp_path / "trace.json"
    quanta.timeline(str(path))
    trace = json.loads(path.read_text())
    assert [x for x in trace if x.get("cat") == "transfer" and x["args"]["object_id"] == oid] == [e]
    assert any(x["ph"] == "M" and x["pid"] == e["pid"] for x in trace)


def test_dashboard_endpoint_lists_tasks_and_a_failed_tasks_traceback():
    import urllib.request

    if quanta.is_initialized():
        quanta.shutdown()
    token = "task-events-dashboard-token-0123456789"
    saved = os.environ.get("QUANTA_AUTH_TOKEN")
    os.environ["QUANTA_AUTH_TOKEN"] = token
    c = Cluster(initialize_head=True, shutdown_at_exit=False,
                head_node_args={"num_cpus": 1, "include_dashboard": True, "dashboard_port": 0})
    try:
        quanta.init(address=c.address)
        with pytest.raises(ValueError):
            quanta.get(explode.remote("dash"))
        quanta.get(where.remote(1))
        url = c.head_node.dashboard_url

        def fetch(path):
            req = urllib.request.Request(url + path, headers={"Authorization": "Bearer " + token})
            with urllib.request.urlopen(req, timeout=30) as r:
                return json.load(r)

        body = until(lambda: (lambda b: b if len(b["result"]) >= 2 else None)(fetch("/api/tasks")),
                     what="two tasks on the dashboard")
        assert body["stats"]["capacity"] == 100000
        failed = [t for t in body["result"] if t["state"] == "FAILED"]
        assert failed and "boom: dash" in failed[0]["error_message"] and "Traceback" in failed[0]["error_message"]
        one = fetch("/api/tasks?filter=task_id=" + failed[0]["task_id"])
        assert [t["task_id"] for t in one["result"]] == [failed[0]["task_id"]]
        assert [t["name"] for t in fetch("/api/tasks?filter=state=FINISHED")["result"]] == ["where"]
    finally:
        quanta.shutdown()
        c.shutdown()
        if saved is None:
            os.environ.pop("QUANTA_AUTH_TOKEN", None)
        else:
            os.environ["QUANTA_AUTH_TOKEN"] = saved


def test_ring_buffer_and_head_table_stay_bounded_and_report_drops():
    if quanta.is_initialized():
        quanta.shutdown()
    env = {"QUANTA_TASK_EVENTS_BUFFER": "40", "QUANTA_TASK_EVENTS_FLUSH_MS": "4000",
           "QUANTA_TASK_EVENTS_MAX_TASKS": "10"}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    c = Cluster(initialize_head=True, shutdown_at_exit=False, head_node_args={"num_cpus": 2})
    try:
        quanta.init(address=c.address)
        started = time.monotonic()
        quanta.get([where.remote(i) for i in range(300)])  # 300 entries (one per task), within a few flushes
        flushes = (time.monotonic() - started) / 4 + 2

        def drops():
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                rows = state.list_tasks(limit=1000)
            text = " ".join(str(w.message) for w in caught)
            m = re.search(r"head dropped (\d+) task rows .* nodes dropped (\d+) task events", text)
            return (rows, int(m.group(1)), int(m.group(2))) if m and int(m.group(2)) > 0 else None

        rows, head_dropped, node_dropped = until(drops, timeout=30, what="reported drops")
        assert len(rows) <= 10  # the head's bound
        # At most 40 entries are kept between two flushes (every 4 s); 300 tasks had at least one each.
        assert node_dropped >= 300 - 40 * flushes, (node_dropped, flushes)
        assert head_dropped > 0
    finally:
        quanta.shutdown()
        c.shutdown()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.mark.parametrize("var,value", [("QUANTA_TASK_EVENTS_BUFFER", "lots"), ("QUANTA_TASK_EVENTS_FLUSH_MS", "0"),
                                       ("QUANTA_TASK_EVENTS_MAX_TASKS", "-5")])
def test_a_bad_setting_is_refused_with_its_name(var, value):
    if quanta.is_initialized():
        quanta.shutdown()
    saved = os.environ.get(var)
    os.environ[var] = value
    try:
        with pytest.raises(Exception, match=var):
            quanta.init(num_cpus=1, include_dashboard=False)
    finally:
        if quanta.is_initialized():
            quanta.shutdown()
        if saved is None:
            os.environ.pop(var, None)
        else:
            os.environ[var] = saved


def test_system_config_switch_turns_task_events_off_and_bad_values_are_refused():
    # Ray's key: 0 records no task events at all (the measurement's "off" set-up); in a fresh
    # driver process so that this module's cluster is left alone.
    script = (
        "import time, quanta\n"
        "from quanta.util import state\n"
        "quanta.init(num_cpus=1, include_dashboard=False, _system_config={'task_events_report_interval_ms': 0})\n"
        "@quanta.remote\n"
        "def f(): return 1\n"
        "assert sum(quanta.get([f.remote() for _ in range(50)])) == 50\n"
        "time.sleep(1.5)\n"
        "print('ROWS', len(state.list_tasks(limit=1000)))\n"
        "quanta.shutdown()\n"
        "quanta.init(num_cpus=1, include_dashboard=False, _system_config={'task_events_report_interval_ms': 100})\n"
        "quanta.get([f.remote() for _ in range(50)])\n"
        "deadline = time.time() + 10\n"
        "while len(state.list_tasks(limit=1000)) < 50 and time.time() < deadline: time.sleep(0.05)\n"
        "print('ROWS', len(state.list_tasks(limit=1000)))\n"
        "quanta.shutdown()\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("QUANTA_TASK_EVENTS")}
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == 0, r.stderr
    assert re.findall(r"ROWS (\d+)", r.stdout) == ["0", "50"], r.stdout
    for bad in (5, -1, "1000"):
        with pytest.raises((ValueError, TypeError), match="task_events_report_interval_ms"):
            from quanta._private import system_config
            system_config.validate({"task_events_report_interval_ms": bad})
