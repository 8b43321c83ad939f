#include "agent/reaper.hpp"

#include <sys/prctl.h>
#include <sys/wait.h>

#include <spdlog/spdlog.h>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <unordered_map>
#include <utility>

namespace pa::agent {
namespace detail {
namespace {

struct ReaperState {
  std::mutex mu;
  bool installed = false;
  std::unordered_map<pid_t, ReapCallback> waiters;
  // Never destroyed: the signal_set is created once and lives as long as the process, so no
  // destruction-order problem with the io_context at exit.
  boost::asio::signal_set* signals = nullptr;
};

ReaperState& state() {
  static auto* s = new ReaperState;
  return *s;
}

void reap_all() noexcept {
  // SIGCHLD coalesces: one delivery may stand for many children, so loop until nothing is left.
  for (;;) {
    int st = 0;
    const pid_t p = ::waitpid(-1, &st, WNOHANG);
    if (p == 0) return;
    if (p < 0) {
      if (errno == EINTR) continue;
      return;  // ECHILD: no children at all
    }
    ReapCallback cb;
    {
      std::lock_guard lk(state().mu);
      auto it = state().waiters.find(p);
      if (it != state().waiters.end()) {
        cb = std::move(it->second);
        state().waiters.erase(it);
      }
    }
    const ExitStatus status = decode_wait_status(st);
    if (cb) {
      try {
        cb(status);
      } catch (const std::exception& e) {
        spdlog::error("child reaper: exit callback for pid {} threw: {}", p, e.what());
      } catch (...) {
        spdlog::error("child reaper: exit callback for pid {} threw", p);
      }
    } else {
      spdlog::debug("child reaper: reaped orphan pid {} ({} {})", p,
                    status.signaled ? "signal" : "exit code",
                    status.signaled ? status.signal : status.code);
    }
  }
}

void arm(boost::asio::signal_set* signals) {
  signals->async_wait([signals](const boost::system::error_code& ec, int) {
    if (ec == boost::asio::error::operation_aborted) return;
    reap_all();
    arm(signals);
  });
}

}  // namespace

ExitStatus decode_wait_status(int wait_status) {
  ExitStatus s;
  if (WIFSIGNALED(wait_status)) {
    s.signaled = true;
    s.signal = WTERMSIG(wait_status);
  } else if (WIFEXITED(wait_status)) {
    s.code = WEXITSTATUS(wait_status);
  } else {
    s.code = -1;
  }
  return s;
}

ReaperLock::ReaperLock() : lock_(state().mu), installed_(state().installed) {}

void ReaperLock::register_pid(pid_t pid, ReapCallback callback) {
  state().waiters[pid] = std::move(callback);
}

bool reaper_installed() {
  std::lock_guard lk(state().mu);
  return state().installed;
}

void reaper_unregister(pid_t pid) {
  std::lock_guard lk(state().mu);
  state().waiters.erase(pid);
}

std::vector<pid_t> reaper_registered_pids() {
  std::lock_guard lk(state().mu);
  std::vector<pid_t> out;
  out.reserve(state().waiters.size());
  for (const auto& [pid, cb] : state().waiters) out.push_back(pid);
  return out;
}

}  // namespace detail

void install_reaper(boost::asio::any_io_executor io) {
  auto& s = detail::state();
  boost::asio::signal_set* signals = nullptr;
  {
    std::lock_guard lk(s.mu);
    if (s.installed) {
      spdlog::warn("child reaper: install_reaper called twice; keeping the first one");
      return;
    }
    if (::prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0) {
      spdlog::warn("child reaper: PR_SET_CHILD_SUBREAPER failed: {}", std::strerror(errno));
    }
    signals = new boost::asio::signal_set(io);
    boost::system::error_code ec;
    signals->add(SIGCHLD, ec);
    if (ec) {
      spdlog::error("child reaper: cannot handle SIGCHLD: {}", ec.message());
      delete signals;
      return;
    }
    s.signals = signals;
    s.installed = true;
  }
  detail::arm(signals);
  // Children that ended before the handler existed sent their SIGCHLD to nobody.
  boost::asio::post(io, [] { detail::reap_all(); });
}

}  // namespace pa::agent
