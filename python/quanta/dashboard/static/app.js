// The dashboard's pages: each fetches the JSON endpoints (same origin, session cookie) and
// renders tables and charts. Every value is inserted as text, never as HTML.
"use strict";

const REFRESH_MS = 2000;
const page = document.body.dataset.page;
const main = document.getElementById("main");

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v;
    else if (k === "href") e.setAttribute("href", v);
    else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(c == null ? "" : String(c)));
  return e;
}

async function getJSON(url) {
  const r = await fetch(url, {credentials: "same-origin", headers: {"Accept": "application/json"}});
  if (r.status === 401) { location.href = "/login?next=" + encodeURIComponent(location.pathname + location.search); throw new Error("unauthorized"); }
  const body = await r.json();
  if (!r.ok && !body.not_implemented) throw new Error(body.error || r.statusText);
  return body;
}

function fmtBytes(n) {
  if (n == null) return "";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i ? n.toFixed(1) : n) + " " + units[i];
}

function fmtTime(ms) { return ms ? new Date(ms).toLocaleString() : ""; }

function cellText(v) {
  if (v == null) return "";
  if (typeof v === "object") return JSON.stringify(v);
  return String(v);
}

// columns: [{key, label, render?(row) -> Node|string}]
function table(rows, columns, id) {
  const t = el("table", id ? {id} : {});
  t.append(el("thead", {}, el("tr", {}, ...columns.map(c => el("th", {}, c.label || c.key)))));
  const body = el("tbody");
  if (!rows.length) body.append(el("tr", {}, el("td", {colspan: columns.length, class: "muted"}, "none")));
  for (const r of rows) {
    body.append(el("tr", {}, ...columns.map(c => {
      const v = c.render ? c.render(r) : cellText(r[c.key]);
      const td = el("td", {class: (c.mono ? "mono " : "") + (c.state ? "state-" + r[c.key] : "")}, v);
      return td;
    })));
  }
  t.append(body);
  return t;
}

function section(title, ...content) {
  return el("section", {}, el("h2", {}, title), ...content);
}

function errorsNote(errors) {
  return errors && errors.length ? el("p", {class: "error"}, "Missing data: " + errors.join("; ")) : "";
}

// Replaces a container's content only if it changed, so that a refresh showing the same data
// keeps the page (selection, scroll, links) as it was.
function replaceIfChanged(container, ...nodes) {
  const next = el("div", {}, ...nodes);
  if (next.innerHTML !== container.innerHTML) container.replaceChildren(...next.childNodes);
}

function render(...nodes) { replaceIfChanged(main, ...nodes); }

function logLink(nodeId, name) {
  return name ? el("a", {href: "/logs?node_id=" + encodeURIComponent(nodeId) + "&name=" + encodeURIComponent(name)}, name) : "";
}

// ---------------------------------------------------------------------- overview

const charts = {};
const CHARTS = [
  {id: "chart-cpu", title: "Host CPU use (%)", value: s => s.host_cpu_percent, max: 100},
  {id: "chart-cpus", title: "CPUs in use by tasks and actors", value: s => s.cpus_used},
  {id: "chart-memory", title: "Host memory in use (%)", value: s => s.host_memory_percent, max: 100},
  {id: "chart-store", title: "Object store used (MiB)", value: s => s.store_used / 1048576},
];
const COLORS = ["#1a73e8", "#e8710a", "#188038", "#a142f4", "#d93025", "#12b5cb", "#f9ab00", "#5f6368"];

function drawCharts(metrics, container) {
  const nodes = Object.entries(metrics.nodes).sort((a, b) => a[1].node_index - b[1].node_index);
  for (const spec of CHARTS) {
    const datasets = nodes.map(([nodeId, n], i) => ({
      label: "node " + n.node_index + (n.is_head_node ? " (head)" : "") + " " + nodeId.slice(0, 8),
      data: n.samples.map(s => ({x: s.t * 1000, y: spec.value(s)})),
      borderColor: COLORS[i % COLORS.length], backgroundColor: COLORS[i % COLORS.length],
      pointRadius: 0, borderWidth: 2, tension: 0.2, spanGaps: true,
    }));
    const labels = nodes.length ? nodes[0][1].samples.map(s => new Date(s.t * 1000).toLocaleTimeString()) : [];
    for (const d of datasets) d.data = d.data.map(p => p.y);
    let c = charts[spec.id];
    if (!c || !document.getElementById(spec.id)) {
      const canvas = el("canvas", {id: spec.id, "data-samples": "0"});
      container.append(el("div", {class: "chart"}, el("h3", {}, spec.title), el("div", {class: "plot"}, canvas)));
      c = charts[spec.id] = new Chart(canvas.getContext("2d"), {
        type: "line", data: {labels, datasets},
        options: {animation: false, responsive: true, maintainAspectRatio: false,
                  scales: {y: {beginAtZero: true, suggestedMax: spec.max}}, plugins: {legend: {position: "bottom"}}},
      });
    } else {
      c.data.labels = labels;
      c.data.datasets = datasets;
      c.update();
    }
    const total = datasets.reduce((n, d) => n + d.data.filter(v => v != null).length, 0);
    document.getElementById(spec.id).dataset.samples = String(total);
  }
}

