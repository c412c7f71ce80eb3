// Unit tests for object_store/shared_memory.h and object_store/shared_store.h: memfd sharing
// through the /proc path, create/seal/pin/unpin/delete, LRU spilling and restore, and the
// errors a full store reports.
#include "object_store/shared_store.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "object_store/shared_memory.h"

namespace quanta {
namespace {

constexpr uint64_t kMiB = 1 << 20;

ObjectID Id(uint32_t n) { return ObjectID::Make(0x7777, n, ObjectID::kPutIndex); }

uint8_t PatternByte(uint32_t seed, uint64_t i) {
  return static_cast<uint8_t>((i * 2654435761u + seed * 40503u + (i >> 8)) & 0xff);
}

void Fill(uint8_t* p, uint64_t size, uint32_t seed) {
  for (uint64_t i = 0; i < size; ++i) p[i] = PatternByte(seed, i);
}

// Returns the index of the first byte that differs from the pattern, or -1.
int64_t FirstMismatch(const uint8_t* p, uint64_t size, uint32_t seed) {
  for (uint64_t i = 0; i < size; ++i) {
    if (p[i] != PatternByte(seed, i)) return static_cast<int64_t>(i);
  }
  return -1;
}

bool FileExists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

uint64_t FileSize(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return 0;
  return static_cast<uint64_t>(st.st_size);
}

std::string MakeTempDir() {
  std::string tmpl = (std::filesystem::temp_directory_path() / "quanta_store_test.XXXXXX").string();
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  char* dir = ::mkdtemp(buf.data());
  EXPECT_NE(dir, nullptr) << "mkdtemp failed: " << std::strerror(errno);
  return dir ? std::string(dir) : std::string();
}

// ---- SharedMemory ---------------------------------------------------------------------------

TEST(SharedMemory, CreateReportsSizeAndProcPath) {
  auto mem = SharedMemory::Create("quanta-test", 2 * kMiB);
  ASSERT_TRUE(mem.ok()) << mem.status().ToString();
  EXPECT_EQ((*mem)->size(), 2 * kMiB);
  EXPECT_NE((*mem)->data(), nullptr);
  EXPECT_GE((*mem)->fd(), 0);
  EXPECT_EQ((*mem)->path(),
            "/proc/" + std::to_string(getpid()) + "/fd/" + std::to_string((*mem)->fd()));
  // Fresh memory reads as zeros.
  const uint8_t* d = (*mem)->data();
  EXPECT_TRUE(std::all_of(d, d + 4096, [](uint8_t b) { return b == 0; }));
  EXPECT_TRUE(std::all_of(d + 2 * kMiB - 4096, d + 2 * kMiB, [](uint8_t b) { return b == 0; }));
}

TEST(SharedMemory, OpenThroughPathSharesBytesBothWays) {
  const uint64_t size = 3 * kMiB;
  auto a = SharedMemory::Create("quanta-test", size);
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  Fill((*a)->data(), size, 1);

  auto b = SharedMemory::Open((*a)->path(), size);
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  EXPECT_EQ((*b)->size(), size);
  EXPECT_NE((*b)->data(), (*a)->data()) << "expected a second, distinct mapping";
  EXPECT_NE((*b)->fd(), (*a)->fd());
  EXPECT_EQ(FirstMismatch((*b)->data(), size, 1), -1);

  // Writes through the second mapping are visible through the first.
  Fill((*b)->data() + kMiB, kMiB, 2);
  EXPECT_EQ(FirstMismatch((*a)->data() + kMiB, kMiB, 2), -1);
  EXPECT_EQ(FirstMismatch((*a)->data(), kMiB, 1), -1);  // untouched part unchanged

  // The second mapping stays valid after the creator's object is gone (the memfd lives on).
  a->reset();
  EXPECT_EQ(FirstMismatch((*b)->data() + kMiB, kMiB, 2), -1);
}

TEST(SharedMemory, OpenOfMissingPathFails) {
  auto m = SharedMemory::Open("/nonexistent/quanta/shm", 4096);
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.status().code(), StatusCode::kIOError);
  EXPECT_NE(m.status().message().find("/nonexistent/quanta/shm"), std::string::npos)
      << m.status().message();
}

TEST(SharedMemory, ZeroSize) {
  auto m = SharedMemory::Create("quanta-empty", 0);
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  EXPECT_EQ((*m)->size(), 0u);
  EXPECT_EQ((*m)->data(), nullptr);
}

// ---- SharedStore ----------------------------------------------------------------------------

class SharedStoreTest : public ::testing::Test {
 protected:
  static constexpr uint64_t kCapacity = 4 * kMiB;

