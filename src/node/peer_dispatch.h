// Routes the frames other nodes send this one (docs/cluster-design.md) to the component that
// owns each concern: forwarded tasks and their results, actor kills and cancels, generator
// items, the object directory's messages, pulls, state queries, and worker output for our
// drivers. A frame that does not decode, or that a peer may not send, is refused with an error
// (logged by the caller; the peer's channel stays up, since one bad frame from a node does not
// make its other work wrong).
//
// Ownership: owned by the NodeServer; holds pointers to components it owns.
// Thread-safety: loop thread only.
#pragma once

#include <cstdint>
#include <functional>

#include "common/status.h"
#include "node/task.h"
#include "protocol/frame.h"

namespace quanta {

class ActorManager;
class ClusterScheduler;
class ClusterView;
class GeneratorStreams;
class LogForwarder;
class ObjectDirectory;
class ObjectManager;
class PullManager;
class RemoteTasks;
class StateService;
class TaskManager;

class PeerDispatch {
 public:
  struct Components {
    TaskTable* tasks;
    RemoteTasks* remote;
    ClusterScheduler* scheduler;
    ActorManager* actors;
    TaskManager* task_manager;
    GeneratorStreams* generators;
    ObjectDirectory* directory;
    ObjectManager* objects;
    PullManager* pulls;
    StateService* state;
    const ClusterView* view;
    LogForwarder* logs;
    std::function<void(const TaskID&)> on_task_result;  // may be empty (e.g. the reply poll's bookkeeping)
  };
  explicit PeerDispatch(Components c) : c_(c) {}

  // Handles one frame from node `from`.
  Status Dispatch(uint32_t from, const protocol::Frame& frame);

 private:
  Components c_;
};

}  // namespace quanta
