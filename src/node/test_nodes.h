// Test support (not linked into the daemons): several nodes' object machinery in one process,
// wired exactly as NodeServer wires it — ClusterView, ObjectManager with a real shared-memory
// store, PeerManager listening on loopback TCP with the real handshake, ObjectDirectory,
// TransferService and PullManager — on one real EventLoop. There are no control service and no
// workers: the test plays the control service (node table, deaths) and the clients (refs,
// puts) through the components' own entry points.
//
// Thread-safety: the loop thread (the test's) only, like the components themselves.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "net/auth.h"
#include "net/event_loop.h"
#include "node/client_registry.h"
#include "node/cluster_view.h"
#include "node/object_directory.h"
#include "node/object_manager.h"
#include "node/peer_manager.h"
#include "node/pull_manager.h"
#include "object_store/shared_memory.h"
#include "object_store/shared_store.h"
#include "transfer/transfer_service.h"

namespace quanta::testing {

struct TestNode {
  TestNode(net::EventLoop* loop, const net::ClusterToken* token, uint32_t index, uint64_t store_bytes)
      : index(index), view(nullptr, nullptr), clients(loop, (static_cast<uint64_t>(index) << 32) | 1, nullptr, nullptr) {
    std::unique_ptr<SharedStore> store;
    if (store_bytes > 0) {
      auto mem = SharedMemory::Create("quanta-test-node", store_bytes);
      EXPECT_TRUE(mem.ok()) << mem.status().ToString();
      store = std::make_unique<SharedStore>(std::move(mem).value(), "");
    }
    objects = std::make_unique<ObjectManager>(
        &clients, std::move(store),
        ObjectManager::Callbacks{nullptr,
                                 [this](const std::vector<ObjectID>& ids) { freed.insert(freed.end(), ids.begin(), ids.end()); },
                                 nullptr, nullptr});
    peers = std::make_unique<PeerManager>(
        loop, token, &view,
        PeerManager::Callbacks{[this](uint32_t from, const protocol::Frame& f) { Dispatch(from, f); },
                               [this] { directory->Flush(); }, nullptr,
                               [this](int fd, const std::string& peer) { transfer->AdoptInbound(fd, peer); }});
    EXPECT_TRUE(peers->Listen("127.0.0.1", 0).ok());
    directory = std::make_unique<ObjectDirectory>(objects.get(), peers.get(), &view);
    transfer = std::make_unique<TransferService>(
        loop, token, index,
        // Guarded: a crashed node's transfer threads may post results after its pulls are gone.
        TransferService::Callbacks{[this](uint64_t id, const Status& st) { if (pulls) pulls->OnReceived(id, st); },
                                   [this](uint64_t id, const Status& st) { if (pulls) pulls->OnSent(id, st); }});
    pulls = std::make_unique<PullManager>(loop, objects->store(), directory.get(), peers.get(), transfer.get(), &view);
  }
  ~TestNode() { Down(); }
  // What a crash leaves: no components (sockets closed, objects gone); the struct stays, so that
  // results its threads posted to the shared loop find it.
  void Down() {
    pulls.reset();
    transfer.reset();  // joins its threads before what they call back into goes
    directory.reset();
    peers.reset();
    objects.reset();
  }

