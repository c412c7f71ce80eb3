"""GPUs, accelerator types and the memory resource, as Ray documents them.

No GPU is needed: nodes are given `num_gpus` (their devices are then 0..n-1), or take them from
CUDA_VISIBLE_DEVICES as Ray does. Each task or actor gets specific device ids from its node,
which its worker exposes as CUDA_VISIBLE_DEVICES while it runs and through quanta.get_gpu_ids().
"""

import os
import subprocess
import sys
import textwrap
import time

import pytest

import quanta
from quanta.cluster_utils import Cluster
from quanta.exceptions import TaskUnschedulableError
from quanta.util import accelerators

MiB = 1 << 20


@quanta.remote(num_gpus=1)
def hold_gpu(seconds):
    start = time.monotonic()
    ids = quanta.get_gpu_ids()
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    time.sleep(seconds)
    return ids, env, start, time.monotonic(), os.getpid()


@quanta.remote
def plain_env():
    return os.environ.get("CUDA_VISIBLE_DEVICES"), quanta.get_gpu_ids(), os.getpid()


@quanta.remote(num_gpus=1)
class GpuActor:
    def ids(self):
        return quanta.get_gpu_ids(), os.environ.get("CUDA_VISIBLE_DEVICES")


def overlaps(a, b):
    return a[2] < b[3] and b[2] < a[3]


@pytest.fixture
def two_gpus(no_cluster):
    quanta.init(num_cpus=4, num_gpus=2)
    yield


def test_node_advertises_gpus_memory_and_object_store_memory(two_gpus):
    total = quanta.cluster_resources()
    assert total["GPU"] == 2
    assert total["memory"] > 100 * MiB  # 70 % of available RAM, in bytes
    assert total["object_store_memory"] > 0
    assert quanta.available_resources()["GPU"] == 2


def test_concurrent_one_gpu_tasks_get_distinct_ids_matching_cuda_visible_devices(two_gpus):
    results = quanta.get([hold_gpu.remote(0.6) for _ in range(4)], timeout=60)
    for ids, env, *_ in results:
        assert len(ids) == 1 and ids[0] in (0, 1), ids
        assert env == str(ids[0])
    concurrent = [(a, b) for i, a in enumerate(results) for b in results[i + 1:] if overlaps(a, b)]
    assert concurrent, "two GPUs: some tasks ran at the same time"
    for a, b in concurrent:
        assert a[0] != b[0], f"tasks running together shared a GPU: {a[0]} {b[0]}"


def test_cuda_visible_devices_is_restored_for_the_next_task_on_the_same_worker(no_cluster):
    quanta.init(num_cpus=1, num_gpus=1)
    ids, env, _, _, gpu_pid = quanta.get(hold_gpu.remote(0), timeout=60)
    assert ids == [0] and env == "0"
    env_after, ids_after, pid = quanta.get(plain_env.remote(), timeout=60)
    assert pid == gpu_pid, "one CPU: the same worker ran both"
    assert env_after is None and ids_after == []


def test_fractional_gpus_share_one_device(two_gpus):
    half = hold_gpu.options(num_gpus=0.5)
    a, b = quanta.get([half.remote(1.0), half.remote(1.0)], timeout=60)
    assert overlaps(a, b), "both halves fit at once"
    assert a[0] == b[0] and len(a[0]) == 1, (a[0], b[0])
    assert a[1] == b[1] == str(a[0][0])
    # With a half of one device taken, a whole GPU goes to the other device.
    pending = half.remote(1.5)
    time.sleep(0.3)
    whole = quanta.get(hold_gpu.remote(0), timeout=60)
    held = quanta.get(pending, timeout=60)
    assert whole[0] != held[0]


def test_non_whole_gpu_amounts_above_one_are_refused():
    with pytest.raises(ValueError, match="whole number"):
        hold_gpu.options(num_gpus=1.5)


def test_actors_keep_their_gpu_and_tasks_get_the_other(two_gpus):
    actor = GpuActor.remote()
    seen = {tuple(ids) for ids, _ in quanta.get([actor.ids.remote() for _ in range(5)], timeout=60)}
    assert len(seen) == 1, seen
    (mine,) = seen
    ids, env = quanta.get(actor.ids.remote())
    assert env == ",".join(str(i) for i in ids)
    other = quanta.get(hold_gpu.remote(0), timeout=60)[0]
    assert other != list(mine)
    # A second actor takes the last GPU: a GPU task now waits.
    second = GpuActor.remote()
    assert set(quanta.get(second.ids.remote())[0]) | set(mine) == {0, 1}
    waiting = hold_gpu.remote(0)
    ready, _ = quanta.wait([waiting], timeout=1.0)
    assert not ready, "no GPU is free while both actors live"
    quanta.kill(actor)
    assert quanta.get(waiting, timeout=60)[0] == list(mine), "the dead actor's GPU is handed out again"


def test_cuda_visible_devices_set_before_start_names_the_devices(no_cluster):
    code = textwrap.dedent("""
        import os, quanta
        quanta.init(num_cpus=2)
        @quanta.remote(num_gpus=1)
        def f():
            return quanta.get_gpu_ids(), os.environ["CUDA_VISIBLE_DEVICES"]
        print("GPU", quanta.cluster_resources().get("GPU"))
        print("IDS", sorted(quanta.get([f.remote(), f.remote()])))
        print("CTX", quanta.get(quanta.remote(num_gpus=1)(lambda: quanta.get_runtime_context().get_accelerator_ids()).remote()))
    """)
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="3,5")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "GPU 2.0" in out.stdout
    # As in Ray: ids from CUDA_VISIBLE_DEVICES come back as strings.
    ids_line = next(line for line in out.stdout.splitlines() if line.startswith("IDS"))
    got = eval(ids_line[4:])  # noqa: S307 - our own output
    assert all(isinstance(ids[0], str) and ids[0] == env_ for ids, env_ in got), got
    assert {ids[0] for ids, _ in got} <= {"3", "5"}
    assert "'GPU': ['3']" in out.stdout or "'GPU': ['5']" in out.stdout