async function overview() {
  const [summary, nodes, metrics] = await Promise.all([getJSON("/api/summary"), getJSON("/api/nodes"), getJSON("/api/metrics")]);
  let chartBox = document.getElementById("charts");
  if (!chartBox) {
    chartBox = el("div", {class: "charts", id: "charts"});
    const cards = el("div", {class: "cards", id: "cards"});
    render(cards, section("Nodes", el("div", {id: "nodes"})), section("Use over time", chartBox));
  }
  const objects = Object.values(summary.objects_by_storage);
  const cards = [
    ["nodes alive", summary.nodes_alive], ["nodes dead", summary.nodes_dead],
    ["actors alive", summary.actors_by_state.ALIVE || 0],
    ["objects", objects.reduce((n, o) => n + o.objects, 0)],
    ["object bytes", fmtBytes(objects.reduce((n, o) => n + o.bytes, 0))],
  ];
  replaceIfChanged(document.getElementById("cards"), ...cards.map(([label, value]) =>
    el("div", {class: "card"}, el("div", {class: "value"}, value), el("div", {class: "label"}, label))));
  replaceIfChanged(document.getElementById("nodes"), errorsNote(summary.errors), table(nodes.result, [
    {key: "node_index", label: "#"}, {key: "node_id", label: "node id", mono: true}, {key: "node_ip", label: "address"},
    {key: "state", state: true}, {key: "is_head_node", label: "head", render: r => r.is_head_node ? "head" : ""},
    {key: "resources_total", label: "resources (free / total)", render: r => Object.entries(r.resources_total)
      .map(([k, v]) => `${k} ${(r.resources_available[k] || 0)}/${v}`).join(", ")},
    {key: "state_message", label: "why dead"},
  ], "nodes-table"));
  drawCharts(metrics, chartBox);
}

// ---------------------------------------------------------------------- other pages

async function actors() {
  const data = await getJSON("/api/actors");
  render(section("Actors", errorsNote(data.errors), table(data.result, [
    {key: "actor_id", label: "actor id", mono: true}, {key: "class_name", label: "class"}, {key: "name"},
    {key: "state", state: true}, {key: "node_id", label: "node", mono: true}, {key: "pid"},
    {key: "job_id", label: "job", mono: true}, {key: "num_restarts", label: "restarts"},
    {key: "death_cause", label: "death cause"},
  ], "actors-table")));
}

async function objects() {
  const data = await getJSON("/api/objects");
  render(section("Objects", el("p", {class: "muted"},
      "What pins an object: references (processes holding an ObjectRef, pending tasks using it, objects containing it) " +
      "and readers (buffers mapped right now). Its owner is the process that created it."),
    errorsNote(data.errors), table(data.result, [
      {key: "object_id", label: "object id", mono: true}, {key: "object_size", label: "size", render: r => fmtBytes(r.object_size)},
      {key: "storage"}, {key: "node_index", label: "node"},
      {key: "pinned_by", label: "pinned by", render: r => `${r.reference_count} reference(s), ${r.readers} reader(s)`},
      {key: "owner", label: "owner", render: r => r.owner_pid ? `${r.owner_type} pid ${r.owner_pid}` : (r.owner_id ? "client " + r.owner_id : "")},
    ], "objects-table")));
}

async function workers() {
  const data = await getJSON("/api/workers");
  render(section("Workers and drivers", errorsNote(data.errors), table(data.result, [
    {key: "worker_id", label: "worker id", mono: true}, {key: "worker_type", label: "type"}, {key: "pid"},
    {key: "node_index", label: "node"}, {key: "state", state: true}, {key: "task_name", label: "task"},
    {key: "actor_id", label: "actor", mono: true}, {key: "job_id", label: "job", mono: true},
    {key: "stdout_log", label: "stdout", render: r => logLink(r.node_id, r.stdout_log)},
    {key: "stderr_log", label: "stderr", render: r => logLink(r.node_id, r.stderr_log)},
  ], "workers-table")));
}

