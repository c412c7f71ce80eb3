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

}  // namespace quanta::bindings
