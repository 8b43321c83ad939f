// AgentRun, steering a running CLI: follow-up prompts (kept by FollowUpQueue), agent_interrupt,
// the CLI's control requests, and the run's side of the tool-permission asks (PermissionBroker
// keeps them; the run publishes, writes to the CLI and pauses the clocks). All on the project's
// strand.
#include <spdlog/spdlog.h>

#include "notify/notifier.hpp"
#include "protocol/handshake.hpp"
#include "server/agent_run.hpp"

namespace pa::server {

namespace json = boost::json;

// Who asked or answered: prompt_queued, permission_resolved, execute entries, run endings and
// the audit trail.
json::object client_who(const Connection& connection) {
  json::object by{{"type", "client"}, {"connection_id", connection.id()}};
  const std::string name = connection.client_name();
  by["client_name"] = name.empty() ? json::value(nullptr) : json::value(name);
  // The paired device that acted (null for the master token): every `by` in history names it.
  const auto& who = connection.identity();
  by["device_id"] = who.is_device() ? json::value(who.device_id) : json::value(nullptr);
  by["device_name"] = who.is_device() ? json::value(who.device_name) : json::value(nullptr);
  return by;
}

namespace {
// The deny an ask gets when no subscriber can answer it: it names the setting to change.
std::string no_client_message(std::string_view fallback) {
  const std::string nobody =
      "No client that answers tool permission requests is subscribed to this project (none "
      "declared the \"permissions\" capability in hello with a role that may answer) and no "
      "notification reaches anyone "
      "for them, so Pocket Agent Server denied this tool call";
  if (fallback == "cli") {
    return nobody +
           ". This run started while such a client was subscribed; with "
           "claude.permission_fallback: cli, a run started without one lets the CLI's permission "
           "mode decide";
  }
  return nobody +
         " (claude.permission_fallback: deny). Connect a client that answers them (the web "
         "console does), subscribe a device to permission_request notifications, or set "
         "claude.permission_fallback to cli to let the CLI's permission mode decide";
}
}  // namespace

// ---- follow-up prompts ----

AgentRun::Enqueue AgentRun::enqueue_follow_up(std::string prompt,
                                              std::vector<Attachment> attachments,
                                              const Requester& requester) {
  assert_on_strand();
  if (ended() || winding_down()) return Enqueue::kStopping;
  if (follow_ups_.full()) return Enqueue::kFull;
  const json::object announced = follow_ups_.push(
      std::move(prompt), client_who(*requester.connection), std::move(attachments));
  save_state();  // on disk before the client hears it was queued
  project_->publish("prompt_queued", announced, &requester);
  return Enqueue::kQueued;
}

// After a turn's result: the next follow-up goes in now, or stdin closes and the CLI exits.
void AgentRun::on_turn_end() {
  // An ask cannot outlive its turn; the CLI cancels its own, this catches a CLI that did not.
  permissions_.cancel_all("run_ended");
  if (start_next_follow_up()) return;
  if (follow_ups_started_ > 0) {
    context_.notifier.raise(queue_drained_event(project_->snapshot(), follow_ups_started_,
                                                result_is_error_,
                                                context_.config.notify.console_url));
    follow_ups_started_ = 0;
  }
  send_tagged("close", "");
}

bool AgentRun::start_next_follow_up() {
  if (follow_ups_.empty() || winding_down()) return false;
  if (session_not_found_) {
    publish_dequeued(follow_ups_.cancel_all("the conversation could not be resumed"));
    return false;
  }
  // Another project's run may have spent the server's budget since this turn began.
  if (auto reached = context_.spend.budget_reached(project_->id(), project_->snapshot().spend,
                                                   std::chrono::system_clock::now(),
                                                   "The queued prompt is not sent")) {
    stop_for_budget(*reached, true);
    return false;
  }
  auto next = follow_ups_.take_next();
  ++follow_ups_started_;
  project_->publish("prompt_dequeued", next->dequeued);
  result_seen_ = false;
  result_is_error_ = false;
  prompt_length_ += next->follow_up.prompt.size();
  const auto& follow_up = next->follow_up;
  send_tagged("follow_up:" + follow_up.queue_id,
              follow_up.attachments.empty() ? agent::user_message_line(follow_up.prompt)
                                            : agent::user_message_line(user_content_blocks(
                                                  follow_up.prompt, follow_up.attachments)));
  state_dirty_ = true;
  return true;
}

// prompt_dequeued for each cancelled follow-up, in queue order.
void AgentRun::publish_dequeued(std::vector<json::object> dequeued) {
  for (auto& data : dequeued) project_->publish("prompt_dequeued", std::move(data));
}

json::array AgentRun::queued_prompts() const {
  assert_on_strand();
  return follow_ups_.queued_prompts();
}

// ---- interrupt ----

void AgentRun::interrupt(const Requester* requester) {
  assert_on_strand();
  if (ended()) return;
  if (phase_ == Phase::kQueued || phase_ == Phase::kStopping) {
    // Not running yet (leaves the queue) or already being stopped: same as agent_kill.
    stop(Stop::kKill, requester);
    return;
  }
  if (requester != nullptr && requester->connection) waiters_.push_back(*requester);
  if (phase_ == Phase::kInterrupting) return;
  phase_ = Phase::kInterrupting;
  if (requester != nullptr && requester->connection) stop_requested("interrupt", *requester);
  wind_down("the run was interrupted (agent_interrupt)");
}

void AgentRun::wind_down(std::string_view why) {
  phase_ = Phase::kInterrupting;
  publish_dequeued(follow_ups_.cancel_all(std::string(why)));
  permissions_.cancel_all("interrupted");
  if (!result_seen_ && link_) {
    interrupt_id_ = "pa-interrupt-" + projects::random_uuid();
    send_tagged("interrupt:" + interrupt_id_, agent::interrupt_request_line(interrupt_id_));
  }
  save_state();
}

// ---- spend ----

void AgentRun::count_spend(const agent::CliLine& result, std::uint64_t offset, Apply mode) {
  const spend::ResultUsage usage{result.total_cost_usd.value_or(0), result.input_tokens,
                                 result.output_tokens, result.cache_read_input_tokens,
                                 result.cache_creation_input_tokens};
  const auto now = std::chrono::system_clock::now();
  const std::string session = result.session_id.value_or("");
  // Counted once: a line applied again after a restart finds itself in the ledger.
  if (project_->snapshot().spend.run_id != run_id_ ||
      project_->snapshot().spend.run_offset < offset) {
    project_->update([&](projects::ProjectInfo& p) {
      spend::record_result(p.spend, run_id_, offset, session, usage, now);
    });
  }
  if (ended() || winding_down()) return;  // ending anyway: the end says why
  if (auto reached = context_.spend.budget_reached(project_->id(), project_->snapshot().spend, now,
                                                   "The run is stopped"))
    stop_for_budget(*reached, mode != Apply::kEffectsOnly);
}

bool AgentRun::stopped_for_budget() const {
  const auto* how = stop_request_.if_contains("how");
  return how != nullptr && *how == "budget";
}

void AgentRun::stop_for_budget(const protocol::Error& reached, bool publish) {
  if (ended() || winding_down()) return;
  const auto& details = reached.details;
  stop_request_ =
      json::object{{"how", "budget"},
                   {"by", json::object{{"type", "budget"}, {"budget", details.at("budget")}}}};
  spdlog::warn("project {}: {}", project_->id(), reached.message);
  if (publish) {
    json::object data = details;
    data["message"] = reached.message;
    project_->publish("budget_exceeded", data);
  }
  wind_down("the daily budget " + std::string(details.at("budget").as_string()) +
            " is reached (budget_exceeded)");
}

// ---- permissions ----

// A subscriber that answers permission requests (and whose role may), or a person a notification
// reaches (who can open the console and answer within claude.permission_timeout).
bool AgentRun::someone_answers_permissions() const {
  constexpr std::string_view kAnswer = "permission_response";
  const auto may_answer = [this, kAnswer](const std::string& device_id) {
    if (device_id.empty()) return true;  // the master token's subscription: admin
    const auto device = context_.devices.find(device_id);
    return device && devices::allows(device->role, kAnswer);
  };
  return project_->subscriber_can(protocol::kPermissionsCapability, kAnswer) ||
         context_.notifier.reaches("permission_request", may_answer);
}

void AgentRun::on_control_request(std::string_view line, const agent::ControlRequest& request) {
  if (!request.ask) {
    spdlog::warn("project {}: refusing CLI control request '{}' ({} bytes)", project_->id(),
                 request.subtype, line.size());
    if (!request.request_id.empty()) {
      send_tagged(
          "control:" + request.request_id,
          agent::control_error_line(
              request.request_id, "Pocket Agent Server does not handle control requests of type '" +
                                      request.subtype + "'"));
    }
    return;
  }
  if (!client_permissions_ || winding_down()) {
    permissions_.refuse(*request.ask, client_permissions_
                                          ? "The run is being stopped"
                                          : "Tool permission requests are not enabled");
    return;
  }
  if (!someone_answers_permissions()) {
    permissions_.deny_unasked(*request.ask, "no_client",
                              no_client_message(context_.config.claude.permission_fallback));
    return;
  }
  permissions_.open(line, *request.ask);
  // The caller publishes the permission_request (marked with the line's spool offset).
}

agent::RunOptions AgentRun::options_at_start() const {
  agent::RunOptions options = request_.options;
  if (context_.config.claude.permission_fallback == "cli" &&
      agent::uses_client_permission_prompt(options, context_.config.claude) &&
      !someone_answers_permissions()) {
    spdlog::info(
        "project {}: no subscriber answers permission requests; the run starts without the "
        "permission prompt (claude.permission_fallback: cli)",
        project_->id());
    options.permission_prompt = "none";
  }
  return options;
}

bool AgentRun::answer_permission(const agent::PermissionAnswer& answer,
                                 const Requester& requester) {
  assert_on_strand();
  return permissions_.answer(answer, client_who(*requester.connection), requester);
}

json::array AgentRun::pending_permissions() const {
  assert_on_strand();
  return permissions_.pending_permissions();
}

void AgentRun::send_control(const std::string& cli_request_id, std::string line) {
  send_tagged("control:" + cli_request_id, std::move(line));
}

// An ask was closed (answered, expired or cancelled): kept for late answers, saved, announced.
void AgentRun::permission_closed(const std::string& permission_id, ClosedPermission closed,
                                 const std::vector<Requester>& requesters) {
  project_->remember_closed_permission(permission_id, closed);
  save_state();  // the answer is in flight: a restart sends it again, never asks again
  project_->publish("permission_resolved", closed.resolution, requesters);
  context_.notifier.withdraw("permission:" + permission_id, project_->id());
}

// Time spent waiting for a person does not count against the run's timeouts (which the
// supervisor keeps).
void AgentRun::waiting_for_person(bool waiting) {
  if (!waiting && (ended() || phase_ == Phase::kStopping)) return;
  if (link_) link_->pause_clocks(waiting);
}

}  // namespace pa::server
