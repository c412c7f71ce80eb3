#include "node/state_service.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "node/client_registry.h"
#include "node/worker_dispatcher.h"
#include "node/worker_pool.h"

namespace quanta {

using protocol::NodeStateQuery;
using protocol::NodeStateReply;
using protocol::StateKind;

namespace {

NodeStateReply Error(std::string why) {
  NodeStateReply r;
  r.ok = false;
  r.error = std::move(why);
  return r;
}

template <typename M>
NodeStateReply Body(const M& msg) {
  NodeStateReply r;
  r.ok = true;
  protocol::Writer w(&r.body);
  msg.Encode(w);
  return r;
}

std::string BaseName(const std::string& path) {
  auto slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

struct FdCloser {
  int fd;
  ~FdCloser() {
    if (fd >= 0) ::close(fd);
  }
};

}  // namespace

bool IsPlainFileName(const std::string& name) {
  if (name.empty() || name.size() > 255 || name == "." || name == "..") return false;
  return name.find('/') == std::string::npos && name.find('\0') == std::string::npos;
}

StateService::StateService(net::EventLoop* loop, Options options, Sources sources)
    : loop_(loop), options_(std::move(options)), sources_(std::move(sources)) {}

void StateService::OnClientQuery(uint64_t client, const NodeStateQuery& query) {
  uint32_t self = sources_.local_index();
  if (query.node_index == 0 || query.node_index == self) {
    NodeStateReply r = Answer(query);
    r.request_id = query.request_id;
    sources_.reply_client(client, r);
    return;
  }
  if (pending_.size() >= kMaxPending) {
    NodeStateReply r = Error("too many state queries in flight at this node (" + std::to_string(kMaxPending) +
                             "); retry when earlier ones have been answered");
    r.unavailable = true;
    r.request_id = query.request_id;
    sources_.reply_client(client, r);
    return;
  }
  uint64_t id = next_relay_++;
  pending_[id] = Pending{client, query.request_id, query.node_index};
  NodeStateQuery relayed = query;
  relayed.request_id = id;
  if (!sources_.query_peer(query.node_index, relayed)) {
    Fail(id, "node " + std::to_string(query.node_index) + " is not reachable from node " + std::to_string(self) +
                 " (unknown, dead, or local-only)");
    return;
  }
  loop_->RunAfter(options_.relay_timeout, [this, id] {
    auto it = pending_.find(id);
    if (it == pending_.end()) return;
    Fail(id, "node " + std::to_string(it->second.node) + " did not answer a state query within " +
                 std::to_string(options_.relay_timeout.count()) + " ms");
  });
}

void StateService::OnPeerQuery(uint32_t from, const NodeStateQuery& query) {
  NodeStateReply r = Answer(query);
  r.request_id = query.request_id;
  sources_.reply_peer(from, r);
}

void StateService::OnPeerReply(uint32_t from, NodeStateReply reply) {
  auto it = pending_.find(reply.request_id);
  if (it == pending_.end() || it->second.node != from) return;  // timed out already, or not ours
  Pending p = it->second;
  pending_.erase(it);
  reply.request_id = p.their_id;
  sources_.reply_client(p.client, reply);
}

void StateService::OnNodeGone(uint32_t node, const std::string& why) {
  std::vector<uint64_t> ids;
  for (const auto& [id, p] : pending_) {
    if (p.node == node) ids.push_back(id);
  }
  for (uint64_t id : ids) Fail(id, "node " + std::to_string(node) + " cannot answer: " + why);
}

void StateService::Fail(uint64_t relay_id, const std::string& why) {
  auto it = pending_.find(relay_id);
  if (it == pending_.end()) return;
  Pending p = it->second;
  pending_.erase(it);
  NodeStateReply r = Error(why);
  r.unavailable = true;
  r.request_id = p.their_id;
  r.node_index = p.node;
  sources_.reply_client(p.client, r);
}

NodeStateReply StateService::Answer(const NodeStateQuery& query) const {
  NodeStateReply r;
  switch (query.kind) {
    case StateKind::kProcesses: r = Body(sources_.processes()); break;
    case StateKind::kObjects: r = Body(sources_.objects()); break;
    case StateKind::kLogFiles: r = ListLogs(); break;
    case StateKind::kLogRead: r = ReadLog(query); break;
    case StateKind::kHostStats: r = HostStats(); break;
  }
  r.request_id = query.request_id;
  r.node_index = sources_.local_index();
  return r;
}

NodeStateReply StateService::ListLogs() const {
  protocol::LogFileList list;
  int dir_fd = ::open(options_.log_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd < 0) return Error("cannot open the log folder " + options_.log_dir + ": " + std::strerror(errno));
  DIR* dir = ::fdopendir(dir_fd);
  if (dir == nullptr) {
    ::close(dir_fd);
    return Error("cannot list the log folder " + options_.log_dir);
  }
  while (dirent* e = ::readdir(dir)) {
    std::string name = e->d_name;
    if (!IsPlainFileName(name)) continue;
    struct stat st{};
    if (::fstatat(::dirfd(dir), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode)) continue;
    list.files.push_back({name, static_cast<uint64_t>(st.st_size),
                          static_cast<uint64_t>(st.st_mtim.tv_sec) * 1000 + st.st_mtim.tv_nsec / 1000000});
  }
  ::closedir(dir);
  std::sort(list.files.begin(), list.files.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
  return Body(list);
}

NodeStateReply StateService::ReadLog(const NodeStateQuery& query) const {
  if (!IsPlainFileName(query.arg)) {
    return Error("'" + query.arg + "' is not a file name in the node's log folder (no paths)");
  }
  int dir_fd = ::open(options_.log_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd < 0) return Error("cannot open the log folder " + options_.log_dir + ": " + std::strerror(errno));
  FdCloser dir{dir_fd};
  int fd = ::openat(dir_fd, query.arg.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return Error("no log file '" + query.arg + "' on this node: " + std::strerror(errno));
  FdCloser file{fd};
  struct stat st{};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) return Error("'" + query.arg + "' is not a regular file");
  uint64_t size = static_cast<uint64_t>(st.st_size);
  uint64_t limit = query.limit == 0 ? kDefaultRead : std::min<uint64_t>(query.limit, kMaxRead);
  uint64_t start;
  if (query.offset < 0) {
    uint64_t back = static_cast<uint64_t>(-(query.offset + 1)) + 1;
    start = back >= size ? 0 : size - back;
  } else {
    start = std::min<uint64_t>(static_cast<uint64_t>(query.offset), size);
  }
  uint64_t want = std::min<uint64_t>(limit, size - start);
  NodeStateReply r;
  r.ok = true;
  r.size = size;
  r.offset = start;
  r.body.resize(want);
  size_t got = 0;
  while (got < want) {
    ssize_t n = ::pread(fd, r.body.data() + got, want - got, static_cast<off_t>(start + got));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got += static_cast<size_t>(n);
  }
  r.body.resize(got);
  return r;
}

NodeStateReply StateService::HostStats() const {
  protocol::NodeStats s;
  auto add = [&](const std::string& name, int64_t v) { s.counters.emplace_back(name, v); };
  long ticks = ::sysconf(_SC_CLK_TCK);
  if (ticks <= 0) ticks = 100;
  {
    std::ifstream stat(options_.proc_dir + "/stat");
    std::string cpu;
    uint64_t total = 0, idle = 0, v;
    if (stat >> cpu && cpu == "cpu") {
      for (int i = 0; i < 8 && stat >> v; ++i) {  // user nice system idle iowait irq softirq steal
        total += v;
        if (i == 3 || i == 4) idle += v;
      }
      add("host_cpu_total_ms", static_cast<int64_t>(total * 1000 / ticks));
      add("host_cpu_busy_ms", static_cast<int64_t>((total - idle) * 1000 / ticks));
    }
  }
  {
    std::ifstream meminfo(options_.proc_dir + "/meminfo");
    std::string key, unit;
    uint64_t kb;
    while (meminfo >> key >> kb) {
      std::getline(meminfo, unit);
      if (key == "MemTotal:") add("host_memory_total", static_cast<int64_t>(kb * 1024));
      if (key == "MemAvailable:") add("host_memory_available", static_cast<int64_t>(kb * 1024));
    }
  }
  {
    std::ifstream loadavg(options_.proc_dir + "/loadavg");
    double load1;
    if (loadavg >> load1) add("host_load1_milli", static_cast<int64_t>(load1 * 1000));
  }
  add("host_cpus", ::sysconf(_SC_NPROCESSORS_ONLN));
  if (sources_.node_counters) {
    for (auto& c : sources_.node_counters()) s.counters.push_back(std::move(c));
  }
  return Body(s);
}

protocol::ProcessList DescribeProcesses(ClientRegistry& clients, WorkerDispatcher& dispatcher,
                                        const WorkerPool& pool) {
  using State = protocol::ProcessInfo::State;
  protocol::ProcessList out;
  clients.ForEach([&](LocalClient& c) {
    if (!c.said_hello) return;
    protocol::ProcessInfo p;
    p.client_id = c.id;
    p.pid = static_cast<uint32_t>(c.pid);
    p.role = c.role;
    if (c.is_driver()) {
      p.state = State::kDriver;
      p.job_id = c.id;
    } else if (c.role == protocol::ClientRole::kObserver) {
      p.state = State::kObserver;
    } else if (const Worker* w = dispatcher.Find(c.id)) {
      if (w->is_actor()) {
        p.state = State::kActor;
      } else if (w->state == Worker::State::kBusy) {
        p.state = w->lent_back ? State::kBlocked : State::kBusy;
      } else {
        p.state = State::kIdle;
      }
      p.actor_id = w->actor_id;
      if (w->current_task) p.task_id = *w->current_task;
      p.task_name = w->last_task_name;
      p.job_id = w->last_job;
      p.queued = static_cast<uint32_t>(w->queued.size());
      p.stdout_log = BaseName(pool.LogPathOf(w->token, false));
      p.stderr_log = BaseName(pool.LogPathOf(w->token, true));
    }
    out.processes.push_back(std::move(p));
  });
  std::sort(out.processes.begin(), out.processes.end(),
            [](const auto& a, const auto& b) { return a.client_id < b.client_id; });
  return out;
}

}  // namespace quanta
