#include "node/client_registry.h"

#include <sys/socket.h>
#include <unistd.h>

#include "common/logging.h"

namespace quanta {

namespace {
// A client must say Hello within this time, in a frame no larger than kMaxHelloFrame: until
// then it is unknown, and an unknown peer gets nothing but a small, short-lived buffer.
constexpr auto kHelloTimeout = std::chrono::milliseconds(5000);
constexpr uint32_t kMaxHelloFrame = 4096;
}  // namespace

ClientRegistry::ClientRegistry(net::EventLoop* loop, uint64_t first_client_id, MessageHandler on_message,
                               ClosedHandler on_closed)
    : loop_(loop), next_id_(first_client_id), on_message_(std::move(on_message)), on_closed_(std::move(on_closed)) {}

Status ClientRegistry::Listen(const std::string& path) {
  auto l = net::Listener::Unix(loop_, path, 0600, [this](int fd) { OnAccept(fd); });
  if (!l.ok()) return l.status();
  listener_ = std::move(l).value();
  return Status::Ok();
}

void ClientRegistry::StopListening() { listener_.reset(); }

void ClientRegistry::OnAccept(int fd) {
  ucred cred{};
  socklen_t len = sizeof cred;
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) {
    QLOG(kWarning) << "refusing a local connection: cannot read its credentials";
    ::close(fd);
    return;
  }
  if (cred.uid != ::geteuid()) {
    QLOG(kWarning) << "refusing a local connection from pid " << cred.pid << " of uid " << cred.uid
                   << ": only processes of uid " << ::geteuid() << " (the node's user) may connect";
    ::close(fd);
    return;
  }
  uint64_t id = next_id_++;
  auto conn = net::Connection::Create(
      loop_, fd,
      [this](net::Connection& c, const protocol::Frame& f) {
        if (LocalClient* client = Find(c.tag)) on_message_(*client, f);
      },
      [this, id](net::Connection&, const Status& why) { OnClosed(id, why); });
  if (!conn.ok()) {
    ::close(fd);
    return;
  }
  conn.value()->tag = id;
  conn.value()->SetMaxFrameBody(kMaxHelloFrame);
  conn.value()->SetOutputBudget(output_budget_);
  LocalClient& c = clients_[id];
  c.id = id;
  c.conn = conn.value();
  c.pid = cred.pid;
  std::weak_ptr<net::Connection> weak = c.conn;
  loop_->RunAfter(kHelloTimeout, [this, weak, id] {
    auto conn = weak.lock();
    LocalClient* client = Find(id);
    if (conn && client && !client->said_hello) {
      QLOG(kWarning) << "closing a local connection from pid " << client->pid << ": no Hello within "
                     << kHelloTimeout.count() << " ms";
      conn->Close(Status::TimedOut("no Hello within " + std::to_string(kHelloTimeout.count()) + " ms"));
    }
  });
}

LocalClient* ClientRegistry::Find(uint64_t id) {
  auto it = clients_.find(id);
  return it == clients_.end() ? nullptr : &it->second;
}

void ClientRegistry::WarnDrivers(const std::string& text) {
  for (auto& [id, c] : clients_) {
    if (c.is_driver()) c.conn->Send(protocol::MessageType::kWarning, protocol::Warning{text});
  }
}

void ClientRegistry::OnClosed(uint64_t id, const Status& why) {
  auto it = clients_.find(id);
  if (it == clients_.end()) return;
  LocalClient client = std::move(it->second);
  clients_.erase(it);
  on_closed_(client, why);
}

}  // namespace quanta
