// Messages that let an observer (quanta.util.state, the dashboard) see one node's state: its
// processes, objects, log files and host load. A client asks its own node, naming any node of
// the cluster; the node answers for itself or relays the question to that node over the peer
// channel (node/state_service.h) and routes the answer back.
//
//   client -> node   GetNodeState (NodeStateQuery)    node -> client   NodeState (NodeStateReply)
//   node -> node     PeerStateQuery (NodeStateQuery)  node -> node     PeerStateReply (NodeStateReply)
//
// The reply's body is the encoding of the struct named by the query's kind (below). Observers
// only read; nothing here changes the node.
// Thread-safety: plain values.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "protocol/messages.h"

namespace quanta::protocol {

enum class StateKind : uint8_t {
  kProcesses = 1,  // body: ProcessList (drivers and workers connected to the node)
  kObjects = 2,    // body: StoreStatsReply (as GetStoreStats, with no holder's view)
  kLogFiles = 3,   // body: LogFileList (the node's session log folder)
  kLogRead = 4,    // body: bytes of log file `arg` from `offset` (negative: from the end), at most `limit`
  kHostStats = 5,  // body: NodeStats counters (host CPU time, memory, object store, processes)
};

struct NodeStateQuery {
  uint64_t request_id = 0;
  uint32_t node_index = 0;  // 0: the node asked
  StateKind kind = StateKind::kProcesses;
  std::string arg;          // kLogRead: a file name in the log folder
  int64_t offset = 0;
  uint64_t limit = 0;
  void Encode(Writer& w) const;
  Status Decode(Reader& r);
};

struct NodeStateReply {
  uint64_t request_id = 0;
  bool ok = false;
  bool unavailable = false;  // with !ok: the node could not be asked (else it refused, saying why)
  std::string error;
  uint32_t node_index = 0;  // the node that answered
  uint64_t size = 0;        // kLogRead: the file's size (where a follower reads next)
  uint64_t offset = 0;      // kLogRead: where `body` starts in the file
  std::string body;
  void Encode(Writer& w) const;
  Status Decode(Reader& r);
};

struct ProcessInfo {
  enum class State : uint8_t { kIdle = 0, kBusy = 1, kBlocked = 2, kActor = 3, kDriver = 4, kObserver = 5 };
  uint64_t client_id = 0;
  uint32_t pid = 0;
  ClientRole role = ClientRole::kWorker;
  State state = State::kIdle;
  ObjectID actor_id;           // nil unless it hosts an actor
  ObjectID task_id;            // the task it runs (nil when idle)
  std::string task_name;       // the last task it ran (or runs)
  uint64_t job_id = 0;         // whose output it produces now (drivers: their own id)
  uint32_t queued = 0;         // tasks queued at it behind the running one
  std::string stdout_log, stderr_log;  // file names in the node's log folder
  void Encode(Writer& w) const;
  Status Decode(Reader& r);
};

struct ProcessList {
  std::vector<ProcessInfo> processes;
  void Encode(Writer& w) const;
  Status Decode(Reader& r);
};

struct LogFileList {
  struct File {
    std::string name;
    uint64_t size = 0;
    uint64_t mtime_ms = 0;
  };
  std::vector<File> files;
  void Encode(Writer& w) const;
  Status Decode(Reader& r);
};

}  // namespace quanta::protocol
