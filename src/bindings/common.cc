#include "bindings/common.h"

#include <nanobind/ndarray.h>
#include <nanobind/stl/shared_ptr.h>

namespace quanta::bindings {

void ThrowIfError(const Status& st) {
  if (st.ok()) return;
  switch (st.code()) {
    case StatusCode::kTimedOut:
      PyErr_SetString(PyExc_TimeoutError, st.message().c_str());
      break;
    case StatusCode::kCancelled:
    case StatusCode::kIOError:
      PyErr_SetString(PyExc_ConnectionError, st.message().c_str());
      break;
    case StatusCode::kResourceExhausted:
      PyErr_SetString(PyExc_MemoryError, st.message().c_str());
      break;
    case StatusCode::kInvalidArgument:
    case StatusCode::kNotFound:
      PyErr_SetString(PyExc_ValueError, st.message().c_str());
      break;
    default:
      PyErr_SetString(PyExc_RuntimeError, st.ToString().c_str());
  }
  throw nb::python_error();
}

ObjectID ToId(const nb::bytes& b) {
  if (b.size() != ObjectID::kSize) {
    throw nb::value_error("an object id must be 16 bytes");
  }
  return ObjectID::FromBinary(std::string_view(b.c_str(), b.size()));
}

std::vector<ObjectID> ToIds(const nb::list& l) {
  std::vector<ObjectID> ids;
  ids.reserve(l.size());
  for (nb::handle h : l) ids.push_back(ToId(nb::borrow<nb::bytes>(h)));
  return ids;
}

nb::tuple ValueToPython(const protocol::ObjectValue& v) {
  return nb::make_tuple(static_cast<int>(v.kind), nb::bytes(v.data.data(), v.data.size()));
}

protocol::ObjectValue ValueFromPython(int kind, const nb::bytes& data, const nb::list& nested) {
  if (kind < 0 || kind >= static_cast<int>(protocol::ObjectKind::kKindCount)) {
    throw nb::value_error("unknown object kind");
  }
  protocol::ObjectValue v;
  v.kind = static_cast<protocol::ObjectKind>(kind);
  v.data = ToString(data);
  v.nested_refs = ToIds(nested);
  return v;
}

nb::object StoredView(std::shared_ptr<CoreClient> client, const ObjectID& id, const uint8_t* data,
                      uint64_t size) {
  struct Hold {
    std::shared_ptr<CoreClient> client;
    ObjectID id;
  };
  auto* hold = new Hold{std::move(client), id};
  nb::capsule owner(hold, [](void* p) noexcept {
    auto* h = static_cast<Hold*>(p);
    h->client->ReleaseUse(h->id);
    delete h;
  });
  size_t shape[1] = {static_cast<size_t>(size)};
  nb::ndarray<const uint8_t, nb::ndim<1>, nb::memview> view(data, 1, shape, owner);
  return nb::cast(view);
}

nb::list ResourcesToPython(const protocol::ResourceMap& m) {
  nb::list out;
  for (const auto& [name, amount] : m) out.append(nb::make_tuple(name, amount));
  return out;
}

nb::dict NodeToPython(const protocol::NodeInfo& n) {
  nb::dict d;
  d["node_id"] = n.node_id;
  d["node_index"] = n.node_index;
  d["address"] = n.address;
  d["port"] = n.port;
  d["socket_path"] = n.socket_path;
  d["session_dir"] = n.session_dir;
  d["alive"] = n.alive;
  d["total"] = ResourcesToPython(n.total);
  d["available"] = ResourcesToPython(n.available);
  nb::dict labels;
  for (const auto& [k, v] : n.labels) labels[k.c_str()] = v;
  d["labels"] = labels;
  d["start_time_ms"] = n.start_time_ms;
  d["incarnation"] = n.incarnation;
  d["is_head"] = (n.flags & protocol::NodeInfo::kHead) != 0;
  d["is_driver_node"] = (n.flags & protocol::NodeInfo::kDriverNode) != 0;
  d["death_reason"] = n.death_reason;
  return d;
}


}  // namespace quanta::bindings
