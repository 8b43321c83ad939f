// ChildProcess: see child_process.hpp. Building blocks: process_spawn (fork/execve), reaper (the
// one SIGCHLD handler), process_tree (descendants through /proc, for kill_tree).
//
// Threading: everything about the pipes and the exit runs on a strand of the I/O executor
// (strand_); user handlers run on a strand of the handler executor (handler_strand_), posted
// from strand_ in order, so on_stdout_line/on_line_too_long/on_exit keep their order even when
// the handler executor is a multi-threaded io_context. When both executors are the same, the
// two strands are one and stdout's handlers run inline (dispatch), still in order. The object stays
// alive (async ops and the reaper registration hold it) until the process was reaped and its pipes
// reached EOF.
#include "agent/child_process.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <spdlog/spdlog.h>
#include <algorithm>
#include <atomic>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/write.hpp>
#include <cerrno>
#include <csignal>
#include <cstdint>
#include <cstring>
#include <deque>
#include <future>
#include <limits>
#include <mutex>
#include <optional>
#include <thread>
#include <utility>

#include "agent/process_spawn.hpp"
#include "agent/process_tree.hpp"
#include "agent/reaper.hpp"

namespace pa::agent {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using Strand = boost::asio::strand<boost::asio::any_io_executor>;

constexpr std::size_t kStderrTailBytes = 8 * 1024;
constexpr std::size_t kReadChunk = 64 * 1024;
// Descendant bookkeeping for kill_tree: periodically while the child runs, and on output (the
// CLI prints a tool_use line right before it starts a tool), rate-limited per child; scans are
// shared between children (recent_processes).
constexpr auto kTreeRefreshPeriod = 1s;
constexpr auto kTreeRefreshOnOutputEvery = 250ms;
// After the child was reaped, its own output is all in the pipes already; a grandchild may
// still hold them open (a backgrounded tool). Wait this long for EOF, then drain and stop.
constexpr auto kOutputGraceAfterExit = 1s;
// Without install_reaper, the exit is polled with waitpid(WNOHANG), backing off up to this.
constexpr auto kNoReaperPollMax = 100ms;
// Backpressure: stdout lines are handed to the handler strand (which writes them to history and
// broadcasts them). When more than kPauseAbove bytes of lines wait there, reading stops until
// they are down to kResumeAt: a CLI faster than the disk then blocks on its full pipe instead of
// growing the server's memory. (One line may pass the mark: at most max_line_bytes more.)
constexpr std::size_t kPauseAbove = 4 * 1024 * 1024;
constexpr std::size_t kResumeAt = 1024 * 1024;

template <class F, class... Args>
void invoke_guarded(const char* what, F& f, Args&&... args) noexcept {
  if (!f) return;
  try {
    f(std::forward<Args>(args)...);
  } catch (const std::exception& e) {
    spdlog::error("child process: {} handler threw: {}", what, e.what());
  } catch (...) {
    spdlog::error("child process: {} handler threw", what);
  }
}

// Reads what is available on a non-blocking fd, at most `limit` bytes. Returns false at EOF or
// on an error other than EAGAIN.
template <class Sink>
bool read_available(int fd, std::size_t limit, Sink&& sink) {
  char buf[kReadChunk];
  std::size_t total = 0;
  while (total < limit) {
    const ssize_t n = ::read(fd, buf, std::min(sizeof buf, limit - total));
    if (n > 0) {
      sink(buf, static_cast<std::size_t>(n));
      total += static_cast<std::size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
  }
  return true;
}

std::size_t pipe_capacity(int fd) {
  const int n = ::fcntl(fd, F_GETPIPE_SZ);
  return n > 0 ? static_cast<std::size_t>(n) : 1024 * 1024;
}

class ChildProcessImpl final : public ChildProcess {
 public:
  ChildProcessImpl(boost::asio::any_io_executor io, boost::asio::any_io_executor handler_executor,
                   std::size_t max_line_bytes, ChildHandlers handlers)
      : strand_(boost::asio::make_strand(io)),
        // One executor for both (the supervisor's single thread): one strand, and the handlers
        // of a read run in it at once, before the next read is started.
        handler_strand_(io == handler_executor ? strand_
                                               : boost::asio::make_strand(handler_executor)),
        stdin_(strand_),
        stdout_(strand_),
        stderr_(strand_),
        refresh_timer_(strand_),
        grace_timer_(strand_),
        poll_timer_(strand_),
        max_line_(max_line_bytes == 0 ? std::numeric_limits<std::size_t>::max() : max_line_bytes),
        handlers_(std::make_shared<ChildHandlers>(std::move(handlers))),
        out_buf_(kReadChunk),
        err_buf_(kReadChunk) {}

  std::error_code start(const SpawnSpec& spec);

  pid_t pid() const override { return pid_; }
  void write_stdin(std::string data) override;
  void close_stdin() override;
  void signal_group(int sig) override;
  void kill_tree() override;
  std::string stderr_tail() const override;
  void hold_output(bool held) override;
  bool exited() const override { return reaped_.load(std::memory_order_acquire); }

 private:
  std::shared_ptr<ChildProcessImpl> self() {
    return std::static_pointer_cast<ChildProcessImpl>(shared_from_this());
  }

  // All below run on strand_.
  void start_io();
  void read_stdout();
  void on_stdout(const boost::system::error_code& ec, std::size_t n) noexcept;
  void consume_stdout(const char* data, std::size_t n);
  void end_line();
  void post_lines();
  bool pause_stdout();
  void line_handled(std::size_t bytes);
  void resume_stdout();
  void finish_stdout();
  void read_stderr();
  void on_stderr(const boost::system::error_code& ec, std::size_t n) noexcept;
  void append_stderr(const char* data, std::size_t n);
  void finish_stderr();
  void write_next();
  void on_reaped(ExitStatus status);
  void maybe_finish();
  void refresh_tree(Clock::time_point not_before);
  void arm_refresh_timer();
  void poll_exit();

  Strand strand_;
  Strand handler_strand_;
  boost::asio::posix::stream_descriptor stdin_, stdout_, stderr_;
  boost::asio::steady_timer refresh_timer_, grace_timer_, poll_timer_;
  pid_t pid_ = -1;
  const std::size_t max_line_;
  std::shared_ptr<ChildHandlers> handlers_;  // reset once on_exit is posted

  // stdout line splitting
  std::vector<char> out_buf_;
  std::string partial_;
  std::vector<std::string> lines_;  // complete lines of this read, posted together
  bool discarding_ = false;
  std::size_t discard_bytes_ = 0;
  std::string long_line_head_;
  bool stdout_eof_ = false;
  // Bytes of lines posted to the handler strand and not handled yet (updated on both strands).
  std::atomic<std::size_t> unhandled_bytes_{0};
  std::atomic<bool> stdout_paused_{false};
  std::atomic<bool> held_{false};  // hold_output()

  // stderr
  std::vector<char> err_buf_;
  bool stderr_eof_ = false;
  mutable std::mutex tail_mu_;
  std::string tail_;  // guarded by tail_mu_; trimmed to kStderrTailBytes lazily

  // stdin
  std::deque<std::string> in_queue_;
  bool writing_ = false;
  bool close_requested_ = false;
  bool stdin_closed_ = false;

  // exit
  bool reaper_registered_ = false;
  std::optional<ExitStatus> status_;
  std::atomic<bool> reaped_{false};
  std::atomic<bool> failed_{false};
  bool grace_expired_ = false;
  bool exit_fired_ = false;
  Clock::duration poll_delay_ = 1ms;

  detail::DescendantTracker tracker_;  // thread-safe
  Clock::time_point last_refresh_{};
};

std::error_code ChildProcessImpl::start(const SpawnSpec& spec) {
  detail::SpawnedProcess sp;
  // The reaper callback holds the object until the process is reaped, then hands its reference
  // over to the strand: the last reference must never be dropped on the reaper's thread, which
  // may be after the I/O executor is gone.
  auto on_reaped_cb = [s = self()](ExitStatus st) mutable {
    if (!s) return;
    auto strand = s->strand_;
    boost::asio::post(strand, [s = std::move(s), st] { s->on_reaped(st); });
  };
  std::error_code ec = detail::spawn_process(spec, detail::Stdio::pipe, detail::Stdio::pipe,
                                             detail::Stdio::pipe, std::move(on_reaped_cb), sp);
  if (ec) {
    failed_ = true;
    return ec;
  }
  pid_ = sp.pid;
  reaper_registered_ = sp.reaper_registered;
  tracker_.set_root(pid_);

  boost::system::error_code bec;
  detail::set_nonblocking(sp.out.get());
  detail::set_nonblocking(sp.err.get());
  stdin_.assign(sp.in.release(), bec);
  if (!bec) stdout_.assign(sp.out.release(), bec);
  if (!bec) stderr_.assign(sp.err.release(), bec);
  if (bec) {
    // Cannot watch it: do not leave it running.
    spdlog::error("spawn {}: cannot watch pipes: {}", spec.binary, bec.message());
    failed_ = true;
    ::kill(-pid_, SIGKILL);
    if (!reaper_registered_) {
      int st;
      while (::waitpid(pid_, &st, 0) < 0 && errno == EINTR) {
      }
    }
    return {bec.value(), std::generic_category()};
  }
  boost::asio::post(strand_, [s = self()] { s->start_io(); });
  return {};
}

void ChildProcessImpl::start_io() {
  read_stdout();
  read_stderr();
  if (!status_) arm_refresh_timer();
  if (!reaper_registered_) poll_exit();
}

// ---- stdout ----

void ChildProcessImpl::read_stdout() {
  stdout_.async_read_some(
      boost::asio::buffer(out_buf_),
      [s = self()](const boost::system::error_code& ec, std::size_t n) { s->on_stdout(ec, n); });
}

void ChildProcessImpl::on_stdout(const boost::system::error_code& ec, std::size_t n) noexcept {
  try {
    if (n > 0) {
      // A scan taken after this output: what the child started before printing it is seen.
      const auto now = Clock::now();
      if (now - last_refresh_ >= kTreeRefreshOnOutputEvery) refresh_tree(now);
      consume_stdout(out_buf_.data(), n);
    }
    if (!ec) {
      if (!pause_stdout()) read_stdout();
      return;
    }
    if (ec == boost::asio::error::operation_aborted && grace_expired_ && stdout_.is_open()) {
      read_available(stdout_.native_handle(), pipe_capacity(stdout_.native_handle()),
                     [this](const char* d, std::size_t len) { consume_stdout(d, len); });
    } else if (ec != boost::asio::error::eof) {
      spdlog::warn("child {}: reading stdout: {}", pid_, ec.message());
    }
  } catch (const std::exception& e) {
    spdlog::error("child {}: stdout: {}", pid_, e.what());
  }
  finish_stdout();
}

void ChildProcessImpl::consume_stdout(const char* data, std::size_t n) {
  while (n > 0) {
    const char* nl = static_cast<const char*>(std::memchr(data, '\n', n));
    const std::size_t seg = nl != nullptr ? static_cast<std::size_t>(nl - data) : n;
    if (discarding_) {
      discard_bytes_ += seg;
    } else if (seg > max_line_ - partial_.size()) {
      // Too long: stop keeping it, only count it (and keep its head to say what it was).
      discarding_ = true;
      discard_bytes_ = partial_.size() + seg;
      partial_.append(data, std::min(seg, kLongLineHeadBytes));
      long_line_head_ = partial_.substr(0, kLongLineHeadBytes);
      std::string().swap(partial_);
    } else {
      partial_.append(data, seg);
    }
    if (nl == nullptr) break;
    end_line();
    data += seg + 1;
    n -= seg + 1;
  }
  post_lines();
}

// One handler for all the lines of a read: they reach the handler in one go (a strand would run
// separately posted ones in separate turns), so a consumer can batch its work per read.
void ChildProcessImpl::post_lines() {
  if (lines_.empty()) return;
  // dispatch: inline when the handlers share strand_ (we are in it), else posted to theirs.
  boost::asio::dispatch(handler_strand_,
                        [s = self(), h = handlers_, lines = std::move(lines_)]() mutable {
                          for (auto& line : lines) {
                            const std::size_t bytes = line.size();
                            invoke_guarded("on_stdout_line", h->on_stdout_line, std::move(line));
                            s->line_handled(bytes);
                          }
                          invoke_guarded("on_lines_done", h->on_lines_done);
                        });
  lines_.clear();
}

void ChildProcessImpl::end_line() {
  if (discarding_) {
    post_lines();  // the lines before it go first
    boost::asio::dispatch(handler_strand_, [h = handlers_, bytes = discard_bytes_,
                                            head = std::move(long_line_head_)]() mutable {
      invoke_guarded("on_line_too_long", h->on_line_too_long, bytes, std::move(head));
    });
    long_line_head_.clear();
    discarding_ = false;
    discard_bytes_ = 0;
    return;
  }
  unhandled_bytes_.fetch_add(partial_.size(), std::memory_order_relaxed);
  lines_.push_back(std::move(partial_));
  partial_ = std::string();
}

// strand_: true when reading should stop for now (line_handled resumes it).
bool ChildProcessImpl::pause_stdout() {
  if (held_.load(std::memory_order_seq_cst)) {
    stdout_paused_.store(true, std::memory_order_seq_cst);
    if (held_.load(std::memory_order_seq_cst) ||
        !stdout_paused_.exchange(false, std::memory_order_seq_cst))
      return true;
    return false;  // released between the checks, and nobody saw the flag
  }
  if (unhandled_bytes_.load(std::memory_order_acquire) <= kPauseAbove) return false;
  stdout_paused_.store(true, std::memory_order_seq_cst);
  // The handler may have caught up between the check and the flag: then it saw no flag.
  if (unhandled_bytes_.load(std::memory_order_seq_cst) <= kResumeAt &&
      stdout_paused_.exchange(false, std::memory_order_seq_cst))
    return false;
  spdlog::debug("child {}: {} bytes of output not handled yet; pausing stdout", pid_,
                unhandled_bytes_.load(std::memory_order_relaxed));
  return true;
}

// handler strand, after each line.
void ChildProcessImpl::hold_output(bool held) {
  held_.store(held, std::memory_order_seq_cst);
  if (!held && unhandled_bytes_.load(std::memory_order_seq_cst) <= kResumeAt &&
      stdout_paused_.exchange(false, std::memory_order_seq_cst))
    boost::asio::post(strand_, [s = self()] { s->resume_stdout(); });
}

void ChildProcessImpl::line_handled(std::size_t bytes) {
  const std::size_t left = unhandled_bytes_.fetch_sub(bytes, std::memory_order_seq_cst) - bytes;
  if (left <= kResumeAt && !held_.load(std::memory_order_seq_cst) &&
      stdout_paused_.exchange(false, std::memory_order_seq_cst))
    boost::asio::post(strand_, [s = self()] { s->resume_stdout(); });
}

void ChildProcessImpl::resume_stdout() {
  if (stdout_eof_ || !stdout_.is_open()) return;
  if (grace_expired_) {
    // The child exited while reading was paused and a descendant holds the pipe: take what is
    // there (the child's own output is) and stop, as on_stdout does after the grace.
    read_available(stdout_.native_handle(), pipe_capacity(stdout_.native_handle()),
                   [this](const char* d, std::size_t len) { consume_stdout(d, len); });
    finish_stdout();
    return;
  }
  read_stdout();
}

void ChildProcessImpl::finish_stdout() {
  if (stdout_eof_) return;
  if (discarding_ || !partial_.empty()) end_line();  // the final unterminated line
  post_lines();
  stdout_eof_ = true;
  boost::system::error_code ignored;
  stdout_.close(ignored);
  maybe_finish();
}

// ---- stderr ----

void ChildProcessImpl::read_stderr() {
  stderr_.async_read_some(
      boost::asio::buffer(err_buf_),
      [s = self()](const boost::system::error_code& ec, std::size_t n) { s->on_stderr(ec, n); });
}

void ChildProcessImpl::on_stderr(const boost::system::error_code& ec, std::size_t n) noexcept {
  try {
    if (n > 0) append_stderr(err_buf_.data(), n);
    if (!ec) {
      read_stderr();
      return;
    }
    if (ec == boost::asio::error::operation_aborted && grace_expired_ && stderr_.is_open()) {
      read_available(stderr_.native_handle(), pipe_capacity(stderr_.native_handle()),
                     [this](const char* d, std::size_t len) { append_stderr(d, len); });
    }
  } catch (const std::exception& e) {
    spdlog::error("child {}: stderr: {}", pid_, e.what());
  }
  finish_stderr();
}

void ChildProcessImpl::append_stderr(const char* data, std::size_t n) {
  std::lock_guard lk(tail_mu_);
  if (n >= kStderrTailBytes) {
    tail_.assign(data + (n - kStderrTailBytes), kStderrTailBytes);
    return;
  }
  tail_.append(data, n);
  if (tail_.size() > 2 * kStderrTailBytes) tail_.erase(0, tail_.size() - kStderrTailBytes);
}

void ChildProcessImpl::finish_stderr() {
  if (stderr_eof_) return;
  stderr_eof_ = true;
  boost::system::error_code ignored;
  stderr_.close(ignored);
  maybe_finish();
}

std::string ChildProcessImpl::stderr_tail() const {
  std::lock_guard lk(tail_mu_);
  if (tail_.size() <= kStderrTailBytes) return tail_;
  return tail_.substr(tail_.size() - kStderrTailBytes);
}

// ---- stdin ----

void ChildProcessImpl::write_stdin(std::string data) {
  boost::asio::post(strand_, [s = self(), d = std::move(data)]() mutable {
    if (s->stdin_closed_ || s->close_requested_) return;  // dead child or closed: drop
    s->in_queue_.push_back(std::move(d));
    if (!s->writing_) s->write_next();
  });
}

void ChildProcessImpl::close_stdin() {
  boost::asio::post(strand_, [s = self()] {
    s->close_requested_ = true;
    if (!s->writing_) s->write_next();
  });
}

void ChildProcessImpl::write_next() {
  if (stdin_closed_) return;
  if (in_queue_.empty()) {
    if (close_requested_) {
      stdin_closed_ = true;
      boost::system::error_code ignored;
      stdin_.close(ignored);
    }
    return;
  }
  writing_ = true;
  boost::asio::async_write(stdin_, boost::asio::buffer(in_queue_.front()),
                           [s = self()](const boost::system::error_code& ec, std::size_t) {
                             s->writing_ = false;
                             if (ec) {
                               // EPIPE: the child is gone or closed its stdin; not an error
                               // for the caller, the exit is reported through on_exit.
                               if (ec != boost::asio::error::broken_pipe &&
                                   ec != boost::asio::error::operation_aborted &&
                                   ec != boost::asio::error::bad_descriptor) {
                                 spdlog::debug("child {}: writing stdin: {}", s->pid_,
                                               ec.message());
                               }
                               s->in_queue_.clear();
                               s->stdin_closed_ = true;
                               boost::system::error_code ignored;
                               s->stdin_.close(ignored);
                               return;
                             }
                             s->in_queue_.pop_front();
                             s->write_next();
                           });
}

// ---- exit ----

void ChildProcessImpl::on_reaped(ExitStatus status) {
  if (failed_ || status_) return;
  status_ = status;
  reaped_.store(true, std::memory_order_release);
  refresh_timer_.cancel();
  poll_timer_.cancel();
  if (!stdout_eof_ || !stderr_eof_) {
    grace_timer_.expires_after(kOutputGraceAfterExit);
    grace_timer_.async_wait([s = self()](const boost::system::error_code& ec) {
      if (ec || s->exit_fired_) return;
      s->grace_expired_ = true;
      spdlog::debug(
          "child {}: exited but its output pipes are still open (a descendant holds "
          "them); stop reading",
          s->pid_);
      boost::system::error_code ignored;
      s->stdout_.cancel(ignored);
      s->stderr_.cancel(ignored);
      // Reading was paused (backpressure, or held by the owner): no read is pending to be
      // cancelled, so take what the pipe holds (the child's own output is all there) and end.
      if (s->stdout_paused_.exchange(false, std::memory_order_seq_cst) && !s->stdout_eof_ &&
          s->stdout_.is_open()) {
        read_available(s->stdout_.native_handle(), pipe_capacity(s->stdout_.native_handle()),
                       [&](const char* d, std::size_t len) { s->consume_stdout(d, len); });
        s->finish_stdout();
      }
    });
  }
  maybe_finish();
}

void ChildProcessImpl::maybe_finish() {
  if (exit_fired_ || !status_ || !stdout_eof_ || !stderr_eof_) return;
  exit_fired_ = true;
  grace_timer_.cancel();
  refresh_timer_.cancel();
  poll_timer_.cancel();
  in_queue_.clear();
  stdin_closed_ = true;
  boost::system::error_code ignored;
  stdin_.close(ignored);
  boost::asio::post(handler_strand_,
                    [h = handlers_, st = *status_] { invoke_guarded("on_exit", h->on_exit, st); });
  handlers_.reset();  // breaks cycles through handlers that capture this object
}

void ChildProcessImpl::poll_exit() {
  if (status_) return;
  int st = 0;
  const pid_t w = ::waitpid(pid_, &st, WNOHANG);
  if (w == pid_) {
    on_reaped(detail::decode_wait_status(st));
    return;
  }
  if (w < 0 && errno != EINTR) {
    spdlog::warn("child {}: waitpid: {} (reaped elsewhere?)", pid_, std::strerror(errno));
    on_reaped(ExitStatus{false, -1, 0});
    return;
  }
  poll_timer_.expires_after(poll_delay_);
  poll_delay_ = std::min<Clock::duration>(poll_delay_ * 2, kNoReaperPollMax);
  poll_timer_.async_wait([s = self()](const boost::system::error_code& ec) {
    if (!ec) s->poll_exit();
  });
}

// ---- process tree ----

void ChildProcessImpl::refresh_tree(Clock::time_point not_before) {
  last_refresh_ = Clock::now();
  tracker_.refresh(*detail::recent_processes(not_before), detail::reaper_registered_pids());
}

void ChildProcessImpl::arm_refresh_timer() {
  refresh_timer_.expires_after(kTreeRefreshPeriod);
  refresh_timer_.async_wait([s = self()](const boost::system::error_code& ec) {
    if (ec || s->status_) return;
    try {
      s->refresh_tree(Clock::now() - 250ms);
    } catch (const std::exception& e) {
      spdlog::warn("child {}: scanning processes: {}", s->pid_, e.what());
    }
    s->arm_refresh_timer();
  });
}

void ChildProcessImpl::signal_group(int sig) {
  if (pid_ <= 0) return;
  // Once the child is reaped its pid (= group id) may be recycled, unless the group still has
  // members: only signal a group that still exists.
  if (exited() && !tracker_.root_group_alive(detail::scan_processes().procs)) return;
  if (::kill(-pid_, sig) != 0 && errno != ESRCH) {
    spdlog::warn("child {}: kill(-{}, {}): {}", pid_, pid_, sig, std::strerror(errno));
  }
}

// What kill_tree catches (see process_tree.hpp):
// - the child and its whole ppid subtree at the time of the call, whatever their process group
//   or session (setsid'ed tools included), and processes they fork during the kill (frozen
//   with SIGSTOP and rescanned first);
// - after the child died, or after an intermediate process died (orphans re-parent to the
//   server, a subreaper, and leave the subtree): every process seen as a descendant by an
//   earlier refresh (each second while the child runs, on its output, on every kill_tree),
//   every process in a process group or session that such a process was in, and their
//   descendants.
// What it cannot catch:
// - a process that was born and orphaned between two refreshes in a group/session never
//   recorded (e.g. a tool that ran under a second and left `setsid daemon &` behind); it stays
//   a child of the server and is reaped when it ends, but is not attributed to this child;
// - processes that escaped the tree altogether: started through another service (systemd-run,
//   at, ssh, a D-Bus activated daemon, a container runtime), or below another subreaper that
//   re-parents them away from us; and processes of another user (kill fails with EPERM).
void ChildProcessImpl::kill_tree() {
  if (pid_ <= 0) return;
  const std::size_t n = tracker_.kill_all(detail::reaper_registered_pids());
  spdlog::debug("child {}: kill_tree signalled {} process(es)", pid_, n);
}

}  // namespace

std::shared_ptr<ChildProcess> ChildProcess::spawn(boost::asio::any_io_executor io,
                                                  boost::asio::any_io_executor handler_executor,
                                                  const SpawnSpec& spec, std::size_t max_line_bytes,
                                                  ChildHandlers handlers, std::error_code& ec) {
  ec.clear();
  try {
    auto child = std::make_shared<ChildProcessImpl>(std::move(io), std::move(handler_executor),
                                                    max_line_bytes, std::move(handlers));
    ec = child->start(spec);
    if (ec) return nullptr;
    return child;
  } catch (const std::bad_alloc&) {
    ec = std::make_error_code(std::errc::not_enough_memory);
  } catch (const std::system_error& e) {
    ec = e.code();
  } catch (const boost::system::system_error& e) {
    ec = std::error_code(e.code().value(), std::generic_category());
  } catch (...) {
    ec = std::make_error_code(std::errc::io_error);
  }
  return nullptr;
}

CaptureResult run_capture(const SpawnSpec& spec, std::chrono::milliseconds timeout,
                          std::size_t max_bytes) {
  CaptureResult r;
  const auto deadline = Clock::now() + timeout;
  // How the end of the process is seen while its output is read (a descendant may keep the
  // pipe open past it): with the reaper, its callback signals an eventfd; without, a pidfd
  // (Linux 5.3) turns readable at exit (nobody else reaps, so no race); failing both, the
  // status is peeked every 20 ms.
  struct Notify {
    std::promise<ExitStatus> done;
    detail::UniqueFd efd{::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)};
  };
  auto notify = std::make_shared<Notify>();
  std::future<ExitStatus> exit_future = notify->done.get_future();
  detail::SpawnedProcess sp;
  r.ec = detail::spawn_process(
      spec, detail::Stdio::null, detail::Stdio::pipe, detail::Stdio::null,
      [notify](ExitStatus st) {
        notify->done.set_value(st);
        const std::uint64_t one = 1;
        if (notify->efd.valid() && ::write(notify->efd.get(), &one, sizeof one) < 0) {
          // only a wake-up; the future holds the status
        }
      },
      sp);
  if (r.ec) return r;

