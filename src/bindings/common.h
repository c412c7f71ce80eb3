// Shared helpers for the nanobind glue: id/bytes conversion and Status -> exception.
// Bindings contain no engine logic; they convert arguments, release the GIL around blocking
// calls and raise exceptions for non-OK Status values (only in ThrowIfError).
#pragma once

#include <nanobind/nanobind.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include <string>
#include <vector>

#include "common/ids.h"
#include "common/status.h"
#include "core/core_client.h"

namespace quanta::bindings {

namespace nb = nanobind;

// Raises: TimedOut -> TimeoutError, Cancelled/IOError -> ConnectionError, ResourceExhausted ->
// MemoryError (ObjectStoreFullError in Python),
// InvalidArgument/NotFound -> ValueError, anything else -> RuntimeError.
void ThrowIfError(const Status& st);

template <typename T>
T ValueOrThrow(Result<T> r) {
  ThrowIfError(r.status());
  return std::move(r).value();
}

ObjectID ToId(const nb::bytes& b);
std::vector<ObjectID> ToIds(const nb::list& l);
inline nb::bytes FromId(const ObjectID& id) {
  return nb::bytes(reinterpret_cast<const char*>(id.bytes.data()), ObjectID::kSize);
}
inline std::string ToString(const nb::bytes& b) { return std::string(b.c_str(), b.size()); }
// (kind, data) as a Python tuple; `data` is copied into a bytes object.
nb::tuple ValueToPython(const protocol::ObjectValue& v);
protocol::ObjectValue ValueFromPython(int kind, const nb::bytes& data, const nb::list& nested);

// A read-only buffer over `size` bytes of the shared-memory store at `data`, for object `id`.
// The caller has taken one use of the object; the buffer gives it back (ReleaseUse) when the
// last Python object viewing it is gone, which lets the node move or free it again.
nb::object StoredView(std::shared_ptr<CoreClient> client, const ObjectID& id, const uint8_t* data,
                      uint64_t size);

// (name, fixed-point amount) pairs and node-table entries as Python values.
nb::list ResourcesToPython(const protocol::ResourceMap& m);
nb::dict NodeToPython(const protocol::NodeInfo& n);

void BindObjects(nb::class_<CoreClient>& cls);
void BindTasks(nb::class_<CoreClient>& cls);
void BindControl(nb::module_& m, nb::class_<CoreClient>& cls);
void BindState(nb::class_<CoreClient>& cls);
void BindGenerators(nb::class_<CoreClient>& cls);
void BindTaskEvents(nb::class_<CoreClient>& cls);

}  // namespace quanta::bindings
