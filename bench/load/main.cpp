// pocket-agent-bench: a load generator that speaks only the public protocol (docs/protocol.md).
//   pocket-agent-bench --url wss://127.0.0.1:8443/ws --token T --insecure --project-dir /tmp/p
//       [--server-pid PID] [--json] [--resume] [--threads N] idle fanout rpc history churn
// fanout across two nodes of a cluster (issue 20; bench/cluster-fanout.sh):
//   pocket-agent-bench --url <node B> --subscriber-url <node A> --watch-pid redis=PID ... fanout
#include <CLI/CLI.hpp>
#include <algorithm>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <charconv>
#include <cstdlib>
#include <iostream>
#include <thread>

#include "scenarios.hpp"

using namespace pa::bench;

int main(int argc, char** argv) {
  CLI::App app{"pocket-agent-bench: load scenarios against a Pocket Agent Server"};
  std::string url = "wss://127.0.0.1:8443/ws";
  std::string token;
  bool insecure = false;
  bool json_out = false;
  double timeout = 600;
  std::vector<std::string> scenarios;
  Options o;
  app.add_option("--url", url, "ws:// or wss:// URL of the WebSocket endpoint")
      ->capture_default_str();
  app.add_option("--token", token, "Bearer token (default: $PA_AUTH_TOKEN)");
  app.add_flag("--insecure", insecure, "Do not verify the server certificate (self-signed)");
  app.add_option("--project-dir", o.project_dir,
                 "Directory on the server's host in which projects are created (fanout, rpc, "
                 "history, churn)");
  app.add_option("--server-pid", o.server_pid,
                 "Server process id: RSS and CPU come from /proc/<pid> instead of health");
  bool resume = false;
  app.add_flag("--resume", resume,
               "TLS: every connection resumes the first one's session (abbreviated handshakes)");
  std::size_t threads = std::max(1U, std::thread::hardware_concurrency());
  app.add_option("--threads", threads,
                 "Threads (one io_context each) the connections are spread over (default: the "
                 "number of cores)")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_flag("--json", json_out, "One JSON object per scenario instead of a table");
  app.add_option("--timeout", timeout, "Give up after this many seconds")->capture_default_str();
  app.add_option("--concurrency", o.concurrency, "Connection attempts in flight")
      ->capture_default_str();
  app.add_option("--connections", o.idle_connections, "idle: connections to open")
      ->capture_default_str();
  app.add_option("--idle-seconds", o.idle_seconds, "idle: CPU sampling window")
      ->capture_default_str();
  app.add_option("--subscribers", o.subscribers, "fanout: subscribers")->capture_default_str();
  app.add_option("--lines", o.lines, "fanout: lines the fake CLI prints")->capture_default_str();
  app.add_option("--line-bytes", o.line_bytes, "fanout: bytes of text per line")
      ->capture_default_str();
  app.add_option("--line-rate", o.line_rate, "fanout: lines/s (0 = as fast as possible)")
      ->capture_default_str();
  std::string subscriber_url;
  app.add_option("--subscriber-url", subscriber_url,
                 "fanout: the subscribers connect here instead of --url (another node of a "
                 "cluster; the driver creates the project and runs the flood on --url's node)");
  std::string subscriber_token;
  app.add_option("--subscriber-token", subscriber_token,
                 "fanout: bearer token for --subscriber-url (default: --token)");
  std::vector<std::string> watch_pids;
  app.add_option("--watch-pid", watch_pids,
                 "fanout: NAME=PID, repeatable: the CPU seconds of that process over the flood "
                 "are reported as cpu_seconds.NAME");
  app.add_flag("--keep-project", o.keep_project,
               "fanout: do not delete the project at the end; its id is reported as project_id");
  app.add_option("--rpc-connections", o.rpc_connections, "rpc: connections")->capture_default_str();
  app.add_option("--rpc-rate", o.rpc_rate, "rpc: requests/s over all connections")
      ->capture_default_str();
  app.add_option("--rpc-seconds", o.rpc_seconds, "rpc: duration")->capture_default_str();
  app.add_option("--history-entries", o.history_entries, "history: entries to build")
      ->capture_default_str();
  app.add_option("--history-bytes", o.history_bytes, "history: bytes of text per entry")
      ->capture_default_str();
  app.add_option("--history-repeats", o.history_repeats, "history: requests per measured page")
      ->capture_default_str();
  app.add_option("--churn-workers", o.churn_workers, "churn: parallel workers")
      ->capture_default_str();
  app.add_option("--churn-seconds", o.churn_seconds, "churn: duration")->capture_default_str();
  app.add_option("scenarios", scenarios,
                 "idle, fanout, rpc, history, churn (in this order if none)");
  CLI11_PARSE(app, argc, argv);

  if (token.empty()) {
    if (const char* env = std::getenv("PA_AUTH_TOKEN")) token = env;
  }
  if (scenarios.empty()) scenarios = {"idle", "fanout", "rpc", "history", "churn"};
  for (const auto& spec : watch_pids) {
    const auto eq = spec.find('=');
    pid_t pid = 0;
    const char* end = spec.data() + spec.size();
    if (eq == 0 || eq == std::string::npos ||
        std::from_chars(spec.data() + eq + 1, end, pid).ptr != end || pid <= 0) {
      std::cerr << "pocket-agent-bench: --watch-pid wants NAME=PID, got '" << spec << "'\n";
      return 2;
    }
    o.watch_pids[spec.substr(0, eq)] = pid;
  }
  const auto fd_limit = raise_fd_limit();
  if (!json_out) std::cout << "file descriptor limit: " << fd_limit << "\n";

  Pool pool(threads);
  auto& io = pool.main();
  int status = 0;
  try {
    o.target = Target::parse(url, token, insecure);
    o.target.resume = resume && o.target.tls;
    o.target.resolve(io);
    if (!subscriber_url.empty()) {
      o.subscriber_target = Target::parse(
          subscriber_url, subscriber_token.empty() ? token : subscriber_token, insecure);
      o.subscriber_target->resume = resume && o.subscriber_target->tls;
      o.subscriber_target->resolve(io);
    }
  } catch (const std::exception& e) {
    std::cerr << "pocket-agent-bench: " << e.what() << "\n";
    return 2;
  }
  boost::asio::steady_timer watchdog(
      io, std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(timeout)));
  watchdog.async_wait([](boost::system::error_code ec) {
    if (ec) return;
    std::cerr << "pocket-agent-bench: --timeout reached\n";
    std::_Exit(3);
  });
  boost::asio::co_spawn(
      io,
      [&]() -> boost::asio::awaitable<void> {
        for (const auto& name : scenarios) {
          try {
            Result r;
            if (name == "idle") {
              r = co_await run_idle(pool, o);
            } else if (name == "fanout") {
              r = co_await run_fanout(pool, o);
            } else if (name == "rpc") {
              r = co_await run_rpc(pool, o);
            } else if (name == "history") {
              r = co_await run_history(pool, o);
            } else if (name == "churn") {
              r = co_await run_churn(pool, o);
            } else {
              throw std::runtime_error("unknown scenario " + name);
            }
            r.fields["threads"] = pool.size();
            print_result(r, json_out);
          } catch (const std::exception& e) {
            std::cerr << "pocket-agent-bench: " << name << ": " << e.what() << "\n";
            status = 1;
          }
        }
        watchdog.cancel();
      },
      [&pool](std::exception_ptr) { pool.stop(); });
  pool.run();
  // A scenario that failed half-way may leave coroutines behind that hold connections of other
  // threads' io_contexts; destroying the io_contexts one after the other could then touch a
  // destroyed one. Nothing is left to clean up on the server's side: exit without destructors.
  std::cout.flush();
  std::cerr.flush();
  std::_Exit(status);
}
