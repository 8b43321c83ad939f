#include "agent/process_tree.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <spdlog/spdlog.h>
#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace pa::agent::detail {
namespace {

bool parse_stat(const char* buf, std::size_t len, ProcInfo& out) {
  // "pid (comm) S ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime
  //  cutime cstime priority nice num_threads itrealvalue starttime ..."; comm may hold spaces
  //  and parentheses, so parse from the last ')'.
  const char* close = static_cast<const char*>(memrchr(buf, ')', len));
  if (close == nullptr) return false;
  const char* p = close + 1;
  const char* end = buf + len;
  // Fields from 3 (state) on.
  int field = 3;
  unsigned long long values[23] = {};
  char state = '?';
  while (p < end && field <= 22) {
    while (p < end && *p == ' ') ++p;
    if (p >= end) break;
    if (field == 3) {
      state = *p;
      while (p < end && *p != ' ') ++p;
    } else {
      char* stop = nullptr;
      values[field] = std::strtoull(p, &stop, 10);
      if (stop == p) return false;
      p = stop;
    }
    ++field;
  }
  if (field <= 22) return false;
  out.ppid = static_cast<pid_t>(static_cast<long long>(values[4]));
  out.pgid = static_cast<pid_t>(static_cast<long long>(values[5]));
  out.sid = static_cast<pid_t>(static_cast<long long>(values[6]));
  out.start = values[22];
  out.zombie = state == 'Z' || state == 'X';
  return true;
}

}  // namespace

bool read_proc_info(pid_t pid, ProcInfo& out) {
  char path[32];
  std::snprintf(path, sizeof path, "/proc/%d/stat", static_cast<int>(pid));
  const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  char buf[1024];
  ssize_t n;
  do {
    n = ::read(fd, buf, sizeof buf);
  } while (n < 0 && errno == EINTR);
  ::close(fd);
  if (n <= 0) return false;
  out.pid = pid;
  return parse_stat(buf, static_cast<std::size_t>(n), out);
}

ProcSnapshot scan_processes() {
  ProcSnapshot snapshot{std::chrono::steady_clock::now(), {}};
  ProcTable& table = snapshot.procs;
  DIR* dir = ::opendir("/proc");
  if (dir == nullptr) {
    spdlog::warn("process tree: cannot read /proc: {}", std::strerror(errno));
    return snapshot;
  }
  table.reserve(512);
  while (const dirent* e = ::readdir(dir)) {
    if (e->d_name[0] < '1' || e->d_name[0] > '9') continue;
    char* stop = nullptr;
    const long pid = std::strtol(e->d_name, &stop, 10);
    if (*stop != '\0') continue;
    ProcInfo info;
    if (read_proc_info(static_cast<pid_t>(pid), info)) {
      table.push_back(info);
    } else {
      snapshot.complete = false;
    }
  }
  ::closedir(dir);
  return snapshot;
}

std::shared_ptr<const ProcSnapshot> recent_processes(
    std::chrono::steady_clock::time_point not_before) {
  static std::mutex mu;
  static std::shared_ptr<const ProcSnapshot> cached;
  {
    std::lock_guard lk(mu);
    if (cached && cached->taken >= not_before) return cached;
  }
  auto fresh = std::make_shared<const ProcSnapshot>(scan_processes());
  std::lock_guard lk(mu);
  if (!cached || cached->taken < fresh->taken) cached = fresh;
  return fresh;
}

void DescendantTracker::set_root(pid_t root) {
  ProcInfo info;
  const bool known = read_proc_info(root, info);
  std::lock_guard lk(mu_);
  applied_ = std::chrono::steady_clock::now();  // the child exists from here on
  root_ = root;
  root_start_known_ = known;
  root_start_ = info.start;
  pgids_.insert(root);  // the child leads its own group
}

