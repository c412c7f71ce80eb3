// libFuzzer target: FrameDecoder fed arbitrary bytes in arbitrary chunkings, and every decoded
// frame body decoded as every message type (DecodeMessage).
//
// Checked, beyond "no crash" and ASan/UBSan findings:
//   * the decoder yields the same frames (types and bodies) and the same verdict however the
//     bytes are chunked (compared with a one-shot decode of the whole stream);
//   * it never allocates a frame's announced body before its bytes arrive: no allocation while
//     feeding it is larger than about twice the bytes fed so far;
//   * a body that decodes re-encodes to exactly the same bytes (decoding is exact);
//   * no single allocation during a decode is larger than kMaxAmplification x the body plus a
//     small constant (a forged element count must not reserve gigabytes).
//
// Build: cmake -DQUANTA_BUILD_FUZZERS=ON with clang (scripts/fuzz.sh). Seeds: fuzz_corpus/frames.
#include <fuzzer/FuzzedDataProvider.h>
#include <sanitizer/allocator_interface.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "protocol/cluster_messages.h"
#include "protocol/frame.h"
#include "protocol/messages.h"
#include "protocol/peer_messages.h"
#include "protocol/state_messages.h"

using namespace quanta::protocol;

namespace {

constexpr size_t kMaxAmplification = 16;
constexpr size_t kAllocationSlack = 4096;

// The largest single allocation since the last reset (malloc hook, installed once).
thread_local size_t g_largest = 0;
thread_local bool g_tracking = false;
void MallocHook(const volatile void*, size_t size) {
  if (g_tracking && size > g_largest) g_largest = size;
}
void FreeHook(const volatile void*) {}

[[noreturn]] void Fail(const char* what, size_t a = 0, size_t b = 0) {
  std::fprintf(stderr, "fuzz_frames: %s (%zu, %zu)\n", what, a, b);
  std::abort();
}

template <typename M>
void DecodeAs(std::string_view body) {
  M msg;
  g_largest = 0;
  g_tracking = true;
  quanta::Status st = DecodeMessage(body, &msg);
  g_tracking = false;
  if (g_largest > kMaxAmplification * body.size() + kAllocationSlack) {
    Fail("a decode allocated far more than its body", g_largest, body.size());
  }
  if (!st.ok()) return;
  std::string again;
  Writer w(&again);
  msg.Encode(w);
  if (again != body) Fail("a decoded message does not re-encode to the same bytes", again.size(), body.size());
}

void DecodeEveryWay(std::string_view body) {
  DecodeAs<Hello>(body);
  DecodeAs<HelloReply>(body);
  DecodeAs<RegisterFunction>(body);
  DecodeAs<TaskSpec>(body);
  DecodeAs<PutObject>(body);
  DecodeAs<IdList>(body);
  DecodeAs<ReturnTasks>(body);
  DecodeAs<RefDeltas>(body);
  DecodeAs<Empty>(body);
  DecodeAs<TaskDone>(body);
  DecodeAs<CancelTask>(body);
  DecodeAs<RequestId>(body);
  DecodeAs<CreateObject>(body);
  DecodeAs<CreateObjectReply>(body);
  DecodeAs<StoreStatsReply>(body);
  DecodeAs<NodeStats>(body);
  DecodeAs<KillActor>(body);
  DecodeAs<ActorName>(body);
  DecodeAs<ActorNameReply>(body);
  DecodeAs<ObjectReady>(body);
  DecodeAs<GeneratorItem>(body);
  DecodeAs<GeneratorAck>(body);
  DecodeAs<ExecuteTask>(body);
  DecodeAs<LogLines>(body);
  DecodeAs<Warning>(body);
  DecodeAs<ClusterInfo>(body);
  DecodeAs<RegisterNode>(body);
  DecodeAs<RegisterNodeReply>(body);
  DecodeAs<ResourceUpdate>(body);
  DecodeAs<Heartbeat>(body);
  DecodeAs<NodeTable>(body);
  DecodeAs<ResourceView>(body);
  DecodeAs<DrainNode>(body);
  DecodeAs<PeerHello>(body);
  DecodeAs<ForwardTask>(body);
  DecodeAs<TaskResult>(body);
  DecodeAs<ForwardedLogLines>(body);
  DecodeAs<NodeStateQuery>(body);
  DecodeAs<NodeStateReply>(body);
  DecodeAs<ProcessList>(body);
  DecodeAs<LogFileList>(body);
  auto loc = StoredLocation::Decode(body);
  if (loc.ok() && loc.value().Encode() != body) Fail("StoredLocation does not re-encode");
}

struct Outcome {
  std::vector<std::pair<uint16_t, std::string>> frames;
  bool error = false;
};

// Decodes the whole stream at once (the reference for the chunked run).
Outcome OneShot(std::string_view stream, uint32_t max_body) {
  Outcome out;
  FrameDecoder d;
  d.set_max_body(max_body);
  d.Append(stream);
  Frame f;
  while (true) {
    auto next = d.Next(&f);
    if (!next.ok()) {
      out.error = true;
      break;
    }
    if (!next.value()) break;
    out.frames.emplace_back(f.type, std::string(f.body));
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  __sanitizer_install_malloc_and_free_hooks(MallocHook, FreeHook);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider fdp(data, size);
  static constexpr uint32_t kLimits[] = {kMaxFrameBody, 64 * 1024, 4096, 16, 0};
  uint32_t max_body = kLimits[fdp.ConsumeIntegralInRange<size_t>(0, 4)];
  uint64_t chunk_seed = fdp.ConsumeIntegral<uint64_t>();
  std::string stream = fdp.ConsumeRemainingBytesAsString();

  Outcome want = OneShot(stream, max_body);

  Outcome got;
  FrameDecoder d;
  d.set_max_body(max_body);
  size_t fed = 0;
  Frame f;
  while (!got.error) {
    // Pull every complete frame buffered so far.
    while (true) {
      auto next = d.Next(&f);
      if (!next.ok()) {
        got.error = true;
        break;
      }
      if (!next.value()) break;
      got.frames.emplace_back(f.type, std::string(f.body));
      DecodeEveryWay(f.body);
    }
    if (got.error || fed == stream.size()) break;
    // The next chunk: 1 byte .. 4 KiB, sized by a small PRNG seeded from the input.
    chunk_seed = chunk_seed * 6364136223846793005ull + 1442695040888963407ull;
    size_t chunk = std::min<size_t>(stream.size() - fed, 1 + (chunk_seed >> 33) % ((chunk_seed & 1) ? 7 : 4096));
    g_largest = 0;
    g_tracking = true;
    if (chunk_seed & 2) {
      d.Append(std::string_view(stream).substr(fed, chunk));
    } else {
      char* space = d.WritableSpace(chunk);
      std::memcpy(space, stream.data() + fed, chunk);
      d.Commit(chunk);
    }
    g_tracking = false;
    fed += chunk;
    // The buffer grows with the bytes fed, never to a body merely announced by a header.
    if (g_largest > 2 * fed + 2 * chunk + 64) Fail("the decoder allocated more than it was fed", g_largest, fed);
    if (d.buffered() > fed) Fail("the decoder holds more than it was fed", d.buffered(), fed);
  }
  if (got.error != want.error) Fail("chunking changed the verdict", got.error, want.error);
  if (got.frames != want.frames) Fail("chunking changed the frames", got.frames.size(), want.frames.size());
  return 0;
}
