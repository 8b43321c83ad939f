// One execution of the Claude CLI for a project, from queue to exit. Lives on the project's
// strand. The CLI runs under a supervisor process (agent/supervisor.hpp) that outlives the
// server: the run reads the supervisor's spool records in order, appends each to history with
// the record's spool offset in the same entry, and broadcasts it. A restarted server finds the
// run again (run_state.hpp, AgentRun::restore) and goes on from the last offset in history.
//
// The run's code, by file:
//   agent_run.cpp             life cycle (start, stop, exit), records from the supervisor,
//                             history and broadcasts;
//   agent_run_steering.cpp    follow-ups, agent_interrupt, the CLI's control requests, and the
//                             run's side of the permission broker (publishing, clocks);
//   agent_run_supervised.cpp  the supervisor link, tagged writes, run.json, storage holds,
//                             restart (reattach, lost, detach);
//   follow_up_queue.hpp       the queued follow-up prompts (FollowUpQueue);
//   permission_broker.hpp     the tool-permission asks waiting for a person, with their
//                             deadlines (PermissionBroker).
//
// Stopping (agent_kill, timeouts, shutdown) is the supervisor's: the CLI's `interrupt` control
// request first, then after timeouts.kill_grace SIGTERM to its group, then after
// timeouts.term_grace SIGKILL to every descendant. timeouts.execution and execution_idle are
// enforced by the supervisor too, so a run never outlives them while the server is down.
//
// Steering: follow-up prompts queued by clients are written to the CLI's stdin one at a time,
// each after the previous turn's result (a user line written mid-turn would be folded into that
// turn); stdin is closed after the last one. `agent_interrupt` ends the current turn with the
// interrupt request alone. Tool-permission asks of the CLI become permission_request
// broadcasts; the first client answer (or the timeout) is sent back. While an ask waits for a
// person, the run's wall-clock and idle timeouts are paused.
//
// Every write to the CLI that must happen once (a follow-up, an answer, the interrupt, closing
// stdin) carries a tag: it is kept in run.json until the spool confirms it (an `i` record), is
// sent again after a restart, and the supervisor carries each tag out once.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "agent/child_process.hpp"
#include "agent/permissions.hpp"
#include "agent/run_options.hpp"
#include "agent/supervisor.hpp"
#include "config/config.hpp"
#include "devices/device_store.hpp"
#include "ops/metrics.hpp"
#include "projects/path_policy.hpp"
#include "server/attachment_store.hpp"
#include "server/follow_up_queue.hpp"
#include "server/notify_events.hpp"
#include "server/permission_broker.hpp"
#include "server/project.hpp"
#include "server/run_state.hpp"
#include "server/scheduler.hpp"
#include "server/server_spend.hpp"

namespace pa::notify {
class Notifier;
}

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
  std::string self_exe;                 // this binary, started again as each run's supervisor
  std::string runs_dir;                 // <data_dir>/runs: one directory per active run
  notify::Notifier& notifier;           // tells people who are not looking (issue 17)
  const devices::DeviceStore& devices;  // a device's role: who may answer a permission request
  AttachmentStore& attachments;  // a queued run's files, read back after a restart (issue 19)
  ServerSpend& spend;            // the day's spend and the daily budgets (issue 19)
};

struct ExecuteRequest {
  std::string prompt;
  agent::RunOptions options;
  Requester requester;
  boost::json::object options_json;     // as the client sent it: a queued run keeps it on disk
  std::vector<Attachment> attachments;  // sent to the CLI before the prompt's text
};

// A scheduler ticket that starts `run` on its project's strand (or moves it in the queue).
Scheduler::Ticket make_ticket(const std::shared_ptr<Project>& project,
                              const std::shared_ptr<class AgentRun>& run);

// Who asked or answered, as broadcasts and history name a client: {"type": "client",
// "connection_id", "client_name", "device_id", "device_name"} (client_name null when the client
// gave none; device_id and device_name null for the master token).
boost::json::object client_who(const Connection& connection);

class AgentRun : public std::enable_shared_from_this<AgentRun>, private PermissionBroker::Host {
 public:
  // kForce (a second shutdown signal) skips the graces: SIGKILL to the whole tree at once.
  enum class Stop { kNone, kKill, kTimeout, kIdleTimeout, kShutdown, kForce };

  static std::string_view stop_name(Stop stop);
  static Stop stop_from_name(std::string_view name);

  AgentRun(std::shared_ptr<Project> project, RunContext& context, ExecuteRequest request);

