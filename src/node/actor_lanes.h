// The caller's node's side of actor lanes (docs/cluster-design.md §8): one direct TCP channel
// from this node to the worker process of an actor hosted on another node, so that a call and
// its result skip the actor's node daemon (two process wake-ups fewer per call).
//
// A lane is opened on the first call that could use it: PeerManager::OpenLane (TCP and the
// cluster-token handshake, channel "lane"), the 24-byte LaneHello, then the worker's LaneReady
// (protocol/lane_messages.h). Until then, and for good if the actor's node refuses (the actor
// restarts, or is not there), calls go the node way. Once open it carries ExecuteTask and
// CancelTask frames to the worker (LaneCall: the call and its ticket) and TaskDone frames back; a TaskDone for a call that is not
// in flight on the lane closes it. A lane that breaks is not opened again for that actor on
// that node; its calls in flight are reported (`broken`) for the router to settle with the
// actor's fate. At most kMaxInFlight calls are in flight on a lane (the rest wait in the router),
// so a caller cannot grow the worker's queue without bound.
//
// Ownership: owned by the NodeServer; owns the lanes' connections. Thread-safety: loop thread only.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "common/ids.h"
#include "common/status.h"
#include "net/connection.h"
#include "net/event_loop.h"
#include "protocol/lane_messages.h"
#include "protocol/messages.h"

namespace quanta {

class ActorLanes {
 public:
  static constexpr size_t kMaxInFlight = 1024;
  static constexpr size_t kMaxLanes = 256;  // open or opening at once: calls to more actors go the node's way
  struct Callbacks {
    // TCP connect and handshake to `node` for a lane; the answer is the socket.
    std::function<void(uint32_t node, std::function<void(Result<int>)> done)> connect;
    std::function<void(const ObjectID& actor)> changed;  // opened, refused or broken: pump its calls
    std::function<void(protocol::TaskDone)> done;        // a call's result came back on its lane
    // The lane broke with these calls in flight; whether they ran is the actor's fate.
    std::function<void(const ObjectID& actor, std::vector<TaskID> in_flight, const Status& why)> broken;
  };
  struct Stats {
    uint64_t opened = 0, refused = 0, broken = 0, calls = 0, results = 0;
    uint64_t bytes_sent = 0, bytes_received = 0;  // frames on lanes, headers included
  };

  ActorLanes(net::EventLoop* loop, uint32_t self_node, Callbacks callbacks)
      : loop_(loop), self_node_(self_node), callbacks_(std::move(callbacks)) {}
  ~ActorLanes();
  ActorLanes(const ActorLanes&) = delete;
  ActorLanes& operator=(const ActorLanes&) = delete;

  void set_self_node(uint32_t node) { self_node_ = node; }
  // True if a lane to `actor` on `node` is open and has room; otherwise starts opening one,
  // unless one to that node was refused or broke.
  bool Ready(const ObjectID& actor, uint32_t node);
  size_t InFlight(const ObjectID& actor) const;
  // The worker at the end of the actor's open lane (pid, client id on its node); {0, 0} if none.
  std::pair<uint32_t, uint64_t> WorkerOf(const ObjectID& actor) const;
  // Sends the call on its actor's open lane; false if there is none (nothing sent).
  bool Send(const protocol::LaneCall& call);
  // Asks the worker to drop a call not started yet; false if the call is not on a lane.
  bool Cancel(const ObjectID& actor, const protocol::CancelTask& msg);
  // The actor was killed or died: its lane closes for good and its calls in flight are reported
  // as broken.
  void Close(const ObjectID& actor, const Status& why);
  const Stats& stats() const { return stats_; }

 private:
  struct Lane {
    enum class State { kOpening, kOpen, kDisabled };
    State state = State::kOpening;
    uint32_t node = 0;
    uint64_t serial = 0;
    std::shared_ptr<net::Connection> conn;
    std::unordered_set<TaskID, ObjectIDHash> in_flight;
    uint32_t worker_pid = 0;  // from LaneReady
    uint64_t worker_id = 0;
  };
  void Open(const ObjectID& actor, Lane& lane);
  void OnConnected(const ObjectID& actor, uint64_t serial, Result<int> fd);
  void OnFrame(const ObjectID& actor, uint64_t serial, net::Connection& c, const protocol::Frame& f);
  void OnClosed(const ObjectID& actor, uint64_t serial, const Status& why);
  Lane* Find(const ObjectID& actor, uint64_t serial);

  net::EventLoop* loop_;
  uint32_t self_node_;
  Callbacks callbacks_;
  std::unordered_map<ObjectID, Lane, ObjectIDHash> lanes_;
  size_t live_ = 0;  // lanes open or opening (with a socket or a connect under way)
  uint64_t next_serial_ = 1;
  Stats stats_;
};

}  // namespace quanta
