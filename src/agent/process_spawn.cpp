#include "agent/process_spawn.hpp"

#include <fcntl.h>

#include <pthread.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <algorithm>

#include <spdlog/spdlog.h>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <vector>

namespace pa::agent {
namespace detail {
namespace {

// What the child reports through the CLOEXEC error pipe when it cannot exec.
enum class ChildStage : int { pdeathsig, dup, chdir, exec };
struct ChildError {
  ChildStage stage;
  int err;
};

const char* stage_name(ChildStage s) {
  switch (s) {
    case ChildStage::pdeathsig:
      return "prctl";
    case ChildStage::dup:
      return "dup2";
    case ChildStage::chdir:
      return "chdir";
    case ChildStage::exec:
      return "execve";
  }
  return "?";
}

// Everything the child needs, prepared before fork: after fork only async-signal-safe calls.
struct ChildPlan {
  const char* path = nullptr;
  char* const* argv = nullptr;
  char* const* envp = nullptr;
  const char* cwd = nullptr;  // nullptr: keep the server's
  int cwd_fd = -1;            // >= 0: fchdir() to it instead
  int stdio[3] = {-1, -1, -1};
  int report_fd = -1;
  int inherit_fd = -1;  // >= 0: becomes fd 3
  bool detached = false;
  pid_t parent = 0;
  int max_fd = 1024;  // last fd for the close() loop when close_range is unavailable
};

[[noreturn]] void child_fail(const ChildPlan& plan, ChildStage stage, int err) {
  const ChildError e{stage, err};
  ssize_t n;
  do {
    n = ::write(plan.report_fd, &e, sizeof e);
  } while (n < 0 && errno == EINTR);
  ::_exit(127);
}

// Closes [first, last] (last < 0: to the end), async-signal-safe. close_range needs Linux 5.9;
// the fallback loop stops at max_fd.
void close_fds(int first, int last, int max_fd) {
  if (last >= 0 && first > last) return;
  const unsigned hi = last < 0 ? ~0U : static_cast<unsigned>(last);
  if (::syscall(SYS_close_range, static_cast<unsigned>(first), hi, 0) == 0) return;
  const int end = last < 0 ? max_fd : last;
  for (int fd = first; fd <= end; ++fd) ::close(fd);
}

[[noreturn]] void child_after_fork(const ChildPlan& plan_in) {
  ChildPlan plan = plan_in;
  if (plan.detached) {
    ::setsid();  // its own session and group: the server's end is not its end
  } else {
    ::setpgid(0, 0);
    if (::prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0)
      child_fail(plan, ChildStage::pdeathsig, errno);
    // The server may have died between fork and prctl: then nobody would ever kill us.
    if (::getppid() != plan.parent) ::_exit(127);
  }

  // Default dispositions for everything (ignored signals would survive execve: SIGPIPE!), then
  // unblock (the parent blocked all signals around fork so no handler of its runs here).
  struct sigaction dfl;
  std::memset(&dfl, 0, sizeof dfl);
  dfl.sa_handler = SIG_DFL;
  for (int sig = 1; sig < NSIG; ++sig) {
    if (sig == SIGKILL || sig == SIGSTOP) continue;
    ::sigaction(sig, &dfl, nullptr);  // EINVAL for signals reserved by libc: fine
  }
  sigset_t none;
  ::sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);

