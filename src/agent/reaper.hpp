// The one SIGCHLD handler of the server (see install_reaper in child_process.hpp).
//
// Once installed, every child of the server is reaped here with waitpid(-1, WNOHANG): a child
// started by this layer gets its status delivered to the callback registered for its pid; any
// other pid is an orphan that re-parented to the server (it is a child subreaper) and is simply
// reaped. Consequence: with the reaper installed, children must not be waited for elsewhere
// (std::system, popen, boost::process... would see ECHILD); start them through this layer.
//
// Registration race: the registry mutex is held across fork() and the registration of the new
// pid (ReaperLock). The reaper looks a pid up only after taking the same mutex, so a child that
// exits at once is always found registered; no "exited before registered" stash is needed, and
// no stale status can be attached to a recycled pid.
#pragma once

#include <sys/types.h>

#include <functional>
#include <mutex>
#include <vector>

#include "agent/child_process.hpp"

namespace pa::agent::detail {

using ReapCallback = std::function<void(ExitStatus)>;  // called on the reaper's executor

ExitStatus decode_wait_status(int wait_status);

// Holds the registry mutex while alive. installed() tells whether a reaper runs; only then may
// register_pid() be called.
class ReaperLock {
 public:
  ReaperLock();
  ReaperLock(const ReaperLock&) = delete;
  ReaperLock& operator=(const ReaperLock&) = delete;
  bool installed() const { return installed_; }
  void register_pid(pid_t pid, ReapCallback callback);
  void unlock() { lock_.unlock(); }

 private:
  std::unique_lock<std::mutex> lock_;
  bool installed_ = false;
};

bool reaper_installed();
void reaper_unregister(pid_t pid);
std::vector<pid_t> reaper_registered_pids();

}  // namespace pa::agent::detail
