// The head's task table (protocol/task_event_messages.h) as Python values: the rows of
// quanta.util.state.list_tasks and the counts of summarize_tasks.
#include "bindings/common.h"
#include "protocol/cluster_messages.h"
#include "protocol/task_event_messages.h"

namespace quanta::bindings {

namespace {

const char* StateName(protocol::TaskEventKind k) {
  using K = protocol::TaskEventKind;
  switch (k) {
    case K::kSubmitted: return "PENDING_ARGS_AVAIL";
    case K::kScheduled: return "SUBMITTED_TO_WORKER";
    case K::kRunning: return "RUNNING";
    case K::kFinished: return "FINISHED";
    case K::kFailed: return "FAILED";
  }
  return "NIL";
}

const char* KindName(uint8_t kind) {
  switch (kind) {
    case 1: return "ACTOR_CREATION_TASK";
    case 2: return "ACTOR_TASK";
    default: return "NORMAL_TASK";
  }
}

nb::dict Resources(const protocol::ResourceMap& m) {
  nb::dict d;
  for (const auto& [name, amount] : m) d[name.c_str()] = static_cast<double>(amount) / protocol::kResourceUnit;
  return d;
}

nb::dict Stats(const std::string& blob) {
  protocol::TaskTableStats s;
  ThrowIfError(protocol::DecodeValue(blob, &s));
  nb::dict d;
  d["stored"] = s.stored;
  d["capacity"] = s.capacity;
  d["dropped_on_head"] = s.dropped_on_head;
  d["dropped_on_nodes"] = s.dropped_on_nodes;
  d["transfers_stored"] = s.transfers_stored;
  d["transfers_dropped"] = s.transfers_dropped;
  return d;
}

protocol::ControlReply Call(CoreClient& c, protocol::ControlOp op, std::string arg, int64_t timeout_ms) {
  protocol::ControlRequest req;
  req.op = op;
  req.arg = std::move(arg);
  Result<protocol::ControlReply> r = Status::Internal("unset");
  {
    nb::gil_scoped_release release;
    r = c.ControlCall(std::move(req), timeout_ms);
  }
  auto reply = ValueOrThrow(std::move(r));
  if (!reply.ok) ThrowIfError(Status::Internal("the control service refused the task query: " + reply.error));
  return reply;
}

}  // namespace

void BindTaskEvents(nb::class_<CoreClient>& cls) {
  // task_rows(task_id, state, job_id, node, name, actor_id, limit, timeout_ms) ->
  // (rows, matched, stats): the head's rows matching every given filter (task_id/actor_id:
  // 16 raw bytes or b""; state: 1..5 or 0; job_id: None for any; node: index or 0; name: "" any).
  cls.def(
      "task_rows",
      [](CoreClient& c, const nb::bytes& task_id, int state, nb::object job_id, uint32_t node,
         const std::string& name, const nb::bytes& actor_id, uint32_t limit, int64_t timeout_ms) {
        protocol::TaskQuery q;
        if (task_id.size() == ObjectID::kSize) q.task_id = ObjectID::FromBinary(ToString(task_id));
        if (actor_id.size() == ObjectID::kSize) q.actor_id = ObjectID::FromBinary(ToString(actor_id));
        if (state < 0 || state > protocol::kTaskEventKindMax) throw nb::value_error("unknown task state");
        q.state = static_cast<uint8_t>(state);
        if (!job_id.is_none()) {
          q.has_job = true;
          q.job_id = nb::cast<uint64_t>(job_id);
        }
        q.node = node;
        q.name = name;
        q.limit = limit;
        auto reply = Call(c, protocol::ControlOp::kGetTasks, protocol::EncodeValue(q), timeout_ms);
        nb::list rows;
        for (const auto& item : reply.items) {
          protocol::TaskRecord t;
          ThrowIfError(protocol::DecodeValue(item, &t));
          nb::dict d;
          d["task_id"] = t.task_id.Hex();
          d["attempt_number"] = t.attempt;
          d["type"] = KindName(t.task_kind);
          d["state"] = StateName(t.state);
          d["name"] = t.name;
          d["job_id"] = t.job_id;
          d["actor_id"] = t.actor_id.IsNil() ? std::string() : t.actor_id.Hex();
          d["owner_node"] = t.owner_node;
          d["node_index"] = t.node;
          d["worker_pid"] = t.worker_pid;
          d["worker_client_id"] = t.worker_id;
          d["required_resources"] = Resources(t.resources);
          d["submitted_us"] = t.submitted_us;
          d["scheduled_us"] = t.scheduled_us;
          d["running_us"] = t.running_us;
          d["end_us"] = t.end_us;
          d["error_kind"] = t.error_kind;
          d["error_message"] = t.error;
          rows.append(d);
        }
        return nb::make_tuple(rows, reply.count, Stats(reply.blob));
      },
      nb::arg("task_id") = nb::bytes("", 0), nb::arg("state") = 0, nb::arg("job_id") = nb::none(),
      nb::arg("node") = 0, nb::arg("name") = "", nb::arg("actor_id") = nb::bytes("", 0), nb::arg("limit") = 0,
      nb::arg("timeout_ms") = 30000);
  // task_summary(timeout_ms) -> (rows, stats): per (name, type), the count of tasks by state.
  cls.def(
      "task_summary",
      [](CoreClient& c, int64_t timeout_ms) {
        auto reply = Call(c, protocol::ControlOp::kSummarizeTasks, "", timeout_ms);
        nb::list rows;
        for (const auto& item : reply.items) {
          protocol::TaskSummaryRow s;
          ThrowIfError(protocol::DecodeValue(item, &s));
          nb::dict counts;
          for (uint8_t k = 1; k <= protocol::kTaskEventKindMax; ++k) {
            if (s.counts[k] != 0) counts[StateName(static_cast<protocol::TaskEventKind>(k))] = s.counts[k];
          }
          nb::dict d;
          d["name"] = s.name;
          d["type"] = KindName(s.task_kind);
          d["state_counts"] = counts;
          rows.append(d);
        }
        return nb::make_tuple(rows, Stats(reply.blob));
      },
      nb::arg("timeout_ms") = 30000);
  // transfer_rows(timeout_ms) -> (rows, stats): the completed object transfers the head keeps.
  cls.def(
      "transfer_rows",
      [](CoreClient& c, int64_t timeout_ms) {
        auto reply = Call(c, protocol::ControlOp::kGetTransfers, "", timeout_ms);
        nb::list rows;
        for (const auto& item : reply.items) {
          protocol::TransferEvent t;
          ThrowIfError(protocol::DecodeValue(item, &t));
          nb::dict d;
          d["object_id"] = t.object_id.Hex();
          d["bytes"] = t.bytes;
          d["from_node"] = t.from_node;
          d["to_node"] = t.to_node;
          d["start_us"] = t.start_us;
          d["end_us"] = t.end_us;
          rows.append(d);
        }
        return nb::make_tuple(rows, Stats(reply.blob));
      },
      nb::arg("timeout_ms") = 30000);
}

}  // namespace quanta::bindings
