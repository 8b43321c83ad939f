// AgentRun, steering a running CLI: follow-up prompts, agent_interrupt and tool-permission
// requests answered by clients. All on the project's strand.
#include <spdlog/spdlog.h>

#include <boost/json/serialize.hpp>

#include "ops/logging.hpp"
#include "protocol/clock.hpp"
#include "server/agent_run.hpp"

namespace pa::server {

namespace json = boost::json;

namespace {
// Who answered, for permission_resolved and the audit trail.
json::object client_who(const Connection& connection) {
  json::object by{{"type", "client"}, {"connection_id", connection.id()}};
  by["client_name"] = connection.client_name().empty() ? json::value(nullptr)
                                                       : json::value(connection.client_name());
  return by;
}

std::string describe_who(const json::object& by) {
  if (by.at("type") != "client") return "the server";
  std::string out = "connection " + json::serialize(by.at("connection_id"));
  if (const auto& name = by.at("client_name"); name.is_string()) {
    out += " (" + std::string(name.get_string()) + ")";
  }
  return out;
}

}  // namespace

// ---- follow-up prompts ----

AgentRun::Enqueue AgentRun::enqueue_follow_up(std::string prompt, const Requester& requester) {
  if (finished_ || stop_ != Stop::kNone || interrupting_) return Enqueue::kStopping;
  if (follow_ups_.size() >= kMaxFollowUps) return Enqueue::kFull;
  FollowUp follow_up;
  follow_up.queue_id = projects::random_uuid();
  follow_up.announced = json::object{{"queue_id", follow_up.queue_id},
                                     {"prompt", prompt},
                                     {"position", follow_ups_.size() + 1},
                                     {"by", client_who(*requester.connection)}};
  follow_up.prompt = std::move(prompt);
  follow_ups_.push_back(follow_up);
  save_state();  // on disk before the client hears it was queued
  project_->publish("prompt_queued", follow_up.announced, &requester);
  return Enqueue::kQueued;
}

// After a turn's result: the next follow-up goes in now, or stdin closes and the CLI exits.
void AgentRun::on_turn_end() {
  // An ask cannot outlive its turn; the CLI cancels its own, this catches a CLI that did not.
  cancel_permissions("run_ended");
  if (!start_next_follow_up()) send_tagged("close", "");
}

bool AgentRun::start_next_follow_up() {
  if (follow_ups_.empty() || stop_ != Stop::kNone || interrupting_) return false;
  if (session_not_found_) {
    cancel_follow_ups("the conversation could not be resumed");
    return false;
  }
  FollowUp next = std::move(follow_ups_.front());
  follow_ups_.pop_front();
  project_->publish("prompt_dequeued", json::object{{"queue_id", next.queue_id},
                                                    {"reason", "started"},
                                                    {"remaining", follow_ups_.size()}});
  result_seen_ = false;
  result_is_error_ = false;
  prompt_length_ += next.prompt.size();
  send_tagged("follow_up:" + next.queue_id, agent::user_message_line(next.prompt));
  state_dirty_ = true;
  return true;
}

void AgentRun::cancel_follow_ups(const std::string& message) {
  while (!follow_ups_.empty()) {
    const std::string queue_id = std::move(follow_ups_.front().queue_id);
    follow_ups_.pop_front();
    project_->publish("prompt_dequeued", json::object{{"queue_id", queue_id},
                                                      {"reason", "cancelled"},
                                                      {"message", message},
                                                      {"remaining", follow_ups_.size()}});
  }
}

json::array AgentRun::queued_prompts() const {
  json::array out;
  std::size_t position = 0;
  for (const auto& follow_up : follow_ups_) {
    json::object item = follow_up.announced;
    item["position"] = ++position;
    out.push_back(std::move(item));
  }
  return out;
}

// ---- interrupt ----

void AgentRun::interrupt(const Requester* requester) {
  if (finished_) return;
  if (!started_ || stop_ != Stop::kNone) {
    // Not running yet (leaves the queue) or already being stopped: same as agent_kill.
    stop(Stop::kKill, requester);
    return;
  }
  if (requester != nullptr && requester->connection) waiters_.push_back(*requester);
  if (interrupting_) return;
  interrupting_ = true;
  cancel_follow_ups("the run was interrupted (agent_interrupt)");
  cancel_permissions("interrupted");
  if (!result_seen_ && link_) {
    interrupt_id_ = "pa-interrupt-" + projects::random_uuid();
    send_tagged("interrupt:" + interrupt_id_, agent::interrupt_request_line(interrupt_id_));
  }
  save_state();
}

// ---- permissions ----

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
  const agent::PermissionAsk& ask = *request.ask;
  if (!client_permissions_ || stop_ != Stop::kNone || interrupting_) {
    send_tagged(
        "control:" + ask.cli_request_id,
        agent::deny_response_line(
            ask.cli_request_id, client_permissions_ ? "The run is being stopped"
                                                    : "Tool permission requests are not enabled"));
    return;
  }
  const auto timeout = context_.config.claude.permission_timeout;
  const auto now = std::chrono::system_clock::now();
  const std::string permission_id = projects::random_uuid();

