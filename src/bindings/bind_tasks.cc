// Bindings for tasks: function registration, submission, cancellation and the worker loop.
#include <nanobind/stl/pair.h>
#include <nanobind/stl/shared_ptr.h>

#include "bindings/common.h"

namespace quanta::bindings {

namespace {

protocol::ResourceMap ToResources(const nb::list& l) {
  protocol::ResourceMap m;
  for (nb::handle h : l) {
    auto t = nb::borrow<nb::tuple>(h);
    int64_t amount = nb::cast<int64_t>(t[1]);
    if (amount < 0) throw nb::value_error("resource amounts must be >= 0");
    m.emplace_back(nb::cast<std::string>(t[0]), amount);
  }
  return m;
}

}  // namespace

void BindTasks(nb::class_<CoreClient>& cls) {
  cls.def("next_task_id", [](CoreClient& c) { return FromId(c.NextTaskId()); })
      .def("register_function",
           [](CoreClient& c, const nb::bytes& fid, const nb::bytes& payload) {
             std::string f = ToString(fid), p = ToString(payload);
             Status st;
             {
               nb::gil_scoped_release release;
               st = c.RegisterFunction(f, p);
             }
             ThrowIfError(st);
           })
      .def("is_function_registered",
           [](CoreClient& c, const nb::bytes& fid) { return c.IsFunctionRegistered(ToString(fid)); })
      .def("submit_task",
           [](CoreClient& c, const nb::bytes& task_id, uint64_t job_id, const nb::bytes& fid,
              const std::string& name, const nb::bytes& args_blob, const nb::list& arg_refs,
              const nb::list& nested_refs, uint32_t num_returns, const nb::list& resources,
              int32_t max_retries, bool retry_exceptions, const nb::object& actor,
              const nb::object& scheduling, const std::string& retry_exception_types, uint32_t timeout_ms,
              int generator, uint32_t backpressure, int32_t priority, const nb::object& runtime_env) {
             protocol::TaskSpec spec;
             if (priority > protocol::TaskSpec::kMaxPriority || priority < -protocol::TaskSpec::kMaxPriority) {
               throw nb::value_error("task priority out of range");
             }
             spec.priority = priority;
             if (!runtime_env.is_none()) {  // (hash, json), resolved by quanta._private.runtime_env
               auto t = nb::borrow<nb::tuple>(runtime_env);
               spec.runtime_env_hash = nb::cast<std::string>(t[0]);
               spec.runtime_env = nb::cast<std::string>(t[1]);
               if (spec.runtime_env_hash.size() > protocol::TaskSpec::kMaxRuntimeEnvHash ||
                   spec.runtime_env.size() > protocol::TaskSpec::kMaxRuntimeEnv || spec.runtime_env_hash.empty() ||
                   spec.runtime_env.empty()) {
                 throw nb::value_error("runtime_env is too large (at most 64 KiB once resolved)");
               }
             }
             if (!scheduling.is_none()) {
               // (kind, node_id, soft, hard labels [(k, expr)], soft labels [(k, expr)])
               auto t = nb::borrow<nb::tuple>(scheduling);
               auto& s = spec.scheduling;
               s.kind = static_cast<protocol::SchedulingStrategy::Kind>(nb::cast<int>(t[0]));
               s.node_id = nb::cast<std::string>(t[1]);
               s.soft = nb::cast<bool>(t[2]);
               for (nb::handle h : nb::borrow<nb::list>(t[3])) {
                 auto kv = nb::borrow<nb::tuple>(h);
                 s.hard.emplace_back(nb::cast<std::string>(kv[0]), nb::cast<std::string>(kv[1]));
               }
               for (nb::handle h : nb::borrow<nb::list>(t[4])) {
                 auto kv = nb::borrow<nb::tuple>(h);
                 s.soft_labels.emplace_back(nb::cast<std::string>(kv[0]), nb::cast<std::string>(kv[1]));
               }
             }
             if (!actor.is_none()) {
               // (kind, actor_id, method, max_concurrency, max_restarts, detached, is_async,
               //  class_name, lifetime_resources)
               auto t = nb::borrow<nb::tuple>(actor);
               spec.kind = static_cast<protocol::TaskKind>(nb::cast<int>(t[0]));
               spec.actor_id = ToId(nb::borrow<nb::bytes>(t[1]));
               spec.method = nb::cast<std::string>(t[2]);
               spec.actor.max_concurrency = nb::cast<uint32_t>(t[3]);
               spec.actor.max_restarts = nb::cast<int32_t>(t[4]);
               spec.actor.detached = nb::cast<bool>(t[5]);
               spec.actor.is_async = nb::cast<bool>(t[6]);
               spec.actor.class_name = nb::cast<std::string>(t[7]);
               spec.actor.lifetime_resources = ToResources(nb::borrow<nb::list>(t[8]));
               // (…, concurrency_groups [(name, limit)], concurrency_group of a call)
               for (nb::handle h : nb::borrow<nb::list>(t[9])) {
                 auto g = nb::borrow<nb::tuple>(h);
                 spec.actor.concurrency_groups.emplace_back(nb::cast<std::string>(g[0]), nb::cast<uint32_t>(g[1]));
               }
               spec.concurrency_group = nb::cast<std::string>(t[10]);
             }
             spec.task_id = ToId(task_id);
             spec.job_id = job_id;
             spec.function_id = ToString(fid);
             spec.name = name;
             spec.args_blob = ToString(args_blob);
             spec.arg_refs = ToIds(arg_refs);
             spec.nested_refs = ToIds(nested_refs);
             spec.num_returns = num_returns;
             spec.resources = ToResources(resources);
             spec.max_retries = max_retries;
             spec.retry_exceptions = retry_exceptions;
             spec.retry_exception_types = retry_exception_types;
             spec.timeout_ms = timeout_ms;
             if (generator < 0 || generator > protocol::TaskSpec::kDynamic) throw nb::value_error("unknown generator mode");
             spec.generator = static_cast<uint8_t>(generator);
             spec.generator_backpressure = backpressure;
             if (spec.kind == protocol::TaskKind::kActorCreation) spec.actor_id = spec.task_id;
             nb::list returns;
             for (uint32_t i = 0; i < num_returns; ++i) returns.append(FromId(spec.ReturnId(i)));
             {
               Status st;
               {
                 nb::gil_scoped_release release;
                 st = c.SubmitTask(spec);
               }
               ThrowIfError(st);
             }
             return returns;
           },
           nb::arg("task_id"), nb::arg("job_id"), nb::arg("function_id"), nb::arg("name"),
           nb::arg("args_blob"), nb::arg("arg_refs"), nb::arg("nested_refs"),
           nb::arg("num_returns"), nb::arg("resources"), nb::arg("max_retries"),
           nb::arg("retry_exceptions"), nb::arg("actor").none(), nb::arg("scheduling").none() = nb::none(),
           nb::arg("retry_exception_types") = "", nb::arg("timeout_ms") = 0,
           nb::arg("generator") = 0, nb::arg("backpressure") = 0, nb::arg("priority") = 0,
           nb::arg("runtime_env").none() = nb::none())
      .def("kill_actor",
           [](CoreClient& c, const nb::bytes& actor_id, bool no_restart) {
             ObjectID id = ToId(actor_id);
             Status st;
             {
               nb::gil_scoped_release release;
               st = c.KillActor(id, no_restart);
             }
             ThrowIfError(st);
           })
      .def("actor_name",
           [](CoreClient& c, int op, const std::string& name, const std::string& ns,
              const nb::bytes& actor_id, const nb::bytes& blob, int64_t timeout_ms) {
             protocol::ActorName req;
             req.op = static_cast<protocol::ActorNameOp>(op);
             req.name = name;
             req.name_space = ns;
             req.actor_id = ToId(actor_id);
             req.handle_blob = ToString(blob);
             Result<protocol::ActorNameReply> reply = Status::Internal("unset");
             {
               nb::gil_scoped_release release;
               reply = c.ActorName(std::move(req), timeout_ms);
             }
             auto r = ValueOrThrow(std::move(reply));
             return nb::make_tuple(r.ok, nb::bytes(r.handle_blob.data(), r.handle_blob.size()), r.error);
           })
      .def("cancel",
           [](CoreClient& c, const nb::bytes& id, bool force, bool recursive) {
             ObjectID oid = ToId(id);
             Status st;
             {
               nb::gil_scoped_release release;
               st = c.Cancel(oid, force, recursive);
             }
             ThrowIfError(st);
           })
      .def_prop_ro("node_index", &CoreClient::node_index)
      .def("create_placement_group",
           [](CoreClient& c, const nb::bytes& id, const std::string& name, const std::string& ns, int strategy,
              const nb::list& bundles, bool detached, uint64_t job_id) {
             protocol::PlacementGroupSpec spec;
             spec.id = ToId(id);
             spec.name = name;
             spec.name_space = ns;
             if (strategy < 0 || strategy > 3) throw nb::value_error("unknown placement strategy");
             spec.strategy = static_cast<protocol::PlacementStrategy>(strategy);
             for (nb::handle b : bundles) spec.bundles.push_back(ToResources(nb::borrow<nb::list>(b)));
             spec.detached = detached;
             spec.job_id = job_id;
             Status st;
             {
               nb::gil_scoped_release release;
               st = c.CreatePlacementGroup(spec);
             }
             ThrowIfError(st);
           })
      .def("remove_placement_group",
           [](CoreClient& c, const nb::bytes& id) {
             ObjectID gid = ToId(id);
             Status st;
             {
               nb::gil_scoped_release release;
               st = c.RemovePlacementGroup(gid);
             }
             ThrowIfError(st);
           })
      .def("placement_groups",
           [](CoreClient& c, const nb::bytes& id, const std::string& name, const std::string& ns, int64_t timeout_ms) {
             protocol::PlacementGroupQuery q;
             if (id.size() != 0) q.id = ToId(id);
             q.name = name;
             q.name_space = ns;
             Result<protocol::PlacementGroups> r = Status::Internal("unset");
             {
               nb::gil_scoped_release release;
               r = c.GetPlacementGroups(q, timeout_ms);
             }
             static const char* kStates[] = {"PENDING", "CREATED", "REMOVED", "RESCHEDULING"};
             static const char* kStrategies[] = {"PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD"};
             nb::list out;
             for (const auto& g : ValueOrThrow(std::move(r)).groups) {
               nb::dict d;
               d["id"] = FromId(g.spec.id);
               d["name"] = g.spec.name;
               d["namespace"] = g.spec.name_space;
               d["strategy"] = kStrategies[static_cast<int>(g.spec.strategy)];
               d["state"] = kStates[static_cast<int>(g.state)];
               nb::list bundles;
               for (const auto& b : g.spec.bundles) bundles.append(ResourcesToPython(b));
               d["bundles"] = bundles;
               nb::list nodes;
               for (uint32_t n : g.bundle_nodes) nodes.append(n);
               d["bundle_nodes"] = nodes;
               d["detached"] = g.spec.detached;
               d["job_id"] = g.spec.job_id;
               d["message"] = g.message;
               out.append(d);
             }
             return out;
           })
      .def("node_stats",
           [](CoreClient& c, int64_t timeout_ms) {
             Result<protocol::NodeStats> r = Status::Internal("unset");
             {
               nb::gil_scoped_release release;
               r = c.GetNodeStats(timeout_ms);
             }
             nb::dict d;
             for (const auto& [name, value] : ValueOrThrow(std::move(r)).counters) d[name.c_str()] = value;
             return d;
           })
      .def("cluster_info",
           [](CoreClient& c, int64_t timeout_ms) {
             Result<protocol::ClusterInfo> info = Status::Internal("unset");
             {
               nb::gil_scoped_release release;
               info = c.GetClusterInfo(timeout_ms);
             }
             auto value = ValueOrThrow(std::move(info));
             nb::list nodes;
             for (const auto& n : value.nodes) nodes.append(NodeToPython(n));
             return nodes;
           })
      .def("next_task",
           [](std::shared_ptr<CoreClient> c) -> nb::object {
             Result<protocol::ExecuteTask> task = Status::Internal("unset");
             {
               nb::gil_scoped_release release;
               task = c->NextTask();
             }
             if (!task.ok() && task.status().code() == StatusCode::kCancelled) return nb::none();
             auto t = ValueOrThrow(std::move(task));
             nb::list args;
             for (size_t i = 0; i < t.args.size(); ++i) {
               const auto& v = t.args[i];
               auto loc = v.kind == protocol::ObjectKind::kStored
                              ? protocol::StoredLocation::Decode(v.data)
                              : Result<protocol::StoredLocation>(Status::NotFound(""));
               if (loc.ok() && loc->pinned && i < t.spec.arg_refs.size()) {
                 args.append(nb::make_tuple(static_cast<int>(v.kind),
                                            StoredView(c, t.spec.arg_refs[i], c->StoreData(loc->offset), loc->size)));
               } else {
                 args.append(ValueToPython(v));
               }
             }
             nb::list resources;
             // An actor holds its lifetime resources once created (placement used spec.resources).
             const auto& held = t.spec.kind == protocol::TaskKind::kActorCreation ? t.spec.actor.lifetime_resources
                                                                                  : t.spec.resources;
             for (const auto& [name, amount] : held) resources.append(nb::make_tuple(name, amount));
             nb::list gpus;
             for (const auto& [id, share] : t.gpus) gpus.append(nb::make_tuple(id, share));
             nb::list groups;
             for (const auto& [group, limit] : t.spec.actor.concurrency_groups) groups.append(nb::make_tuple(group, limit));
             nb::object payload = t.function_payload.empty()
                                      ? nb::none()
                                      : nb::object(nb::bytes(t.function_payload.data(), t.function_payload.size()));
             return nb::make_tuple(FromId(t.spec.task_id), t.spec.job_id,
                                   nb::bytes(t.spec.function_id.data(), t.spec.function_id.size()),
                                   t.spec.name,
                                   nb::bytes(t.spec.args_blob.data(), t.spec.args_blob.size()), args,
                                   t.spec.num_returns, payload, static_cast<int>(t.spec.kind),
                                   t.spec.method, t.spec.actor.max_concurrency, t.spec.actor.is_async,
                                   groups, t.spec.concurrency_group,
                                   // retry policy: None (no), "" (every exception) or '\n'-separated names
                                   t.spec.retry_exceptions ? nb::object(nb::str(t.spec.retry_exception_types.data(),
                                                                                t.spec.retry_exception_types.size()))
                                                           : nb::none(),
                                   static_cast<int>(t.spec.generator), t.spec.generator_backpressure,
                                   // what the task holds (runtime context): its resources, the GPU
                                   // devices with their shares, its actor (kind != 0)
                                   resources, gpus,
                                   t.spec.kind == protocol::TaskKind::kNormal ? nb::object(nb::none())
                                                                               : nb::object(FromId(t.spec.actor_id)));
           })
      .def("task_done", [](CoreClient& c, const nb::bytes& task_id, const nb::list& returns, bool retryable,
                           const std::string& error) {
        protocol::TaskDone msg;
        msg.task_id = ToId(task_id);
        msg.retryable = retryable;
        msg.error = error.substr(0, 32u << 10);  // the traceback, for task events (clipped)
        for (nb::handle h : returns) {
          auto t = nb::borrow<nb::tuple>(h);
          msg.returns.push_back(ValueFromPython(nb::cast<int>(t[0]), nb::borrow<nb::bytes>(t[1]),
                                                nb::borrow<nb::list>(t[2])));
        }
        Status st;
        {
          nb::gil_scoped_release release;
          st = c.TaskDone(msg);
        }
        ThrowIfError(st);
      }, nb::arg("task_id"), nb::arg("returns"), nb::arg("retryable") = false, nb::arg("error") = "");
}

}  // namespace quanta::bindings