  void SetUp() override {
    tmp_ = MakeTempDir();
    ASSERT_FALSE(tmp_.empty());
    spill_dir_ = tmp_ + "/spill";  // not created yet: the store makes it on first spill
    MakeStore(kCapacity);
  }

  void TearDown() override {
    store_.reset();
    if (!tmp_.empty()) {
      std::error_code ec;
      std::filesystem::remove_all(tmp_, ec);
    }
  }

  void MakeStore(uint64_t capacity, std::string spill_dir = "") {
    store_.reset();
    auto mem = SharedMemory::Create("quanta-store-test", capacity);
    ASSERT_TRUE(mem.ok()) << mem.status().ToString();
    store_ = std::make_unique<SharedStore>(std::move(mem.value()),
                                           spill_dir.empty() ? spill_dir_ : spill_dir);
  }

  uint8_t* At(uint64_t offset) { return store_->memory().data() + offset; }

  // Create, write a pattern, seal. Returns the offset.
  uint64_t Put(uint32_t n, uint64_t size, uint64_t client = 1) {
    auto off = store_->Create(Id(n), size, client);
    EXPECT_TRUE(off.ok()) << "create " << n << ": " << off.status().ToString();
    if (!off.ok()) return 0;
    Fill(At(*off), size, n);
    Status st = store_->Seal(Id(n), client);
    EXPECT_TRUE(st.ok()) << st.ToString();
    return *off;
  }

  const SharedStore::ObjectInfo* Info(uint32_t n) {
    list_ = store_->List();
    for (const auto& i : list_) {
      if (i.id == Id(n)) return &i;
    }
    return nullptr;
  }
  bool Spilled(uint32_t n) {
    auto* i = Info(n);
    EXPECT_NE(i, nullptr) << "object " << n << " missing";
    return i != nullptr && i->spilled;
  }
  std::string SpillPath(uint32_t n) const { return spill_dir_ + "/" + Id(n).Hex(); }

  std::string tmp_;
  std::string spill_dir_;
  std::unique_ptr<SharedStore> store_;
  std::vector<SharedStore::ObjectInfo> list_;
};

TEST_F(SharedStoreTest, CreateSealPinReturnsOffsetOfWrittenData) {
  const uint64_t size = 1000;
  auto off = store_->Create(Id(1), size, /*client=*/1);
  ASSERT_TRUE(off.ok()) << off.status().ToString();
  EXPECT_EQ(*off % Allocator::kAlignment, 0u);
  EXPECT_LE(*off + size, store_->memory().size());
  EXPECT_TRUE(store_->Contains(Id(1)));
  EXPECT_EQ(store_->SizeOf(Id(1)), size);
  Fill(At(*off), size, 1);

  // Not readable before it is sealed.
  auto early = store_->Pin(Id(1), 2);
  ASSERT_FALSE(early.ok());
  EXPECT_EQ(early.status().code(), StatusCode::kNotFound);

  ASSERT_TRUE(store_->Seal(Id(1), 1).ok());
  auto pinned = store_->Pin(Id(1), /*client=*/2);
  ASSERT_TRUE(pinned.ok()) << pinned.status().ToString();
  EXPECT_EQ(*pinned, *off);
  EXPECT_EQ(FirstMismatch(At(*pinned), size, 1), -1);

  // Visible through another process-style mapping of the same memfd.
  auto other = SharedMemory::Open(store_->memory().path(), store_->memory().size());
  ASSERT_TRUE(other.ok()) << other.status().ToString();
  EXPECT_EQ(FirstMismatch((*other)->data() + *pinned, size, 1), -1);

  auto* info = Info(1);
  ASSERT_NE(info, nullptr);
  EXPECT_EQ(info->size, size);
  EXPECT_FALSE(info->spilled);
  EXPECT_EQ(info->pins, 1);
}

TEST_F(SharedStoreTest, UnknownObjects) {
  EXPECT_FALSE(store_->Contains(Id(9)));
  EXPECT_EQ(store_->SizeOf(Id(9)), 0u);
  auto p = store_->Pin(Id(9), 1);
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().code(), StatusCode::kNotFound);
  EXPECT_FALSE(store_->Seal(Id(9), 1).ok());
  // These are no-ops on unknown ids.
  store_->Unpin(Id(9), 1, 1);
  store_->Delete(Id(9));
  store_->UnpinAll(1);
  store_->AbortCreatesOf(1);
  EXPECT_EQ(store_->Stats().used, 0u);
  EXPECT_TRUE(store_->List().empty());
}

