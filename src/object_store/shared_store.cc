#include "object_store/shared_store.h"

#include <algorithm>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "common/logging.h"

namespace quanta {

namespace {

std::string Mib(uint64_t bytes) {
  char buf[32];
  snprintf(buf, sizeof buf, "%.1f MiB", static_cast<double>(bytes) / (1 << 20));
  return buf;
}

// Spill files are written and read in pieces of this size, with the progress hook called between
// them: a slow disk must not keep the daemon from its heartbeats for the whole of a large object.
constexpr uint64_t kIoPiece = 16u << 20;

Status WriteFile(const std::string& path, const uint8_t* data, uint64_t size,
                 const std::function<void()>& progress) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return Status::FromErrno("open spill file " + path);
  while (size > 0) {
    if (progress) progress();
    ssize_t n = ::write(fd, data, std::min(size, kIoPiece));
    if (n < 0) {
      if (errno == EINTR) continue;
      Status st = Status::FromErrno("write spill file " + path);
      ::close(fd);
      ::unlink(path.c_str());
      return st;
    }
    data += n;
    size -= static_cast<uint64_t>(n);
  }
  ::close(fd);
  return Status::Ok();
}

Status ReadFile(const std::string& path, uint8_t* data, uint64_t size,
                const std::function<void()>& progress) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return Status::FromErrno("open spill file " + path);
  while (size > 0) {
    if (progress) progress();
    ssize_t n = ::read(fd, data, std::min(size, kIoPiece));
    if (n <= 0) {
      if (n < 0 && errno == EINTR) continue;
      Status st = n == 0 ? Status::IOError("spill file " + path + " is truncated")
                         : Status::FromErrno("read spill file " + path);
      ::close(fd);
      return st;
    }
    data += n;
    size -= static_cast<uint64_t>(n);
  }
  ::close(fd);
  return Status::Ok();
}

}  // namespace

SharedStore::SharedStore(std::unique_ptr<SharedMemory> memory, std::string spill_dir)
    : memory_(std::move(memory)), allocator_(memory_->size()), spill_dir_(std::move(spill_dir)) {}

std::string SharedStore::FullMessage(uint64_t size) const {
  return "the object store cannot hold an object of " + Mib(size) + ": capacity " +
         Mib(allocator_.capacity()) + ", in use " + Mib(allocator_.used()) +
         " by objects that are being read or written (unpinned objects are spilled to " +
         spill_dir_ + " as needed). Raise quanta.init(object_store_memory=...), or drop references "
         "to large objects you no longer need";
}

Result<uint64_t> SharedStore::AllocateOrSpill(uint64_t size, const ObjectID& for_id) {
  if (size > allocator_.capacity() || Allocator::RoundUp(size) > allocator_.capacity()) {
    return Status::ResourceExhausted("an object of " + Mib(size) + " is larger than the whole object store (" +
                                     Mib(allocator_.capacity()) +
                                     "); raise quanta.init(object_store_memory=...)");
  }
  while (true) {
    if (auto offset = allocator_.Allocate(size)) return *offset;
    if (lru_.empty()) return Status::ResourceExhausted(FullMessage(size));
    // Secondary copies go first (their primary is elsewhere), least recently used first.
    ObjectID victim = lru_.front();
    for (const auto& id : lru_) {
      if (objects_.at(id).secondary) {
        victim = id;
        break;
      }
    }
    Object& o = objects_.at(victim);
    if (o.secondary) {
      Erase(victim);
      ++total_evicted_;
      if (on_evicted_) on_evicted_(victim);
      continue;
    }
    Status st = Spill(victim, o);
    if (!st.ok()) {
      return Status::ResourceExhausted("the object store is full and spilling to " + spill_dir_ +
                                       " failed (" + st.message() + "); cannot store " + Mib(size));
    }
  }
}

Result<uint64_t> SharedStore::Create(const ObjectID& id, uint64_t size, uint64_t client) {
  if (objects_.count(id)) return Status::InvalidArgument("object " + id.Hex() + " already exists");
  auto offset = AllocateOrSpill(size, id);
  if (!offset.ok()) return offset.status();
  Object& o = objects_[id];
  o.size = size;
  o.offset = offset.value();
  o.creator = client;
  return o.offset;
}

Status SharedStore::Seal(const ObjectID& id, uint64_t client) {
  auto it = objects_.find(id);
  if (it == objects_.end() || it->second.creator != client || it->second.sealed) {
    return Status::InvalidArgument("seal of object " + id.Hex() + " that this client did not create");
  }
  it->second.sealed = true;
  Touch(id, it->second);
  return Status::Ok();
}

void SharedStore::AbortCreatesOf(uint64_t client) {
  std::vector<ObjectID> doomed;
  for (const auto& [id, o] : objects_) {
    if (!o.sealed && o.creator == client) doomed.push_back(id);
  }
  for (const auto& id : doomed) Erase(id);
}

void SharedStore::AbortCreate(const ObjectID& id, uint64_t client) {
  auto it = objects_.find(id);
  if (it != objects_.end() && !it->second.sealed && it->second.creator == client) Erase(id);
}