  json::object announced{
      {"permission_id", permission_id},   {"tool_name", ask.tool_name},
      {"display_name", ask.display_name}, {"input", ask.input},
      {"tool_use_id", ask.tool_use_id},   {"permission_suggestions", ask.suggestions}};
  for (const auto& [key, value] : ask.context) announced[key] = value;
  announced["requested_at"] = protocol::format_rfc3339(now);
  announced["expires_at"] = protocol::format_rfc3339(
      now + std::chrono::duration_cast<std::chrono::system_clock::duration>(timeout));

  if (permissions_.empty()) pause_clocks();
  PendingPermission pending{
      ask, announced, std::make_unique<boost::asio::steady_timer>(project_->strand()),
      std::string(line),
      now + std::chrono::duration_cast<std::chrono::system_clock::duration>(timeout)};
  permissions_.emplace(permission_id, std::move(pending));
  arm_permission_timer(permission_id);
  state_dirty_ = true;

  json::object fields{{"project_id", project_->id()},
                      {"permission_id", permission_id},
                      {"tool_name", ask.tool_name},
                      {"input_sha256", agent::input_sha256(ask.input)}};
  ops::log_event(spdlog::level::info, "Permission requested", fields);
  // The caller publishes the permission_request (marked with the line's spool offset).
}

// The deadline is a wall-clock time: it counts from the original request across restarts.
void AgentRun::arm_permission_timer(const std::string& permission_id) {
  auto it = permissions_.find(permission_id);
  if (it == permissions_.end()) return;
  const auto left = it->second.deadline - std::chrono::system_clock::now();
  it->second.timer->expires_after(std::max<std::chrono::steady_clock::duration>(
      std::chrono::duration_cast<std::chrono::steady_clock::duration>(left),
      std::chrono::steady_clock::duration::zero()));
  it->second.timer->async_wait(
      [self = shared_from_this(), permission_id](const boost::system::error_code& e) {
        if (!e) self->expire_permission(permission_id);
      });
}

bool AgentRun::answer_permission(const agent::PermissionAnswer& answer,
                                 const Requester& requester) {
  auto it = permissions_.find(answer.permission_id);
  if (it == permissions_.end()) return false;
  const agent::PermissionAsk& ask = it->second.ask;
  json::object by = client_who(*requester.connection);
  std::optional<std::string> message = answer.message;
  if (answer.allow) {
    const json::array updates =
        answer.remember_session ? agent::session_permission_updates(ask) : json::array();
    // updatedInput is required by the CLI; the original input when the client changed nothing.
    const json::value input = answer.updated_input ? json::value(*answer.updated_input) : ask.input;
    send_tagged("control:" + ask.cli_request_id,
                agent::allow_response_line(ask.cli_request_id, input,
                                           updates.empty() ? nullptr : &updates));
  } else {
    if (!message) message = "Denied by " + describe_who(by) + " from Pocket Agent Server";
    send_tagged("control:" + ask.cli_request_id,
                agent::deny_response_line(ask.cli_request_id, *message));
  }
  close_permission(answer.permission_id, answer.allow ? "allow" : "deny", "answered", std::move(by),
                   {requester}, message, answer.remember_session);
  return true;
}

