// Finding (and killing) every process that descends from a spawned child, through /proc.
//
// Why: the Claude CLI starts its Bash tools in their own session (setsid), so they leave the
// child's process group; a group kill misses them, and when the CLI dies they re-parent to the
// nearest subreaper (the server, see install_reaper) and drop out of the CLI's ppid subtree.
//
// A DescendantTracker remembers, for one child, every process it has seen descend from it, as
// (pid, start time) so a recycled pid never matches, plus the process groups and sessions
// those processes are in (not the server's own). It is refreshed cheaply while the child runs
// (ChildProcess does it periodically and on stdout activity) and on every kill. A process
// belongs to the child when it is in the child's ppid subtree, or is a remembered process, or
// is in a remembered group/session (IDs that stayed in use since they were seen, so they
// cannot have been recycled), or descends from any of those.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <unordered_set>
#include <vector>

namespace pa::agent::detail {

struct ProcInfo {
  pid_t pid = 0;
  pid_t ppid = 0;
  pid_t pgid = 0;
  pid_t sid = 0;
  unsigned long long start = 0;  // clock ticks after boot; with pid, identifies a process
  bool zombie = false;
};
using ProcTable = std::vector<ProcInfo>;
// A scan is not atomic: /proc is listed first, then each process is read. A listed process that
// is gone when read may have forked, after the listing, a child the scan does not show: such a
// snapshot is incomplete, and only adds to what a tracker remembers.
struct ProcSnapshot {
  std::chrono::steady_clock::time_point taken;  // when the scan started
  ProcTable procs;
  bool complete = true;  // no listed process vanished during the scan
};

bool read_proc_info(pid_t pid, ProcInfo& out);
ProcSnapshot scan_processes();
// A scan that started at or after not_before, shared between callers (bounds the cost with many
// children).
std::shared_ptr<const ProcSnapshot> recent_processes(
    std::chrono::steady_clock::time_point not_before);

class DescendantTracker {
 public:
  // Called right after the child was started.
  void set_root(pid_t root);
  // Records the child's current descendants. `foreign` lists pids never to be taken as ours
  // (the server's other direct children). A snapshot older than the root or than the last one
  // applied is ignored (it would drop records of processes it could not have seen yet).
  void refresh(const ProcSnapshot& snapshot, const std::vector<pid_t>& foreign);
  // SIGKILLs the child (if still there), every descendant found and their process groups.
  // Freezes with SIGSTOP and rescans until nothing new appears first, so a process forked
  // during the kill is not missed. Returns how many processes were signalled.
  std::size_t kill_all(const std::vector<pid_t>& foreign);
  // Whether any process is still in the root's process group (its id is still ours then).
  bool root_group_alive(const ProcTable& table) const;

 private:
  std::vector<const ProcInfo*> collect_locked(const ProcSnapshot& snapshot,
                                              const std::vector<pid_t>& foreign);

  mutable std::mutex mu_;
  std::chrono::steady_clock::time_point applied_{};  // start of the newest snapshot applied
  pid_t root_ = -1;
  unsigned long long root_start_ = 0;
  bool root_start_known_ = false;
  std::unordered_map<pid_t, unsigned long long> pids_;
  std::unordered_set<pid_t> pgids_;
  std::unordered_set<pid_t> sids_;
};

}  // namespace pa::agent::detail