async function logs() {
  const q = new URLSearchParams(location.search);
  if (q.get("node_id") && q.get("name")) {
    const data = await getJSON("/api/logs/file?node_id=" + encodeURIComponent(q.get("node_id")) + "&name=" + encodeURIComponent(q.get("name")));
    const note = data.offset > 0 ? el("p", {class: "muted"}, `last ${fmtBytes(data.size - data.offset)} of ${fmtBytes(data.size)}`) : "";
    render(section(`${data.name} on node ${data.node_id.slice(0, 8)}`, el("p", {}, el("a", {href: "/logs"}, "all log files")), note,
      el("pre", {class: "log", id: "log-text"}, data.text)));
    return;
  }
  const data = await getJSON("/api/logs");
  const parts = [];
  for (const [nodeId, files] of Object.entries(data.result)) {
    parts.push(section("Node " + nodeId, files.error ? el("p", {class: "error"}, files.error) : table(files, [
      {key: "name", label: "file", render: f => logLink(nodeId, f.name)}, {key: "size", render: f => fmtBytes(f.size)},
      {key: "mtime_ms", label: "modified", render: f => fmtTime(f.mtime_ms)},
    ])));
  }
  render(...parts);
}

async function jobs() {
  const q = new URLSearchParams(location.search);
  if (q.get("submission_id")) {
    const id = encodeURIComponent(q.get("submission_id"));
    const [info, out] = await Promise.all([getJSON("/api/jobs/" + id), getJSON("/api/jobs/" + id + "/logs")]);
    render(section("Job " + info.submission_id, el("p", {}, el("a", {href: "/jobs"}, "all jobs")),
      table([info], [{key: "status", state: true}, {key: "entrypoint", mono: true}, {key: "job_id", label: "driver job", mono: true},
                     {key: "start_time", label: "started", render: r => fmtTime(r.start_time)},
                     {key: "end_time", label: "ended", render: r => fmtTime(r.end_time)}, {key: "message"}]),
      el("h2", {}, "Output"), el("pre", {class: "log", id: "job-log"}, out.logs)));
    return;
  }
  const data = await getJSON("/api/state/jobs");
  render(section("Jobs", el("p", {class: "muted"}, "Drivers that connected (DRIVER), jobs submitted with `quanta job submit` (SUBMISSION) and the supervisors holding their entrypoint resources (SUPERVISOR)."),
    errorsNote(data.errors), table(data.result.slice().reverse(), [
      {key: "submission_id", label: "submission", render: r => r.submission_id ? el("a", {href: "/jobs?submission_id=" + encodeURIComponent(r.submission_id)}, r.submission_id) : ""},
      {key: "job_id", label: "job id", mono: true}, {key: "type"}, {key: "status", state: true},
      {key: "entrypoint", mono: true}, {key: "start_time", label: "started", render: r => fmtTime(r.start_time)},
      {key: "end_time", label: "ended", render: r => fmtTime(r.end_time)},
    ], "jobs-table")));
}

async function placementGroups() {
  const data = await getJSON("/api/placement_groups");
  render(section("Placement groups", table(data.result, [
    {key: "placement_group_id", label: "id", mono: true}, {key: "name"}, {key: "state", state: true},
    {key: "strategy"}, {key: "bundles", render: r => r.bundles.map(b => `#${b.bundle_id} ${JSON.stringify(b.resources)} on ${(b.node_id || "-").slice(0, 8)}`).join("; ")},
    {key: "creator_job_id", label: "job", mono: true}, {key: "message"},
  ], "pg-table")));
}