std::vector<const ProcInfo*> DescendantTracker::collect_locked(const ProcSnapshot& snapshot,
                                                               const std::vector<pid_t>& foreign) {
  const ProcTable& table = snapshot.procs;
  const pid_t own = ::getpid();
  const pid_t own_pgid = ::getpgrp();
  const pid_t own_sid = ::getsid(0);
  auto excluded = [&](pid_t pid) {
    return pid <= 1 || pid == own ||
           (pid != root_ && std::find(foreign.begin(), foreign.end(), pid) != foreign.end());
  };

  std::unordered_map<pid_t, const ProcInfo*> by_pid;
  std::unordered_map<pid_t, std::vector<const ProcInfo*>> children;
  by_pid.reserve(table.size());
  for (const auto& p : table) {
    by_pid.emplace(p.pid, &p);
    children[p.ppid].push_back(&p);
  }

  std::unordered_map<pid_t, const ProcInfo*> found;
  std::vector<const ProcInfo*> work;
  auto add = [&](const ProcInfo* p) {
    if (!excluded(p->pid) && found.emplace(p->pid, p).second) work.push_back(p);
  };

  if (auto it = by_pid.find(root_); it != by_pid.end()) {
    if (!root_start_known_ || it->second->start == root_start_) add(it->second);
  }
  for (const auto& p : table) {
    auto known = pids_.find(p.pid);
    if ((known != pids_.end() && known->second == p.start) || pgids_.count(p.pgid) != 0 ||
        sids_.count(p.sid) != 0) {
      add(&p);
    }
  }
  for (;;) {
    while (!work.empty()) {
      const ProcInfo* p = work.back();
      work.pop_back();
      if (auto it = children.find(p->pid); it != children.end()) {
        for (const ProcInfo* c : it->second) add(c);
      }
    }
    // Whole groups and sessions started by a descendant are the child's too.
    std::unordered_set<pid_t> groups, sessions;
    for (const auto& [pid, p] : found) {
      if (p->pgid > 1 && p->pgid != own_pgid) groups.insert(p->pgid);
      if (p->sid > 1 && p->sid != own_sid) sessions.insert(p->sid);
    }
    for (const auto& p : table) {
      if (found.count(p.pid) == 0 && (groups.count(p.pgid) != 0 || sessions.count(p.sid) != 0))
        add(&p);
    }
    if (work.empty()) break;
  }

  // Remember what is alive now; what vanished is forgotten, so a recycled id cannot match. An
  // incomplete snapshot cannot tell what vanished: then only add.
  if (snapshot.complete) {
    pids_.clear();
    pgids_.clear();
    sids_.clear();
  }
  std::vector<const ProcInfo*> out;
  out.reserve(found.size());
  for (const auto& [pid, p] : found) {
    out.push_back(p);
    if (pid != root_) pids_[pid] = p->start;
    if (p->pgid > 1 && p->pgid != own_pgid) pgids_.insert(p->pgid);
    if (p->sid > 1 && p->sid != own_sid) sids_.insert(p->sid);
  }
  return out;
}

void DescendantTracker::refresh(const ProcSnapshot& snapshot, const std::vector<pid_t>& foreign) {
  std::lock_guard lk(mu_);
  if (root_ <= 0 || snapshot.taken < applied_) return;
  applied_ = snapshot.taken;
  collect_locked(snapshot, foreign);
}

bool DescendantTracker::root_group_alive(const ProcTable& table) const {
  std::lock_guard lk(mu_);
  // Zombies count: a group id stays reserved until its last member is reaped.
  return std::any_of(table.begin(), table.end(),
                     [&](const ProcInfo& p) { return p.pgid == root_; });
}

std::size_t DescendantTracker::kill_all(const std::vector<pid_t>& foreign) {
  std::lock_guard lk(mu_);
  if (root_ <= 0) return 0;
  const pid_t own_pgid = ::getpgrp();
  std::unordered_map<pid_t, unsigned long long> frozen;
  std::unordered_set<pid_t> groups;
  // A bounded number of rounds: each one stops every process found, so only processes forked
  // between a scan and the SIGSTOP of their parent can show up in the next one; an incomplete
  // scan (a process vanished while it ran) is always followed by another.
  for (int round = 0; round < 16; ++round) {
    const ProcSnapshot snapshot = scan_processes();
    applied_ = std::max(applied_, snapshot.taken);
    bool added = false;
    for (const ProcInfo* p : collect_locked(snapshot, foreign)) {
      if (p->pgid > 1 && p->pgid != own_pgid) groups.insert(p->pgid);
      if (p->zombie || !frozen.emplace(p->pid, p->start).second) continue;
      ::kill(p->pid, SIGSTOP);
      added = true;
    }
    if (!added && snapshot.complete) break;
  }
  for (const auto& [pid, start] : frozen) ::kill(pid, SIGKILL);
  for (pid_t g : groups) ::kill(-g, SIGKILL);
  return frozen.size();
}

}  // namespace pa::agent::detail