TEST_F(SharedStoreTest, CreateOfExistingIdFails) {
  Put(1, 100);
  uint64_t used = store_->Stats().used;
  auto again = store_->Create(Id(1), 100, 1);
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(store_->Stats().used, used);
}

TEST_F(SharedStoreTest, SealByAnotherClientFails) {
  auto off = store_->Create(Id(1), 100, /*client=*/1);
  ASSERT_TRUE(off.ok());
  Status st = store_->Seal(Id(1), /*client=*/2);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_FALSE(store_->Pin(Id(1), 2).ok()) << "a failed seal must not make the object readable";
  ASSERT_TRUE(store_->Seal(Id(1), 1).ok());
  // Sealing twice is refused too.
  EXPECT_FALSE(store_->Seal(Id(1), 1).ok());
  EXPECT_TRUE(store_->Pin(Id(1), 2).ok());
}

TEST_F(SharedStoreTest, ZeroSizeObject) {
  auto off = store_->Create(Id(1), 0, 1);
  ASSERT_TRUE(off.ok()) << off.status().ToString();
  ASSERT_TRUE(store_->Seal(Id(1), 1).ok());
  EXPECT_EQ(store_->SizeOf(Id(1)), 0u);
  EXPECT_EQ(store_->Stats().used, Allocator::kAlignment);
  auto p = store_->Pin(Id(1), 1);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(*p, *off);
}

TEST_F(SharedStoreTest, SpillAndRestorePreservesBytes) {
  const uint64_t size = kMiB + kMiB / 2 + 7;  // 1.5 MiB + 7: two fit in 4 MiB, three do not
  uint64_t off1 = Put(1, size);
  uint64_t off2 = Put(2, size);
  EXPECT_NE(off1, off2);
  EXPECT_FALSE(FileExists(spill_dir_));
  EXPECT_EQ(store_->Stats().num_spilled, 0u);

  // A third object needs the space of the oldest unpinned one.
  auto off3 = store_->Create(Id(3), size, 1);
  ASSERT_TRUE(off3.ok()) << off3.status().ToString();
  Fill(At(*off3), size, 3);
  ASSERT_TRUE(store_->Seal(Id(3), 1).ok());

  EXPECT_TRUE(Spilled(1));
  EXPECT_FALSE(Spilled(2));
  EXPECT_FALSE(Spilled(3));
  ASSERT_TRUE(FileExists(SpillPath(1))) << SpillPath(1);
  EXPECT_EQ(FileSize(SpillPath(1)), size);
  EXPECT_FALSE(FileExists(SpillPath(2)));
  StoreStats s = store_->Stats();
  EXPECT_EQ(s.num_spilled, 1u);
  EXPECT_EQ(s.num_in_memory, 2u);
  EXPECT_EQ(s.spilled_bytes, size);
  EXPECT_EQ(s.total_spilled, 1u);
  EXPECT_EQ(s.total_restored, 0u);
  EXPECT_EQ(s.used, 2 * Allocator::RoundUp(size));
  EXPECT_TRUE(store_->Contains(Id(1)));
  EXPECT_EQ(store_->SizeOf(Id(1)), size);

  // Reading object 1 restores it, spilling object 2 (now the oldest unpinned) to make room.
  auto p1 = store_->Pin(Id(1), 5);
  ASSERT_TRUE(p1.ok()) << p1.status().ToString();
  EXPECT_EQ(FirstMismatch(At(*p1), size, 1), -1) << "restored bytes differ";
  EXPECT_FALSE(Spilled(1));
  EXPECT_TRUE(Spilled(2));
  EXPECT_FALSE(FileExists(SpillPath(1))) << "spill file should be removed after restore";
  EXPECT_TRUE(FileExists(SpillPath(2)));
  // Object 3 was not disturbed.
  EXPECT_EQ(FirstMismatch(At(*off3), size, 3), -1);

  s = store_->Stats();
  EXPECT_EQ(s.num_spilled, 1u);
  EXPECT_EQ(s.spilled_bytes, size);
  EXPECT_EQ(s.total_spilled, 2u);
  EXPECT_EQ(s.total_restored, 1u);
  EXPECT_EQ(s.num_pinned, 1u);

  // Release 1: the LRU order is now 3 (sealed earlier), then 1. Restoring 2 spills 3.
  store_->Unpin(Id(1), 5, 1);
  auto p2 = store_->Pin(Id(2), 5);
  ASSERT_TRUE(p2.ok()) << p2.status().ToString();
  EXPECT_EQ(FirstMismatch(At(*p2), size, 2), -1);
  EXPECT_TRUE(Spilled(3));
  EXPECT_FALSE(Spilled(1));
  // And 3 comes back intact too (spilling 1, the only unpinned resident object).
  auto p3 = store_->Pin(Id(3), 5);
  ASSERT_TRUE(p3.ok()) << p3.status().ToString();
  EXPECT_EQ(FirstMismatch(At(*p3), size, 3), -1);
  EXPECT_EQ(FirstMismatch(At(*p2), size, 2), -1);
  EXPECT_TRUE(Spilled(1));
  s = store_->Stats();
  EXPECT_EQ(s.total_spilled, 4u);
  EXPECT_EQ(s.total_restored, 3u);
  EXPECT_EQ(s.num_pinned, 2u);
}