async function tasks() {
  const params = new URLSearchParams(location.search);
  const id = params.get("task_id");
  if (id) {  // one task, with its error's traceback
    const data = await getJSON("/api/tasks?filter=task_id=" + encodeURIComponent(id));
    const t = data.result[0];
    if (!t) { render(section("Task " + id, el("div", {class: "notice", id: "task-missing"}, "no such task in the head's table"))); return; }
    render(section("Task " + t.name, table([t], [
      {key: "task_id", label: "task id", mono: true}, {key: "state", state: true}, {key: "attempt_number", label: "attempt"},
      {key: "node_id", label: "node", mono: true}, {key: "worker_pid", label: "worker pid"}, {key: "error_type", label: "error"},
    ], "task-table"), el("pre", {class: "log", id: "task-error"}, t.error_message || "")));
    return;
  }
  const data = await getJSON("/api/tasks?limit=1000");
  const s = data.stats || {};
  const lost = (s.dropped_on_head || 0) + (s.dropped_on_nodes || 0);
  render(section("Tasks", el("div", {class: "notice", id: "tasks-stats"},
      `${s.stored || 0} tasks kept by the head (at most ${s.capacity || 0}); newest first, up to 1000 shown` +
      (lost ? `; lost: ${s.dropped_on_head} rows dropped by the head, ${s.dropped_on_nodes} events by the nodes` : "")),
    table(data.result, [
      {key: "task_id", label: "task id", mono: true, render: r => el("a", {href: "/tasks?task_id=" + r.task_id}, r.task_id)},
      {key: "name"}, {key: "type"}, {key: "state", state: true}, {key: "attempt_number", label: "attempt"},
      {key: "node_id", label: "node", mono: true, render: r => (r.node_id || "").slice(0, 8)},
      {key: "worker_pid", label: "worker pid"}, {key: "job_id", label: "job", mono: true},
      {key: "duration", label: "ran (s)", render: r => r.start_time_ms ? (((r.end_time_ms || Date.now()) - r.start_time_ms) / 1000).toFixed(3) : ""},
      {key: "error_type", label: "error"},
    ], "tasks-table")));
}

// Tasks per worker and object transfers per node as bars on one time axis (the newest 2000
// spans); the whole Chrome trace is a download for chrome://tracing or Perfetto.
async function timeline() {
  const data = await getJSON("/api/timeline?limit=2000");
  const spans = data.result;
  const head = el("div", {class: "notice", id: "timeline-stats"},
    `${data.total} spans (tasks and object transfers); the newest ${spans.length} shown. `,
    el("a", {href: "/api/timeline?download=1", id: "timeline-download"}, "Download the Chrome trace"),
    " (open it in chrome://tracing or Perfetto)");
  if (!spans.length) { render(section("Timeline", head, el("p", {class: "muted"}, "nothing has run yet"))); return; }
  const t0 = Math.min(...spans.map(e => e.ts));
  const t1 = Math.max(...spans.map(e => e.ts + e.dur));
  const width = Math.max(1, t1 - t0);
  const rows = new Map();  // "node / row" -> spans
  for (const e of spans) {
    const key = e.pid + " / " + e.tid;
    if (!rows.has(key)) rows.set(key, []);
    rows.get(key).push(e);
  }
  const lanes = el("div", {class: "timeline", id: "timeline-lanes"});
  for (const key of [...rows.keys()].sort()) {
    const lane = el("div", {class: "lane"});
    for (const e of rows.get(key)) {
      const what = e.cat === "transfer"
        ? `${e.name}: ${fmtBytes(e.args.bytes)} from node ${e.args.from_node_index}`
        : `${e.name} (${e.args.state}) ${e.args.task_id}`;
      const bar = el("span", {class: "bar " + (e.cat === "transfer" ? "bar-transfer" : "bar-" + (e.args.state || "")),
                              title: `${what}, ${(e.dur / 1000).toFixed(3)} ms`, "data-cat": e.cat});
      bar.style.left = (100 * (e.ts - t0) / width).toFixed(3) + "%";
      bar.style.width = Math.max(0.1, 100 * e.dur / width).toFixed(3) + "%";
      lane.append(bar);
    }
    lanes.append(el("div", {class: "lane-row"}, el("span", {class: "lane-name mono"}, key), lane));
  }
  render(section("Timeline", head,
    el("p", {class: "muted"}, `${((t1 - t0) / 1e6).toFixed(3)} s from ${new Date(t0 / 1000).toLocaleTimeString()}`),
    lanes));
}

const PAGES = {overview, actors, objects, workers, logs, jobs, "placement-groups": placementGroups, tasks, timeline};
const LIVE = new Set(["overview", "actors", "objects", "workers", "jobs", "placement-groups", "tasks", "timeline"]);

for (const a of document.querySelectorAll("header nav a")) {
  if (a.dataset.nav === page) a.classList.add("active");
}

async function refresh() {
  try {
    await PAGES[page]();
    document.body.dataset.loaded = String(Number(document.body.dataset.loaded || 0) + 1);
  } catch (e) {
    if (e.message !== "unauthorized") render(el("p", {class: "error", id: "load-error"}, "Could not load: " + e.message));
  }
}

refresh().then(() => {
  const q = new URLSearchParams(location.search);
  if (LIVE.has(page) && !q.get("submission_id")) setInterval(refresh, REFRESH_MS);
});
