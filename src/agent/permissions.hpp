// The CLI's tool-permission exchange (`--permission-prompt-tool stdio`, CLI-BEHAVIOUR.md §7):
// reading its `control_request can_use_tool` / `control_cancel_request` lines, validating a
// client's `permission_response`, and writing the `control_response` the CLI's schema accepts.
// Pure functions: the run's PermissionBroker (server/permission_broker) owns the state and the
// timers.
#pragma once

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/value.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include "protocol/envelope.hpp"

namespace pa::agent {

// One `can_use_tool` ask, as the CLI wrote it.
struct PermissionAsk {
  std::string cli_request_id;  // echoed in our control_response
  std::string tool_name;
  std::string display_name;  // tool_name when the CLI sent none
  boost::json::value input;  // the tool's input (an object)
  std::string tool_use_id;
  boost::json::array suggestions;  // the CLI's PermissionUpdate[] (may be empty)
  // Optional context the CLI may add, passed to clients as-is: description, decision_reason,
  // decision_reason_type, blocked_path, agent_id.
  boost::json::object context;
};

// A parsed CLI line that is a control_request: can_use_tool (ask), or another subtype the server
// does not serve (only its request_id and subtype, so it can be refused).
struct ControlRequest {
  std::string request_id;
  std::string subtype;
  std::optional<PermissionAsk> ask;  // set for a well-formed can_use_tool
};
std::optional<ControlRequest> parse_control_request(const boost::json::object& line);

// The request_id of a `control_cancel_request` line, if `line` is one.
std::optional<std::string> parse_control_cancel(const boost::json::object& line);

// A client's `permission_response` data, validated.
struct PermissionAnswer {
  std::string permission_id;
  bool allow = false;
  std::optional<std::string> message;
  std::optional<boost::json::object> updated_input;
  bool remember_session = false;
};
inline constexpr std::size_t kMaxPermissionMessageBytes = 4096;
inline constexpr std::size_t kMaxPermissionIdBytes = 64;
std::variant<PermissionAnswer, protocol::Error> parse_permission_response(
    const boost::json::object& data);

// control_response lines for the CLI's stdin (compact JSON + "\n"). The CLI rejects an allow
// without updatedInput and a deny without message (addendum 3), so both are always present.
std::string allow_response_line(std::string_view cli_request_id,
                                const boost::json::value& updated_input,
                                const boost::json::array* updated_permissions);
std::string deny_response_line(std::string_view cli_request_id, std::string_view message);
// The error shape of a control response, for control requests the server does not serve.
std::string control_error_line(std::string_view cli_request_id, std::string_view error);

// The permission updates that make the CLI stop asking for this in the current session: the
// CLI's own suggestions with their destination set to "session" (so nothing is written to the
// user's settings files), or, when it offered none, an allow rule for the whole tool.
boost::json::array session_permission_updates(const PermissionAsk& ask);

// Lower-case hex SHA-256 of the serialized tool input (for the audit trail).
std::string input_sha256(const boost::json::value& input);

}  // namespace pa::agent