  // What a node does with a peer message (NodeServer::OnPeerMessage, the object part).
  void Dispatch(uint32_t from, const protocol::Frame& f) {
    using protocol::MessageType;
    auto type = static_cast<MessageType>(f.type);
    received.push_back({from, type});
    if (drop && drop(from, type)) return;
    switch (type) {
      case MessageType::kAddBorrower:
      case MessageType::kRemoveBorrower:
      case MessageType::kSubscribeObject:
      case MessageType::kAddLocation:
      case MessageType::kRemoveLocation:
      case MessageType::kFreeObject: {
        protocol::IdList m;
        ASSERT_TRUE(protocol::DecodeMessage(f.body, &m).ok());
        if (type == MessageType::kAddBorrower) directory->OnAddBorrower(from, m.ids);
        if (type == MessageType::kRemoveBorrower) directory->OnRemoveBorrower(from, m.ids);
        if (type == MessageType::kSubscribeObject) directory->OnSubscribeObject(from, m.ids);
        if (type == MessageType::kAddLocation) directory->OnAddLocation(from, m.ids);
        if (type == MessageType::kRemoveLocation) directory->OnRemoveLocation(from, m.ids);
        if (type == MessageType::kFreeObject) objects->OnFreeCopies(m.ids);
        return;
      }
      case MessageType::kBorrowAck: {
        protocol::BorrowAck m;
        ASSERT_TRUE(protocol::DecodeMessage(f.body, &m).ok());
        directory->OnBorrowAck(from, m);
        return;
      }
      case MessageType::kObjectInfo: {
        protocol::ObjectInfo m;
        ASSERT_TRUE(protocol::DecodeMessage(f.body, &m).ok());
        directory->OnObjectInfo(from, std::move(m));
        return;
      }
      case MessageType::kPullObject: {
        protocol::PullObject m;
        ASSERT_TRUE(protocol::DecodeMessage(f.body, &m).ok());
        pulls->OnPullRequest(from, m);
        return;
      }
      case MessageType::kPullFailed: {
        protocol::PullFailed m;
        ASSERT_TRUE(protocol::DecodeMessage(f.body, &m).ok());
        pulls->OnPullFailed(from, m);
        return;
      }
      default:
        ADD_FAILURE() << "unexpected peer message type " << f.type;
    }
  }
  size_t Count(protocol::MessageType type) const {
    size_t n = 0;
    for (const auto& [from, t] : received) n += t == type;
    return n;
  }

  // A client of this node (its id names the node, as real client ids do).
  uint64_t Client(uint32_t n = 5) const { return (static_cast<uint64_t>(index) << 32) | n; }
  // A put by one of this node's clients: inline bytes, or stored in the shared store.
  ObjectID PutInline(uint32_t seq, const std::string& data) {
    LocalClient c;
    c.id = Client();
    protocol::PutObject m;
    m.object_id = ObjectID::Make(c.id, seq, ObjectID::kPutIndex);
    m.value.data = data;
    EXPECT_TRUE(objects->OnPut(c, m).ok());
    return m.object_id;
  }
  ObjectID PutStored(uint32_t seq, uint64_t size, uint8_t seed) {
    LocalClient c;
    c.id = Client();
    ObjectID id = ObjectID::Make(c.id, seq, ObjectID::kPutIndex);
    auto offset = objects->store()->Create(id, size, c.id);
    EXPECT_TRUE(offset.ok()) << offset.status().ToString();
    if (!offset.ok()) return id;
    uint8_t* p = objects->store()->DataAt(offset.value());
    for (uint64_t i = 0; i < size; ++i) p[i] = static_cast<uint8_t>(i * 7 + seed + (i >> 12));
    protocol::PutObject m;
    m.object_id = id;
    m.value.kind = protocol::ObjectKind::kStored;
    protocol::StoredLocation loc;
    loc.size = size;
    m.value.data = loc.Encode();
    EXPECT_TRUE(objects->OnPut(c, m).ok());
    return id;
  }
  // A copy of `id` in this node's store only (no table entry), as a node that pulled it keeps.
  void PlaceCopy(const ObjectID& id, uint64_t size, uint8_t seed) {
    SharedStore* s = objects->store();
    auto offset = s->Create(id, size, SharedStore::kTransferWriter);
    ASSERT_TRUE(offset.ok()) << offset.status().ToString();
    uint8_t* p = s->DataAt(offset.value());
    for (uint64_t i = 0; i < size; ++i) p[i] = static_cast<uint8_t>(i * 7 + seed + (i >> 12));
    ASSERT_TRUE(s->Seal(id, SharedStore::kTransferWriter).ok());
    s->MarkSecondary(id);
  }
  // Do the store's bytes of `id` match what PutStored(…, seed) wrote?
  bool HasBytes(const ObjectID& id, uint64_t size, uint8_t seed) {
    SharedStore* s = objects->store();
    if (!s->IsSealed(id) || s->SizeOf(id) != size) return false;
    auto offset = s->Pin(id, SharedStore::kNodePin);
    if (!offset.ok()) return false;
    const uint8_t* p = s->DataAt(offset.value());
    bool same = true;
    for (uint64_t i = 0; i < size && same; ++i) same = p[i] == static_cast<uint8_t>(i * 7 + seed + (i >> 12));
    s->Unpin(id, SharedStore::kNodePin, 1);
    return same;
  }
  // A client of this node takes (+n) or drops (-n) references to `id`.
  void Refs(const ObjectID& id, int32_t delta, uint32_t client = 5) {
    protocol::RefDeltas d;
    d.deltas.push_back({id, delta});
    objects->OnRefDeltas(Client(client), d);
  }