  detail::UniqueFd pidfd;
  if (!sp.reaper_registered) pidfd.reset(static_cast<int>(::syscall(SYS_pidfd_open, sp.pid, 0)));
  const int exit_fd = sp.reaper_registered ? notify->efd.get() : pidfd.get();
  auto exited_now = [&] {
    if (sp.reaper_registered) return exit_future.wait_for(0s) == std::future_status::ready;
    siginfo_t info{};
    return ::waitid(P_PID, static_cast<id_t>(sp.pid), &info, WEXITED | WNOHANG | WNOWAIT) == 0 &&
           info.si_pid == sp.pid;
  };
  detail::set_nonblocking(sp.out.get());
  auto millis_until = [](Clock::time_point t) {
    const auto left = std::chrono::ceil<std::chrono::milliseconds>(t - Clock::now()).count();
    return static_cast<int>(std::clamp<long long>(left, 0, 1 << 30));
  };
  auto sink = [&r, max_bytes](const char* d, std::size_t n) {
    const std::size_t room = max_bytes - std::min(max_bytes, r.out.size());
    if (n > room) r.truncated = true;
    r.out.append(d, std::min(n, room));
  };

  // Output until EOF, the exit, or the deadline.
  while (sp.out.valid()) {
    int ms = millis_until(deadline);
    if (ms <= 0) break;
    if (exit_fd < 0) ms = std::min(ms, 20);
    pollfd fds[2] = {{sp.out.get(), POLLIN, 0}, {exit_fd, POLLIN, 0}};  // fd -1 is skipped
    const int n = ::poll(fds, 2, ms);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) break;
    if (fds[0].revents != 0 &&
        !read_available(sp.out.get(), std::numeric_limits<std::size_t>::max(), sink)) {
      sp.out.reset();
      break;
    }
    if (exit_fd >= 0 ? (fds[1].revents & POLLIN) != 0 : exited_now()) {
      // All the child wrote is in the pipe: take it (bounded: a descendant may keep writing).
      read_available(sp.out.get(), pipe_capacity(sp.out.get()), sink);
      sp.out.reset();
    }
  }

  auto wait_status = [&](Clock::time_point until) -> std::optional<ExitStatus> {
    if (sp.reaper_registered) {
      if (exit_future.wait_until(until) == std::future_status::ready) return exit_future.get();
      return std::nullopt;
    }
    for (;;) {
      int st = 0;
      const pid_t w = ::waitpid(sp.pid, &st, WNOHANG);
      if (w == sp.pid) return detail::decode_wait_status(st);
      if (w < 0 && errno != EINTR) return ExitStatus{false, -1, 0};  // reaped elsewhere
      if (Clock::now() >= until) return std::nullopt;
      if (pidfd.valid()) {
        pollfd p{pidfd.get(), POLLIN, 0};
        ::poll(&p, 1, millis_until(until));
      } else {
        std::this_thread::sleep_for(std::min<Clock::duration>(5ms, until - Clock::now()));
      }
    }
  };

  std::optional<ExitStatus> status = wait_status(deadline);
  if (!status) {
    r.ec = std::make_error_code(std::errc::timed_out);
    ::kill(-sp.pid, SIGKILL);
    ::kill(sp.pid, SIGKILL);
    status = wait_status(Clock::now() + 10s);
    if (!status) {
      spdlog::error("run_capture {}: pid {} survived SIGKILL for 10 s", spec.binary, sp.pid);
      if (sp.reaper_registered) detail::reaper_unregister(sp.pid);
      return r;
    }
  }
  r.status = *status;
  return r;
}

}  // namespace pa::agent