TEST_F(SharedStoreTest, RestoreOverwritesWhateverWasAtTheNewOffset) {
  const uint64_t size = 2 * kMiB;  // exactly two fit
  Put(1, size);
  Put(2, size);
  // Object 3 forces 1 out and takes its old place, overwriting 1's bytes there.
  uint64_t off3 = Put(3, size);
  ASSERT_TRUE(Spilled(1));
  EXPECT_EQ(FirstMismatch(At(off3), size, 3), -1);
  store_->Delete(Id(3));  // freed without spilling; its bytes stay behind in the arena
  auto p1 = store_->Pin(Id(1), 2);
  ASSERT_TRUE(p1.ok()) << p1.status().ToString();
  EXPECT_EQ(FirstMismatch(At(*p1), size, 1), -1);
}

TEST_F(SharedStoreTest, SpillAndRestoreReportProgress) {
  // The node keeps its heartbeats going through this hook while a slow disk holds its loop.
  int calls = 0;
  store_->set_io_progress([&] { ++calls; });
  const uint64_t size = kMiB + kMiB / 2;
  Put(1, size);
  Put(2, size);
  EXPECT_EQ(calls, 0) << "no disk I/O yet";
  Put(3, size);  // spills object 1
  ASSERT_TRUE(Spilled(1));
  int after_spill = calls;
  EXPECT_GE(after_spill, 1);
  auto p1 = store_->Pin(Id(1), 5);  // restores it (and spills another)
  ASSERT_TRUE(p1.ok()) << p1.status().ToString();
  EXPECT_FALSE(Spilled(1));
  EXPECT_GE(calls, after_spill + 2) << "a restore and the spill that made room for it";
}

TEST_F(SharedStoreTest, PinnedObjectsAreNeverSpilled) {
  const uint64_t size = kMiB;
  Put(1, size);
  Put(2, size);
  Put(3, size);
  Put(4, size);  // the store is now full
  // Pin the oldest two; only 3 and 4 may be spilled.
  ASSERT_TRUE(store_->Pin(Id(1), 7).ok());
  ASSERT_TRUE(store_->Pin(Id(2), 8).ok());

  Put(5, size);
  EXPECT_FALSE(Spilled(1));
  EXPECT_FALSE(Spilled(2));
  EXPECT_TRUE(Spilled(3));
  Put(6, size);
  EXPECT_TRUE(Spilled(4));
  // 5 and 6 are unpinned and get spilled next; 1 and 2 never.
  Put(7, size);
  Put(8, size);
  EXPECT_TRUE(Spilled(5));
  EXPECT_TRUE(Spilled(6));
  EXPECT_FALSE(Spilled(1));
  EXPECT_FALSE(Spilled(2));
  StoreStats s = store_->Stats();
  EXPECT_EQ(s.num_pinned, 2u);
  EXPECT_EQ(s.num_spilled, 4u);
  EXPECT_EQ(s.num_in_memory, 4u);
  EXPECT_EQ(s.used, 4 * kMiB);

  // Pin everything resident; nothing is evictable any more.
  ASSERT_TRUE(store_->Pin(Id(7), 9).ok());
  ASSERT_TRUE(store_->Pin(Id(8), 9).ok());
  auto full = store_->Create(Id(9), 1, 1);
  ASSERT_FALSE(full.ok());
  EXPECT_EQ(full.status().code(), StatusCode::kResourceExhausted);
  EXPECT_FALSE(store_->Contains(Id(9)));
  // The pinned objects' bytes are intact.
  for (uint32_t n : {1u, 2u, 7u, 8u}) {
    auto p = store_->Pin(Id(n), 10);
    ASSERT_TRUE(p.ok());
    EXPECT_EQ(FirstMismatch(At(*p), size, n), -1) << "object " << n;
  }
}

