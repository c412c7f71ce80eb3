// Asks a control service for the cluster's node table over an authenticated TCP tool channel:
// what `quanta status --address HOST:PORT` uses on a host that runs no node of the cluster.
// The tool channel can only read. Blocking; any thread.
#pragma once

#include <string>

#include "common/status.h"
#include "protocol/cluster_messages.h"

namespace quanta {

Result<protocol::ClusterInfo> QueryCluster(const std::string& address, int timeout_ms);

}  // namespace quanta
