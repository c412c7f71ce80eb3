"""What a node advertises besides CPUs: GPUs (and their device ids), memory, object store memory.

As Ray does: GPUs come from CUDA_VISIBLE_DEVICES when it is set, else from `nvidia-smi -L` when
it is installed, else there are none; --num-gpus / num_gpus= override the count (the ids are then
the first ones visible, or 0..n-1). A detected NVIDIA model is advertised as the resource
`accelerator_type:<model>` (amount 1) for the accelerator_type option. `memory` is 70 % of the
RAM available when the node starts (bytes) unless given; `object_store_memory` is the store size.
"""

from __future__ import annotations

import os
import shutil
import subprocess

MEMORY_FRACTION = 0.7  # of available RAM, Ray's default for the memory resource
ACCELERATOR_PREFIX = "accelerator_type:"


def available_memory() -> int:
    """Bytes of RAM available now (MemAvailable), or physical memory if that is unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    from quanta._private.services import physical_memory

    return physical_memory()


def _visible_devices():
    value = os.environ.get("CUDA_VISIBLE_DEVICES")
    if value is None:
        return None
    return [d.strip() for d in value.split(",") if d.strip() and d.strip() != "NoDevFiles"]


def _nvidia_smi():
    """(device ids, model) from `nvidia-smi -L`, or ([], None) without it."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return [], None
    try:
        out = subprocess.run([exe, "-L"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return [], None
    ids, model = [], None
    for line in out.splitlines():
        # "GPU 0: NVIDIA A100-SXM4-40GB (UUID: GPU-...)"
        if not line.startswith("GPU ") or ":" not in line:
            continue
        ids.append(line[4:line.index(":")].strip())
        if model is None:
            model = accelerator_model(line[line.index(":") + 1:].split("(UUID")[0])
    return ids, model


def accelerator_model(name: str):
    """'NVIDIA A100-SXM4-40GB' -> 'A100', 'Tesla V100-SXM2-16GB' -> 'V100' (Ray's naming)."""
    words = [w for w in name.replace("NVIDIA", " ").replace("Tesla", " ").replace("GeForce", " ").split() if w]
    return words[0].split("-")[0] if words else None


def resolve(resources: dict, store_bytes: int) -> tuple:
    """(resources with GPU, memory and object_store_memory filled in, the GPU device ids).
    `resources` may already name GPU (an explicit count) and memory (bytes)."""
    out = dict(resources)
    visible = _visible_devices()
    model = None
    if visible is not None:
        detected = visible
    else:
        detected, model = _nvidia_smi()
    if "GPU" in out:
        count = out["GPU"]
        if isinstance(count, float) and not count.is_integer():
            raise ValueError(f"num_gpus of a node must be a whole number, got {count}")
        count = int(count)
        ids = (detected[:count] if len(detected) >= count else [str(i) for i in range(count)])
    else:
        ids = list(detected)
        count = len(ids)
    out["GPU"] = count
    if count == 0:
        ids = []
        del out["GPU"]
    if model and count and not any(k.startswith(ACCELERATOR_PREFIX) for k in out):
        out[ACCELERATOR_PREFIX + model] = 1
    if out.get("memory") is None:
        out["memory"] = int(available_memory() * MEMORY_FRACTION)
    out["object_store_memory"] = int(store_bytes)
    return out, ids