TEST_F(SharedStoreTest, LeastRecentlyUnpinnedIsSpilledFirst) {
  const uint64_t size = kMiB;
  Put(1, size);
  Put(2, size);
  Put(3, size);
  Put(4, size);
  // Read 1 and 2 (removes them from the LRU), release 2 before 1.
  ASSERT_TRUE(store_->Pin(Id(1), 5).ok());
  ASSERT_TRUE(store_->Pin(Id(2), 6).ok());
  store_->Unpin(Id(2), 6, 1);
  store_->Unpin(Id(1), 5, 1);
  // LRU order is now 3, 4, 2, 1.
  Put(10, size);
  EXPECT_TRUE(Spilled(3));
  EXPECT_FALSE(Spilled(4));
  Put(11, size);
  EXPECT_TRUE(Spilled(4));
  EXPECT_FALSE(Spilled(2));
  Put(12, size);
  EXPECT_TRUE(Spilled(2));
  EXPECT_FALSE(Spilled(1));
  Put(13, size);
  EXPECT_TRUE(Spilled(1));
  // Newer objects come after 1 in the order; restoring 3 evicts the oldest of them (10).
  EXPECT_FALSE(Spilled(10));
  auto p3 = store_->Pin(Id(3), 5);
  ASSERT_TRUE(p3.ok()) << p3.status().ToString();
  EXPECT_TRUE(Spilled(10));
  EXPECT_FALSE(Spilled(11));
  EXPECT_EQ(FirstMismatch(At(*p3), size, 3), -1);
}

TEST_F(SharedStoreTest, UnpinWithMultipleReadersKeepsObjectPinned) {
  const uint64_t size = 2 * kMiB;
  Put(1, size);
  Put(2, size);
  ASSERT_TRUE(store_->Pin(Id(1), 5).ok());
  ASSERT_TRUE(store_->Pin(Id(1), 5).ok());
  ASSERT_TRUE(store_->Pin(Id(1), 6).ok());
  ASSERT_EQ(Info(1)->pins, 3);
  store_->Unpin(Id(1), 5, 1);
  store_->Unpin(Id(1), 6, 1);
  EXPECT_EQ(Info(1)->pins, 1);
  store_->Unpin(Id(1), 7, 1);  // a client that holds none changes nothing
  EXPECT_EQ(Info(1)->pins, 1);
  // Object 2 is the only evictable one.
  Put(3, size);
  EXPECT_FALSE(Spilled(1));
  EXPECT_TRUE(Spilled(2));
  store_->Unpin(Id(1), 5, 100);  // more than held: clamps to what client 5 holds
  EXPECT_EQ(Info(1)->pins, 0);
  // 1 is evictable again, but it was released after 3 was sealed, so 3 goes first.
  Put(4, size);
  EXPECT_TRUE(Spilled(3));
  EXPECT_FALSE(Spilled(1));
  Put(5, size);
  EXPECT_TRUE(Spilled(1));
}

