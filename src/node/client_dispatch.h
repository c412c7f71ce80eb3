// Checks and routes the frames local clients (drivers, workers, observers) send the node: the
// first must be Hello; observers may only read; a worker may report only on tasks sent to it;
// ids a client names must be its own. Each accepted frame goes to the component that owns the
// concern. A refused frame is an error the caller answers by closing the client's connection.
//
// Ownership: owned by the NodeServer; holds pointers to components it owns.
// Thread-safety: loop thread only.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "common/status.h"
#include "node/client_registry.h"
#include "node/function_table.h"
#include "node/task.h"
#include "protocol/cluster_messages.h"
#include "protocol/frame.h"
#include "protocol/lane_messages.h"
#include "protocol/messages.h"

namespace quanta {

class ActorManager;
class ActorRouter;
class ControlClient;
class ControlForwarder;
class GeneratorStreams;
class ObjectManager;
class StateService;
class TaskManager;
class WorkerDispatcher;

class ClientDispatch {
 public:
  struct Components {
    TaskTable* tasks;
    FunctionTable* functions;
    WorkerDispatcher* dispatcher;
    ObjectManager* objects;
    TaskManager* task_manager;
    ActorManager* actors;
    ActorRouter* router;
    GeneratorStreams* generators;
    ControlForwarder* forwarder;
    ControlClient* control;
    StateService* state;
    std::function<void()> after_control_request;  // may be empty (the node polls for the answer)
    // A worker's LaneAdopt (lane_service.h); empty: refused.
    std::function<Status(const LocalClient&, protocol::LaneAdopt)> lane_adopt = {};
  };
  // What a HelloReply tells a client about this node.
  struct Identity {
    std::string node_id;
    std::string session_dir;
    uint64_t inline_threshold;
  };
  using NodeStatsFn = std::function<protocol::NodeStats(uint64_t request_id)>;
  using SnapshotFn = std::function<std::vector<protocol::NodeInfo>()>;

  ClientDispatch(Components c, Identity identity, NodeStatsFn node_stats, SnapshotFn cluster_snapshot)
      : c_(c), identity_(std::move(identity)), node_stats_(std::move(node_stats)),
        cluster_snapshot_(std::move(cluster_snapshot)) {}

  Status Dispatch(LocalClient& client, const protocol::Frame& frame);
  // Observers only read: the messages they may send (and, for control requests, which ops).
  static bool ObserverMay(protocol::MessageType type);

 private:
  Status OnHello(LocalClient& client, const protocol::Hello& hello);

  Components c_;
  Identity identity_;
  NodeStatsFn node_stats_;
  SnapshotFn cluster_snapshot_;
};

}  // namespace quanta