  // A run found on disk at start-up (the server restarted while it went on). The project is
  // marked EXECUTING at once; reattach() (strand) then takes it over, or reports it lost.
  static std::shared_ptr<AgentRun> restore(std::shared_ptr<Project> project, RunContext& context,
                                           RunState state);
  // A run that was waiting for a slot (QUEUED) at the restart: the same execute, to be admitted
  // again in its original order. nullptr (with `error`) when its options are no longer valid.
  static std::shared_ptr<AgentRun> restore_queued(std::shared_ptr<Project> project,
                                                  RunContext& context, RunState state,
                                                  protocol::Error& error);
  std::uint64_t queued_order() const { return queued_order_; }
  // (strand; or at start-up, before the project is shared)
  void reattach();
  // Start-up, before the project is shared: true when this run's end is already in history
  // (then its leftovers are cleaned up and it must not be restored).
  bool ended_in_history();
  // strand, shutdown.runs = detach: stop reading, save the state, leave the run to the next
  // server.
  void detach();

  // strand: the scheduler admitted the run (now or from the queue).
  void start();
  // strand: the run is queued at `position` (1-based).
  void set_queued(std::size_t position, const Requester* requester);
  // strand: still waiting for a slot.
  bool queued() const { return phase_ == Phase::kQueued; }
  // strand: stop the run (or cancel it while queued). `requester` gets the final IDLE state.
  void stop(Stop reason, const Requester* requester);
  // strand: end the current turn through the CLI's interrupt request, without signals; queued
  // follow-ups and pending permission requests are cancelled. `requester` gets the final IDLE.
  void interrupt(const Requester* requester);

  // strand: execute with mode "queue" while this run is active.
  using Enqueue = FollowUpQueue::Enqueue;
  static constexpr std::size_t kMaxFollowUps = FollowUpQueue::kMaxFollowUps;
  Enqueue enqueue_follow_up(std::string prompt, std::vector<Attachment> attachments,
                            const Requester& requester);

  // strand: a client's permission_response; false when `permission_id` is not pending here.
  bool answer_permission(const agent::PermissionAnswer& answer, const Requester& requester);
  // strand: what project_joined lists.
  boost::json::array pending_permissions() const;
  boost::json::array queued_prompts() const;
  // strand: the stop a client asked for while it is still under way ({"how", "by"}, as in
  // run_stopping), or {} when none: project_joined shows a late joiner "Stopping…" too.
  boost::json::object pending_stop() const;

 private:
  // Where the run is in its life. Only one holds at a time; stop_ says why a run is kStopping.
  enum class Phase {
    kQueued,        // waiting for a slot: no supervisor yet
    kRunning,       // started: takes follow-ups, asks go to clients
    kInterrupting,  // agent_interrupt: the turn ends; no follow-ups, asks are refused
    kStopping,      // agent_kill, a timeout, shutdown, storage (stop_ says which)
    kFinished,      // ended and IDLE published (also a queued run that was cancelled)
    kDetached,      // left to the next server (shutdown.runs = detach)
  };
  bool ended() const { return phase_ == Phase::kFinished || phase_ == Phase::kDetached; }
  // Interrupting or stopping: the run takes no more follow-ups and puts no asks to anyone.
  bool winding_down() const { return phase_ == Phase::kInterrupting || phase_ == Phase::kStopping; }
  void assert_on_strand() const;

  // Records from the supervisor (false: not applied, e.g. history cannot be written; the link
  // holds and the same record comes again).
  bool on_record(const agent::SpoolRecord& record);
  // kPublishOnly: the record's effects were applied before (a restart, a failed append);
  // kEffectsOnly: the record is in history already but its effects were not saved.
  enum class Apply { kFull, kPublishOnly, kEffectsOnly };
  bool apply_record(const agent::SpoolRecord& record, Apply mode);
  void on_notice(std::string_view payload);
  void on_disconnect(std::error_code ec);
  bool attach_link(std::uint64_t offset);
  void apply_remaining_spool_and_end();
  bool hold_for_storage();
  std::uint64_t applied_offset_in_history(bool& final) const;
  void on_input_confirmed(std::string_view payload);
  void on_supervisor_stop(std::string_view payload);
  bool on_exit_record(std::string_view payload);
  void on_lost();
  // A write that must reach the CLI once.
  void send_tagged(std::string tag, std::string data);
  void save_state();
  RunState make_state() const;
  std::string trailer(std::uint64_t offset, bool final = false) const;
  void cleanup_run_dir();
  bool make_run_dir(std::string& error);