  uint32_t index;
  ClusterView view;
  ClientRegistry clients;
  std::unique_ptr<ObjectManager> objects;
  std::unique_ptr<PeerManager> peers;
  std::unique_ptr<ObjectDirectory> directory;
  std::unique_ptr<TransferService> transfer;
  std::unique_ptr<PullManager> pulls;
  std::vector<std::pair<uint32_t, protocol::MessageType>> received;
  std::vector<ObjectID> freed;
  std::function<bool(uint32_t from, protocol::MessageType)> drop;  // true: the message is lost
};

class TestCluster {
 public:
  explicit TestCluster(size_t num_nodes, uint64_t store_bytes = 64ull << 20)
      : TestCluster(std::vector<uint64_t>(num_nodes, store_bytes)) {}
  // One node per entry, with a store of that many bytes.
  explicit TestCluster(const std::vector<uint64_t>& store_bytes) {
    const size_t num_nodes = store_bytes.size();
    EXPECT_TRUE(loop_.Init().ok());
    token_.secret = "test-cluster-token-0123456789abcdef";
    token_.source = "test";
    protocol::NodeTable table;
    table.full = true;
    for (uint32_t i = 1; i <= num_nodes; ++i) {
      nodes_.push_back(std::make_unique<TestNode>(&loop_, &token_, i, store_bytes[i - 1]));
      protocol::NodeInfo info;
      info.node_index = i;
      info.node_id = "node-" + std::to_string(i);
      info.address = "127.0.0.1";
      info.port = nodes_.back()->peers->port();
      info.incarnation = i;
      table.nodes.push_back(info);
    }
    for (auto& n : nodes_) {
      n->view.set_local_index(n->index);
      n->view.ApplyNodeTable(table);
      n->peers->SetSelf(protocol::PeerHello{n->index, n->index, kClusterId});
      n->directory->set_local_index(n->index);
      n->objects->Attach(n->index, n->directory.get(), n->pulls.get());
    }
    loop_.AtEndOfIteration([this] {
      for (auto& n : nodes_) {
        if (n) n->directory->Flush();
      }
    });
  }
  ~TestCluster() {
    nodes_.clear();
    crashed_.clear();
  }

  TestNode& node(uint32_t index) { return *nodes_.at(index - 1); }

  // The control service declares `index` dead: every other node hears it, and the node's
  // process is gone (its sockets close; its objects are destroyed). Kill only a node with no
  // pull of its own in progress: its pull timers would outlive it on the shared loop.
  void Kill(uint32_t index, const std::string& reason = "killed by the test") {
    Crash(index);
    DeclareDead(index, reason);
  }
  // Only the process goes (its sockets close); the others still count it alive until
  // DeclareDead, as in the moment between a crash and its detection.
  void Crash(uint32_t index) {
    nodes_.at(index - 1)->Down();
    crashed_.push_back(std::move(nodes_.at(index - 1)));
  }
  void DeclareDead(uint32_t index, const std::string& reason = "killed by the test") {
    protocol::NodeInfo dead;
    dead.node_index = index;
    dead.node_id = "node-" + std::to_string(index);
    dead.alive = false;
    dead.death_reason = reason;
    for (auto& n : nodes_) {
      if (!n) continue;
      n->view.ApplyNodeTable(protocol::NodeTable{false, {dead}});
      n->peers->Forget(index);
      n->directory->OnNodeDead(index);
      n->pulls->OnNodeDead(index);
    }
  }

  // Runs the loop until `done` holds (checked every few ms) or `timeout` passes.
  bool RunUntil(const std::function<bool()>& done, std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!done()) {
      if (std::chrono::steady_clock::now() > deadline) return false;
      loop_.RunAfter(std::chrono::milliseconds(2), [this] { loop_.Stop(); });
      loop_.Run();
    }
    return true;
  }
  // Runs the loop for `t` (to show that something does not happen).
  void RunFor(std::chrono::milliseconds t) {
    loop_.RunAfter(t, [this] { loop_.Stop(); });
    loop_.Run();
  }
  net::EventLoop& loop() { return loop_; }

  static constexpr uint64_t kClusterId = 42;

 private:
  net::EventLoop loop_;
  net::ClusterToken token_;
  std::vector<std::unique_ptr<TestNode>> nodes_;
  std::vector<std::unique_ptr<TestNode>> crashed_;  // Down(), kept until the cluster goes
};

}  // namespace quanta::testing
