#include "node/control_client.h"

#include "common/logging.h"
#include "net/socket.h"

namespace quanta {

using protocol::MessageType;

ControlClient::ControlClient(net::EventLoop* loop, std::string control_socket, InfoSource info,
                             const FunctionTable* functions)
    : loop_(loop), control_socket_(std::move(control_socket)), info_(std::move(info)), functions_(functions) {}

void ControlClient::Connect() {
  if (control_socket_.empty() || shutting_down_) return;
  auto fd = net::ConnectUnix(control_socket_, true);
  if (!fd.ok()) {
    QLOG(kWarning) << "cannot reach control service: " << fd.status().ToString();
    loop_->RunAfter(std::chrono::milliseconds(50), [this] { Connect(); });
    return;
  }
  auto conn = net::Connection::Create(
      loop_, fd.value(), [](net::Connection&, const protocol::Frame&) {},
      [this](net::Connection&, const Status& why) {
        if (!shutting_down_) QLOG(kWarning) << "lost the control service: " << why.ToString();
      });
  if (!conn.ok()) return;
  conn_ = conn.value();
  protocol::NodeInfo info = info_();
  last_reported_ = info.available;
  conn_->Send(MessageType::kRegisterNode, protocol::RegisterNode{info});
  functions_->ForEach([this](const std::string& id, const std::string& payload) {
    conn_->Send(MessageType::kRegisterFunction, protocol::RegisterFunction{id, payload});
  });
}

void ControlClient::ReportResources(const protocol::ResourceMap& available) {
  if (!connected() || available == last_reported_) return;
  last_reported_ = available;
  conn_->Send(MessageType::kResourceUpdate, protocol::ResourceUpdate{info_().node_id, available});
}

void ControlClient::RegisterFunction(const std::string& id, const std::string& payload) {
  if (connected()) conn_->Send(MessageType::kRegisterFunction, protocol::RegisterFunction{id, payload});
}

}  // namespace quanta