  // Enter the directory before stdio is rearranged and other descriptors are closed.
  if (plan.cwd_fd >= 0) {
    if (::fchdir(plan.cwd_fd) != 0) child_fail(plan, ChildStage::chdir, errno);
  } else if (plan.cwd != nullptr && ::chdir(plan.cwd) != 0) {
    child_fail(plan, ChildStage::chdir, errno);
  }
  // All pipe/devnull fds are >= 3 (see keep_above_stdio), so these never clobber one another.
  for (int i = 0; i < 3; ++i) {
    if (::dup2(plan.stdio[i], i) < 0) child_fail(plan, ChildStage::dup, errno);
  }
  int first_closed = 3;
  if (plan.inherit_fd >= 0) {
    if (plan.report_fd == 3) {
      plan.report_fd = ::fcntl(3, F_DUPFD_CLOEXEC, 4);
      if (plan.report_fd < 0) ::_exit(127);
    }
    if (plan.inherit_fd == 3) {
      ::fcntl(3, F_SETFD, 0);  // dup2 onto itself would keep CLOEXEC
    } else if (::dup2(plan.inherit_fd, 3) < 0) {
      child_fail(plan, ChildStage::dup, errno);
    }
    first_closed = 4;
  }
  // Close everything else but the report pipe (CLOEXEC: execve closes it on success).
  close_fds(first_closed, plan.report_fd - 1, plan.max_fd);
  close_fds(std::max(first_closed, plan.report_fd + 1), -1, plan.max_fd);
  ::execve(plan.path, plan.argv, plan.envp);
  child_fail(plan, ChildStage::exec, errno);
}

// Moves fd to a number >= 3 (keeping O_CLOEXEC) so that dup2 onto 0/1/2 in the child is safe
// even when the server runs with some of 0/1/2 closed.
bool keep_above_stdio(UniqueFd& fd) {
  if (fd.get() >= 3) return true;
  const int moved = ::fcntl(fd.get(), F_DUPFD_CLOEXEC, 3);
  if (moved < 0) return false;
  fd.reset(moved);
  return true;
}

std::error_code make_pipe(UniqueFd& read_end, UniqueFd& write_end) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return {errno, std::generic_category()};
  read_end.reset(fds[0]);
  write_end.reset(fds[1]);
  if (!keep_above_stdio(read_end) || !keep_above_stdio(write_end))
    return {errno, std::generic_category()};
  return {};
}

std::error_code open_devnull(UniqueFd& fd) {
  fd.reset(::open("/dev/null", O_RDWR | O_CLOEXEC));
  if (!fd.valid() || !keep_above_stdio(fd)) return {errno, std::generic_category()};
  return {};
}

std::error_code errno_to_ec(int err) {
  if (err == ENOENT || err == ENOTDIR)
    return std::make_error_code(std::errc::no_such_file_or_directory);
  if (err == EACCES || err == EPERM) return std::make_error_code(std::errc::permission_denied);
  return {err, std::generic_category()};
}

// An ignored SIGPIPE is what makes a write to a dead child's stdin fail with EPIPE instead of
// killing the server. Set once, only if nobody chose a disposition.
void ignore_sigpipe_once() {
  static std::once_flag once;
  std::call_once(once, [] {
    struct sigaction old;
    if (::sigaction(SIGPIPE, nullptr, &old) == 0 && old.sa_handler == SIG_DFL &&
        (old.sa_flags & SA_SIGINFO) == 0) {
      ::signal(SIGPIPE, SIG_IGN);
    }
  });
}

bool executable_file(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) &&
         ::faccessat(AT_FDCWD, path.c_str(), X_OK, AT_EACCESS) == 0;
}

// Resolves spec.binary to the absolute path execve gets (the child chdirs before execve, so a
// relative path is made absolute against the server's cwd first).
std::error_code resolve_binary(const SpawnSpec& spec, std::string& path) {
  if (spec.binary.empty()) return std::make_error_code(std::errc::no_such_file_or_directory);
  if (spec.binary.find('/') == std::string::npos) {
    path = find_executable(spec.binary, spec.env);
    if (path.empty()) return std::make_error_code(std::errc::no_such_file_or_directory);
  } else {
    path = spec.binary;
    struct stat st;
    if (::stat(path.c_str(), &st) != 0) return errno_to_ec(errno);
    if (!S_ISREG(st.st_mode) || ::faccessat(AT_FDCWD, path.c_str(), X_OK, AT_EACCESS) != 0)
      return std::make_error_code(std::errc::permission_denied);
  }
  if (path.front() != '/') {
    char buf[4096];
    if (::getcwd(buf, sizeof buf) == nullptr) return {errno, std::generic_category()};
    path = std::string(buf) + "/" + path;
  }
  return {};
}

std::vector<char*> c_strings(std::vector<std::string>& v) {
  std::vector<char*> out;
  out.reserve(v.size() + 1);
  for (auto& s : v) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

}  // namespace

void UniqueFd::reset(int fd) {
  if (fd_ >= 0) ::close(fd_);
  fd_ = fd;
}

bool set_nonblocking(int fd) {
  const int flags = ::fcntl(fd, F_GETFL);
  return flags >= 0 && ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) == 0;
}

