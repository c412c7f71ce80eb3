"""Smoke test of the benchmark suite (``python -m quanta.bench``).

Runs every workload once at tiny sizes (``--smoke``), so that the suite cannot
rot: Quanta must run them all; the peers (multiprocessing always, Dask and Ray
when installed) must run every workload they can express.  It checks that the
harness and each workload work, not how fast anything is.  The whole file
takes well under a minute on 2 cores.
"""

import importlib.util
import json

import pytest

from quanta.bench import main
from quanta.bench.workloads import ROWS


def _smoke(tmp_path, backend, only=()):
    out = tmp_path / f"{backend}.json"
    argv = ["--smoke", "--backend", backend, "--json", str(out), "--log-dir", str(tmp_path / "logs")]
    if only:
        argv += ["--only", ",".join(only)]
    code = main(argv)
    doc = json.loads(out.read_text())
    results = {row: entry["backends"][backend] for row, entry in doc["rows"].items()}
    return code, doc, results


def _failures(results):
    return {row: res.get("errors") or res["status"] for row, res in results.items()
            if res["status"] not in ("ok", "n/a")}


def test_every_workload_runs_on_quanta(tmp_path, no_cluster):
    code, doc, results = _smoke(tmp_path, "quanta")
    assert set(results) == set(ROWS)  # nothing in the catalogue was skipped
    assert _failures(results) == {}
    assert all(res["status"] == "ok" and res["samples"] for res in results.values())
    assert code == 0


@pytest.mark.parametrize("peer,package,only", [
    ("multiprocessing", "multiprocessing", ()),
    ("dask", "distributed", ()),
    # Ray runs the same code as Quanta (one backend, two modules), so a few
    # workloads suffice: the ones where Ray takes its own path.
    ("ray", "ray", ("single_client_wait_1k_refs", "single_client_get_calls_Plasma_Store",
                    "n_n_actor_calls_with_arg_async", "1_1_async_actor_calls_async",
                    "pool_map_throughput")),
])
def test_peer_runs_what_it_can_express(tmp_path, peer, package, only):
    if importlib.util.find_spec(package) is None:
        pytest.skip(f"{package} is not installed")
    code, doc, results = _smoke(tmp_path, peer, only)
    assert _failures(results) == {}
    assert any(res["status"] == "ok" for res in results.values())
    assert code == 0


def test_comparison_table_and_saved_results(tmp_path, capsys, no_cluster):
    out = tmp_path / "cmp.json"
    code = main(["--smoke", "--compare", "mp", "--json", str(out), "--log-dir", str(tmp_path / "logs"),
                 "--only", "single_client_tasks_sync,sync_task_latency_p99,1_1_actor_calls_sync"])
    assert code == 0
    doc = json.loads(out.read_text())
    assert doc["meta"]["backends"] == ["quanta", "multiprocessing"]
    tasks = doc["rows"]["single_client_tasks_sync"]
    assert tasks["higher_is_better"] and {r["status"] for r in tasks["backends"].values()} == {"ok"}
    assert doc["rows"]["1_1_actor_calls_sync"]["backends"]["multiprocessing"]["status"] == "n/a"
    capsys.readouterr()
    assert main(["--show", str(out)]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines() if line.strip()}
    assert "quanta/mp" in lines["workload"]
    assert lines["1_1_actor_calls_sync"].split()[-1] == "n/a"
    assert "sync_task_latency_p50" in lines
