// One execution of the Claude CLI for a project, from queue to exit. Lives on the project's
// strand: CLI lines arrive there in order, are appended to history and broadcast.
//
// Stopping (agent_kill, timeouts, shutdown): the CLI's `interrupt` control request first (it
// answers with a result line and we close stdin), then after timeouts.kill_grace stdin is closed
// and the process group gets SIGTERM, then after timeouts.term_grace every descendant gets
// SIGKILL (tools start their own sessions and would escape a group kill).
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "agent/child_process.hpp"
#include "agent/run_options.hpp"
#include "config/config.hpp"
#include "ops/metrics.hpp"
#include "projects/path_policy.hpp"
#include "server/project.hpp"
#include "server/scheduler.hpp"

namespace pa::server {

// What every run needs from the server.
struct RunContext {
  const config::Config& config;
  boost::asio::any_io_executor io;  // pipes are read on the I/O threads
  Scheduler& scheduler;
  std::vector<std::string> cli_env;  // the CLI's whole environment
  std::string scratch_dir;           // private temp files (mcp configs), mode 0700
  ops::ServerMetrics& metrics;
  const projects::PathPolicy& path_policy;
};

struct ExecuteRequest {
  std::string prompt;
  agent::RunOptions options;
  Requester requester;
};

class AgentRun : public std::enable_shared_from_this<AgentRun> {
 public:
  // kForce (a second shutdown signal) skips the graces: SIGKILL to the whole tree at once.
  enum class Stop { kNone, kKill, kTimeout, kIdleTimeout, kShutdown, kForce };

  AgentRun(std::shared_ptr<Project> project, RunContext& context, ExecuteRequest request);

  // strand: the scheduler admitted the run (now or from the queue).
  void start();
  // strand: the run is queued at `position` (1-based).
  void set_queued(std::size_t position, const Requester* requester);
  bool started() const { return started_; }
  // strand: stop the run (or cancel it while queued). `requester` gets the final IDLE state.
  void stop(Stop reason, const Requester* requester);

 private:
  void on_line(std::string line);
  void on_line_too_long(std::size_t bytes, const std::string& head);
  void on_exit(agent::ExitStatus status);
  void escalate_to_term();
  void escalate_to_kill();
  void arm_idle_timer();
  void finish_idle(const Requester* requester);
  void fail(protocol::ErrorCode code, std::string message, boost::json::object details);
  void abandon_start();

  std::shared_ptr<Project> project_;
  RunContext& context_;
  ExecuteRequest request_;
  std::shared_ptr<agent::ChildProcess> child_;
  boost::asio::steady_timer wall_timer_;
  boost::asio::steady_timer idle_timer_;
  boost::asio::steady_timer grace_timer_;
  std::chrono::steady_clock::time_point started_at_;
  std::optional<Requester> stop_requester_;
  std::string mcp_path_;
  std::string interrupt_id_;
  std::string correlation_id_;  // the execute's request_id, for logs
  Stop stop_ = Stop::kNone;
  bool started_ = false;
  bool result_seen_ = false;
  bool result_is_error_ = false;
  bool session_not_found_ = false;
  bool finished_ = false;
  std::size_t prompt_length_ = 0;
  std::size_t response_bytes_ = 0;
  std::size_t lines_ = 0;
};

}  // namespace pa::server
