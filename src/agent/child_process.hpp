// A child process with piped stdin/stdout/stderr, driven asynchronously on Asio.
// - argv only (execve, never a shell), its own process group, PR_SET_PDEATHSIG(SIGKILL) so it
//   dies with the server, chdir to the given directory, an explicit environment.
// - stdout is delivered line by line with no small cap: lines longer than max_line_bytes are
//   reported (on_line_too_long) and skipped, and reading goes on.
// - The last 8 KiB of stderr are kept for error reports.
// - on_exit fires once, after stdout reached EOF *and* the process was reaped, so no line is lost.
//   (stderr's EOF too, so stderr_tail() is complete in on_exit. If a descendant keeps the pipes
//   open after the child was reaped, they are drained and closed after a 1 s grace.)
// Lifetime: the object keeps itself alive until on_exit; the I/O and handler executors' contexts
// must outlive that. PDEATHSIG belongs to the *thread* that called spawn(): spawn from a thread
// that lives as long as the child should (an I/O thread). exited() = the process was reaped.
// Implementation: child_process.cpp, process_spawn.*, process_tree.* (kill_tree), reaper.*.
#pragma once

#include <sys/types.h>

#include <boost/asio/any_io_executor.hpp>
#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <system_error>
#include <vector>

namespace pa::agent {

struct SpawnSpec {
  std::string binary;             // absolute path, or a name looked up in PATH (of `env`)
  std::vector<std::string> args;  // argv[1..]
  std::vector<std::string> env;   // "KEY=VALUE" entries; the child's whole environment
  std::string cwd;
  int cwd_fd = -1;  // when >= 0: a directory the child enters with fchdir() instead of `cwd`;
                    // the caller keeps it open until spawn() returns
  // A run's supervisor: its own session (setsid) and no PDEATHSIG, so that it outlives the
  // server; `inherit_fd` (if >= 0) becomes its fd 3.
  bool detached = false;
  int inherit_fd = -1;
};

struct ExitStatus {
  bool signaled = false;
  int code = 0;    // exit code when !signaled
  int signal = 0;  // terminating signal when signaled
};

inline constexpr std::size_t kLongLineHeadBytes = 512;

struct ChildHandlers {
  std::function<void(std::string line)> on_stdout_line;  // without the trailing '\n'
  // `head` is the line's first kLongLineHeadBytes bytes: enough to tell what kind of line it was.
  std::function<void(std::size_t line_bytes, std::string head)> on_line_too_long;
  std::function<void(ExitStatus status)> on_exit;
  // Optional: after the on_stdout_line calls for the lines of one read (a consumer that batches
  // its work per read does it here instead of posting).
  std::function<void()> on_lines_done;
};

class ChildProcess : public std::enable_shared_from_this<ChildProcess> {
 public:
  // Starts the child. Pipes are read on `io` (an I/O executor); handlers are posted, in order, to
  // `handler_executor`. ec = no_such_file_or_directory when the binary does not exist or is not
  // executable (errno from execve is reported back through a CLOEXEC pipe).
  static std::shared_ptr<ChildProcess> spawn(boost::asio::any_io_executor io,
                                             boost::asio::any_io_executor handler_executor,
                                             const SpawnSpec& spec, std::size_t max_line_bytes,
                                             ChildHandlers handlers, std::error_code& ec);
  virtual ~ChildProcess() = default;

  virtual pid_t pid() const = 0;
  virtual void write_stdin(std::string data) = 0;  // queued; writes in order
  virtual void close_stdin() = 0;                  // after queued writes finish
  virtual void signal_group(int sig) = 0;          // kill(-pgid, sig)
  // SIGKILL the process group and every descendant found through /proc (tools that started their
  // own session escape the group).
  virtual void kill_tree() = 0;
  // While held, stdout is not read (the child blocks on a full pipe): its reader cannot take
  // more lines now (a full disk). Lines already read are still delivered. Thread-safe.
  virtual void hold_output(bool held) = 0;
  virtual std::string stderr_tail() const = 0;  // thread-safe
  virtual bool exited() const = 0;
};

// Runs a program to completion and captures stdout (used for `claude --version`, git). Blocking:
// call it off the I/O threads. Kills the child after `timeout`. Output past `max_bytes` is read
// and dropped (the child is not blocked on a full pipe), and `truncated` is set.
inline constexpr std::size_t kCaptureMaxBytes = 16 * 1024 * 1024;
struct CaptureResult {
  std::error_code ec;  // spawn failure or timeout (std::errc::timed_out)
  ExitStatus status;
  std::string out;
  bool truncated = false;
};
CaptureResult run_capture(const SpawnSpec& spec, std::chrono::milliseconds timeout,
                          std::size_t max_bytes = kCaptureMaxBytes);

// Looks `name` up in the PATH found in `env` ("PATH=..."), or the server's PATH if absent.
// Returns an empty string when not found or not executable. Names containing '/' are returned
// as they are if executable.
std::string find_executable(const std::string& name, const std::vector<std::string>& env);

// Call once at start-up: makes the server a child subreaper (orphaned tools re-parent to it) and
// reaps every child through one SIGCHLD handler on `io`. A child's exit reaches its own strand
// by a post from `io`'s thread; if that is another io_context than the children's, the
// children's must outlive that post (wait for `io`'s running handlers before destroying it).
void install_reaper(boost::asio::any_io_executor io);

}  // namespace pa::agent
