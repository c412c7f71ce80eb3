// The node daemon: wiring of its components and routing of the messages they exchange.
//
// Components (each one concern, dependencies given at construction, unit-tested alone):
//   ClientRegistry    local drivers and workers: accept, peer credentials, connections
//   ObjectManager     reference counts, values, subscriptions, the shared-memory store
//   WorkerPool        the worker processes (start, reap, capture output)
//   WorkerDispatcher  ready queue and resources; runs tasks on workers (short-task pipeline)
//   ActorManager      actors hosted here: ordered calls, death, restarts
//   ActorRouter       calls to actors hosted on other nodes (the caller's side)
//   ControlForwarder  client requests the control service answers (names, KV, jobs)
//   TaskManager       the life of submitted tasks: arguments, retries, cancel, completion
//   LogForwarder      worker output to drivers, bounded
//   ControlClient     the link to the control service; ClusterView its picture of the cluster
//   PeerManager       channels to the other nodes
//   ObjectDirectory   borrowers, copies and the reference-counting barrier across nodes
//   PullManager       bringing objects stored elsewhere here; TransferService moves the bytes
//   ClusterScheduler  where a ready task runs; RemoteTasks sends and runs tasks across nodes
//   StateService      what observers see of this node (processes, objects, logs), relayed to peers
//   ClientDispatch    checks and routes local clients' frames; PeerDispatch other nodes' frames
// The NodeServer wires them together; the two dispatchers decode each frame, check that the
// sender may send it, and hand it to the component that owns the concern. Life of a task: SubmitTask -> TaskManager (waits for its
// arguments) -> WorkerDispatcher (ExecuteTask to a worker) -> TaskDone -> TaskManager seals the
// returns in the ObjectManager, which pushes them to the submitter.
//
// Ownership: owns every component. Thread-safety: single-threaded; everything runs on the
// event loop thread.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "net/event_loop.h"
#include "net/reply_watch.h"
#include "node/actor_manager.h"
#include "node/actor_router.h"
#include "node/client_registry.h"
#include "node/cluster_scheduler.h"
#include "node/client_dispatch.h"
#include "node/cluster_view.h"
#include "node/control_client.h"
#include "node/control_forwarder.h"
#include "node/function_table.h"
#include "node/generator_streams.h"
#include "node/group_resources.h"
#include "node/lane_service.h"
#include "node/log_forwarder.h"
#include "node/object_manager.h"
#include "node/object_directory.h"
#include "node/peer_dispatch.h"
#include "node/peer_manager.h"
#include "node/pull_manager.h"
#include "node/remote_tasks.h"
#include "node/state_service.h"
#include "node/task_manager.h"
#include "node/worker_dispatcher.h"
#include "node/worker_pool.h"
#include "node/task_events.h"
#include "transfer/transfer_service.h"

namespace quanta {

struct NodeOptions {
  std::string session_dir;
  std::string socket_path;          // where drivers and workers connect
  std::string control_socket_path;  // control service on this host (Unix socket), or
  std::string control_host;         // a control service over TCP (needs the cluster token)
  uint16_t control_port = 0;
  std::string node_ip;              // address other nodes reach this one at ("": local only)
  protocol::Labels labels;
  uint8_t flags = 0;                // protocol::NodeInfo::Flags
  int ready_fd = -1;                // "ready <node index>" is written here once joined
  std::chrono::milliseconds join_timeout{5000};
  std::chrono::milliseconds infeasible_timeout{300000};  // a task no node can run fails after this
  size_t max_lineage_bytes = 256u << 20;                // task specs kept to rebuild lost objects
  std::string python;
  ResourceSet resources;
  std::vector<std::string> gpu_ids;  // the devices of the GPU resource (empty: 0..GPU-1)
  int prestart_workers = 0;
  uint64_t store_capacity = 0;    // bytes of shared memory for large objects
  uint64_t inline_threshold = 100 * 1024;
  std::string spill_dir;
  int lifeline_fd = -1;  // EOF on this fd (the starting driver died) shuts the node down
  std::vector<std::string> worker_env;
  size_t task_events_buffer = 100000;  // task events kept until shipped (0: none recorded)
  std::chrono::milliseconds task_events_flush{1000};  // how often they are shipped to the head
  // After forwarding an actor call to another node (or a client's request to the control
  // service), poll this long for the answer before sleeping (adaptive, net/spin_budget.h; 0: never).
  std::chrono::microseconds reply_spin{0};
  bool actor_lanes = true;  // QUANTA_ACTOR_LANES=0: calls to actors elsewhere always go through their node
};

class NodeServer {
 public:
  NodeServer(net::EventLoop* loop, NodeOptions options);
  // Starts joining the cluster; the node serves clients once the control service accepted it.
  Status Start();
  void Shutdown(const std::string& why);
  // 0 after a normal stop; 3 if the node could not join; 4 if the cluster told it to stop.
  int exit_code() const { return exit_code_; }

