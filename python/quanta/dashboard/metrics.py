"""Samples every alive node's load for the overview charts, keeping a bounded history.

Each sample of a node: host CPU use in % (from the change of its busy/total CPU time since the
previous sample), host memory in use, the node's CPUs in use by tasks and actors (logical,
from the node table), and its object store use. HISTORY samples per node are kept (oldest
dropped); nodes that left are forgotten after they have been gone for a whole history.
Thread-safety: sample() runs on one thread at a time (the sampler's); snapshot() may be
called from any thread.
"""

from __future__ import annotations

import collections
import threading
import time

from quanta.util.state import _source, _tables

HISTORY = 300


class Sampler:
    def __init__(self, history: int = HISTORY):
        self._history = history
        self._lock = threading.Lock()
        self._series: dict[str, collections.deque] = {}
        self._last_cpu: dict[str, tuple[int, int]] = {}
        self._info: dict[str, dict] = {}

    def sample(self, source, timeout: float = 5.0) -> None:
        now = time.time()
        nodes = _tables.node_rows(source, timeout)
        for n in nodes:
            if n["state"] != "ALIVE" or n["is_driver_node"]:
                continue
            try:
                c = source.node_state(n["node_index"], _source.HOST_STATS, timeout_s=timeout)
            except _source.NodeUnavailable:
                continue
            node_id = n["node_id"]
            busy, total = c.get("host_cpu_busy_ms", 0), c.get("host_cpu_total_ms", 0)
            prev = self._last_cpu.get(node_id)
            self._last_cpu[node_id] = (busy, total)
            cpu_pct = None
            if prev and total > prev[1]:
                cpu_pct = round(100.0 * (busy - prev[0]) / (total - prev[1]), 1)
            mem_total = c.get("host_memory_total", 0)
            mem_used = mem_total - c.get("host_memory_available", 0)
            cpus_total = n["resources_total"].get("CPU", 0.0)
            cpus_used = cpus_total - n["resources_available"].get("CPU", 0.0)
            point = {
                "t": now, "host_cpu_percent": cpu_pct,
                "host_memory_percent": round(100.0 * mem_used / mem_total, 1) if mem_total else None,
                "host_memory_used": mem_used, "cpus_used": round(cpus_used, 3), "cpus_total": cpus_total,
                "store_used": c.get("store_used", 0), "store_capacity": c.get("store_capacity", 0),
                "objects": c.get("objects", 0), "workers": c.get("workers", 0),
            }
            with self._lock:
                self._series.setdefault(node_id, collections.deque(maxlen=self._history)).append(point)
                self._info[node_id] = {"node_index": n["node_index"], "node_ip": n["node_ip"],
                                       "is_head_node": n["is_head_node"], "last_seen": now}
        with self._lock:
            for node_id in [k for k, v in self._info.items() if now - v["last_seen"] > 3600]:
                self._series.pop(node_id, None)
                self._info.pop(node_id, None)
                self._last_cpu.pop(node_id, None)

    def snapshot(self) -> dict:
        with self._lock:
            return {node_id: {**self._info[node_id], "samples": list(series)}
                    for node_id, series in self._series.items()}
