// Actor lanes on this node, both ends (docs/cluster-design.md §8). As a caller's node: which
// calls may take a lane (an actor method whose arguments are all inline values without refs, no
// generator, no retry_exceptions, no timeout) and sending them (ActorLanes); the calls' results
// finish them here like the TaskResult of a forwarded call. As an actor's node: handing lane
// sockets to the worker of the actor they name (LaneAcceptor), and adopting the calls whose
// results the lane cannot carry (LaneAdopt, checked against the ticket this service's peer on
// the caller's node signed): they become calls forwarded here, so their stored returns, the
// refs in their results and their worker's death are handled as for any forwarded call.
//
// Ownership: owned by the NodeServer; uses the components it is given. Thread-safety: loop thread only.
#pragma once

#include <memory>
#include <string>

#include "net/auth.h"
#include "net/event_loop.h"
#include "node/actor_lanes.h"
#include "node/actor_manager.h"
#include "node/actor_router.h"
#include "node/client_registry.h"
#include "node/cluster_view.h"
#include "node/lane_acceptor.h"
#include "node/object_manager.h"
#include "node/peer_manager.h"
#include "node/task.h"
#include "node/task_events.h"
#include "node/task_manager.h"
#include "node/worker_dispatcher.h"
#include "protocol/lane_messages.h"

namespace quanta {

class LaneService {
 public:
  struct Components {
    net::EventLoop* loop;
    TaskTable* tasks;
    ObjectManager* objects;
    TaskManager* task_manager;
    ActorRouter* router;
    ActorManager* actors;
    WorkerDispatcher* dispatcher;
    PeerManager* peers;
    ClientRegistry* clients;
    const ClusterView* view;
    const net::ClusterToken* token;  // signs and checks lane tickets (none: no lanes)
    TaskEventBuffer* events = nullptr;  // records where a lane call went (none: not recorded)
  };
  // enabled = false (QUANTA_ACTOR_LANES=0): no call takes a lane and lanes to this node are refused.
  LaneService(Components c, bool enabled);

  void set_self_node(uint32_t node) { lanes_.set_self_node(node); }

  // Caller's node (the ActorRouter's lane callbacks).
  ActorRouter::Callbacks::Lane Route(const Task& task, uint32_t node);
  bool Send(Task& task, uint32_t node);
  size_t InFlight(const ObjectID& actor) const { return lanes_.InFlight(actor); }
  bool Cancel(const ObjectID& actor, const protocol::CancelTask& msg) { return lanes_.Cancel(actor, msg); }
  void Close(const ObjectID& actor, const std::string& why) { lanes_.Close(actor, Status::Cancelled(why)); }

  // Actor's node.
  void OnLaneChannel(int fd, const std::string& peer) { acceptor_.OnLaneChannel(fd, peer); }
  Status OnLaneAdopt(const LocalClient& client, protocol::LaneAdopt msg);
  void OnWorkerGone(uint64_t client) { acceptor_.ForgetWorker(client); }

  const ActorLanes::Stats& caller_stats() const { return lanes_.stats(); }
  const LaneAcceptor::Stats& actor_stats() const { return acceptor_.stats(); }
  uint64_t calls_adopted() const { return calls_adopted_; }

 private:
  bool Eligible(const Task& task) const;
  Result<uint64_t> Attach(const protocol::LaneHello& hello, int fd);
  void OnDone(protocol::TaskDone done);
  std::string Ticket(const TaskID& task, const ObjectID& actor) const;

  Components c_;
  bool enabled_;
  std::unique_ptr<net::HmacKey> ticket_key_;  // the cluster token's, prepared once
  ActorLanes lanes_;
  LaneAcceptor acceptor_;
  uint64_t calls_adopted_ = 0;
};

}  // namespace quanta
