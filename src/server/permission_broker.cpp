#include "server/permission_broker.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <utility>

#include "config/config.hpp"
#include "ops/logging.hpp"
#include "projects/project_info.hpp"
#include "protocol/clock.hpp"

namespace pa::server {

namespace json = boost::json;

namespace {
// Who answered, in words, for the deny message the CLI shows.
std::string describe_who(const json::object& by) {
  if (by.at("type") != "client") return "the server";
  std::string out = "connection " + json::serialize(by.at("connection_id"));
  if (const auto& name = by.at("client_name"); name.is_string()) {
    out += " (" + std::string(name.get_string()) + ")";
  }
  return out;
}
}  // namespace

PermissionBroker::PermissionBroker(Host& host, boost::asio::any_io_executor executor,
                                   std::string project_id, std::chrono::seconds timeout)
    : host_(host),
      executor_(std::move(executor)),
      project_id_(std::move(project_id)),
      timeout_(timeout) {}

const json::object& PermissionBroker::open(std::string_view line, const agent::PermissionAsk& ask) {
  const auto now = std::chrono::system_clock::now();
  const auto deadline =
      now + std::chrono::duration_cast<std::chrono::system_clock::duration>(timeout_);
  const std::string permission_id = projects::random_uuid();

  json::object announced{
      {"permission_id", permission_id},   {"tool_name", ask.tool_name},
      {"display_name", ask.display_name}, {"input", ask.input},
      {"tool_use_id", ask.tool_use_id},   {"permission_suggestions", ask.suggestions}};
  for (const auto& [key, value] : ask.context) announced[key] = value;
  announced["requested_at"] = protocol::format_rfc3339(now);
  announced["expires_at"] = protocol::format_rfc3339(deadline);

  if (pending_.empty()) host_.waiting_for_person(true);
  auto [it, inserted] = pending_.emplace(
      permission_id,
      Pending{ask, std::move(announced), std::make_unique<boost::asio::steady_timer>(executor_),
              std::string(line), deadline});
  arm(permission_id);
  host_.permissions_changed();

  json::object fields{{"project_id", project_id_},
                      {"permission_id", permission_id},
                      {"tool_name", ask.tool_name},
                      {"input_sha256", agent::input_sha256(ask.input)}};
  ops::log_event(spdlog::level::info, "Permission requested", fields);
  return it->second.announced;
}

void PermissionBroker::refuse(const agent::PermissionAsk& ask, const std::string& message) {
  host_.send_control(ask.cli_request_id, agent::deny_response_line(ask.cli_request_id, message));
}

void PermissionBroker::deny_unasked(const agent::PermissionAsk& ask, std::string_view reason,
                                    const std::string& message) {
  host_.send_control(ask.cli_request_id, agent::deny_response_line(ask.cli_request_id, message));
  const std::string permission_id = projects::random_uuid();
  host_.permission_closed(
      permission_id,
      ClosedPermission{"resolved", resolution(permission_id, ask, "deny", reason,
                                              json::object{{"type", "server"}}, message)},
      {});
}

const json::object* PermissionBroker::announced_for(const std::string& cli_request_id) const {
  for (const auto& [id, pending] : pending_) {
    if (pending.ask.cli_request_id == cli_request_id) return &pending.announced;
  }
  return nullptr;
}

// The deadline is a wall-clock time: it counts from the original request across restarts.
void PermissionBroker::arm(const std::string& permission_id) {
  auto it = pending_.find(permission_id);
  if (it == pending_.end()) return;
  const auto left = it->second.deadline - std::chrono::system_clock::now();
  it->second.timer->expires_after(std::max<std::chrono::steady_clock::duration>(
      std::chrono::duration_cast<std::chrono::steady_clock::duration>(left),
      std::chrono::steady_clock::duration::zero()));
  it->second.timer->async_wait(
      [this, alive = host_.keep_alive(), permission_id](const boost::system::error_code& e) {
        if (!e) expire(permission_id);
      });
}

void PermissionBroker::arm_all() {
  for (const auto& [id, pending] : pending_) arm(id);
}

void PermissionBroker::cancel_timers() {
  for (auto& [id, pending] : pending_) pending.timer->cancel();
}

bool PermissionBroker::answer(const agent::PermissionAnswer& answer, json::object by,
                              const Requester& requester) {
  auto it = pending_.find(answer.permission_id);
  if (it == pending_.end()) return false;
  const agent::PermissionAsk& ask = it->second.ask;
  std::optional<std::string> message = answer.message;
  if (answer.allow) {
    const json::array updates =
        answer.remember_session ? agent::session_permission_updates(ask) : json::array();
    // updatedInput is required by the CLI; the original input when the client changed nothing.
    const json::value input = answer.updated_input ? json::value(*answer.updated_input) : ask.input;
    host_.send_control(ask.cli_request_id,
                       agent::allow_response_line(ask.cli_request_id, input,
                                                  updates.empty() ? nullptr : &updates));
  } else {
    if (!message) message = "Denied by " + describe_who(by) + " from Pocket Agent Server";
    host_.send_control(ask.cli_request_id, agent::deny_response_line(ask.cli_request_id, *message));
  }
  close(answer.permission_id, answer.allow ? "allow" : "deny", "answered", std::move(by),
        {requester}, message, answer.remember_session);
  return true;
}

void PermissionBroker::expire(const std::string& permission_id) {
  auto it = pending_.find(permission_id);
  if (it == pending_.end()) return;
  const std::string message = "No answer within claude.permission_timeout (" +
                              config::format_duration(timeout_) +
                              "): denied by Pocket Agent Server";
  host_.send_control(it->second.ask.cli_request_id,
                     agent::deny_response_line(it->second.ask.cli_request_id, message));
  close(permission_id, "deny", "timeout", json::object{{"type", "server"}}, {}, message, false);
}

void PermissionBroker::cancel_ask(const std::string& cli_request_id, std::string_view reason) {
  for (const auto& [permission_id, pending] : pending_) {
    if (pending.ask.cli_request_id == cli_request_id) {
      close(permission_id, "cancelled", reason, json::object{{"type", "server"}}, {}, std::nullopt,
            false);
      return;
    }
  }
}

void PermissionBroker::cancel_all(std::string_view reason) {
  while (!pending_.empty()) {
    close(pending_.begin()->first, "cancelled", reason, json::object{{"type", "server"}}, {},
          std::nullopt, false);
  }
}

// Removes a pending ask (the id is a copy: callers pass map keys), logs how it ended and hands
// the permission_resolved data to the host.
void PermissionBroker::close(std::string permission_id, std::string_view decision,
                             std::string_view reason, json::object by,
                             const std::vector<Requester>& requesters,
                             const std::optional<std::string>& message, bool remember) {
  auto it = pending_.find(permission_id);
  if (it == pending_.end()) return;
  Pending pending = std::move(it->second);
  pending_.erase(it);
  pending.timer->cancel();

  json::object resolved =
      resolution(permission_id, pending.ask, decision, reason, std::move(by), message);
  if (remember) resolved["remember"] = "session";

  const char* status = reason == "answered"  ? "resolved"
                       : reason == "timeout" ? "expired"
                                             : "cancelled";
  host_.permission_closed(permission_id, ClosedPermission{status, std::move(resolved)}, requesters);
  if (pending_.empty()) host_.waiting_for_person(false);
}

// The permission_resolved data of an ask, logged as it is made.
json::object PermissionBroker::resolution(const std::string& permission_id,
                                          const agent::PermissionAsk& ask,
                                          std::string_view decision, std::string_view reason,
                                          json::object by,
                                          const std::optional<std::string>& message) const {
  json::object fields{{"project_id", project_id_},  {"permission_id", permission_id},
                      {"decision", decision},       {"reason", reason},
                      {"tool_name", ask.tool_name}, {"by", by}};
  ops::log_event(spdlog::level::info, "Permission resolved", fields);
  json::object resolved{{"permission_id", permission_id},
                        {"decision", decision},
                        {"reason", reason},
                        {"by", std::move(by)},
                        {"at", protocol::now_rfc3339()},
                        {"tool_name", ask.tool_name},
                        {"tool_use_id", ask.tool_use_id},
                        {"input_sha256", agent::input_sha256(ask.input)}};
  if (message) resolved["message"] = *message;
  return resolved;
}

json::array PermissionBroker::pending_permissions() const {
  json::array out;
  for (const auto& [id, pending] : pending_) out.push_back(pending.announced);
  return out;
}

void PermissionBroker::save(RunState& state) const {
  for (const auto& [id, p] : pending_) {
    state.permissions.push_back(RunState::Permission{id, p.control_line, p.announced,
                                                     protocol::format_rfc3339(p.deadline)});
  }
}

// An ask whose line no longer parses is dropped (as it always was); one without a readable
// deadline expires as soon as it is armed.
void PermissionBroker::restore(const RunState& state) {
  for (const auto& p : state.permissions) {
    boost::system::error_code ec;
    const json::value line = json::parse(p.control_line, ec);
    std::optional<agent::ControlRequest> request;
    if (!ec && line.is_object()) request = agent::parse_control_request(line.get_object());
    if (!request || !request->ask) continue;
    Pending pending{*request->ask, p.announced,
                    std::make_unique<boost::asio::steady_timer>(executor_), p.control_line,
                    std::chrono::system_clock::now()};
    if (auto deadline = protocol::parse_rfc3339(p.deadline)) pending.deadline = *deadline;
    pending_.emplace(p.permission_id, std::move(pending));
  }
}

}  // namespace pa::server