TEST_F(SharedStoreTest, DeleteOfPinnedObjectFreesOnlyAfterLastUnpin) {
  const uint64_t size = 3 * kMiB;
  uint64_t off = Put(1, size);
  ASSERT_TRUE(store_->Pin(Id(1), 5).ok());
  ASSERT_TRUE(store_->Pin(Id(1), 5).ok());
  ASSERT_TRUE(store_->Pin(Id(1), 6).ok());
  store_->Delete(Id(1));
  EXPECT_TRUE(store_->Contains(Id(1)));
  EXPECT_EQ(store_->Stats().used, Allocator::RoundUp(size));
  EXPECT_EQ(FirstMismatch(At(off), size, 1), -1) << "a deleted object's readers still see it";
  // While its readers hold it, its space is not available.
  auto blocked = store_->Create(Id(2), 2 * kMiB, 1);
  ASSERT_FALSE(blocked.ok());
  EXPECT_EQ(blocked.status().code(), StatusCode::kResourceExhausted);

  store_->Unpin(Id(1), 5, 2);
  EXPECT_TRUE(store_->Contains(Id(1)));
  EXPECT_EQ(store_->Stats().used, Allocator::RoundUp(size));
  store_->Unpin(Id(1), 6, 1);
  EXPECT_FALSE(store_->Contains(Id(1)));
  EXPECT_EQ(store_->Stats().used, 0u);
  EXPECT_EQ(store_->Stats().total_spilled, 0u) << "a deleted object must not be spilled";
  EXPECT_FALSE(FileExists(SpillPath(1)));
  // The space is reusable.
  EXPECT_TRUE(store_->Create(Id(2), 4 * kMiB, 1).ok());
}

TEST_F(SharedStoreTest, DeleteUnpinnedFreesImmediately) {
  Put(1, kMiB);
  auto unsealed = store_->Create(Id(2), kMiB, 1);
  ASSERT_TRUE(unsealed.ok());
  store_->Delete(Id(1));
  store_->Delete(Id(2));
  EXPECT_FALSE(store_->Contains(Id(1)));
  EXPECT_FALSE(store_->Contains(Id(2)));
  EXPECT_EQ(store_->Stats().used, 0u);
  EXPECT_TRUE(store_->List().empty());
}

TEST_F(SharedStoreTest, DeleteOfSpilledObjectRemovesItsFile) {
  const uint64_t size = 2 * kMiB;
  Put(1, size);
  Put(2, size);
  Put(3, size);
  ASSERT_TRUE(Spilled(1));
  ASSERT_TRUE(FileExists(SpillPath(1)));
  store_->Delete(Id(1));
  EXPECT_FALSE(store_->Contains(Id(1)));
  EXPECT_FALSE(FileExists(SpillPath(1)));
  StoreStats s = store_->Stats();
  EXPECT_EQ(s.num_spilled, 0u);
  EXPECT_EQ(s.spilled_bytes, 0u);
  EXPECT_EQ(s.total_spilled, 1u);
}

TEST_F(SharedStoreTest, AbortCreatesOfFreesOnlyThatClientsUnsealedObjects) {
  const uint64_t size = kMiB;
  ASSERT_TRUE(store_->Create(Id(1), size, /*client=*/1).ok());  // client 1, unsealed
  Put(2, size, /*client=*/1);                                    // client 1, sealed
  auto z = store_->Create(Id(3), size, /*client=*/2);            // client 2, unsealed
  ASSERT_TRUE(z.ok());
  Fill(At(*z), size, 3);
  EXPECT_EQ(store_->Stats().used, 3 * size);

  store_->AbortCreatesOf(1);
  EXPECT_FALSE(store_->Contains(Id(1)));
  EXPECT_TRUE(store_->Contains(Id(2)));
  EXPECT_TRUE(store_->Contains(Id(3)));
  EXPECT_EQ(store_->Stats().used, 2 * size);
  EXPECT_TRUE(store_->Pin(Id(2), 9).ok());

  // Client 2 can still finish its object.
  ASSERT_TRUE(store_->Seal(Id(3), 2).ok());
  auto p = store_->Pin(Id(3), 9);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(FirstMismatch(At(*p), size, 3), -1);

  store_->AbortCreatesOf(2);  // nothing unsealed left
  EXPECT_TRUE(store_->Contains(Id(3)));
  EXPECT_EQ(store_->Stats().used, 2 * size);
}