def test_accelerator_type_schedules_only_on_a_node_that_has_it(no_cluster):
    assert accelerators.NVIDIA_A100 == "A100" and accelerators.NVIDIA_TESLA_V100 == "V100"
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 2})
    try:
        a100 = cluster.add_node(num_cpus=2, resources={"accelerator_type:A100": 1})
        cluster.connect()

        @quanta.remote(accelerator_type=accelerators.NVIDIA_A100)
        def where():
            time.sleep(0.05)
            return quanta.get_runtime_context().get_node_id(), quanta.get_runtime_context().get_assigned_resources()

        results = quanta.get([where.remote() for _ in range(8)], timeout=60)
        assert {node for node, _ in results} == {a100.node_id}
        assert results[0][1].get("accelerator_type:A100") == pytest.approx(0.001)

        never = where.options(accelerator_type="H100").remote()
        ready, _ = quanta.wait([never], timeout=1.0)
        assert not ready, "no node has an H100"
    finally:
        quanta.shutdown()
        cluster.shutdown()


def test_memory_demand_runs_at_once_and_an_oversized_one_is_infeasible(no_cluster):
    quanta.init(num_cpus=2, _system_config={"infeasible_task_timeout_s": 2})

    @quanta.remote(memory=100 * MiB)
    def small():
        return quanta.get_runtime_context().get_assigned_resources()

    t0 = time.monotonic()
    assert quanta.get(small.remote(), timeout=30)["memory"] == 100 * MiB
    assert time.monotonic() - t0 < 10
    huge = small.options(memory=1 << 48).remote()  # 256 TiB: more than any node
    with pytest.raises(TaskUnschedulableError) as info:
        quanta.get(huge, timeout=60)
    assert "memory" in str(info.value)
    with pytest.raises(ValueError, match="too large"):
        small.options(memory=1 << 60)


def test_memory_of_a_node_can_be_given(no_cluster):
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "memory": 300 * MiB})
    try:
        cluster.connect()
        assert quanta.cluster_resources()["memory"] == 300 * MiB
    finally:
        quanta.shutdown()
        cluster.shutdown()


def test_gpus_and_the_accelerator_type_are_detected_with_nvidia_smi(no_cluster, tmp_path):
    # This machine has no GPU: a stand-in nvidia-smi prints what `nvidia-smi -L` prints on a
    # host with two A100s; the node runs it, as it would run the real one.
    fake = tmp_path / "nvidia-smi"
    fake.write_text("#!/bin/sh\n[ \"$1\" = -L ] || exit 2\n"
                    "echo 'GPU 0: NVIDIA A100-SXM4-40GB (UUID: GPU-aaaa)'\n"
                    "echo 'GPU 1: NVIDIA A100-SXM4-40GB (UUID: GPU-bbbb)'\n")
    fake.chmod(0o755)
    code = textwrap.dedent("""
        import quanta
        from quanta.util.accelerators import NVIDIA_A100
        quanta.init(num_cpus=2)
        total = quanta.cluster_resources()
        print("GPU", total.get("GPU"), "A100", total.get("accelerator_type:A100"))
        @quanta.remote(num_gpus=1, accelerator_type=NVIDIA_A100)
        def f():
            return quanta.get_gpu_ids()
        print("IDS", sorted(quanta.get([f.remote(), f.remote()])))
    """)
    env = {k: v for k, v in os.environ.items() if k != "CUDA_VISIBLE_DEVICES"}
    env["PATH"] = f"{tmp_path}{os.pathsep}{env['PATH']}"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "GPU 2.0 A100 1.0" in out.stdout, out.stdout
    assert "IDS [[0], [1]]" in out.stdout or "IDS [[0], [0]]" in out.stdout or "IDS [[1], [1]]" in out.stdout, out.stdout
    # Given explicitly, the count wins and no GPU is detected.
    code0 = "import quanta; quanta.init(num_cpus=1, num_gpus=0); print('GPU', quanta.cluster_resources().get('GPU'))"
    out = subprocess.run([sys.executable, "-c", code0], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "GPU None" in out.stdout, out.stdout + out.stderr


def test_a_task_in_a_placement_group_bundle_gets_one_of_the_nodes_devices(two_gpus):
    from quanta.util.placement_group import placement_group, remove_placement_group
    from quanta.util.scheduling_strategies import PlacementGroupSchedulingStrategy

    pg = placement_group([{"CPU": 1, "GPU": 1}])
    assert pg.wait(30)
    in_group = hold_gpu.options(scheduling_strategy=PlacementGroupSchedulingStrategy(pg, 0)).remote(1.0)
    time.sleep(0.3)
    outside = hold_gpu.remote(0.5)
    a, b = quanta.get([in_group, outside], timeout=60)
    assert len(a[0]) == 1 and a[1] == str(a[0][0])
    assert overlaps(a, b) and a[0] != b[0], (a[0], b[0])
    remove_placement_group(pg)
