// quanta_node: the node daemon. Wires the NodeServer to an event loop and runs it.
//
//   quanta_node --session-dir D --socket S --control-socket C --python P
//               --resource CPU=40000 [--resource GPU=10000 ...] --prestart N
//               [--lifeline-fd F] [--ready-fd F] [--worker-env KEY=VALUE ...]
//
// Resource amounts are fixed point (10000 = 1 unit). The daemon writes "ready\n" to the
// ready fd once it accepts connections, and exits when the lifeline fd reaches EOF.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>

#include "common/flags.h"
#include "common/logging.h"
#include "net/daemon.h"
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
  opts.python = flags->Get("python", "python3");
  if (opts.session_dir.empty() || opts.socket_path.empty()) return Fail("--session-dir and --socket are required");
  InitLogging("node", opts.session_dir + "/logs/node.log", LogLevel::kInfo);
  for (const auto& spec : flags->GetAll("resource")) {
    auto eq = spec.find('=');
    char* end = nullptr;
    long long amount = eq == std::string::npos ? -1 : std::strtoll(spec.c_str() + eq + 1, &end, 10);
    if (amount < 0 || *end != '\0') return Fail("bad --resource " + spec + " (want NAME=FIXEDPOINT)");
    opts.resources.Set(spec.substr(0, eq), amount);
  }
  auto prestart = flags->GetInt("prestart", 0);
  auto lifeline = flags->GetInt("lifeline-fd", -1);
  auto ready = flags->GetInt("ready-fd", -1);
  if (!prestart.ok() || !lifeline.ok() || !ready.ok()) return Fail("bad integer flag");
  opts.prestart_workers = static_cast<int>(prestart.value());
  opts.lifeline_fd = static_cast<int>(lifeline.value());
  opts.worker_env = flags->GetAll("worker-env");
  auto store = flags->GetInt("object-store-memory", 0);
  auto inline_threshold = flags->GetInt("inline-threshold", 100 * 1024);
  if (!store.ok() || !inline_threshold.ok() || store.value() < 0) return Fail("bad store flag");
  opts.store_capacity = static_cast<uint64_t>(store.value());
  opts.inline_threshold = static_cast<uint64_t>(inline_threshold.value());
  opts.spill_dir = flags->Get("spill-dir");

  net::CloseOnExec({lifeline.value(), ready.value()});
  net::RaiseFileLimit();
  net::EventLoop loop;
  Status st = loop.Init();
  if (!st.ok()) return Fail(st.ToString());
  NodeServer server(&loop, opts);
  st = server.Start();
  if (!st.ok()) {
    QLOG(kError) << "start failed: " << st.ToString();
    return Fail(st.ToString());
  }
  // SIGTERM/SIGINT: shut down cleanly (kill workers) rather than die and orphan them.
  net::StopLoopOnSignals(&loop);
  net::SignalReady(ready.value());
  loop.Run();
  server.Shutdown("event loop stopped");
  return 0;
}
