"""quanta.get_runtime_context() in a driver, a task, an actor (sync, threaded, async) and after
an actor's restart: every method Ray documents."""

import os
import signal
import time

import pytest

import quanta


def facts():
    ctx = quanta.get_runtime_context()
    return {
        "job": ctx.get_job_id(), "node": ctx.get_node_id(), "task": ctx.get_task_id(),
        "actor": ctx.get_actor_id(), "worker": ctx.get_worker_id(),
        "resources": ctx.get_assigned_resources(), "accel": ctx.get_accelerator_ids(),
        "namespace": ctx.namespace, "name": ctx.get_actor_name(),
        "reconstructed": ctx.was_current_actor_reconstructed, "gcs": ctx.gcs_address, "get": ctx.get(),
        "deprecated": (ctx.job_id, ctx.node_id, ctx.task_id, ctx.actor_id),
    }


@quanta.remote
def task_facts():
    return facts()


@quanta.remote
class Ctx:
    def facts(self):
        return facts()

    def me(self):
        return quanta.get_runtime_context().current_actor

    def pid(self):
        return os.getpid()


@quanta.remote
class AsyncCtx:
    async def task_id_after_sleep(self, seconds):
        import asyncio

        before = quanta.get_runtime_context().get_task_id()
        await asyncio.sleep(seconds)
        return before, quanta.get_runtime_context().get_task_id()


@pytest.fixture
def ctx_cluster(no_cluster):
    quanta.init(num_cpus=4, num_gpus=1)
    yield


def test_driver_context(ctx_cluster):
    f = facts()
    assert f["task"] is None and f["actor"] is None and f["name"] is None
    assert f["reconstructed"] is False
    assert f["resources"] == {} and f["accel"] == {"GPU": []}
    assert f["node"] == quanta.nodes()[0]["NodeID"]
    int(f["job"], 16), int(f["worker"], 16)
    assert f["namespace"].startswith("anonymous") and f["namespace"]
    assert isinstance(f["gcs"], str) and f["gcs"]
    assert f["get"]["job_id"] == f["job"] and f["get"]["node_id"] == f["node"]
    assert f["deprecated"] == (f["job"], f["node"], None, None)
    with pytest.raises(RuntimeError, match="only available inside an actor"):
        quanta.get_runtime_context().current_actor
    assert quanta.get_gpu_ids() == []


def test_named_namespace_is_reported(no_cluster):
    quanta.init(num_cpus=1, namespace="team-a")
    assert quanta.get_runtime_context().namespace == "team-a"


@quanta.remote
class Store:
    def value(self):
        return 42


@quanta.remote
def look_up_store():
    """In a task of the job: its namespace, and the named actor found by name alone."""
    return quanta.get_runtime_context().namespace, quanta.get(quanta.get_actor("store").value.remote())


@quanta.remote
def name_an_actor():
    Store.options(name="made-in-a-task", lifetime="detached").remote()
    return True


def test_the_drivers_namespace_is_its_tasks_namespace(no_cluster):
    """As in Ray, a job's tasks and actors live in its driver's namespace: get_actor by name alone
    inside a task finds the driver's named actor, and a task's named actor is in that namespace."""
    quanta.init(num_cpus=2, namespace="shop")
    store = Store.options(name="store").remote()  # noqa: F841 (kept: its handle keeps it alive)
    assert quanta.get(look_up_store.remote(), timeout=60) == ("shop", 42)
    assert quanta.get(name_an_actor.remote(), timeout=60)
    assert quanta.get(quanta.get_actor("made-in-a-task").value.remote(), timeout=60) == 42
    quanta.kill(quanta.get_actor("made-in-a-task"))
    quanta.shutdown()
    # A second job in another namespace does not see them.
    quanta.init(num_cpus=1, namespace="elsewhere")
    with pytest.raises(ValueError, match="elsewhere"):
        quanta.get_actor("store")


def test_task_context(ctx_cluster):
    driver = facts()
    ref = task_facts.remote()
    f = quanta.get(ref)
    assert f["task"] == ref.task_id().hex()
    assert f["job"] == driver["job"] and f["node"] == driver["node"]
    assert f["worker"] != driver["worker"]
    assert f["actor"] is None and f["name"] is None
    assert f["resources"] == {"CPU": 1.0}
    assert f["accel"] == {"GPU": []}
    assert f["gcs"] == driver["gcs"]
    assert f["get"]["task_id"] == f["task"]
    assert f["deprecated"] == (f["job"], f["node"], f["task"], None)
    g = quanta.get(task_facts.options(num_cpus=2, num_gpus=1, resources={}).remote())
    assert g["resources"] == {"CPU": 2.0, "GPU": 1.0}
    assert g["accel"] == {"GPU": ["0"]}
    assert g["task"] != f["task"]


def test_actor_context(ctx_cluster):
    actor = Ctx.options(name="ctx-actor", num_cpus=1).remote()
    ref = actor.facts.remote()
    f = quanta.get(ref)
    assert f["actor"] == actor._actor_id.hex()
    assert f["task"] == ref.task_id().hex()
    assert f["name"] == "ctx-actor"
    assert f["reconstructed"] is False
    assert f["resources"] == {"CPU": 1.0}
    assert f["deprecated"][3] == f["actor"]
    # current_actor is a handle to the actor itself.
    me = quanta.get(actor.me.remote())
    assert me == actor
    assert quanta.get(me.facts.remote())["actor"] == f["actor"]
    unnamed = Ctx.remote()
    g = quanta.get(unnamed.facts.remote())
    assert g["name"] is None
    assert g["resources"] == {}, "a default actor needs a CPU to be placed but holds none while it lives"
    gpu = quanta.get(Ctx.options(num_gpus=1).remote().facts.remote())
    assert gpu["resources"] == {"GPU": 1.0} and gpu["accel"] == {"GPU": ["0"]}


def test_threaded_and_async_actors_see_each_calls_own_task_id(ctx_cluster):
    actor = AsyncCtx.remote()
    refs = [actor.task_id_after_sleep.remote(0.3) for _ in range(4)]
    answers = quanta.get(refs, timeout=30)
    for ref, (before, after) in zip(refs, answers):
        assert before == after == ref.task_id().hex()
    threaded = Ctx.options(max_concurrency=4).remote()
    refs = [threaded.facts.remote() for _ in range(8)]
    assert [f["task"] for f in quanta.get(refs)] == [r.task_id().hex() for r in refs]


def test_was_current_actor_reconstructed_after_a_restart(ctx_cluster):
    actor = Ctx.options(max_restarts=1).remote()
    assert quanta.get(actor.facts.remote())["reconstructed"] is False
    pid = quanta.get(actor.pid.remote())
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while True:
        try:
            f = quanta.get(actor.facts.remote(), timeout=10)
            break
        except quanta.exceptions.QuantaError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    assert f["reconstructed"] is True
