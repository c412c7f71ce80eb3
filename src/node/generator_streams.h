// Streaming generators (Ray's num_returns="streaming"): the items a generator task yields, on
// the node whose worker runs it and on the node that owns the task.
//
// A worker sends each item as it is yielded (GeneratorItem). On the owner the item becomes an
// object held by the task's submitter and pushed to it (like a return, sealed at once); on an
// executing node it goes on to the owner (GeneratorItemRemote, stored bytes kept here as the
// primary copy, refs inside held until the owner has them). Items come in order; those a re-run
// yields again (the owner has them already) are dropped, so the consumer never sees one twice.
// The consumer reports how many items it took (GeneratorAck); the count travels to the worker
// producing them, which pauses while too many are unconsumed (backpressure). A producer that
// starts again (a retry, another node) is told the count with its first item.
//
// Ownership: owned by the NodeServer; reads and updates Tasks in the TaskTable, seals objects in
// the ObjectManager; sends through the callbacks. Thread-safety: loop thread only.
#pragma once

#include <functional>
#include <memory>
#include <vector>

#include "common/status.h"
#include "node/object_manager.h"
#include "node/task.h"

namespace quanta {

class GeneratorStreams {
 public:
  struct Callbacks {
    std::function<bool(uint64_t client)> client_alive;  // the consumer is still connected
    std::function<void(uint64_t worker, const protocol::GeneratorAck&)> to_worker;
    std::function<void(uint32_t node, const protocol::GeneratorAck&)> ack_to_node;
    // Executing side: sends an item to its owner (behind the release barrier).
    std::function<void(uint32_t owner, protocol::GeneratorItem)> item_to_owner;
    // Executing side: holds `refs` until the owner answers HandOffDone; returns the hand-off id.
    std::function<uint64_t(uint32_t owner, std::vector<ObjectID> refs)> hold_for_owner;
    // Owner side: the refs an item carried are registered (HandOffDone, behind the barrier).
    std::function<void(uint32_t node, uint64_t handoff)> handoff_done;
    std::function<void(const ObjectID&, uint32_t node)> set_primary;
    std::function<void(uint32_t node, const ObjectID&)> free_copy;  // a duplicate's copy there
  };

  GeneratorStreams(TaskTable* tasks, ObjectManager* objects, Callbacks callbacks);

  // From the worker `worker` running the task.
  Status OnWorkerItem(uint64_t worker, protocol::GeneratorItem msg);
  // Owner: from the node running a task this node forwarded.
  Status OnRemoteItem(uint32_t from, protocol::GeneratorItem msg);
  // Owner: the submitter took items. Executing node: the owner relayed that.
  void OnAck(uint64_t client, const protocol::GeneratorAck& msg);
  void OnRemoteAck(uint32_t from, const protocol::GeneratorAck& msg);

  // Decodes and handles kGeneratorItem / kGeneratorAck from a local client (items only from
  // workers), and kGeneratorItemRemote / kGeneratorAckRemote from a peer.
  Status OnClientFrame(uint64_t client, bool is_worker, const protocol::Frame& frame);
  Status OnPeerFrame(uint32_t from, const protocol::Frame& frame);

  uint64_t items_sealed() const { return sealed_; }

 private:
  void Seal(Task& task, protocol::GeneratorItem msg);  // owner
  void TellProducer(Task& task);

  TaskTable* tasks_;
  ObjectManager* objects_;
  Callbacks callbacks_;
  uint64_t sealed_ = 0;
};

class ClientRegistry;
class PeerManager;
class RemoteTasks;
class ClusterView;
// The GeneratorStreams of a node, wired to its clients, peers, directory and remote tasks as the
// NodeServer uses it.
std::unique_ptr<GeneratorStreams> MakeGeneratorStreams(TaskTable* tasks, ObjectManager* objects,
                                                       ClientRegistry* clients, PeerManager* peers,
                                                       ObjectDirectory* directory, RemoteTasks* remote,
                                                       const ClusterView* view);

}  // namespace quanta
