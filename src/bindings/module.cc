// The `quanta._core` extension module: the CoreClient class, bound in parts by concept
// (bind_objects.cc, bind_tasks.cc, bind_control.cc, bind_state.cc). See python/quanta/_core.pyi for the Python signatures.
#include <nanobind/stl/shared_ptr.h>

#include "bindings/common.h"
#include "common/logging.h"
#include "core/cluster_query.h"

namespace nb = nanobind;
using namespace quanta;
using namespace quanta::bindings;

NB_MODULE(_core, m) {
  m.doc() = "Quanta's C++ core library (the engine embedded in drivers and workers).";
  m.attr("PROTOCOL_VERSION") = protocol::kProtocolVersion;
  m.def("init_logging", [](const std::string& component, const std::string& path) {
    InitLogging(component, path, LogLevel::kInfo);
  });
  m.def(
      "query_cluster",
      [](const std::string& address, int timeout_ms) {
        Result<protocol::ClusterInfo> info = Status::Internal("unset");
        {
          nb::gil_scoped_release release;
          info = QueryCluster(address, timeout_ms);
        }
        nb::list nodes;
        for (const auto& n : ValueOrThrow(std::move(info)).nodes) nodes.append(NodeToPython(n));
        return nodes;
      },
      nb::arg("address"), nb::arg("timeout_ms") = 5000,
      "The node table of the cluster whose control service listens at HOST:PORT (needs the token).");
  auto cls = nb::class_<CoreClient>(m, "CoreClient");
  cls.def_static(
         "connect",
         [](const std::string& socket, bool is_worker, const std::string& worker_token, bool log_to_driver,
            bool observer) {
           CoreClient::Options opts;
           opts.node_socket = socket;
           opts.role = is_worker  ? protocol::ClientRole::kWorker
                       : observer ? protocol::ClientRole::kObserver
                                  : protocol::ClientRole::kDriver;
           opts.worker_token = worker_token;
           opts.log_to_driver = log_to_driver;
           Result<std::shared_ptr<CoreClient>> client = Status::Internal("unset");
           {
             nb::gil_scoped_release release;
             client = CoreClient::Connect(opts);
           }
           return ValueOrThrow(std::move(client));
         },
         nb::arg("socket"), nb::arg("is_worker") = false, nb::arg("worker_token") = "",
         nb::arg("log_to_driver") = true, nb::arg("observer") = false)
      .def("disconnect",
           [](CoreClient& c) {
             nb::gil_scoped_release release;
             c.Disconnect();
           })
      .def_prop_ro("connected", &CoreClient::connected)
      .def_prop_ro("client_id", &CoreClient::client_id)
      .def_prop_ro("node_id", &CoreClient::node_id)
      .def_prop_ro("session_dir", &CoreClient::session_dir)
      .def("reply_spin_counts", [](const CoreClient& c) {
        CoreClient::SpinCounts n = c.spin_counts();
        nb::dict d;
        d["spins"] = n.spins;
        d["caught"] = n.caught;
        d["budget_us"] = n.budget_us;
        return d;
      });
  m.def("check_client_environment", [] { ThrowIfError(CoreClient::ReplySpinMicros(-1).status()); },
        "Raises ValueError if a QUANTA_CLIENT_* variable of this process is invalid.");
  BindObjects(cls);
  BindTasks(cls);
  BindControl(m, cls);
  BindState(cls);
  BindGenerators(cls);
  BindTaskEvents(cls);
}
