// The node's shared-memory object store: where objects too large to travel inline live.
//
// Holds one SharedMemory arena (memfd) and an Allocator over it. A client creates an object by
// asking for space (Create), writes it through its own mapping, then seals it with a message
// that carries the object's kind kStored. Readers are *pinned*: the node counts each delivery of
// an object's location to a client, and the client returns those counts (Unpin) once its last
// buffer over the object is gone, so an object being read is never moved or freed.
//
// When space runs out, least-recently-used sealed objects that nobody is reading are spilled to
// files in the spill directory and restored when next read. An object larger than the arena,
// or that cannot fit even after spilling everything unpinned, is refused with a message that
// gives the sizes (ObjectStoreFullError in Python).
//
// Ownership: owned by the NodeServer. Thread-safety: loop thread only.
#pragma once

#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/ids.h"
#include "common/status.h"
#include "object_store/allocator.h"
#include "object_store/shared_memory.h"

namespace quanta {

struct StoreStats {
  uint64_t capacity = 0;
  uint64_t used = 0;  // bytes allocated in the arena (rounded to the alignment)
  uint64_t num_in_memory = 0;
  uint64_t num_spilled = 0;
  uint64_t spilled_bytes = 0;
  uint64_t num_pinned = 0;
  uint64_t total_spilled = 0;   // objects spilled since start
  uint64_t total_restored = 0;  // objects restored since start
  uint64_t total_evicted = 0;   // secondary copies dropped to make room
  uint64_t num_secondary = 0;   // copies of objects owned by other nodes
};

class SharedStore {
 public:
  // Pseudo-client ids for the node's own reads and writes (object transfers, task pins).
  static constexpr uint64_t kTransferWriter = ~0ull;
  static constexpr uint64_t kTransferReader = ~0ull - 1;
  static constexpr uint64_t kNodePin = ~0ull - 2;

  SharedStore(std::unique_ptr<SharedMemory> memory, std::string spill_dir);
  // Told about secondary copies dropped to make room (so their owners can be told too).
  void set_on_evicted(std::function<void(const ObjectID&)> cb) { on_evicted_ = std::move(cb); }
  // Called between pieces of a spill or restore (every 16 MiB), on the calling thread: the
  // daemon keeps its heartbeats going while a slow disk holds its loop.
  void set_io_progress(std::function<void()> cb) { io_progress_ = std::move(cb); }

  const SharedMemory& memory() const { return *memory_; }

  // Reserves `size` bytes for a new object written by `client`; returns its offset.
  Result<uint64_t> Create(const ObjectID& id, uint64_t size, uint64_t client);
  // Marks a created object as complete. Fails if `client` did not create it.
  Status Seal(const ObjectID& id, uint64_t client);
  // Drops the objects `client` created but never sealed (it disconnected mid-write).
  void AbortCreatesOf(uint64_t client);
  // Drops one unsealed object `client` created (a transfer that failed).
  void AbortCreate(const ObjectID& id, uint64_t client);

  bool Contains(const ObjectID& id) const { return objects_.count(id) > 0; }
  bool IsSealed(const ObjectID& id) const {
    auto it = objects_.find(id);
    return it != objects_.end() && it->second.sealed && !it->second.deleted;
  }
  // A copy of an object owned elsewhere: under memory pressure it is dropped (not spilled),
  // before any primary copy is spilled.
  void MarkSecondary(const ObjectID& id);
  bool IsSecondary(const ObjectID& id) const {
    auto it = objects_.find(id);
    return it != objects_.end() && it->second.secondary;
  }
  uint8_t* DataAt(uint64_t offset) const { return memory_->data() + offset; }
  uint64_t SizeOf(const ObjectID& id) const;
  // Makes the object resident (restoring it from disk if spilled), counts one delivery to
  // `client`, and returns its offset.
  Result<uint64_t> Pin(const ObjectID& id, uint64_t client);
  // Returns `n` deliveries of `client`.
  void Unpin(const ObjectID& id, uint64_t client, int64_t n);
  void UnpinAll(uint64_t client);
  // The object is no longer referenced: free it now, or once its last reader unpins.
  void Delete(const ObjectID& id);

  StoreStats Stats() const;
  struct ObjectInfo {
    ObjectID id;
    uint64_t size;
    bool spilled;
    int64_t pins;
  };
  std::vector<ObjectInfo> List() const;

 private:
  struct Object {
    uint64_t size = 0;
    uint64_t offset = 0;
    bool resident = true;
    bool sealed = false;
    bool deleted = false;
    uint64_t creator = 0;
    std::string spill_path;
    std::unordered_map<uint64_t, int64_t> pins;  // client -> deliveries not yet returned
    int64_t total_pins = 0;
    std::list<ObjectID>::iterator lru;  // position in lru_ while resident, sealed and unpinned
    bool in_lru = false;
    bool secondary = false;  // evicted rather than spilled
  };
  // Finds `size` bytes, spilling unpinned objects (oldest first) until it fits.
  Result<uint64_t> AllocateOrSpill(uint64_t size, const ObjectID& for_id);
  Status Spill(const ObjectID& id, Object& o);
  Status Restore(const ObjectID& id, Object& o);
  void Touch(const ObjectID& id, Object& o);
  void RemoveFromLru(Object& o);
  void Erase(const ObjectID& id);
  std::string FullMessage(uint64_t size) const;

  std::unique_ptr<SharedMemory> memory_;
  Allocator allocator_;
  std::string spill_dir_;
  std::function<void()> io_progress_;
  bool spill_dir_made_ = false;
  std::unordered_map<ObjectID, Object, ObjectIDHash> objects_;
  std::list<ObjectID> lru_;  // evictable objects, least recently used first
  std::function<void(const ObjectID&)> on_evicted_;
  uint64_t total_evicted_ = 0;
  uint64_t spilled_bytes_ = 0;
  uint64_t total_spilled_ = 0;
  uint64_t total_restored_ = 0;
};

}  // namespace quanta
