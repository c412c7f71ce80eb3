// Start-up plumbing shared by the daemons' main() functions (quanta_node, quanta_control).
#pragma once

#include <initializer_list>
#include <string>

#include "net/event_loop.h"

namespace quanta::net {

// Marks descriptors inherited from the launcher close-on-exec, so they do not leak into the
// processes the daemon starts. Negative values are skipped.
void CloseOnExec(std::initializer_list<long long> fds);
// SIGTERM and SIGINT stop `loop` (the daemon then shuts down cleanly); SIGPIPE is ignored.
void StopLoopOnSignals(EventLoop* loop);
// Raises the soft limit on open files as far as the hard limit allows (a node serves a
// connection per client and per peer); returns the new soft limit.
long RaiseFileLimit();
// Tells the launcher the daemon accepts connections: writes "ready <detail>\n" to `fd` and
// closes it (detail: e.g. the TCP port it listens on).
void SignalReady(long long fd, const std::string& detail = "");

}  // namespace quanta::net