TEST_F(SharedStoreTest, UnsealedObjectsAreNotSpilled) {
  const uint64_t size = 2 * kMiB;
  ASSERT_TRUE(store_->Create(Id(1), size, 1).ok());
  ASSERT_TRUE(store_->Create(Id(2), size, 1).ok());
  auto full = store_->Create(Id(3), 1, 1);
  ASSERT_FALSE(full.ok());
  EXPECT_EQ(full.status().code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(store_->Stats().num_spilled, 0u);
  EXPECT_FALSE(FileExists(spill_dir_));
}

TEST_F(SharedStoreTest, UnpinAllReturnsOnlyThatClientsPins) {
  Put(1, kMiB);
  Put(2, kMiB);
  Put(3, kMiB);
  ASSERT_TRUE(store_->Pin(Id(1), 5).ok());
  ASSERT_TRUE(store_->Pin(Id(1), 5).ok());
  ASSERT_TRUE(store_->Pin(Id(1), 6).ok());
  ASSERT_TRUE(store_->Pin(Id(2), 5).ok());
  ASSERT_TRUE(store_->Pin(Id(3), 5).ok());
  store_->Delete(Id(3));  // pending until client 5 lets go
  EXPECT_EQ(store_->Stats().num_pinned, 3u);

  store_->UnpinAll(5);
  EXPECT_EQ(Info(1)->pins, 1);
  EXPECT_EQ(Info(2)->pins, 0);
  EXPECT_FALSE(store_->Contains(Id(3))) << "the deleted object is freed with its last pin";
  StoreStats s = store_->Stats();
  EXPECT_EQ(s.num_pinned, 1u);
  EXPECT_EQ(s.used, 2 * kMiB);

  store_->UnpinAll(5);  // idempotent
  EXPECT_EQ(Info(1)->pins, 1);
  store_->UnpinAll(6);
  EXPECT_EQ(Info(1)->pins, 0);
  EXPECT_EQ(store_->Stats().num_pinned, 0u);
}

TEST_F(SharedStoreTest, ObjectLargerThanCapacityFailsWithSizesInMiB) {
  auto r = store_->Create(Id(1), kCapacity + 1, 1);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kResourceExhausted);
  const std::string& msg = r.status().message();
  EXPECT_NE(msg.find("MiB"), std::string::npos) << msg;
  EXPECT_NE(msg.find("4.0 MiB"), std::string::npos) << "capacity should be quoted: " << msg;
  EXPECT_FALSE(store_->Contains(Id(1)));
  EXPECT_EQ(store_->Stats().used, 0u);
  // Nothing was spilled in a futile attempt to make room.
  Put(2, kMiB);
  auto r2 = store_->Create(Id(3), 10 * kCapacity, 1);
  ASSERT_FALSE(r2.ok());
  EXPECT_EQ(r2.status().code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(store_->Stats().total_spilled, 0u);
  // Exactly the capacity fits (after spilling what is in the way).
  auto exact = store_->Create(Id(4), kCapacity, 1);
  ASSERT_TRUE(exact.ok()) << exact.status().ToString();
  EXPECT_TRUE(Spilled(2));
}

// A size near 2^64 must be refused, not wrapped around to a tiny allocation.
TEST_F(SharedStoreTest, HugeSizeIsRefused) {
  const uint64_t huge = std::numeric_limits<uint64_t>::max();
  auto r = store_->Create(Id(1), huge, 1);
  EXPECT_FALSE(r.ok()) << "Create of " << huge << " bytes succeeded at offset " << r.value();
  if (r.ok()) return;
  EXPECT_EQ(r.status().code(), StatusCode::kResourceExhausted);
  EXPECT_FALSE(store_->Contains(Id(1)));
}

TEST_F(SharedStoreTest, FullStoreOfPinnedObjectsFailsWithSizesInMiB) {
  for (uint32_t n = 1; n <= 4; ++n) {
    Put(n, kMiB);
    ASSERT_TRUE(store_->Pin(Id(n), 9).ok());
  }
  auto r = store_->Create(Id(5), kMiB, 1);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kResourceExhausted);
  EXPECT_NE(r.status().message().find("MiB"), std::string::npos) << r.status().message();
  EXPECT_FALSE(store_->Contains(Id(5)));
  EXPECT_EQ(store_->Stats().total_spilled, 0u);
  // Releasing one reader makes room again (by spilling that object).
  store_->Unpin(Id(2), 9, 1);
  auto ok = store_->Create(Id(5), kMiB, 1);
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  EXPECT_TRUE(Spilled(2));
  // A spilled object that cannot be restored because everything else is pinned reports the
  // same kind of error, and stays spilled and intact.
  ASSERT_TRUE(store_->Seal(Id(5), 1).ok());
  ASSERT_TRUE(store_->Pin(Id(5), 9).ok());
  auto p2 = store_->Pin(Id(2), 9);
  ASSERT_FALSE(p2.ok());
  EXPECT_EQ(p2.status().code(), StatusCode::kResourceExhausted);
  EXPECT_TRUE(Spilled(2));
  EXPECT_TRUE(FileExists(SpillPath(2)));
  store_->Unpin(Id(3), 9, 1);
  auto p2b = store_->Pin(Id(2), 9);
  ASSERT_TRUE(p2b.ok()) << p2b.status().ToString();
  EXPECT_EQ(FirstMismatch(At(*p2b), kMiB, 2), -1);
}

