// Fuzzes what the server does with a client's WebSocket text frame before any state is touched:
// the envelope parser (protocol::parse_client_message), the per-type `data` checks the handlers
// make with protocol::DataReader, agent::parse_run_options for execute's options, and what those
// produce: the error reply, the CLI argv and stdin line, and the history entry execute records.
#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include "agent/permissions.hpp"
#include "agent/run_options.hpp"
#include "config/config.hpp"
#include "protocol/clock.hpp"
#include "protocol/data_reader.hpp"
#include "protocol/envelope.hpp"
#include "protocol/utf8.hpp"
#include "support.hpp"

namespace {

namespace json = boost::json;
using pa::fuzz::check;
using pa::fuzz::is_json;
using pa::protocol::DataReader;

// Defaults of config::Config; the fuzzer does not vary them.
const pa::config::Config kConfig;

// The error reply the client would get.
void check_error_reply(const pa::protocol::Error& error, const std::optional<std::string>& project,
                       const std::optional<std::string>& request) {
  std::optional<std::string_view> p, r;
  if (project) p = *project;
  if (request) r = *request;
  const std::string text = pa::protocol::serialize_error(error, p, r);
  check(is_json(text), "serialize_error produced invalid JSON");
  check(pa::protocol::is_valid_utf8(text), "error reply is not valid UTF-8");
}

// Every byte of every argument after the fixed ones is one `--flag=value` (or a bare `--flag`).
void check_cli_args(const pa::agent::RunOptions& options) {
  const auto args = pa::agent::build_cli_args(options, kConfig.claude, std::nullopt,
                                              std::optional<std::string>("/tmp/mcp.json"));
  check(args.size() >= 4 && args[0] == "-p", "argv starts with -p and the stream-json flags");
  for (std::size_t i = 1; i < args.size(); ++i) {
    check(args[i].starts_with("--") && args[i].size() > 2, "argv element is not one --flag");
    check(args[i].find('\0') == std::string::npos, "NUL in argv");
  }
}

// handle_execute, then the options check it runs on the blocking pool.
void execute(const pa::protocol::ClientMessage& message, bool allow_dangerous) {
  DataReader reader(message.data);
  reader.allow_only({"prompt", "options", "mode"});
  auto prompt = reader.string("prompt", true, kConfig.limits.prompt_size);
  const json::object* options_json = reader.object("options", false);
  reader.string("mode", false, 16);
  if (!reader.ok())
    return check_error_reply(reader.error(), message.project_id, message.request_id);
  check(prompt.has_value(), "ok() without the required prompt");
  if (prompt->find_first_not_of(" \t\r\n") == std::string::npos) return;

  // The server's path policy with its built-in deny list: no accepted add_dirs entry may be in it.
  static const auto paths = pa::projects::PathPolicy::make({});
  pa::agent::Policy policy;
  policy.allow_dangerous = allow_dangerous;
  policy.max_prompt_bytes = kConfig.limits.prompt_size;
  policy.paths = &paths;
  auto parsed = pa::agent::parse_run_options(options_json, policy);
  if (auto* error = std::get_if<pa::protocol::Error>(&parsed)) {
    if (!allow_dangerous) check(error->code != pa::protocol::ErrorCode::kInternalError, "code");
    return check_error_reply(*error, message.project_id, message.request_id);
  }
  const auto& options = std::get<pa::agent::RunOptions>(parsed);
  if (!allow_dangerous) {
    check(!options.dangerously_skip_permissions, "dangerous option accepted without the policy");
    check(options.permission_mode != "bypassPermissions", "bypassPermissions accepted");
  }
  if (options.mcp_config_json) check(is_json(*options.mcp_config_json), "mcp_config not JSON");
  for (const auto& dir : options.add_dirs) {
    check(!paths.refusal(dir).has_value(), "an add_dirs entry the path policy refuses");
  }
  check_cli_args(options);

  const std::string line = pa::agent::user_message_line(*prompt);
  check(!line.empty() && line.back() == '\n' && line.find('\n') == line.size() - 1,
        "the prompt line must be one line");
  check(is_json(line), "the prompt line is not JSON");

  // What handle_execute records in the project's history.
  json::object recorded_data{{"prompt", *prompt}};
  if (options_json != nullptr) recorded_data["options"] = *options_json;
  const std::string recorded =
      json::serialize(json::object{{"type", "execute"}, {"data", std::move(recorded_data)}});
  pa::fuzz::check_history_round_trip({{pa::history::Direction::kClient, recorded}});
}

void get_messages(const pa::protocol::ClientMessage& message) {
  DataReader reader(message.data);
  reader.allow_only({"since", "after_seq", "limit"});
  const auto since = reader.string("since", false, 64);
  reader.uint("after_seq", false, 0, UINT64_MAX);
  reader.uint("limit", false, 1, kConfig.limits.history_page_max);
  if (!reader.ok())
    return check_error_reply(reader.error(), message.project_id, message.request_id);
  if (since) {
    const auto t = pa::protocol::parse_rfc3339(*since);
    // Within what SystemTime holds (beyond it parse_rfc3339 clamps to min/max), what the server
    // writes for that instant reads back to it, to the millisecond.
    using pa::protocol::SystemTime;
    if (t && *t != SystemTime::min() && *t != SystemTime::max()) {
      const std::string text = pa::protocol::format_rfc3339(*t);
      check(pa::protocol::parse_rfc3339(text) == std::chrono::floor<std::chrono::milliseconds>(*t),
            "format_rfc3339 does not parse back");
    }
  }
}

// Every getter on every field, whatever its type: none may throw or crash.
void all_getters(const pa::protocol::ClientMessage& message) {
  for (const auto& kv : message.data) {
    DataReader reader(message.data);
    const std::string_view key = kv.key();
    reader.string(key, true, 64);
    reader.uint(key, false, 1, 100);
    reader.boolean(key);
    reader.string_list(key, 4, 16);
    reader.object(key, false);
    if (!reader.ok()) check_error_reply(reader.error(), message.project_id, message.request_id);
  }
}

// A client's answer to a permission request, and the control_response lines it becomes.
void permission_response(const pa::protocol::ClientMessage& message) {
  auto parsed = pa::agent::parse_permission_response(message.data);
  if (auto* error = std::get_if<pa::protocol::Error>(&parsed)) {
    check_error_reply(*error, message.project_id, message.request_id);
    return;
  }
  const auto& answer = std::get<pa::agent::PermissionAnswer>(parsed);
  check(!answer.permission_id.empty(), "empty permission_id accepted");
  check(!answer.remember_session || answer.allow, "remember accepted with deny");
  check(!answer.updated_input || answer.allow, "updated_input accepted with deny");
  const std::string line =
      answer.allow
          ? pa::agent::allow_response_line(answer.permission_id,
                                           answer.updated_input
                                               ? boost::json::value(*answer.updated_input)
                                               : boost::json::value(boost::json::object()),
                                           nullptr)
          : pa::agent::deny_response_line(answer.permission_id, answer.message.value_or("denied"));
  // One line for the CLI's stdin: whatever the client sent, it cannot add a line.
  check(!line.empty() && line.back() == '\n' && line.find('\n') == line.size() - 1,
        "a control_response is not exactly one line");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto parsed = pa::protocol::parse_client_message(text);
  if (!parsed.message) {
    check_error_reply(parsed.error, parsed.project_id, parsed.request_id);
    return 0;
  }
  const auto& message = *parsed.message;
  check(!message.type.empty(), "empty type accepted");
  check(!message.data.contains("project_id"), "data.project_id left in data");
  if (message.project_id) {
    check(!message.project_id->empty() && message.project_id->size() <= pa::protocol::kMaxIdLength,
          "project_id length");
  }

  if (message.type == "execute") {
    // The last byte picks the policy, so both sides of claude.allow_dangerous are covered.
    execute(message, size > 0 && (data[size - 1] & 1) != 0);
  } else if (message.type == "get_messages") {
    get_messages(message);
  } else if (message.type == "permission_response") {
    permission_response(message);
  } else if (message.type == "project_create") {
    DataReader reader(message.data);
    reader.allow_only({"path"});
    reader.string("path", true, 4096);
    if (!reader.ok()) check_error_reply(reader.error(), message.project_id, message.request_id);
  } else {
    DataReader reader(message.data);
    reader.allow_only({});
    if (!reader.ok()) check_error_reply(reader.error(), message.project_id, message.request_id);
  }
  all_getters(message);
  return 0;
}
