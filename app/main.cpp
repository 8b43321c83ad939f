// pocket-agent-server: start-up and shutdown only; the work happens in src/.
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/signal_set.hpp>
#include <cerrno>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <deque>
#include <filesystem>
#include <functional>
#include <future>
#include <iostream>
#include <limits>
#include <mutex>
#include <thread>
#include <vector>

#include "agent/child_process.hpp"
#include "agent/supervisor.hpp"
#include "cli/commands.hpp"
#include "cli/reindex.hpp"
#include "common/atomic_file.hpp"
#include "common/data_dir_lock.hpp"
#include "config/config.hpp"
#include "history/fd_budget.hpp"
#include "net/descriptor_plan.hpp"
#include "net/listener.hpp"
#include "net/tls.hpp"
#include "net/token_file.hpp"
#include "ops/logging.hpp"
#include "server/hub.hpp"

namespace asio = boost::asio;

namespace {

constexpr int kExitConfig = 2;

// Many connections need many descriptors: raise the soft limit to the hard limit. Returns the
// soft limit now in force.
std::uint64_t raise_fd_limit() {
  rlimit lim{};
  if (::getrlimit(RLIMIT_NOFILE, &lim) != 0) return std::numeric_limits<std::uint64_t>::max();
  const rlim_t before = lim.rlim_cur;
  if (lim.rlim_cur < lim.rlim_max) {
    lim.rlim_cur = lim.rlim_max;
    if (::setrlimit(RLIMIT_NOFILE, &lim) != 0) lim.rlim_cur = before;
  }
  spdlog::info("open file limit: {} (was {})", lim.rlim_cur, before);
  return lim.rlim_cur == RLIM_INFINITY ? std::numeric_limits<std::uint64_t>::max()
                                       : static_cast<std::uint64_t>(lim.rlim_cur);
}

// limits.max_connections as the open file limit allows (net/descriptor_plan.hpp): lowered, with
// a warning, when the configured value does not fit. Returns the plan.
pa::net::DescriptorPlan fit_connections_to_fd_limit(pa::config::Config& cfg,
                                                    std::uint64_t open_file_limit) {
  pa::net::DescriptorInputs in;
  in.open_file_limit = open_file_limit;
  in.configured_max_connections = cfg.limits.max_connections;
  in.max_concurrent_runs = cfg.execution.max_concurrent;
  // The hub's blocking pool: one thread per core, at least two (server/hub.cpp).
  in.worker_threads = std::max(2u, std::thread::hardware_concurrency());
  in.history_files = pa::history::FdBudget::kDefaultLimit;
  in.listeners = cfg.metrics.enabled && cfg.metrics.port != 0 ? 2 : 1;
  const auto plan = pa::net::plan_descriptors(in);
  if (plan.capped()) {
    spdlog::warn("{}", plan.warning());
    cfg.limits.configured_max_connections = plan.configured_max_connections;
    cfg.limits.open_file_limit = plan.open_file_limit;
    cfg.limits.max_connections = plan.max_connections;
  }
  spdlog::info("{}", plan.describe());
  return plan;
}

// Creates `dir` (and its parents) when missing, the directory itself 0700; logs nothing.
// Returns whether it was created.
bool create_private_dir(const std::string& dir, std::error_code& ec) {
  if (std::filesystem::exists(dir, ec) || ec) return false;
  std::filesystem::create_directories(dir, ec);
  if (ec) return false;
  ::chmod(dir.c_str(), 0700);
  return true;
}

// Creates the data directory 0700. An existing one with looser permissions is reported (its
// files are private: token, metadata, history) and then tightened.
bool prepare_data_dir(const std::string& dir) {
  std::error_code ec;
  if (create_private_dir(dir, ec)) return true;
  if (ec) {
    spdlog::critical("cannot create data directory {}: {}", dir, ec.message());
    return false;
  }
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    spdlog::critical("data directory {} is not a directory", dir);
    return false;
  }
  if ((st.st_mode & 077) != 0) {
    spdlog::warn(
        "data directory {} has permissions {:04o}: other users may read the token and history; "
        "setting 0700",
        dir, st.st_mode & 07777);
    if (::chmod(dir.c_str(), 0700) != 0) {
      spdlog::warn("cannot set data directory {} to 0700: {}", dir, std::strerror(errno));
    }
  }
  if (st.st_uid != ::geteuid()) {
    spdlog::warn("data directory {} belongs to uid {}, not to the server's uid {}", dir, st.st_uid,
                 ::geteuid());
  }
  return true;
}

