// Low-level fork/execve used by ChildProcess::spawn and run_capture.
#pragma once

#include <sys/types.h>

#include <system_error>
#include <utility>

#include "agent/child_process.hpp"
#include "agent/reaper.hpp"

namespace pa::agent::detail {

// Owns a file descriptor.
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(UniqueFd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  UniqueFd& operator=(UniqueFd&& o) noexcept {
    if (this != &o) reset(std::exchange(o.fd_, -1));
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd() { reset(); }

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  int release() { return std::exchange(fd_, -1); }
  void reset(int fd = -1);

 private:
  int fd_ = -1;
};

enum class Stdio { pipe, null };

struct SpawnedProcess {
  pid_t pid = -1;
  UniqueFd in, out, err;           // parent ends (O_CLOEXEC, blocking) of the piped streams
  bool reaper_registered = false;  // the exit status goes to the callback given to spawn_process
};

// Resolves the binary, forks and execs. The child gets its own process group, PDEATHSIG=SIGKILL
// (bound to the *calling thread*: do not spawn from a thread that ends before the child should),
// default signal dispositions and an empty signal mask, the given stdio, no other fds, the cwd.
// When a reaper is installed, `on_reaped` is registered for the pid before the child can be
// reaped; otherwise the caller must waitpid() it. On failure no process is left (it is reaped).
std::error_code spawn_process(const SpawnSpec& spec, Stdio in, Stdio out, Stdio err,
                              ReapCallback on_reaped, SpawnedProcess& result);

bool set_nonblocking(int fd);

}  // namespace pa::agent::detail
