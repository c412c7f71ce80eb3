"""Tables and the JSON file of a run.

The JSON file holds everything a table is made from, so ``--show PATH``
prints the same tables again later without re-running anything.
"""

import json
import math

from . import workloads as wl
from .backends import SHORT
from .measure import summarize

FORMAT = "quanta-bench/1"


def fmt(x):
    """A number with about four significant digits, thousands separated."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    if x == 0:
        return "0"
    digits = max(0, 3 - int(math.floor(math.log10(abs(x)))))
    return f"{x:.{digits}f}"


def to_json(run, meta):
    """The document ``--json`` writes: meta plus one entry per row and backend."""
    rows = {}
    for w in run.plan.workloads:
        for r in w.rows:
            entry = {"workload": w.name, "unit": r.unit, "higher_is_better": r.higher_is_better,
                     "baseline": r.baseline, "from_ray": w.from_ray, "backends": {}}
            for b in run.plan.backends:
                cell = run.cells[(r.name, b)]
                out = {"status": cell.status}
                if cell.samples:
                    out.update(summarize(cell.samples), samples=cell.samples, details=cell.details)
                if cell.errors:
                    out["errors"] = cell.errors
                entry["backends"][b] = out
            rows[r.name] = entry
    return {"format": FORMAT, "meta": meta, "sessions": run.sessions, "rows": rows}


def write_json(doc, path):
    with open(path, "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")


def ratio(entry, primary, peer):
    """primary/peer oriented so that > 1 means the primary is better."""
    a, b = entry["backends"].get(primary, {}), entry["backends"].get(peer, {})
    if entry.get("baseline") or a.get("status") != "ok" or b.get("status") != "ok":
        return None
    if not a["mean"] or not b["mean"]:
        return None
    return a["mean"] / b["mean"] if entry["higher_is_better"] else b["mean"] / a["mean"]


def _cell(result):
    if result.get("status") == "ok":
        return f"{fmt(result['mean'])} ± {fmt(result['sd'])}"
    return {"missing": "not installed", "unavailable": "unavailable"}.get(result.get("status"),
                                                                          result.get("status", "-"))


def tables(doc):
    """The report as text: one table, plus notes."""
    backends = doc["meta"]["backends"]
    primary, peers = backends[0], backends[1:]
    rows = doc["rows"]
    head = ["workload", "unit"]
    if peers:
        head += [SHORT.get(b, b) for b in backends]
        head += [f"{SHORT.get(primary, primary)}/{SHORT.get(p, p)}" for p in peers]
    else:
        head += [f"{primary} mean ± sd", "median", "runs"]
    body = []
    for name, entry in rows.items():
        line = [name, entry["unit"]]
        if peers:
            line += [_cell(entry["backends"][b]) for b in backends]
            for p in peers:
                r = ratio(entry, primary, p)
                na = "n/a" in (entry["backends"][p].get("status"),
                               entry["backends"][primary].get("status"))
                line.append(f"{r:.2f}" if r is not None else "n/a" if na else
                            "base" if entry.get("baseline") else "-")
        else:
            res = entry["backends"][primary]
            line += [_cell(res), fmt(res.get("median")), str(len(res.get("samples", [])) or "-")]
        body.append(line)
    out = [_grid(head, body, right_from=1)]
    if peers:
        out.append(f"{primary}/peer ratios compare means; > 1 means {primary} is better "
                   "(a higher rate, or a lower time or footprint). n/a: the peer cannot express it; "
                   "base: a baseline of the machine measured in each child, not compared.")
        summary = []
        for p in peers:
            rs = [ratio(e, primary, p) for e in rows.values()]
            rs = [r for r in rs if r]
            if rs:
                geo = math.exp(sum(math.log(r) for r in rs) / len(rs))
                summary.append(f"{primary}/{SHORT.get(p, p)}: geometric mean {geo:.2f} "
                               f"over {len(rs)} rows")
        if summary:
            out.append("; ".join(summary))
    problems = {}  # the same error on many rows is listed once
    for name, entry in rows.items():
        for b, res in entry["backends"].items():
            if res.get("errors") and res.get("status") != "missing":
                error = " ".join("; ".join(res["errors"]).split())  # one line
                problems.setdefault((b, error), []).append(name)
    if problems:
        out.append("Problems:\n" + "\n".join(
            f"  {b} {_rows_named(names)}: {error}" for (b, error), names in problems.items()))
    missing = sorted({f"{b} ({res['errors'][0]})" for e in rows.values()
                      for b, res in e["backends"].items() if res.get("status") == "missing"})
    if missing:
        out.append("Not installed: " + ", ".join(missing))
    meta = doc["meta"]
    if meta.get("scaled") and meta["mode"] != "smoke":
        out.append("Scaled from the source's size:\n" + "\n".join(f"  {n}" for n in meta["scaled"]))
    versions = ", ".join(f"{b} {s.get('version', '?')}"
                         for b, s in doc.get("sessions", {}).items() if s)
    t = meta["timing"]
    out.append(f"{meta['mode']} run: warm-up {t['warmup_s']} s, {t['runs']} runs of >= {t['run_s']} s "
               f"({t['oneshot_runs']} of start-up and footprint, 1 batch of actors), "
               f"{meta['rounds']} round(s); {versions}; {meta['host']['cpus']} CPUs; "
               f"{meta['elapsed_s']:.0f} s in all")
    out.append("rerun: " + meta["command"])
    return "\n\n".join(out)


def _rows_named(names):
    return names[0] if len(names) == 1 else f"({len(names)} rows: {names[0]} ... {names[-1]})"


def _grid(head, body, right_from):
    widths = [max(len(str(r[i])) for r in [head] + body) for i in range(len(head))]

    def line(cells):
        return "  ".join(str(c).rjust(w) if i > right_from else str(c).ljust(w)
                         for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(head), rule] + [line(r) for r in body])


def describe_catalogue(backend_names):
    """``--list``: every workload, its rows and which backends express it."""
    from .backends import backend_class

    impl = {b: backend_class(b).implemented() for b in backend_names}
    head = (["workload", "group", "rows (unit)"] + [SHORT.get(b, b) for b in backend_names]
            + ["what it does"])
    body = []
    for w in wl.CATALOGUE:
        rows = ", ".join(f"{r.name} ({r.unit})" if r.name != w.name else r.unit for r in w.rows)
        body.append([w.name, w.group, rows]
                    + ["yes" if w.name in impl[b] else "n/a" for b in backend_names] + [w.about])
    return _grid(head, body, right_from=len(head))