std::error_code spawn_process(const SpawnSpec& spec, Stdio in, Stdio out, Stdio err,
                              ReapCallback on_reaped, SpawnedProcess& result) {
  ignore_sigpipe_once();
  std::string path;
  if (auto ec = resolve_binary(spec, path)) return ec;

  std::vector<std::string> argv_storage;
  argv_storage.reserve(spec.args.size() + 1);
  argv_storage.push_back(spec.binary);
  argv_storage.insert(argv_storage.end(), spec.args.begin(), spec.args.end());
  std::vector<std::string> env_storage = spec.env;
  std::vector<char*> argv = c_strings(argv_storage);
  std::vector<char*> envp = c_strings(env_storage);

  // child_ends[i] is what the child gets as fd i; parent_ends[i] is ours (pipes only).
  UniqueFd child_ends[3], parent_ends[3];
  const Stdio modes[3] = {in, out, err};
  for (int i = 0; i < 3; ++i) {
    std::error_code ec;
    if (modes[i] == Stdio::null) {
      ec = open_devnull(child_ends[i]);
    } else if (i == 0) {
      ec = make_pipe(child_ends[0], parent_ends[0]);
    } else {
      ec = make_pipe(parent_ends[i], child_ends[i]);
    }
    if (ec) return ec;
  }
  UniqueFd report_read, report_write;
  if (auto ec = make_pipe(report_read, report_write)) return ec;

  ChildPlan plan;
  plan.path = path.c_str();
  plan.argv = argv.data();
  plan.envp = envp.data();
  plan.cwd = spec.cwd.empty() ? nullptr : spec.cwd.c_str();
  plan.cwd_fd = spec.cwd_fd;
  for (int i = 0; i < 3; ++i) plan.stdio[i] = child_ends[i].get();
  plan.report_fd = report_write.get();
  plan.inherit_fd = spec.inherit_fd;
  plan.detached = spec.detached;
  plan.parent = ::getpid();
  const long open_max = ::sysconf(_SC_OPEN_MAX);
  plan.max_fd = open_max > 0 && open_max < 65536 ? static_cast<int>(open_max) : 65536;

  // Block every signal across fork so that no handler of the server runs in the child before
  // it resets the dispositions; hold the reaper registry so the pid is registered before the
  // reaper can look it up.
  sigset_t all, old_mask;
  ::sigfillset(&all);
  ::pthread_sigmask(SIG_SETMASK, &all, &old_mask);
  ReaperLock reaper;
  const pid_t pid = ::fork();
  if (pid == 0) child_after_fork(plan);
  const int fork_errno = errno;
  if (pid > 0) {
    // Also done by the child; whichever runs first wins, errors are moot. Not for a detached
    // child: a group leader could no longer setsid().
    if (!spec.detached) ::setpgid(pid, pid);
    if (reaper.installed()) reaper.register_pid(pid, std::move(on_reaped));
  }
  const bool registered = pid > 0 && reaper.installed();
  reaper.unlock();
  ::pthread_sigmask(SIG_SETMASK, &old_mask, nullptr);
  if (pid < 0) return {fork_errno, std::generic_category()};

  for (auto& fd : child_ends) fd.reset();
  report_write.reset();

  ChildError child_error{};
  ssize_t n;
  do {
    n = ::read(report_read.get(), &child_error, sizeof child_error);
  } while (n < 0 && errno == EINTR);
  if (n == static_cast<ssize_t>(sizeof child_error)) {
    // The child did not exec and is exiting: reap it here (or let the reaper do so).
    if (registered) reaper_unregister(pid);
    int st;
    while (::waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    spdlog::warn("spawn {}: {} failed: {}", spec.binary, stage_name(child_error.stage),
                 std::strerror(child_error.err));
    return errno_to_ec(child_error.err);
  }

  result.pid = pid;
  result.in = std::move(parent_ends[0]);
  result.out = std::move(parent_ends[1]);
  result.err = std::move(parent_ends[2]);
  result.reaper_registered = registered;
  return {};
}

}  // namespace detail

std::string find_executable(const std::string& name, const std::vector<std::string>& env) {
  if (name.empty()) return {};
  if (name.find('/') != std::string::npos) return detail::executable_file(name) ? name : "";

  std::string search;
  bool have_path = false;
  for (const auto& kv : env) {
    if (kv.rfind("PATH=", 0) == 0) {  // first one wins, like getenv
      search = kv.substr(5);
      have_path = true;
      break;
    }
  }
  if (!have_path) {
    if (const char* p = std::getenv("PATH")) {
      search = p;
    } else {
      search = "/usr/local/bin:/usr/bin:/bin";
    }
  }
  // Empty and relative entries are skipped: they would mean "the current directory", which is
  // not the child's (it chdirs) and is a classic way to run the wrong binary.
  std::size_t start = 0;
  while (start <= search.size()) {
    std::size_t end = search.find(':', start);
    if (end == std::string::npos) end = search.size();
    std::string dir = search.substr(start, end - start);
    start = end + 1;
    if (dir.empty() || dir.front() != '/') continue;
    if (dir.back() != '/') dir += '/';
    std::string candidate = dir + name;
    if (detail::executable_file(candidate)) return candidate;
  }
  return {};
}

}  // namespace pa::agent
