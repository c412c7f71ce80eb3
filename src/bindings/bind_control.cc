// Requests the control service answers (names, KV store, jobs, actors, functions), forwarded by
// the local node, and decoders for the table entries it returns.
#include "bindings/common.h"
#include "protocol/cluster_messages.h"

namespace quanta::bindings {

namespace {

const char* ActorStateName(protocol::ActorInfo::State s) {
  using S = protocol::ActorInfo::State;
  switch (s) {
    case S::kPending: return "PENDING_CREATION";
    case S::kAlive: return "ALIVE";
    case S::kRestarting: return "RESTARTING";
    case S::kDead: return "DEAD";
    case S::kUnknown: break;
  }
  return "UNKNOWN";
}

const char* JobStatusName(protocol::JobStatus s) {
  switch (s) {
    case protocol::JobStatus::kRunning: return "RUNNING";
    case protocol::JobStatus::kSucceeded: return "SUCCEEDED";
    case protocol::JobStatus::kFailed: return "FAILED";
  }
  return "UNKNOWN";
}

template <typename T>
T DecodeEntry(const nb::bytes& b) {
  T out;
  protocol::Reader r(std::string_view(b.c_str(), b.size()));
  Status st = out.Decode(r);
  if (st.ok() && r.remaining() != 0) st = Status::ProtocolError("trailing bytes after a control table entry");
  ThrowIfError(st);
  return out;
}

}  // namespace

void BindControl(nb::module_& m, nb::class_<CoreClient>& cls) {
  cls.def("control_call",
          [](CoreClient& c, int op, const nb::bytes& key, const nb::bytes& value, const nb::bytes& arg,
             const nb::bytes& blob, bool flag, int64_t timeout_ms) {
            protocol::ControlRequest req;
            req.op = static_cast<protocol::ControlOp>(op);
            req.key = ToString(key);
            req.value = ToString(value);
            req.arg = ToString(arg);
            req.blob = ToString(blob);
            req.flag = flag;
            Result<protocol::ControlReply> r = Status::Internal("unset");
            {
              nb::gil_scoped_release release;
              r = c.ControlCall(std::move(req), timeout_ms);
            }
            auto reply = ValueOrThrow(std::move(r));
            nb::list items;
            for (const auto& i : reply.items) items.append(nb::bytes(i.data(), i.size()));
            return nb::make_tuple(reply.ok, reply.flag, reply.count, nb::bytes(reply.blob.data(), reply.blob.size()),
                                  reply.error, items);
          });
  m.def("decode_job", [](const nb::bytes& b) {
    auto j = DecodeEntry<protocol::JobInfo>(b);
    nb::dict d;
    d["job_id"] = j.job_id;
    d["node_index"] = j.node_index;
    d["driver_pid"] = j.driver_pid;
    d["entrypoint"] = j.entrypoint;
    d["start_time"] = j.start_time_ms;
    d["end_time"] = j.end_time_ms;
    d["status"] = JobStatusName(j.status);
    return d;
  });
  m.def("decode_actor", [](const nb::bytes& b) {
    auto a = DecodeEntry<protocol::ActorInfo>(b);
    nb::dict d;
    d["actor_id"] = a.actor_id.Hex();
    d["state"] = ActorStateName(a.state);
    d["node_index"] = a.node_index;
    d["owner_node"] = a.owner_node;
    d["job_id"] = a.job_id;
    d["class_name"] = a.class_name;
    d["name"] = a.name;
    d["namespace"] = a.name_space;
    d["detached"] = a.detached;
    d["restarts"] = a.restarts;
    d["death_reason"] = a.death_reason;
    return d;
  });
}

}  // namespace quanta::bindings
