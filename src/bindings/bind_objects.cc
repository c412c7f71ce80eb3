// Bindings for objects: put, get, wait and reference counting.
#include <nanobind/stl/shared_ptr.h>

#include "bindings/common.h"

namespace quanta::bindings {

void BindObjects(nb::class_<CoreClient>& cls) {
  cls.def("next_put_id", [](CoreClient& c) { return FromId(c.NextPutId()); })
      .def("put",
           [](CoreClient& c, const nb::bytes& id, int kind, const nb::bytes& data,
              const nb::list& nested) {
             protocol::ObjectValue v = ValueFromPython(kind, data, nested);
             ObjectID oid = ToId(id);
             Status st;
             {
               nb::gil_scoped_release release;
               st = c.Put(oid, std::move(v));
             }
             ThrowIfError(st);
           })
      .def("get",
           [](CoreClient& c, const nb::list& ids, int64_t timeout_ms) {
             std::vector<ObjectID> oids = ToIds(ids);
             Result<std::vector<CoreClient::ValuePtr>> values = Status::Internal("unset");
             {
               nb::gil_scoped_release release;
               values = c.Get(oids, timeout_ms);
             }
             auto vals = ValueOrThrow(std::move(values));
             nb::list out;
             for (const auto& v : vals) out.append(ValueToPython(*v));
             return out;
           })
      .def("wait",
           [](CoreClient& c, const nb::list& ids, size_t num_ready, int64_t timeout_ms,
              bool fetch_local) {
             std::vector<ObjectID> oids = ToIds(ids);
             Result<std::vector<bool>> ready = Status::Internal("unset");
             {
               nb::gil_scoped_release release;
               ready = c.Wait(oids, num_ready, timeout_ms, fetch_local);
             }
             return ValueOrThrow(std::move(ready));
           })
      .def("add_ref", [](CoreClient& c, const nb::bytes& id) { c.AddLocalRef(ToId(id)); })
      .def("release", [](CoreClient& c, const nb::bytes& id) { c.RemoveLocalRef(ToId(id)); })
      .def("num_local_refs", &CoreClient::NumLocalRefs);
}

}  // namespace quanta::bindings
