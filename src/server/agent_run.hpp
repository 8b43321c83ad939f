// One execution of the Claude CLI for a project, from queue to exit. Lives on the project's
// strand: CLI lines arrive there in order, are appended to history and broadcast.
//
// Stopping (agent_kill, timeouts, shutdown): the CLI's `interrupt` control request first (it
// answers with a result line and we close stdin), then after timeouts.kill_grace stdin is closed
// and the process group gets SIGTERM, then after timeouts.term_grace every descendant gets
// SIGKILL (tools start their own sessions and would escape a group kill).
//
// Steering (agent_run_steering.cpp): follow-up prompts queued by clients are written to the
// CLI's stdin one at a time, each after the previous turn's result (a user line written mid-turn
// would be folded into that turn); stdin is closed after the last one. `agent_interrupt` ends
// the current turn with the interrupt request alone. Tool-permission asks of the CLI become
// permission_request broadcasts; the first client answer (or the timeout) is sent back. While
// an ask waits for a person, the run's wall-clock and idle timeouts are paused.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "agent/child_process.hpp"
#include "agent/permissions.hpp"
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
  // strand: end the current turn through the CLI's interrupt request, without signals; queued
  // follow-ups and pending permission requests are cancelled. `requester` gets the final IDLE.
  void interrupt(const Requester* requester);

  // strand: execute with mode "queue" while this run is active.
  enum class Enqueue { kQueued, kFull, kStopping };
  static constexpr std::size_t kMaxFollowUps = 16;
  Enqueue enqueue_follow_up(std::string prompt, const Requester& requester);

  // strand: a client's permission_response; false when `permission_id` is not pending here.
  bool answer_permission(const agent::PermissionAnswer& answer, const Requester& requester);
  // strand: what project_joined lists.
  boost::json::array pending_permissions() const;
  boost::json::array queued_prompts() const;

 private:
  struct PendingPermission {
    agent::PermissionAsk ask;
    boost::json::object announced;  // the permission_request data
    std::unique_ptr<boost::asio::steady_timer> timer;
  };
  struct FollowUp {
    std::string queue_id;
    std::string prompt;
    boost::json::object announced;  // the prompt_queued data
  };

  void on_turn_end();
  bool start_next_follow_up();
  void cancel_follow_ups(const std::string& message);
  void on_control_request(std::string_view line, const agent::ControlRequest& request);
  void on_control_cancel(const std::string& cli_request_id);
  void close_permission(std::string permission_id, std::string_view decision,
                        std::string_view reason, boost::json::object by,
                        const std::vector<Requester>& requesters,
                        const std::optional<std::string>& message, bool remember);
  void expire_permission(const std::string& permission_id);
  void cancel_permissions(std::string_view reason);
  void arm_wall_timer();
  void pause_clocks();
  void resume_clocks();
  void on_line(std::string line);
  void on_line_too_long(std::size_t bytes, const std::string& head);
  void on_exit(agent::ExitStatus status);
  void escalate_to_term();
  void escalate_to_kill();
  void arm_idle_timer();
  void finish_idle();
  void fail(protocol::ErrorCode code, std::string message, boost::json::object details);
  void abandon_start(std::string_view reason);

  std::shared_ptr<Project> project_;
  RunContext& context_;
  ExecuteRequest request_;
  std::shared_ptr<agent::ChildProcess> child_;
  boost::asio::steady_timer wall_timer_;
  boost::asio::steady_timer idle_timer_;
  boost::asio::steady_timer grace_timer_;
  std::chrono::steady_clock::time_point started_at_;
  std::chrono::steady_clock::time_point wall_deadline_;
  std::chrono::steady_clock::duration wall_left_{};  // while paused
  std::vector<Requester> waiters_;                   // get the final IDLE with their request_id
  std::map<std::string, PendingPermission> permissions_;  // by permission_id
  std::deque<FollowUp> follow_ups_;
  std::string mcp_path_;
  std::optional<std::string> resumed_session_;  // the id passed to --resume, if any
  std::string interrupt_id_;
  std::string correlation_id_;  // the execute's request_id, for logs
  Stop stop_ = Stop::kNone;
  bool started_ = false;
  bool result_seen_ = false;
  bool result_is_error_ = false;
  bool session_not_found_ = false;
  bool finished_ = false;
  bool interrupting_ = false;
  bool client_permissions_ = false;  // --permission-prompt-tool=stdio
  std::size_t prompt_length_ = 0;
  std::size_t response_bytes_ = 0;
  std::size_t lines_ = 0;
};

}  // namespace pa::server
