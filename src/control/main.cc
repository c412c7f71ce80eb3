// quanta_control: the control service daemon.
//
//   quanta_control --session-dir D --socket S [--host IP --port P] [--heartbeat-timeout-ms T]
//                  [--lifeline-fd F] [--ready-fd F] [--storage FILE|redis://HOST:PORT[/PREFIX]]
//                  [--rejoin-grace-ms G] [--node-reconnect-timeout-ms R]
//
// With --port it also listens on TCP (IP defaults to 127.0.0.1) and then needs the cluster token
// (QUANTA_AUTH_TOKEN, QUANTA_AUTH_TOKEN_PATH or ~/.quanta/auth_token). It writes "ready <port>\n"
// to the ready fd once it accepts connections. With --storage its tables are persisted there and
// reloaded when it starts again with the same value (control/table_store.h).
#include <unistd.h>

#include <cstdio>
#include <cstdlib>

#include "common/flags.h"
#include "common/logging.h"
#include "control/control_server.h"
#include "net/daemon.h"

using namespace quanta;

int main(int argc, char** argv) {
  auto flags = Flags::Parse(argc, argv);
  if (!flags.ok()) {
    std::fprintf(stderr, "quanta_control: %s\n", flags.status().message().c_str());
    return 2;
  }
  ControlOptions opts;
  opts.session_dir = flags->Get("session-dir");
  opts.socket_path = flags->Get("socket");
  opts.tcp_host = flags->Get("host");
  auto port = flags->GetInt("port", -1);
  auto lifeline = flags->GetInt("lifeline-fd", -1);
  auto ready = flags->GetInt("ready-fd", -1);
  auto hb_timeout = flags->GetInt("heartbeat-timeout-ms", 3000);
  auto hb_interval = flags->GetInt("heartbeat-interval-ms", 500);
  auto grace = flags->GetInt("rejoin-grace-ms", 10000);
  auto reconnect = flags->GetInt("node-reconnect-timeout-ms", 60000);
  if (opts.session_dir.empty() || opts.socket_path.empty() || !port.ok() || !lifeline.ok() || !ready.ok() ||
      !hb_timeout.ok() || !hb_interval.ok() || port.value() > 65535 || hb_timeout.value() < 100 ||
      hb_interval.value() < 10 || !grace.ok() || grace.value() < 0 || !reconnect.ok() || reconnect.value() < 1 ||
      reconnect.value() > 86400000) {
    std::fprintf(stderr, "quanta_control: usage: --session-dir D --socket S [--host IP --port P] "
                         "[--heartbeat-timeout-ms >=100] [--lifeline-fd F] [--ready-fd F] "
                         "[--storage FILE|redis://HOST:PORT] [--rejoin-grace-ms G] "
                         "[--node-reconnect-timeout-ms 1..86400000]\n");
    return 2;
  }
  opts.tcp_port = static_cast<int>(port.value());
  opts.lifeline_fd = static_cast<int>(lifeline.value());
  opts.heartbeat_timeout = std::chrono::milliseconds(hb_timeout.value());
  opts.heartbeat_interval = std::chrono::milliseconds(hb_interval.value());
  opts.rejoin_grace = std::chrono::milliseconds(grace.value());
  opts.node_reconnect_timeout = std::chrono::milliseconds(reconnect.value());
  if (const char* rows = std::getenv("QUANTA_TASK_EVENTS_MAX_TASKS"); rows != nullptr && *rows != '\0') {
    char* end = nullptr;
    long long n = std::strtoll(rows, &end, 10);
    if (*end != '\0' || n < 1 || n > 100000000) {
      std::fprintf(stderr, "quanta_control: QUANTA_TASK_EVENTS_MAX_TASKS must be a whole number of rows from 1 to "
                           "100000000, got '%s'\n", rows);
      return 2;
    }
    opts.max_task_rows = static_cast<size_t>(n);
  }
  InitLogging("control", opts.session_dir + "/logs/control.log", LogLevel::kInfo);
  net::CloseOnExec({lifeline.value(), ready.value()});
  net::RaiseFileLimit();
  std::unique_ptr<TableStore> store;
  if (std::string spec = flags->Get("storage"); !spec.empty()) {
    auto opened = OpenTableStore(spec);
    if (!opened.ok()) {
      QLOG(kError) << "start failed: " << opened.status().ToString();
      std::fprintf(stderr, "quanta_control: %s\n", opened.status().message().c_str());
      return 1;
    }
    store = std::move(opened).value();
  }
  net::EventLoop loop;
  Status st = loop.Init();
  ControlServer server(&loop, opts, std::move(store));
  if (st.ok()) st = server.Start();
  ::unsetenv("QUANTA_AUTH_TOKEN");  // read by Start(); nothing this process starts needs it
  ::unsetenv("QUANTA_REDIS_PASSWORD");  // kept by the store
  if (!st.ok()) {
    QLOG(kError) << "start failed: " << st.ToString();
    std::fprintf(stderr, "quanta_control: %s\n", st.message().c_str());
    return 1;
  }
  net::StopLoopOnSignals(&loop);
  net::SignalReady(ready.value(), std::to_string(server.tcp_port()));
  loop.Run();
  server.Shutdown("event loop stopped");
  return 0;
}
