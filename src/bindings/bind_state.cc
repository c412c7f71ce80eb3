// An observer's questions about any node of the cluster (protocol/state_messages.h): its
// processes, objects, log files and host counters, decoded into Python values.
#include "bindings/common.h"
#include "protocol/state_messages.h"

namespace quanta::bindings {

namespace {

const char* StateName(protocol::ProcessInfo::State s) {
  using S = protocol::ProcessInfo::State;
  switch (s) {
    case S::kIdle: return "IDLE";
    case S::kBusy: return "RUNNING_TASK";
    case S::kBlocked: return "BLOCKED_IN_GET";
    case S::kActor: return "ACTOR";
    case S::kDriver: return "DRIVER";
    case S::kObserver: return "OBSERVER";
  }
  return "UNKNOWN";
}

template <typename T>
T DecodeBody(const std::string& body) {
  T out;
  protocol::Reader r(body);
  Status st = out.Decode(r);
  if (st.ok()) st = r.ExpectEnd();
  ThrowIfError(st);
  return out;
}

nb::object ProcessesToPython(const std::string& body) {
  nb::list out;
  for (const auto& p : DecodeBody<protocol::ProcessList>(body).processes) {
    nb::dict d;
    d["client_id"] = p.client_id;
    d["pid"] = p.pid;
    d["role"] = p.role == protocol::ClientRole::kDriver   ? "DRIVER"
                : p.role == protocol::ClientRole::kWorker ? "WORKER"
                                                          : "OBSERVER";
    d["state"] = StateName(p.state);
    d["actor_id"] = p.actor_id.IsNil() ? std::string() : p.actor_id.Hex();
    d["task_id"] = p.task_id.IsNil() ? std::string() : p.task_id.Hex();
    d["task_name"] = p.task_name;
    d["job_id"] = p.job_id;
    d["queued"] = p.queued;
    d["stdout_log"] = p.stdout_log;
    d["stderr_log"] = p.stderr_log;
    out.append(d);
  }
  return out;
}

nb::object ObjectsToPython(const std::string& body) {
  auto s = DecodeBody<protocol::StoreStatsReply>(body);
  nb::dict d;
  d["capacity"] = s.capacity;
  d["used"] = s.used;
  d["num_in_memory"] = s.num_in_memory;
  d["num_spilled"] = s.num_spilled;
  d["spilled_bytes"] = s.spilled_bytes;
  d["num_pinned"] = s.num_pinned;
  d["num_inline"] = s.num_inline;
  d["inline_bytes"] = s.inline_bytes;
  static const char* kWhere[] = {"inline", "shared_memory", "spilled", "pending", "primary_for_other_node",
                                 "secondary_copy", "on_other_nodes"};
  nb::list objects;
  for (const auto& o : s.objects) {
    nb::dict e;
    e["object_id"] = o.id.Hex();
    e["size"] = o.size;
    e["where"] = kWhere[o.where % 7];
    e["references"] = o.refs;
    e["readers"] = o.pins;
    objects.append(e);
  }
  d["objects"] = objects;
  return d;
}

nb::object LogFilesToPython(const std::string& body) {
  nb::list out;
  for (const auto& f : DecodeBody<protocol::LogFileList>(body).files) {
    nb::dict d;
    d["name"] = f.name;
    d["size"] = f.size;
    d["mtime_ms"] = f.mtime_ms;
    out.append(d);
  }
  return out;
}

nb::object CountersToPython(const std::string& body) {
  nb::dict d;
  for (const auto& [name, value] : DecodeBody<protocol::NodeStats>(body).counters) d[name.c_str()] = value;
  return d;
}

}  // namespace

void BindState(nb::class_<CoreClient>& cls) {
  // node_state(node_index, kind, arg, offset, limit, timeout_ms) -> (answering node, value):
  // kind 1 processes (list of dicts), 2 objects (dict), 3 log files (list), 4 a log slice
  // ((bytes, offset, file size)), 5 host counters (dict). Raises TimeoutError when the node
  // could not be asked (unreachable, dead, silent), ValueError with its reason when it refused.
  cls.def(
      "node_state",
      [](CoreClient& c, uint32_t node_index, int kind, const std::string& arg, int64_t offset, uint64_t limit,
         int64_t timeout_ms) {
        if (kind < 1 || kind > 5) throw nb::value_error("unknown node-state kind");
        protocol::NodeStateQuery q;
        q.node_index = node_index;
        q.kind = static_cast<protocol::StateKind>(kind);
        q.arg = arg;
        q.offset = offset;
        q.limit = limit;
        Result<protocol::NodeStateReply> r = Status::Internal("unset");
        {
          nb::gil_scoped_release release;
          r = c.GetNodeState(std::move(q), timeout_ms);
        }
        auto reply = ValueOrThrow(std::move(r));
        // A node that could not be asked: TimeoutError; a node that refused: ValueError.
        if (!reply.ok) ThrowIfError(reply.unavailable ? Status::TimedOut(reply.error) : Status::NotFound(reply.error));
        nb::object value;
        switch (static_cast<protocol::StateKind>(kind)) {
          case protocol::StateKind::kProcesses: value = ProcessesToPython(reply.body); break;
          case protocol::StateKind::kObjects: value = ObjectsToPython(reply.body); break;
          case protocol::StateKind::kLogFiles: value = LogFilesToPython(reply.body); break;
          case protocol::StateKind::kLogRead:
            value = nb::make_tuple(nb::bytes(reply.body.data(), reply.body.size()), reply.offset, reply.size);
            break;
          case protocol::StateKind::kHostStats: value = CountersToPython(reply.body); break;
        }
        return nb::make_tuple(reply.node_index, value);
      },
      nb::arg("node_index"), nb::arg("kind"), nb::arg("arg") = "", nb::arg("offset") = 0, nb::arg("limit") = 0,
      nb::arg("timeout_ms") = 10000);
}

}  // namespace quanta::bindings