  void on_turn_end();
  bool start_next_follow_up();
  // Ends the current turn through the CLI's interrupt request (when one is running) and takes
  // no more follow-ups: `why` is what the cancelled ones are told.
  void wind_down(std::string_view why);
  // Spend (issue 19): counts a result line into the project's ledger, then stops the run if a
  // daily budget is reached.
  void count_spend(const agent::CliLine& result, std::uint64_t offset, Apply mode);
  // A daily budget is reached: `budget_exceeded` is published (history and broadcast; not in
  // kEffectsOnly) and the run winds down; its end says reason "budget_exceeded".
  void stop_for_budget(const protocol::Error& reached, bool publish);
  bool stopped_for_budget() const;
  void publish_dequeued(std::vector<boost::json::object> dequeued);
  void on_control_request(std::string_view line, const agent::ControlRequest& request);
  // The options the CLI starts with: the request's, without the permission prompt when
  // claude.permission_fallback is "cli" and no subscriber answers permission requests.
  agent::RunOptions options_at_start() const;
  bool someone_answers_permissions() const;

  // PermissionBroker::Host
  void send_control(const std::string& cli_request_id, std::string line) override;
  void permission_closed(const std::string& permission_id, ClosedPermission closed,
                         const std::vector<Requester>& requesters) override;
  void permissions_changed() override { state_dirty_ = true; }
  void waiting_for_person(bool waiting) override;
  std::shared_ptr<void> keep_alive() override { return shared_from_this(); }

  bool on_line(const std::string& line, std::uint64_t offset, Apply mode);
  bool on_line_too_long(std::string_view payload, std::uint64_t offset, Apply mode);
  void on_exit(agent::ExitStatus status, std::string stderr_tail);
  void finish_idle(bool marked = false);
  // A client asked to stop the run ("interrupt" or "kill"): remembered for ending() and
  // announced at once (run_stopping), so every client can show "Stopping…".
  void stop_requested(std::string_view how, const Requester& requester);
  // How the run ended, for the final project_state: {"reason", "by"?} (see docs/protocol.md).
  boost::json::object ending() const;
  // project_state data: the project, and who started the run while it is QUEUED/EXECUTING.
  boost::json::object state_data(const projects::ProjectInfo& info) const;
  void fail(protocol::ErrorCode code, std::string message, boost::json::object details);
  void abandon_start(std::string_view reason);

  std::shared_ptr<Project> project_;
  RunContext& context_;
  ExecuteRequest request_;
  std::shared_ptr<agent::SupervisorLink> link_;
  std::string run_id_;
  agent::RunPaths paths_;
  pid_t supervisor_pid_ = -1;
  unsigned long long supervisor_start_ = 0;
  pid_t cli_pid_ = -1;
  std::string started_at_text_;
  std::uint64_t first_seq_ = 0;
  std::uint64_t applied_offset_ = 0;              // the last record applied (history and state)
  std::uint64_t effects_through_ = 0;             // records up to here changed the state already
  std::map<std::string, std::string> in_flight_;  // tagged writes not confirmed by the spool
  boost::asio::steady_timer retry_timer_;         // history append retries, reconnects
  std::chrono::milliseconds retry_delay_{100};
  std::optional<std::chrono::steady_clock::time_point> held_since_;
  bool state_dirty_ = false;  // run.json is behind
  std::chrono::steady_clock::time_point started_at_;
  std::uint64_t queued_order_ = 0;  // when it was queued (ns since the epoch): restart order
  std::vector<Requester> waiters_;  // get the final IDLE with their request_id
  PermissionBroker permissions_;    // the asks waiting for a person
  FollowUpQueue follow_ups_;
  std::string mcp_path_;
  std::optional<std::string> resumed_session_;  // the id passed to --resume, if any
  std::string interrupt_id_;
  std::string correlation_id_;        // the execute's request_id, for logs
  boost::json::object by_;            // who sent the execute (client_who), {} when unknown
  boost::json::object stop_request_;  // {"how", "by"}: the last stop a client asked for
  bool failed_ = false;               // an error was published for this run
  bool lost_ = false;                 // its supervisor was gone at a server start
  Phase phase_ = Phase::kQueued;
  Stop stop_ = Stop::kNone;  // why it is (or was) stopping; kNone while not
  bool result_seen_ = false;
  bool result_is_error_ = false;
  bool session_not_found_ = false;
  bool client_permissions_ = false;  // --permission-prompt-tool=stdio
  std::size_t prompt_length_ = 0;
  std::size_t response_bytes_ = 0;
  std::size_t lines_ = 0;
  RunSummary summary_;                  // for the notification of the run's end
  std::size_t follow_ups_started_ = 0;  // queued prompts sent to the CLI, for queue_drained
};

}  // namespace pa::server