 private:
  void OnJoined(const protocol::RegisterNodeReply& reply);
  void EverySecond();
  void FlushTaskEvents();  // ships the recorded task events to the control service
  void OnClientMessage(LocalClient& client, const protocol::Frame& frame);
  void StartStateService();
  void OnClientClosed(const LocalClient& client, const Status& why);
  // May `client` write the value of `id`? (a put it minted, or a return of a task sent to it)
  bool MayWrite(uint64_t client, const ObjectID& id) const;
  void OnWorkerOutput(const std::string& token, bool is_stderr, std::string text);
  void OnPeerMessage(uint32_t from, const protocol::Frame& frame);
  void OnControlMessage(const protocol::Frame& frame);
  protocol::NodeInfo LocalNodeInfo() const;
  protocol::NodeStats NodeStatsReply(uint64_t request_id) const;

  net::EventLoop* loop_;
  NodeOptions options_;
  std::string node_id_;
  TaskTable tasks_;
  TaskEventBuffer task_events_;
  net::SpinBudget reply_spin_;    // polling for the result of an actor call sent to another node
  net::ReplyWatch reply_watch_;   // those calls, while their results are awaited
  net::SpinBudget control_spin_;  // polling for the control service's answer to a client's request
  FunctionTable functions_;
  ClientRegistry clients_;
  std::unique_ptr<ObjectManager> objects_;
  WorkerPool pool_;
  std::unique_ptr<WorkerDispatcher> dispatcher_;
  std::unique_ptr<ActorManager> actors_;
  std::unique_ptr<ActorRouter> router_;
  std::unique_ptr<ControlForwarder> forwarder_;
  std::unique_ptr<TaskManager> task_manager_;
  std::unique_ptr<Lineage> lineage_;  // specs of finished tasks whose stored returns may be rebuilt
  LogForwarder logs_;
  std::unique_ptr<net::ClusterToken> token_;  // when joining over TCP
  ClusterView view_;
  std::unique_ptr<ControlClient> control_;
  std::unique_ptr<PeerManager> peers_;
  std::unique_ptr<ObjectDirectory> directory_;
  std::unique_ptr<TransferService> transfer_;
  std::unique_ptr<PullManager> pulls_;
  std::unique_ptr<ClusterScheduler> scheduler_;
  std::unique_ptr<RemoteTasks> remote_;
  std::unique_ptr<GeneratorStreams> generators_;
  std::unique_ptr<GroupResources> groups_;
  std::unique_ptr<StateService> state_;
  std::unique_ptr<LaneService> lanes_;
  std::unique_ptr<ClientDispatch> client_dispatch_;
  std::unique_ptr<PeerDispatch> peer_dispatch_;
  uint64_t start_time_ms_;
  int exit_code_ = 0;
  bool shutting_down_ = false;
};

}  // namespace quanta
