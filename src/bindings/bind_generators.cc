// Bindings for streaming generators: the consumer's next/release/state and the producer's
// item sending and backpressure wait (python/quanta/generator.py, _private/executor.py).
#include "bindings/common.h"

namespace quanta::bindings {

void BindGenerators(nb::class_<CoreClient>& cls) {
  // 0: item `index` is here (one reference now belongs to the caller), 1: the stream ended
  // before it, 2: timed out.
  cls.def("generator_next",
          [](CoreClient& c, const nb::bytes& task_id, uint64_t index, int64_t timeout_ms) {
            TaskID id = ToId(task_id);
            Result<CoreClient::NextItem> r = Status::Internal("unset");
            {
              nb::gil_scoped_release release;
              r = c.GeneratorNext(id, index, timeout_ms);
            }
            return static_cast<int>(ValueOrThrow(std::move(r)));
          })
      .def("generator_release",
           [](CoreClient& c, const nb::bytes& task_id, uint64_t next_index) {
             TaskID id = ToId(task_id);
             nb::gil_scoped_release release;
             c.GeneratorRelease(id, next_index);
           })
      .def("generator_state",
           [](CoreClient& c, const nb::bytes& task_id) {
             auto [received, finished] = c.GeneratorState(ToId(task_id));
             return nb::make_tuple(received, finished);
           })
      .def("generator_item",
           [](CoreClient& c, const nb::bytes& task_id, uint64_t index, int kind, const nb::bytes& data,
              const nb::list& nested) {
             protocol::GeneratorItem msg;
             msg.task_id = ToId(task_id);
             msg.index = index;
             if (index >= protocol::GeneratorItem::kMaxItems) throw nb::value_error("a generator yields at most 2**32 - 16 items");
             msg.value = ValueFromPython(kind, data, nested);
             Status st;
             {
               nb::gil_scoped_release release;
               st = c.SendGeneratorItem(msg);
             }
             ThrowIfError(st);
           })
      .def("generator_wait",
           [](CoreClient& c, const nb::bytes& task_id, uint64_t produced, uint32_t threshold, int64_t timeout_ms) {
             TaskID id = ToId(task_id);
             nb::gil_scoped_release release;
             return c.GeneratorWait(id, produced, threshold, timeout_ms);
           });
}

}  // namespace quanta::bindings