void AgentRun::expire_permission(const std::string& permission_id) {
  auto it = permissions_.find(permission_id);
  if (it == permissions_.end()) return;
  const std::string message = "No answer within claude.permission_timeout (" +
                              config::format_duration(context_.config.claude.permission_timeout) +
                              "): denied by Pocket Agent Server";
  send_tagged("control:" + it->second.ask.cli_request_id,
              agent::deny_response_line(it->second.ask.cli_request_id, message));
  close_permission(permission_id, "deny", "timeout", json::object{{"type", "server"}}, {}, message,
                   false);
}

void AgentRun::on_control_cancel(const std::string& cli_request_id) {
  for (const auto& [permission_id, pending] : permissions_) {
    if (pending.ask.cli_request_id == cli_request_id) {
      close_permission(permission_id, "cancelled", interrupting_ ? "interrupted" : "run_ended",
                       json::object{{"type", "server"}}, {}, std::nullopt, false);
      return;
    }
  }
}

void AgentRun::cancel_permissions(std::string_view reason) {
  while (!permissions_.empty()) {
    close_permission(permissions_.begin()->first, "cancelled", reason,
                     json::object{{"type", "server"}}, {}, std::nullopt, false);
  }
}

// Removes a pending request (the id is a copy: callers pass map keys), records how it ended
// (history, audit log, late answers) and tells every subscriber.
void AgentRun::close_permission(std::string permission_id, std::string_view decision,
                                std::string_view reason, json::object by,
                                const std::vector<Requester>& requesters,
                                const std::optional<std::string>& message, bool remember) {
  auto it = permissions_.find(permission_id);
  if (it == permissions_.end()) return;
  PendingPermission pending = std::move(it->second);
  permissions_.erase(it);
  pending.timer->cancel();

  json::object resolved{{"permission_id", permission_id},
                        {"decision", decision},
                        {"reason", reason},
                        {"by", by},
                        {"at", protocol::now_rfc3339()},
                        {"tool_name", pending.ask.tool_name},
                        {"tool_use_id", pending.ask.tool_use_id},
                        {"input_sha256", agent::input_sha256(pending.ask.input)}};
  if (remember) resolved["remember"] = "session";
  if (message) resolved["message"] = *message;

  json::object fields{{"project_id", project_->id()},
                      {"permission_id", permission_id},
                      {"decision", decision},
                      {"reason", reason},
                      {"tool_name", pending.ask.tool_name},
                      {"by", by}};
  ops::log_event(spdlog::level::info, "Permission resolved", fields);

  const char* status = reason == "answered"  ? "resolved"
                       : reason == "timeout" ? "expired"
                                             : "cancelled";
  project_->remember_closed_permission(permission_id, ClosedPermission{status, resolved});
  save_state();  // the answer is in flight: a restart sends it again, never asks again
  project_->publish("permission_resolved", resolved, requesters);
  if (permissions_.empty()) resume_clocks();
}

json::array AgentRun::pending_permissions() const {
  json::array out;
  for (const auto& [id, pending] : permissions_) out.push_back(pending.announced);
  return out;
}

// Time spent waiting for a person does not count against the run's timeouts (which the
// supervisor keeps).
void AgentRun::pause_clocks() {
  if (link_) link_->pause_clocks(true);
}

void AgentRun::resume_clocks() {
  if (finished_ || stop_ != Stop::kNone) return;
  if (link_) link_->pause_clocks(false);
}

}  // namespace pa::server
