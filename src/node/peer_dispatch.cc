#include "node/peer_dispatch.h"

#include "node/actor_manager.h"
#include "node/cluster_scheduler.h"
#include "node/cluster_view.h"
#include "node/generator_streams.h"
#include "node/log_forwarder.h"
#include "node/object_directory.h"
#include "node/object_manager.h"
#include "node/pull_manager.h"
#include "node/remote_tasks.h"
#include "node/state_service.h"
#include "node/task_manager.h"
#include "protocol/cluster_messages.h"
#include "protocol/peer_messages.h"
#include "protocol/state_messages.h"

namespace quanta {

using protocol::MessageType;

Status PeerDispatch::Dispatch(uint32_t from, const protocol::Frame& frame) {
  switch (static_cast<MessageType>(frame.type)) {
    case MessageType::kForwardTask: {
      protocol::ForwardTask m;
      QUANTA_RETURN_IF_ERROR(protocol::DecodeMessage(frame.body, &m));
      return c_.remote->OnForwardTask(from, std::move(m));
    }
    case MessageType::kTaskResult: {
      protocol::TaskResult m;
      QUANTA_RETURN_IF_ERROR(protocol::DecodeMessage(frame.body, &m));
      auto t = c_.tasks->find(m.task_id);
      if (t != c_.tasks->end() && t->second.forwarded_to == from && t->second.spec.kind == protocol::TaskKind::kNormal) {
        c_.scheduler->NoteReturned(from, ResourceSet(t->second.spec.resources));  // its resources are free there again
      }
      if (c_.on_task_result) c_.on_task_result(m.task_id);
      return c_.remote->OnTaskResult(from, std::move(m));
    }
    case MessageType::kKillActorRemote: {
      protocol::KillActor m;
      QUANTA_RETURN_IF_ERROR(protocol::DecodeMessage(frame.body, &m));
      c_.actors->Kill(m.actor_id, m.no_restart);
      return Status::Ok();
    }
    case MessageType::kCancelRemote: {
      protocol::CancelTask m;
      QUANTA_RETURN_IF_ERROR(protocol::DecodeMessage(frame.body, &m));
      c_.task_manager->OnCancelFromOwner(from, m);
      return Status::Ok();
    }
    case MessageType::kGeneratorItemRemote:
    case MessageType::kGeneratorAckRemote:
      return c_.generators->OnPeerFrame(from, frame);
    case MessageType::kHandOffDone: {
      protocol::HandOff m;
      QUANTA_RETURN_IF_ERROR(protocol::DecodeMessage(frame.body, &m));
      c_.remote->OnHandOffDone(from, m.handoff);
      return Status::Ok();
    }
    case MessageType::kAddBorrower:
    case MessageType::kRemoveBorrower:
    case MessageType::kSubscribeObject:
    case MessageType::kAddLocation:
    case MessageType::kRemoveLocation:
    case MessageType::kFreeObject: {
      protocol::IdList m;
      QUANTA_RETURN_IF_ERROR(protocol::DecodeMessage(frame.body, &m));
      switch (static_cast<MessageType>(frame.type)) {
        case MessageType::kAddBorrower: c_.directory->OnAddBorrower(from, m.ids); break;
        case MessageType::kRemoveBorrower: c_.directory->OnRemoveBorrower(from, m.ids); break;
        case MessageType::kSubscribeObject: c_.directory->OnSubscribeObject(from, m.ids); break;
        case MessageType::kAddLocation: c_.directory->OnAddLocation(from, m.ids); break;
        case MessageType::kRemoveLocation: c_.directory->OnRemoveLocation(from, m.ids); break;
        default: c_.objects->OnFreeCopies(m.ids); break;
      }
      return Status::Ok();
    }
    case MessageType::kBorrowAck: {
      protocol::BorrowAck m;
      QUANTA_RETURN_IF_ERROR(protocol::DecodeMessage(frame.body, &m));
      c_.directory->OnBorrowAck(from, m);
      return Status::Ok();
    }
    case MessageType::kObjectInfo: {
      protocol::ObjectInfo m;
      QUANTA_RETURN_IF_ERROR(protocol::DecodeMessage(frame.body, &m));
      c_.directory->OnObjectInfo(from, std::move(m));
      return Status::Ok();
    }
    case MessageType::kPullObject: {
      protocol::PullObject m;
      QUANTA_RETURN_IF_ERROR(protocol::DecodeMessage(frame.body, &m));
      c_.pulls->OnPullRequest(from, m);
      return Status::Ok();
    }
    case MessageType::kPullFailed: {
      protocol::PullFailed m;
      QUANTA_RETURN_IF_ERROR(protocol::DecodeMessage(frame.body, &m));
      c_.pulls->OnPullFailed(from, m);
      return Status::Ok();
    }
    case MessageType::kPeerStateQuery: {
      protocol::NodeStateQuery m;
      QUANTA_RETURN_IF_ERROR(protocol::DecodeMessage(frame.body, &m));
      c_.state->OnPeerQuery(from, m);
      return Status::Ok();
    }
    case MessageType::kPeerStateReply: {
      protocol::NodeStateReply m;
      QUANTA_RETURN_IF_ERROR(protocol::DecodeMessage(frame.body, &m));
      c_.state->OnPeerReply(from, std::move(m));
      return Status::Ok();
    }
    case MessageType::kForwardedLogLines: {
      protocol::ForwardedLogLines m;
      QUANTA_RETURN_IF_ERROR(protocol::DecodeMessage(frame.body, &m));
      if (static_cast<uint32_t>(m.job_id >> 32) != c_.view->local_index()) {
        return Status::ProtocolError("log lines for a driver of another node");
      }
      m.lines.origin = m.node_ip;
      c_.logs->Forward(m.job_id, std::move(m.lines));
      return Status::Ok();
    }
    default:
      return Status::ProtocolError("unexpected message type " + std::to_string(frame.type) + " from a peer");
  }
}

}  // namespace quanta