uint64_t SharedStore::SizeOf(const ObjectID& id) const {
  auto it = objects_.find(id);
  return it == objects_.end() ? 0 : it->second.size;
}

Result<uint64_t> SharedStore::Pin(const ObjectID& id, uint64_t client) {
  auto it = objects_.find(id);
  if (it == objects_.end() || !it->second.sealed) return Status::NotFound("object " + id.Hex() + " is not in the store");
  Object& o = it->second;
  if (!o.resident) QUANTA_RETURN_IF_ERROR(Restore(id, o));
  RemoveFromLru(o);
  o.pins[client] += 1;
  o.total_pins += 1;
  return o.offset;
}

void SharedStore::Unpin(const ObjectID& id, uint64_t client, int64_t n) {
  auto it = objects_.find(id);
  if (it == objects_.end()) return;
  Object& o = it->second;
  auto p = o.pins.find(client);
  if (p == o.pins.end()) return;
  n = std::min(n, p->second);
  p->second -= n;
  o.total_pins -= n;
  if (p->second == 0) o.pins.erase(p);
  if (o.total_pins > 0) return;
  if (o.deleted) {
    Erase(id);
  } else {
    Touch(id, o);
  }
}

void SharedStore::UnpinAll(uint64_t client) {
  std::vector<std::pair<ObjectID, int64_t>> held;
  for (const auto& [id, o] : objects_) {
    auto p = o.pins.find(client);
    if (p != o.pins.end()) held.emplace_back(id, p->second);
  }
  for (const auto& [id, n] : held) Unpin(id, client, n);
}

void SharedStore::Delete(const ObjectID& id) {
  auto it = objects_.find(id);
  if (it == objects_.end()) return;
  if (it->second.total_pins > 0) {
    it->second.deleted = true;  // freed when the last reader lets go
    return;
  }
  Erase(id);
}

void SharedStore::MarkSecondary(const ObjectID& id) {
  auto it = objects_.find(id);
  if (it != objects_.end()) it->second.secondary = true;
}

void SharedStore::Touch(const ObjectID& id, Object& o) {
  RemoveFromLru(o);
  if (!o.sealed || !o.resident || o.total_pins > 0) return;
  o.lru = lru_.insert(lru_.end(), id);
  o.in_lru = true;
}

void SharedStore::RemoveFromLru(Object& o) {
  if (!o.in_lru) return;
  lru_.erase(o.lru);
  o.in_lru = false;
}

Status SharedStore::Spill(const ObjectID& id, Object& o) {
  if (!spill_dir_made_) {
    ::mkdir(spill_dir_.c_str(), 0700);
    spill_dir_made_ = true;
  }
  std::string path = spill_dir_ + "/" + id.Hex();
  QUANTA_RETURN_IF_ERROR(WriteFile(path, memory_->data() + o.offset, o.size, io_progress_));
  RemoveFromLru(o);
  allocator_.Free(o.offset);
  o.resident = false;
  o.spill_path = path;
  spilled_bytes_ += o.size;
  ++total_spilled_;
  QLOG(kInfo) << "spilled object " << id.Hex() << " (" << o.size << " bytes) to " << path;
  return Status::Ok();
}

Status SharedStore::Restore(const ObjectID& id, Object& o) {
  auto offset = AllocateOrSpill(o.size, id);
  if (!offset.ok()) return offset.status();
  Status st = ReadFile(o.spill_path, memory_->data() + offset.value(), o.size, io_progress_);
  if (!st.ok()) {
    allocator_.Free(offset.value());
    return st;
  }
  ::unlink(o.spill_path.c_str());
  o.spill_path.clear();
  o.offset = offset.value();
  o.resident = true;
  spilled_bytes_ -= o.size;
  ++total_restored_;
  return Status::Ok();
}

void SharedStore::Erase(const ObjectID& id) {
  auto it = objects_.find(id);
  if (it == objects_.end()) return;
  Object& o = it->second;
  RemoveFromLru(o);
  if (o.resident) {
    allocator_.Free(o.offset);
  } else {
    ::unlink(o.spill_path.c_str());
    spilled_bytes_ -= o.size;
  }
  objects_.erase(it);
}

StoreStats SharedStore::Stats() const {
  StoreStats s;
  s.capacity = allocator_.capacity();
  s.used = allocator_.used();
  s.spilled_bytes = spilled_bytes_;
  s.total_spilled = total_spilled_;
  s.total_restored = total_restored_;
  s.total_evicted = total_evicted_;
  for (const auto& [id, o] : objects_) {
    if (o.secondary) ++s.num_secondary;
    if (o.resident) {
      ++s.num_in_memory;
    } else {
      ++s.num_spilled;
    }
    if (o.total_pins > 0) ++s.num_pinned;
  }
  return s;
}

std::vector<SharedStore::ObjectInfo> SharedStore::List() const {
  std::vector<ObjectInfo> out;
  for (const auto& [id, o] : objects_) out.push_back({id, o.size, !o.resident, o.total_pins});
  return out;
}

}  // namespace quanta
