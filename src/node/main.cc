// quanta_node: the node daemon. Wires the NodeServer to an event loop and runs it.
//
//   quanta_node --session-dir D --socket S --python P --resource CPU=40000 [--resource GPU=10000 ...] [--gpu-ids 0,1]
//               (--control-socket C | --control-address HOST:PORT) [--node-ip-address IP]
//               [--label k=v ...] [--head] [--driver-node] [--prestart N] [--join-timeout-ms T]
//               [--object-store-memory B] [--inline-threshold B] [--spill-dir DIR]
//               [--lifeline-fd F] [--ready-fd F] [--worker-env KEY=VALUE ...]
//
// Resource amounts are fixed point (10000 = 1 unit). Joining over TCP needs the cluster token
// (QUANTA_AUTH_TOKEN, QUANTA_AUTH_TOKEN_PATH or ~/.quanta/auth_token). The daemon writes
// "ready <node index>\n" to the ready fd once it has joined and accepts connections, and exits
// when the lifeline fd reaches EOF. Exit status 3: it could not join (the reason is on stderr).
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>

#include "common/flags.h"
#include "common/logging.h"
#include "net/daemon.h"
#include "net/socket.h"
#include "node/node_server.h"

using namespace quanta;

namespace {

int Fail(const std::string& what) {
  std::fprintf(stderr, "quanta_node: %s\n", what.c_str());
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  auto flags = Flags::Parse(argc, argv);
  if (!flags.ok()) return Fail(flags.status().message());
  NodeOptions opts;
  opts.session_dir = flags->Get("session-dir");
  opts.socket_path = flags->Get("socket");
  opts.control_socket_path = flags->Get("control-socket");
  std::string control_address = flags->Get("control-address");
  opts.node_ip = flags->Get("node-ip-address");
  opts.python = flags->Get("python", "python3");
  if (opts.session_dir.empty() || opts.socket_path.empty()) return Fail("--session-dir and --socket are required");
  if (opts.control_socket_path.empty() == control_address.empty()) {
    return Fail("exactly one of --control-socket and --control-address is required");
  }
  if (!control_address.empty()) {
    Status st = net::ParseHostPort(control_address, &opts.control_host, &opts.control_port);
    if (!st.ok()) return Fail(st.message());
  }
  InitLogging("node", opts.session_dir + "/logs/node.log", LogLevel::kInfo);
  // Held for the daemon's life: tells session clean-up (and a second node) that it runs.
  int lock_fd = ::open((opts.session_dir + "/node.lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (lock_fd < 0 || ::flock(lock_fd, LOCK_EX | LOCK_NB) != 0) {
    return Fail("another node daemon already runs in session " + opts.session_dir);
  }
  for (const auto& spec : flags->GetAll("resource")) {
    auto eq = spec.find('=');
    char* end = nullptr;
    long long amount = eq == std::string::npos ? -1 : std::strtoll(spec.c_str() + eq + 1, &end, 10);
    if (amount < 0 || *end != '\0') return Fail("bad --resource " + spec + " (want NAME=FIXEDPOINT)");
    opts.resources.Set(spec.substr(0, eq), amount);
  }
  if (std::string ids = flags->Get("gpu-ids"); !ids.empty()) {
    // One id per GPU unit, comma-separated (what CUDA_VISIBLE_DEVICES names, or 0..n-1).
    for (size_t at = 0; at <= ids.size();) {
      size_t comma = ids.find(',', at);
      if (comma == std::string::npos) comma = ids.size();
      if (comma == at) return Fail("bad --gpu-ids " + ids + " (an empty id)");
      opts.gpu_ids.push_back(ids.substr(at, comma - at));
      at = comma + 1;
    }
    if (static_cast<int64_t>(opts.gpu_ids.size()) * protocol::kResourceUnit != opts.resources.Get("GPU")) {
      return Fail("--gpu-ids names " + std::to_string(opts.gpu_ids.size()) + " devices but --resource GPU is " +
                  FormatAmount(opts.resources.Get("GPU")));
    }
  }
  for (const auto& spec : flags->GetAll("label")) {
    auto eq = spec.find('=');
    if (eq == std::string::npos || eq == 0) return Fail("bad --label " + spec + " (want KEY=VALUE)");
    opts.labels.emplace_back(spec.substr(0, eq), spec.substr(eq + 1));
  }
  if (flags->Has("head")) opts.flags |= protocol::NodeInfo::kHead;
  if (flags->Has("driver-node")) opts.flags |= protocol::NodeInfo::kDriverNode;
  auto prestart = flags->GetInt("prestart", 0);
  auto lifeline = flags->GetInt("lifeline-fd", -1);
  auto ready = flags->GetInt("ready-fd", -1);
  auto join_timeout = flags->GetInt("join-timeout-ms", 5000);
  auto infeasible_timeout = flags->GetInt("infeasible-task-timeout-ms", 300000);
  if (!infeasible_timeout.ok() || infeasible_timeout.value() < 0) return Fail("bad --infeasible-task-timeout-ms");
  opts.infeasible_timeout = std::chrono::milliseconds(infeasible_timeout.value());
  auto lineage_bytes = flags->GetInt("max-lineage-bytes", 256ll << 20);
  if (!lineage_bytes.ok() || lineage_bytes.value() < 0) return Fail("bad --max-lineage-bytes");
  opts.max_lineage_bytes = static_cast<size_t>(lineage_bytes.value());
  if (!prestart.ok() || !lifeline.ok() || !ready.ok() || !join_timeout.ok()) return Fail("bad integer flag");
  opts.prestart_workers = static_cast<int>(prestart.value());
  opts.lifeline_fd = static_cast<int>(lifeline.value());
  opts.ready_fd = static_cast<int>(ready.value());
  opts.join_timeout = std::chrono::milliseconds(join_timeout.value());
  opts.worker_env = flags->GetAll("worker-env");
  auto store = flags->GetInt("object-store-memory", 0);
  auto inline_threshold = flags->GetInt("inline-threshold", 100 * 1024);
  if (!store.ok() || !inline_threshold.ok() || store.value() < 0) return Fail("bad store flag");
  opts.store_capacity = static_cast<uint64_t>(store.value());
  opts.inline_threshold = static_cast<uint64_t>(inline_threshold.value());
  opts.spill_dir = flags->Get("spill-dir");
  // Task events (node/task_events.h): QUANTA_TASK_EVENTS_BUFFER events kept until shipped (0
  // records none), shipped every QUANTA_TASK_EVENTS_FLUSH_MS.
  auto env_int = [](const char* name, long long fallback, long long lo, long long hi, long long* out) {
    const char* v = std::getenv(name);
    if (v == nullptr || *v == '\0') {
      *out = fallback;
      return true;
    }
    char* end = nullptr;
    *out = std::strtoll(v, &end, 10);
    return *end == '\0' && *out >= lo && *out <= hi;
  };
  long long events_buffer = 0, events_flush = 0;
  if (!env_int("QUANTA_TASK_EVENTS_BUFFER", 100000, 0, 100000000, &events_buffer)) {
    return Fail("QUANTA_TASK_EVENTS_BUFFER must be a whole number of events from 0 (off) to 100000000");
  }
  if (!env_int("QUANTA_TASK_EVENTS_FLUSH_MS", 1000, 10, 3600000, &events_flush)) {
    return Fail("QUANTA_TASK_EVENTS_FLUSH_MS must be a whole number of milliseconds from 10 to 3600000");
  }
  // `_system_config={"task_events_report_interval_ms": N}` (Ray's name): 0 records nothing, else
  // the flush interval; it overrides the environment.
  auto report_ms = flags->GetInt("task-events-report-interval-ms", -1);
  if (!report_ms.ok() || report_ms.value() < -1 || (report_ms.value() > 0 && report_ms.value() < 10) ||
      report_ms.value() > 3600000) {
    return Fail("--task-events-report-interval-ms must be 0 (record no task events) or 10 to 3600000");
  }
  if (report_ms.value() == 0) events_buffer = 0;
  if (report_ms.value() > 0) events_flush = report_ms.value();
  // QUANTA_NODE_REPLY_SPIN_US: how long the node polls for the result of an actor call it sent
  // to another node, or for the control service's answer to a client's request, before
  // sleeping (adaptive; 0 turns it off).
  long long reply_spin = 0;
  if (!env_int("QUANTA_NODE_REPLY_SPIN_US", 0, 0, 10000, &reply_spin)) {
    return Fail("QUANTA_NODE_REPLY_SPIN_US must be a whole number of microseconds from 0 (off) to 10000");
  }
  opts.reply_spin = std::chrono::microseconds(reply_spin);
  // QUANTA_ACTOR_LANES: 1 (default) sends calls to actors on other nodes straight to their
  // worker when they allow it (docs/cluster-design.md §8); 0 sends every call through the
  // actor's node.
  long long lanes = 1;
  if (!env_int("QUANTA_ACTOR_LANES", 1, 0, 1, &lanes)) return Fail("QUANTA_ACTOR_LANES must be 0 (off) or 1 (on)");
  opts.actor_lanes = lanes == 1;
  opts.task_events_buffer = static_cast<size_t>(events_buffer);
  opts.task_events_flush = std::chrono::milliseconds(events_flush);

  net::CloseOnExec({lifeline.value(), ready.value()});
  net::RaiseFileLimit();
  net::EventLoop loop;
  Status st = loop.Init();
  if (!st.ok()) return Fail(st.ToString());
  NodeServer server(&loop, opts);
  st = server.Start();
  ::unsetenv("QUANTA_AUTH_TOKEN");  // read by Start(); workers must not inherit it
  if (!st.ok()) {
    QLOG(kError) << "start failed: " << st.ToString();
    std::fprintf(stderr, "quanta_node: %s\n", st.message().c_str());
    return 3;
  }
  // SIGTERM/SIGINT: shut down cleanly (kill workers) rather than die and orphan them.
  net::StopLoopOnSignals(&loop);
  loop.Run();
  server.Shutdown("event loop stopped");
  return server.exit_code();
}
