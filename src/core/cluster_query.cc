#include "core/cluster_query.h"

#include <poll.h>
#include <unistd.h>

#include <chrono>

#include "net/auth.h"
#include "net/handshake.h"
#include "net/socket.h"
#include "protocol/frame.h"

namespace quanta {

Result<protocol::ClusterInfo> QueryCluster(const std::string& address, int timeout_ms) {
  std::string host;
  uint16_t port = 0;
  QUANTA_RETURN_IF_ERROR(net::ParseHostPort(address, &host, &port));
  auto token = net::ClusterToken::Load();
  if (!token.ok()) return token.status();
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  auto fd = net::ConnectTcp(host, port, timeout_ms);
  if (!fd.ok()) return fd.status();
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd.value()};
  QUANTA_RETURN_IF_ERROR(net::Handshake::Blocking(fd.value(), net::Channel::kTool, token.value(),
                                                  std::chrono::milliseconds(timeout_ms)));
  std::string out;
  protocol::AppendMessage(&out, protocol::MessageType::kGetClusterInfo, protocol::RequestId{1});
  QUANTA_RETURN_IF_ERROR(net::WriteAll(fd.value(), out.data(), out.size()));
  protocol::FrameDecoder decoder;
  protocol::Frame frame;
  while (true) {
    auto next = decoder.Next(&frame);
    if (!next.ok()) return next.status();
    if (next.value()) break;
    int left = static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                    deadline - std::chrono::steady_clock::now()).count());
    if (left <= 0) return Status::TimedOut("no answer from the control service at " + address);
    pollfd pfd{fd.value(), POLLIN, 0};
    if (::poll(&pfd, 1, left) <= 0) continue;
    char* space = decoder.WritableSpace(65536);
    ssize_t n = ::read(fd.value(), space, 65536);
    if (n <= 0) return Status::IOError("the control service at " + address + " closed the connection");
    decoder.Commit(static_cast<size_t>(n));
  }
  if (frame.type != static_cast<uint16_t>(protocol::MessageType::kClusterInfo)) {
    return Status::ProtocolError("unexpected answer from the control service");
  }
  protocol::ClusterInfo info;
  QUANTA_RETURN_IF_ERROR(protocol::DecodeMessage(frame.body, &info));
  return info;
}

}  // namespace quanta
