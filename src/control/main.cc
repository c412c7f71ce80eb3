// quanta_control: the control service daemon.
//
//   quanta_control --session-dir D --socket S [--lifeline-fd F] [--ready-fd F]
#include <unistd.h>

#include <cstdio>

#include "common/flags.h"
#include "common/logging.h"
#include "net/daemon.h"
#include "control/control_server.h"

using namespace quanta;

int main(int argc, char** argv) {
  auto flags = Flags::Parse(argc, argv);
  if (!flags.ok()) {
    std::fprintf(stderr, "quanta_control: %s\n", flags.status().message().c_str());
    return 2;
  }
  std::string session_dir = flags->Get("session-dir");
  std::string socket_path = flags->Get("socket");
  auto lifeline = flags->GetInt("lifeline-fd", -1);
  auto ready = flags->GetInt("ready-fd", -1);
  if (session_dir.empty() || socket_path.empty() || !lifeline.ok() || !ready.ok()) {
    std::fprintf(stderr, "quanta_control: usage: --session-dir D --socket S [--lifeline-fd F]\n");
    return 2;
  }
  InitLogging("control", session_dir + "/logs/control.log", LogLevel::kInfo);
  net::CloseOnExec({lifeline.value(), ready.value()});
  net::RaiseFileLimit();
  net::EventLoop loop;
  Status st = loop.Init();
  ControlServer server(&loop, socket_path, static_cast<int>(lifeline.value()));
  if (st.ok()) st = server.Start();
  if (!st.ok()) {
    std::fprintf(stderr, "quanta_control: %s\n", st.ToString().c_str());
    return 1;
  }
  net::StopLoopOnSignals(&loop);
  net::SignalReady(ready.value());
  loop.Run();
  server.Shutdown("event loop stopped");
  return 0;
}