bool is_loopback(const std::string& host) {
  if (host == "localhost") return true;
  boost::system::error_code ec;
  const auto address = asio::ip::make_address(host, ec);
  return !ec && address.is_loopback();
}

// SIGHUP: re-read the configuration, apply the log settings (reopening a log file) and load the
// TLS certificate and key again for new connections. A bad certificate keeps the old one.
void reload(int argc, char** argv, const pa::config::Config& running, pa::net::Listener& listener) {
  pa::config::Loaded fresh;
  try {
    fresh = pa::config::load(argc, argv, pa::config::process_environment());
  } catch (const std::exception& e) {
    spdlog::error("SIGHUP: configuration not reloaded: {}", e.what());
    pa::ops::reopen_log_file();
    return;
  }
  try {
    pa::ops::setup_logging(fresh.config.logging);
    spdlog::info("SIGHUP: log output reopened, level {}", fresh.config.logging.level);
  } catch (const std::exception& e) {
    spdlog::error("SIGHUP: {}; keeping the current log output", e.what());
  }
  if (running.tls.enabled) {
    try {
      listener.replace_tls(pa::net::make_tls_context(fresh.config.tls));
      spdlog::info("SIGHUP: TLS certificate {} loaded for new connections", fresh.config.tls.cert);
    } catch (const std::exception& e) {
      spdlog::error("SIGHUP: keeping the old TLS certificate: {}", e.what());
    }
  }
}

