// A worker's actor lanes (protocol/lane_messages.h, docs/cluster-design.md §8): sockets from
// callers' nodes that the worker's own node authenticated and handed over, on which calls to
// the actor this worker hosts arrive and their results leave, skipping the node daemon.
//
// Descriptors come from the node's connection (SCM_RIGHTS) ahead of their LaneAttach frame;
// Attach pairs the oldest with the frame and answers LaneReady on the lane. The reader polls
// the lanes with the node's socket (PollFds / Read) and gets each lane's frames. Every call that
// arrived on a lane is remembered (Remember) until its result is routed (TakeRoute); a lane that
// closes gives back the calls it had queued here, not started, for the client to drop.
//
// Ownership: a member of the CoreClient; owns the lane descriptors. Thread-safety: Attach,
// Remember, TakeRoute, FindRoute and the route table require the client's mutex; PollFds and
// Read are called by the thread that has the reader role; Write may be called by any thread
// (it takes the lanes' own write mutex).
#pragma once

#include <poll.h>

#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <unordered_map>
#include <vector>

#include "common/ids.h"
#include "common/status.h"
#include "protocol/frame.h"
#include "protocol/lane_messages.h"
#include "protocol/messages.h"

namespace quanta {

class WorkerLanes {
 public:
  static constexpr size_t kMaxLanes = 64;        // callers' nodes with a lane to this worker
  static constexpr size_t kMaxFds = 16;          // received, not yet attached
  static constexpr uint32_t kMaxLaneFrame = 64u << 20;
  struct Route {
    uint64_t lane = 0;
    uint32_t caller_node = 0;
    std::string ticket;
    bool adopted = false;     // handed to the node (LaneAdopt): the result goes there
    protocol::TaskSpec spec;  // for the LaneAdopt, should the result not fit the lane
  };

  WorkerLanes() = default;
  ~WorkerLanes();
  WorkerLanes(const WorkerLanes&) = delete;
  WorkerLanes& operator=(const WorkerLanes&) = delete;

  // A descriptor that arrived from the node (closed if too many wait).
  void AddReceivedFd(int fd);
  // The node's LaneAttach: the oldest received descriptor becomes a lane to `msg.caller_node`.
  Status Attach(const protocol::LaneAttach& msg, uint32_t pid, uint64_t worker_id);

  // Fills one pollfd per lane (in the order Read expects) into `fds` (room for kMaxLanes);
  // returns how many.
  size_t PollFds(pollfd* fds) const;
  // Reads the lanes whose pollfds (starting at `fds`) are ready; calls on_frame for each frame;
  // lanes that closed or sent a malformed stream are closed and reported to on_closed.
  void Read(const pollfd* fds, size_t n, const std::function<void(uint64_t lane, const protocol::Frame&)>& on_frame,
            const std::function<void(uint64_t lane)>& on_closed);

  void Remember(const TaskID& task, Route route) { routes_[task] = std::move(route); }
  std::optional<Route> TakeRoute(const TaskID& task);
  Route* FindRoute(const TaskID& task) {
    auto it = routes_.find(task);
    return it == routes_.end() ? nullptr : &it->second;
  }

  // Writes one frame on the lane (blocking up to a second); a lane that cannot take it is closed.
  // Frames of threads that write at once leave together (one send for several results).
  template <typename M>
  Status Write(uint64_t lane, protocol::MessageType type, const M& msg) {
    std::string frame;
    protocol::AppendMessage(&frame, type, msg);
    return WriteFrame(lane, frame);
  }
  size_t size() const { return lanes_.size(); }

 private:
  struct Lane {
    uint64_t id = 0;
    int fd = -1;
    uint32_t caller_node = 0;
    protocol::FrameDecoder decoder;
    bool broken = false;  // a write failed: closed at the next read
    // Writes combine: a thread that finds another flushing leaves its frame in `out` for it.
    std::string out;
    bool flushing = false;
  };
  Status WriteFrame(uint64_t lane, const std::string& frame);

  std::deque<int> received_fds_;
  std::vector<std::unique_ptr<Lane>> lanes_;  // guarded by the client's mutex for membership
  std::unordered_map<TaskID, Route, ObjectIDHash> routes_;
  uint64_t next_lane_ = 1;
  mutable std::mutex write_mu_;
};

}  // namespace quanta