TEST_F(SharedStoreTest, SpillFailureIsReportedAndLeavesVictimIntact) {
  // A spill directory under a regular file can never be created.
  std::string blocker = tmp_ + "/not-a-dir";
  FILE* f = std::fopen(blocker.c_str(), "w");
  ASSERT_NE(f, nullptr);
  std::fclose(f);
  MakeStore(kCapacity, blocker + "/spill");

  uint64_t off1 = Put(1, 2 * kMiB);
  Put(2, 2 * kMiB);
  auto r = store_->Create(Id(3), kMiB, 1);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kResourceExhausted);
  EXPECT_NE(r.status().message().find("spill"), std::string::npos) << r.status().message();
  EXPECT_FALSE(store_->Contains(Id(3)));
  EXPECT_FALSE(Spilled(1));
  EXPECT_EQ(store_->Stats().total_spilled, 0u);
  auto p = store_->Pin(Id(1), 4);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(*p, off1);
  EXPECT_EQ(FirstMismatch(At(*p), 2 * kMiB, 1), -1);
}

TEST_F(SharedStoreTest, StatsAndListCounts) {
  StoreStats s = store_->Stats();
  EXPECT_EQ(s.capacity, kCapacity);
  EXPECT_EQ(s.used, 0u);
  EXPECT_EQ(s.num_in_memory, 0u);
  EXPECT_EQ(s.num_spilled, 0u);
  EXPECT_EQ(s.spilled_bytes, 0u);
  EXPECT_EQ(s.num_pinned, 0u);
  EXPECT_EQ(s.total_spilled, 0u);
  EXPECT_EQ(s.total_restored, 0u);

  Put(1, 100);
  ASSERT_TRUE(store_->Create(Id(3), 65, 1).ok());  // unsealed counts as in memory
  Put(2, 1500 * 1024);                              // last, so it borders the free tail
  ASSERT_TRUE(store_->Pin(Id(1), 4).ok());
  ASSERT_TRUE(store_->Pin(Id(1), 5).ok());
  s = store_->Stats();
  EXPECT_EQ(s.used, Allocator::RoundUp(100) + Allocator::RoundUp(1500 * 1024) + Allocator::RoundUp(65));
  EXPECT_EQ(s.num_in_memory, 3u);
  EXPECT_EQ(s.num_pinned, 1u);
  EXPECT_EQ(s.num_spilled, 0u);

  auto list = store_->List();
  ASSERT_EQ(list.size(), 3u);
  std::sort(list.begin(), list.end(), [](const auto& a, const auto& b) { return a.size < b.size; });
  EXPECT_EQ(list[0].id, Id(3));
  EXPECT_EQ(list[0].size, 65u);
  EXPECT_EQ(list[0].pins, 0);
  EXPECT_EQ(list[1].id, Id(1));
  EXPECT_EQ(list[1].pins, 2);
  EXPECT_EQ(list[2].id, Id(2));
  EXPECT_FALSE(list[2].spilled);

  // Spill 2 (the only evictable object) by asking for more than the free tail; its space
  // merges with the tail.
  ASSERT_TRUE(store_->Create(Id(4), 3 * kMiB, 1).ok());
  s = store_->Stats();
  EXPECT_EQ(s.num_spilled, 1u);
  EXPECT_EQ(s.spilled_bytes, 1500u * 1024);
  EXPECT_EQ(s.total_spilled, 1u);
  EXPECT_EQ(s.num_in_memory, 3u);
  store_->Delete(Id(4));
  ASSERT_TRUE(store_->Pin(Id(2), 4).ok());
  s = store_->Stats();
  EXPECT_EQ(s.num_spilled, 0u);
  EXPECT_EQ(s.spilled_bytes, 0u);
  EXPECT_EQ(s.total_restored, 1u);
  EXPECT_EQ(s.num_pinned, 2u);
  EXPECT_EQ(s.num_in_memory, 3u);
}

}  // namespace
}  // namespace quanta
