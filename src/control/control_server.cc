#include "control/control_server.h"

#include <sys/socket.h>
#include <unistd.h>

#include "common/logging.h"
#include "net/socket.h"

namespace quanta {

using protocol::MessageType;

ControlServer::ControlServer(net::EventLoop* loop, std::string socket_path, int lifeline_fd)
    : loop_(loop), socket_path_(std::move(socket_path)), lifeline_fd_(lifeline_fd) {}

Status ControlServer::Start() {
  auto fd = net::ListenUnix(socket_path_);
  if (!fd.ok()) return fd.status();
  listen_fd_ = fd.value();
  QUANTA_RETURN_IF_ERROR(loop_->Add(listen_fd_, EPOLLIN, [this](uint32_t) { OnAccept(); }));
  if (lifeline_fd_ >= 0) {
    QUANTA_RETURN_IF_ERROR(loop_->Add(lifeline_fd_, EPOLLIN | EPOLLHUP, [this](uint32_t) {
      char buf[64];
      if (::read(lifeline_fd_, buf, sizeof buf) <= 0) Shutdown("the driver that started the cluster exited");
    }));
  }
  QLOG(kInfo) << "control service listening on " << socket_path_;
  return Status::Ok();
}

void ControlServer::Shutdown(const std::string& why) {
  if (shutting_down_) return;
  shutting_down_ = true;
  QLOG(kInfo) << "shutting down: " << why;
  ::unlink(socket_path_.c_str());
  loop_->Stop();
}

void ControlServer::OnAccept() {
  while (true) {
    int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) return;
    uint64_t id = next_conn_id_++;
    auto conn = net::Connection::Create(
        loop_, fd,
        [this](net::Connection& c, const protocol::Frame& f) {
          Status st = Handle(c, f);
          if (!st.ok()) {
            QLOG(kWarning) << "rejecting message type " << f.type << ": " << st.ToString();
            c.Close(st);
          }
        },
        [this, id](net::Connection&, const Status&) { OnClosed(id); });
    if (!conn.ok()) {
      ::close(fd);
      continue;
    }
    conn.value()->tag = id;
    conns_[id] = conn.value();
  }
}

Status ControlServer::Handle(net::Connection& conn, const protocol::Frame& frame) {
  switch (static_cast<MessageType>(frame.type)) {
    case MessageType::kRegisterNode: {
      protocol::RegisterNode m;
      QUANTA_RETURN_IF_ERROR(protocol::DecodeMessage(frame.body, &m));
      QLOG(kInfo) << "node " << m.node.node_id << " registered at " << m.node.address;
      conn_node_[conn.tag] = m.node.node_id;
      nodes_[m.node.node_id] = std::move(m.node);
      conn.Send(MessageType::kRegisterNodeReply, protocol::Empty{});
      return Status::Ok();
    }
    case MessageType::kResourceUpdate: {
      protocol::ResourceUpdate m;
      QUANTA_RETURN_IF_ERROR(protocol::DecodeMessage(frame.body, &m));
      auto it = nodes_.find(m.node_id);
      if (it == nodes_.end()) return Status::ProtocolError("resource update for unknown node " + m.node_id);
      it->second.available = std::move(m.available);
      return Status::Ok();
    }
    case MessageType::kRegisterFunction: {
      protocol::RegisterFunction m;
      QUANTA_RETURN_IF_ERROR(protocol::DecodeMessage(frame.body, &m));
      functions_.emplace(std::move(m.function_id), std::move(m.payload));
      return Status::Ok();
    }
    case MessageType::kGetClusterInfo: {
      protocol::RequestId m;
      QUANTA_RETURN_IF_ERROR(protocol::DecodeMessage(frame.body, &m));
      protocol::ClusterInfo reply;
      reply.request_id = m.request_id;
      for (const auto& [id, info] : nodes_) reply.nodes.push_back(info);
      conn.Send(MessageType::kClusterInfo, reply);
      return Status::Ok();
    }
    default:
      return Status::ProtocolError("unexpected message type " + std::to_string(frame.type));
  }
}

void ControlServer::OnClosed(uint64_t conn_id) {
  auto node = conn_node_.find(conn_id);
  if (node != conn_node_.end()) {
    auto it = nodes_.find(node->second);
    if (it != nodes_.end()) {
      it->second.alive = false;
      it->second.available.clear();
      QLOG(kWarning) << "node " << node->second << " disconnected; marked dead";
    }
    conn_node_.erase(node);
  }
  conns_.erase(conn_id);
}

}  // namespace quanta