int run(pa::config::Loaded loaded, int argc, char** argv) {
  auto& cfg = loaded.config;
  pa::ops::setup_logging(cfg.logging);
  for (const auto& warning : loaded.warnings) spdlog::warn("{}", warning);

  if (::geteuid() == 0 && !cfg.allow_root) {
    spdlog::critical(
        "refusing to run as root: the agent would edit files and run commands with root's "
        "rights. Run as an ordinary user (see docs/operations.md), or pass --allow-root");
    return kExitConfig;
  }
  if (::geteuid() == 0) spdlog::warn("running as root (--allow-root): the agent has root's rights");
  // TLS settings are checked before anything is written: a bad certificate leaves no trace.
  std::optional<asio::ssl::context> tls;
  if (cfg.tls.enabled) tls.emplace(pa::net::make_tls_context(cfg.tls));
  if (!prepare_data_dir(cfg.data.dir)) return kExitConfig;
  // One server per data directory, before anything in it is written: two would both append to
  // the same histories with their own seq counters. Held until the process ends.
  std::string lock_error;
  auto data_lock = pa::common::DataDirLock::acquire(cfg.data.dir, lock_error);
  if (!data_lock) {
    pa::ops::log_fatal(lock_error);
    return kExitConfig;
  }
  // What a killed server left half-written in the data directory (a token being generated).
  for (const auto& name : pa::common::remove_atomic_temp_files(cfg.data.dir))
    spdlog::info("removed {}, a temporary file left by an interrupted write",
                 (std::filesystem::path(cfg.data.dir) / name).string());

  if (cfg.auth.enabled && cfg.auth.token.empty()) {
    bool created = false;
    cfg.auth.token = pa::net::load_or_create_token(cfg.data.dir, created);
    spdlog::info("{} the access token in {} (print it with `pocket-agent-server token`)",
                 created ? "generated" : "using", pa::net::token_path(cfg.data.dir).string());
  }
  if (!cfg.auth.enabled)
    spdlog::warn(
        "authentication is OFF (--no-auth): anyone who can reach this port can run the agent");
  if (!cfg.tls.enabled)
    spdlog::warn(
        "TLS is OFF: traffic, including the token, is sent in clear text; use only behind a "
        "TLS-terminating proxy");
  if ((!cfg.tls.enabled || !cfg.auth.enabled) && !is_loopback(cfg.server.host) &&
      !cfg.allow_insecure_remote) {
    spdlog::critical(
        "refusing to listen on {} without {}: bind to 127.0.0.1, enable it, or pass "
        "--allow-insecure-remote",
        cfg.server.host, cfg.tls.enabled ? "authentication" : "TLS");
    return kExitConfig;
  }
  const auto fd_plan = fit_connections_to_fd_limit(cfg, raise_fd_limit());
  // Sockets the listeners may hold that are not connections yet (handshakes, HTTP requests).
  const auto socket_slots = pa::net::SocketSlots::create(static_cast<std::size_t>(
      std::min<std::uint64_t>(fd_plan.max_pending_sockets, std::numeric_limits<int>::max())));

  const unsigned threads = cfg.server.threads != 0
                               ? cfg.server.threads
                               : std::max(1u, std::thread::hardware_concurrency());
  asio::io_context io(static_cast<int>(threads));
  pa::agent::install_reaper(io.get_executor());

  auto hub = std::make_shared<pa::server::Hub>(io, cfg);
  std::vector<std::string> warnings;
  hub->load_projects(warnings);
  hub->load_devices(warnings);
  for (const auto& warning : warnings) spdlog::warn("{}", warning);

  boost::system::error_code address_ec;
  const auto address = asio::ip::make_address(
      cfg.server.host == "localhost" ? std::string("127.0.0.1") : cfg.server.host, address_ec);
  if (address_ec) {
    spdlog::critical("invalid server.host {}: {}", cfg.server.host, address_ec.message());
    return kExitConfig;
  }
  auto listener = std::make_shared<pa::net::Listener>(
      io, hub, std::move(tls), asio::ip::tcp::endpoint(address, cfg.server.port),
      pa::net::Serve::kAll, socket_slots);
  const auto bound = listener->local_endpoint();
  hub->set_listen_port(bound.port());  // device_pair's URL names the port really bound
  listener->start();
  // Optionally, /metrics alone on a loopback port (plain HTTP) for a local Prometheus.
  std::shared_ptr<pa::net::Listener> metrics_listener;
  if (cfg.metrics.enabled && cfg.metrics.port != 0) {
    metrics_listener = std::make_shared<pa::net::Listener>(
        io, hub, std::nullopt,
        asio::ip::tcp::endpoint(asio::ip::address_v4::loopback(), cfg.metrics.port),
        pa::net::Serve::kMetricsOnly, socket_slots);
    metrics_listener->start();
    spdlog::info("metrics on http://127.0.0.1:{}/metrics", cfg.metrics.port);
  }
  hub->start();

  // Signals become events for the main thread, which does the blocking work (shutdown waits,
  // configuration reload) while the I/O threads keep serving.
  std::mutex events_mutex;
  std::condition_variable events_cv;
  std::deque<int> events;
  const auto post_event = [&](int event) {
    {
      std::lock_guard lock(events_mutex);
      events.push_back(event);
    }
    events_cv.notify_one();
  };
  asio::signal_set signals(io, SIGINT, SIGTERM, SIGHUP);
  std::function<void()> wait_signal = [&] {
    signals.async_wait([&](const boost::system::error_code& error, int signal) {
      if (error) return;
      post_event(signal);
      wait_signal();
    });
  };
  wait_signal();
  // Only now, with the signal handlers installed: a SIGHUP right after this line must reload,
  // not end the process (SIGHUP's default action).
  spdlog::info("listening on {}://{}:{}/ws (port {}) with {} I/O threads",
               cfg.tls.enabled ? "wss" : "ws", bound.address().to_string(), bound.port(),
               bound.port(), threads);

  std::vector<std::thread> pool;
  for (unsigned i = 0; i < threads; ++i) pool.emplace_back([&io] { io.run(); });

  constexpr int kShutdownDone = -1;
  std::thread shutdown_thread;
  for (bool done = false; !done;) {
    int event = 0;
    {
      std::unique_lock lock(events_mutex);
      events_cv.wait(lock, [&] { return !events.empty(); });
      event = events.front();
      events.pop_front();
    }
    if (event == SIGHUP) {
      reload(argc, argv, cfg, *listener);
    } else if (event == kShutdownDone) {
      done = true;
    } else if (!shutdown_thread.joinable()) {
      hub->begin_shutdown();  // from here on no run starts (SHUTTING_DOWN)
      spdlog::info("received signal {}: shutting down (send it again to stop runs at once)", event);
      listener->stop();
      if (metrics_listener) metrics_listener->stop();
      shutdown_thread = std::thread([&] {
        hub->shutdown();
        post_event(kShutdownDone);
      });
    } else {
      hub->force_shutdown();
    }
  }
  shutdown_thread.join();
  signals.cancel();
  io.stop();
  for (auto& t : pool) t.join();
  // Nothing may touch the io_context while it is destroyed: stop the blocking pool (it may be
  // reaping a `claude --version` probe) and keep signals pending from here on.
  hub->stop_blocking_pool();
  sigset_t all;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, nullptr);
  spdlog::info("stopped");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  // A run's supervisor is this same binary (agent/supervisor.hpp): nothing of the server runs.
  if (argc >= 2 && std::string_view(argv[1]) == pa::agent::kSuperviseCommand)
    return pa::agent::supervisor_main(argc, argv);
  ::signal(SIGPIPE, SIG_IGN);
  pa::config::Loaded loaded;
  try {
    loaded = pa::config::load(argc, argv, pa::config::process_environment());
  } catch (const pa::config::ConfigError& e) {
    std::cerr << "pocket-agent-server: " << e.what() << "\n";
    return kExitConfig;
  }
  switch (loaded.action) {
    case pa::config::Action::kExit:
      (loaded.exit_code == 0 ? std::cout : std::cerr) << loaded.output;
      return loaded.exit_code;
    case pa::config::Action::kPrintConfig:
      for (const auto& warning : loaded.warnings) std::cerr << "warning: " << warning << "\n";
      std::cout << pa::config::to_yaml(loaded.config);
      return 0;
    case pa::config::Action::kPrintToken: {
      if (!loaded.config.auth.token.empty()) {
        std::cout << loaded.config.auth.token << "\n";
        return 0;
      }
      try {
        bool created = false;
        // Created private, as the server would (it holds the token), without logging: stdout
        // carries the token alone.
        std::error_code ec;
        create_private_dir(loaded.config.data.dir, ec);
        if (ec)
          throw std::filesystem::filesystem_error("cannot create the data directory",
                                                  loaded.config.data.dir, ec);
        std::cout << pa::net::load_or_create_token(loaded.config.data.dir, created) << "\n";
        return 0;
      } catch (const std::exception& e) {
        std::cerr << "pocket-agent-server: " << e.what() << "\n";
        return 1;
      }
    }
    case pa::config::Action::kPair:
    case pa::config::Action::kDeviceList:
    case pa::config::Action::kDeviceRevoke:
    case pa::config::Action::kPrintQr:
      return pa::cli::run_client_command(loaded, std::cout, std::cerr, ::isatty(STDOUT_FILENO));
    case pa::config::Action::kReindex:
      return pa::cli::reindex(loaded.config, std::cout, std::cerr);
    case pa::config::Action::kRun:
      break;
  }
  try {
    return run(std::move(loaded), argc, argv);
  } catch (const std::exception& e) {
    pa::ops::log_fatal(e.what());
    return kExitConfig;
  }
}
