// Replies the node sends to this process's requests (store allocations, cluster info, control
// calls, ...), held by request id until the requester takes them.
//
// Only requests still awaited are kept: a reply to a request whose caller gave up (it timed out)
// or never made it is dropped, so late or unsolicited replies never pile up. A reply of another
// kind than the request expects is an error for that request, not a crash.
//
// Ownership: a member of the CoreClient. Thread-safety: guarded by the CoreClient's mutex
// (every method requires it).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>
#include <variant>

#include "common/status.h"
#include "protocol/cluster_messages.h"
#include "protocol/messages.h"
#include "protocol/state_messages.h"

namespace quanta {

class ReplyMailbox {
 public:
  using Reply = std::variant<protocol::CreateObjectReply, protocol::StoreStatsReply, protocol::ClusterInfo,
                             protocol::ControlReply, protocol::PlacementGroups, protocol::NodeStats,
                             protocol::NodeStateReply, protocol::ActorNameReply>;

  // A new request id, awaited from now on.
  uint64_t Open() {
    uint64_t id = next_++;
    open_.emplace(id, std::nullopt);
    return id;
  }
  // Keeps `reply` for its request; false (dropped) if nobody awaits it.
  bool Deliver(uint64_t request_id, Reply reply) {
    auto it = open_.find(request_id);
    if (it == open_.end() || it->second.has_value()) return false;
    it->second = std::move(reply);
    return true;
  }
  // Nothing while the reply has not come; else the reply (the request is closed), or an error
  // if the node answered with another kind of message.
  template <typename R>
  std::optional<Result<R>> Take(uint64_t request_id) {
    auto it = open_.find(request_id);
    if (it == open_.end() || !it->second.has_value()) return std::nullopt;
    Reply reply = std::move(*it->second);
    open_.erase(it);
    if (R* r = std::get_if<R>(&reply)) return Result<R>(std::move(*r));
    return Result<R>(Status::ProtocolError("the node answered request " + std::to_string(request_id) +
                                           " with a reply of another kind"));
  }
  // The requester gave up: a reply that comes later is dropped.
  void Abandon(uint64_t request_id) { open_.erase(request_id); }
  size_t open() const { return open_.size(); }

 private:
  std::unordered_map<uint64_t, std::optional<Reply>> open_;
  uint64_t next_ = 1;
};

}  // namespace quanta
