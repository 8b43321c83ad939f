// The load scenarios of pocket-agent-bench. Each opens its own connections, measures, cleans up
// (closes connections, deletes the project it created) and returns one Result. A scenario runs on
// the pool's main() thread; the connections it measures with are spread over all of the pool's
// threads, each with its own statistics, merged when they are done.
#pragma once

#include <sys/types.h>

#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <map>
#include <optional>
#include <string>

#include "client.hpp"
#include "stats.hpp"

namespace pa::bench {

// rpc: a request sent more than this after its scheduled time counts as a late send
// (late_sends, late_send_share): the generator, not the server, was behind.
inline constexpr std::chrono::microseconds kLateSendThreshold{1000};
// rpc: how long, after the last scheduled send, a connection waits for its outstanding replies;
// those still missing then count as `unanswered`.
inline constexpr std::chrono::seconds kRpcDrainTimeout{10};

struct Options {
  Target target;
  std::string project_dir;       // projects are created in fresh subdirectories of this directory
  pid_t server_pid = 0;          // 0: server figures come from `health`
  std::size_t concurrency = 64;  // connection attempts in flight

  // idle
  std::size_t idle_connections = 1000;
  double idle_seconds = 10;  // CPU sampling window while the connections sit idle

  // fanout
  std::size_t subscribers = 100;
  std::size_t lines = 10000;
  std::size_t line_bytes = 300;
  std::size_t line_rate = 0;  // lines/s from the fake CLI; 0 = as fast as it can
  // Where the subscribers connect, when not to `target` (the driver's server, which creates
  // the project and runs the flood): another node of a cluster (issue 20), which serves them
  // the owner's broadcasts through Redis.
  std::optional<Target> subscriber_target;
  // Processes whose CPU (utime + stime) is reported over the flood, by name (e.g. both nodes
  // of a cluster and redis-server).
  std::map<std::string, pid_t> watch_pids;
  // Leave the project (and what the server keeps of it, e.g. its Redis stream) in place.
  bool keep_project = false;

  // rpc
  std::size_t rpc_connections = 100;
  double rpc_rate = 1000;  // requests/s over all connections
  double rpc_seconds = 10;

  // history
  std::size_t history_entries = 100000;
  std::size_t history_bytes = 100;
  std::size_t history_repeats = 50;

  // churn
  std::size_t churn_workers = 32;
  double churn_seconds = 10;
};

asio::awaitable<Result> run_idle(Pool& pool, const Options& o);
asio::awaitable<Result> run_fanout(Pool& pool, const Options& o);
asio::awaitable<Result> run_rpc(Pool& pool, const Options& o);
asio::awaitable<Result> run_history(Pool& pool, const Options& o);
asio::awaitable<Result> run_churn(Pool& pool, const Options& o);

}  // namespace pa::bench
