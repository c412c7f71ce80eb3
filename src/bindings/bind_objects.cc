// Bindings for objects: put, get, wait and reference counting.
#include <nanobind/stl/shared_ptr.h>

#include <algorithm>
#include <chrono>

#include "bindings/common.h"

namespace quanta::bindings {

namespace {

// Runs `attempt(slice_ms)` without the GIL in slices of at most 100 ms until it reports done or
// `timeout_ms` (< 0: none) passes, checking for signals in between, so Ctrl-C (and
// quanta.cancel's SIGINT in a worker) interrupts a long get or wait.
template <typename F>
void WaitInSlices(int64_t timeout_ms, F&& attempt) {
  constexpr int64_t kSliceMs = 100;
  auto start = std::chrono::steady_clock::now();
  while (true) {
    int64_t slice = kSliceMs;
    if (timeout_ms >= 0) {
      int64_t elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(
                            std::chrono::steady_clock::now() - start).count();
      slice = std::min(kSliceMs, std::max<int64_t>(0, timeout_ms - elapsed));
    }
    bool done;
    {
      nb::gil_scoped_release release;
      done = attempt(slice);
    }
    if (done) return;
    if (timeout_ms >= 0 &&
        std::chrono::steady_clock::now() - start >= std::chrono::milliseconds(timeout_ms)) {
      return;
    }
    if (PyErr_CheckSignals() != 0) throw nb::python_error();
  }
}

}  // namespace

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
           [](std::shared_ptr<CoreClient> c, const nb::list& ids, int64_t timeout_ms) {
             std::vector<ObjectID> oids = ToIds(ids);
             Result<std::vector<CoreClient::GotValue>> values = Status::Internal("unset");
             WaitInSlices(timeout_ms, [&](int64_t slice_ms) {
               values = c->Get(oids, slice_ms);
               return values.ok() || values.status().code() != StatusCode::kTimedOut;
             });
             auto vals = ValueOrThrow(std::move(values));
             nb::list out;
             for (size_t i = 0; i < vals.size(); ++i) {
               const auto& v = vals[i];
               if (v.data != nullptr) {
                 out.append(nb::make_tuple(static_cast<int>(v.value->kind),
                                           StoredView(c, oids[i], v.data, v.size)));
               } else {
                 out.append(ValueToPython(*v.value));
               }
             }
             return out;
           })
      .def("create_stored",
           [](CoreClient& c, const nb::bytes& id, uint64_t size) {
             ObjectID oid = ToId(id);
             Result<uint64_t> offset = Status::Internal("unset");
             {
               nb::gil_scoped_release release;
               offset = c.CreateStored(oid, size);
             }
             return ValueOrThrow(std::move(offset));
           })
      .def("write_stored",
           [](CoreClient& c, uint64_t offset, nb::handle buffer) {
             // Any object with the buffer protocol (bytes, memoryview, numpy arrays...).
             Py_buffer view;
             if (PyObject_GetBuffer(buffer.ptr(), &view, PyBUF_C_CONTIGUOUS) != 0) throw nb::python_error();
             Status st;
             {
               nb::gil_scoped_release release;
               st = c.WriteStored(offset, view.buf, static_cast<uint64_t>(view.len));
             }
             PyBuffer_Release(&view);
             ThrowIfError(st);
           })
      .def("put_stored",
           [](CoreClient& c, const nb::bytes& id, uint64_t offset, uint64_t size, const nb::list& nested) {
             ObjectID oid = ToId(id);
             std::vector<ObjectID> refs = ToIds(nested);
             Status st;
             {
               nb::gil_scoped_release release;
               st = c.PutStored(oid, offset, size, std::move(refs));
             }
             ThrowIfError(st);
           })
      .def_prop_ro("inline_threshold", &CoreClient::inline_threshold)
      .def_prop_ro("has_store", &CoreClient::has_store)
      .def_prop_ro("cluster_id", &CoreClient::cluster_id)
      .def("store_stats",
           [](CoreClient& c, int64_t timeout_ms) {
             Result<protocol::StoreStatsReply> r = Status::Internal("unset");
             {
               nb::gil_scoped_release release;
               r = c.GetStoreStats(timeout_ms);
             }
             auto s = ValueOrThrow(std::move(r));
             nb::dict d;
             d["capacity"] = s.capacity;
             d["used"] = s.used;
             d["num_in_memory"] = s.num_in_memory;
             d["num_spilled"] = s.num_spilled;
             d["spilled_bytes"] = s.spilled_bytes;
             d["num_pinned"] = s.num_pinned;
             d["total_spilled"] = s.total_spilled;
             d["total_restored"] = s.total_restored;
             d["num_inline"] = s.num_inline;
             d["inline_bytes"] = s.inline_bytes;
             d["total_evicted"] = s.total_evicted;
             d["num_secondary"] = s.num_secondary;
             static const char* kWhere[] = {"inline", "shared_memory", "spilled", "pending",
                                            "primary_for_other_node", "secondary_copy", "on_other_nodes"};
             nb::list objects;
             for (const auto& o : s.objects) {
               objects.append(nb::make_tuple(o.id.Hex(), o.size, kWhere[o.where % 7], o.refs, o.pins));
             }
             d["objects"] = objects;
             return d;
           })
      .def("wait",
           [](CoreClient& c, const nb::list& ids, size_t num_ready, int64_t timeout_ms,
              bool fetch_local) {
             std::vector<ObjectID> oids = ToIds(ids);
             Result<std::vector<bool>> ready = Status::Internal("unset");
             WaitInSlices(timeout_ms, [&](int64_t slice_ms) {
               ready = c.Wait(oids, num_ready, slice_ms, fetch_local);
               if (!ready.ok()) return true;
               size_t n = 0;
               for (bool b : ready.value()) n += b;
               return n >= num_ready;
             });
             return ValueOrThrow(std::move(ready));
           })
      .def("add_ref", [](CoreClient& c, const nb::bytes& id) { c.AddLocalRef(ToId(id)); })
      .def("release", [](CoreClient& c, const nb::bytes& id) { c.RemoveLocalRef(ToId(id)); })
      .def("num_local_refs", &CoreClient::NumLocalRefs);
}

}  // namespace quanta::bindings
