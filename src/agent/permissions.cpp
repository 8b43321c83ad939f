#include "agent/permissions.hpp"

#include <openssl/evp.h>

#include <array>
#include <boost/json/serialize.hpp>

#include "protocol/data_reader.hpp"
#include "protocol/utf8.hpp"

namespace pa::agent {

namespace json = boost::json;
using protocol::ErrorCode;

namespace {
std::string string_or_empty(const json::object& object, std::string_view key) {
  const json::value* v = object.if_contains(key);
  return v != nullptr && v->is_string() ? std::string(v->get_string()) : std::string();
}

std::string line_of(const json::object& object) {
  return json::serialize(object) + "\n";
}

json::object control_response(std::string_view cli_request_id, json::object response) {
  response["request_id"] = cli_request_id;
  return json::object{{"type", "control_response"}, {"response", std::move(response)}};
}
}  // namespace

std::optional<ControlRequest> parse_control_request(const json::object& line) {
  if (string_or_empty(line, "type") != "control_request") return std::nullopt;
  const json::value* request = line.if_contains("request");
  ControlRequest out;
  out.request_id = string_or_empty(line, "request_id");
  if (request == nullptr || !request->is_object()) return out;
  const json::object& body = request->get_object();
  out.subtype = string_or_empty(body, "subtype");
  if (out.subtype != "can_use_tool" || out.request_id.empty()) return out;

  PermissionAsk ask;
  ask.cli_request_id = out.request_id;
  ask.tool_name = string_or_empty(body, "tool_name");
  ask.display_name = string_or_empty(body, "display_name");
  if (ask.display_name.empty()) ask.display_name = ask.tool_name;
  ask.tool_use_id = string_or_empty(body, "tool_use_id");
  const json::value* input = body.if_contains("input");
  ask.input = input != nullptr && input->is_object() ? *input : json::value(json::object());
  if (const json::value* s = body.if_contains("permission_suggestions"); s && s->is_array()) {
    ask.suggestions = s->get_array();
  }
  for (std::string_view key :
       {"description", "decision_reason", "decision_reason_type", "blocked_path", "agent_id"}) {
    if (const json::value* v = body.if_contains(key); v != nullptr && !v->is_null()) {
      ask.context[key] = *v;
    }
  }
  if (ask.tool_name.empty()) return out;  // not an ask we can show: refused by the caller
  out.ask = std::move(ask);
  return out;
}

std::optional<std::string> parse_control_cancel(const json::object& line) {
  if (string_or_empty(line, "type") != "control_cancel_request") return std::nullopt;
  return string_or_empty(line, "request_id");
}

std::variant<PermissionAnswer, protocol::Error> parse_permission_response(
    const json::object& data) {
  protocol::DataReader reader(data);
  reader.allow_only({"permission_id", "decision", "message", "updated_input", "remember"});
  auto id = reader.string("permission_id", true, kMaxPermissionIdBytes);
  auto decision = reader.string("decision", true, 16);
  auto message = reader.string("message", false, kMaxPermissionMessageBytes);
  const json::object* updated = reader.object("updated_input", false);
  auto remember = reader.string("remember", false, 16);
  if (!reader.ok()) return reader.error();

  auto invalid = [&](std::string_view key, std::string text) {
    return protocol::make_error(ErrorCode::kInvalidMessage,
                                reader.field(key) + " " + std::move(text),
                                json::object{{"field", reader.field(key)}});
  };
  if (id->empty() || protocol::has_control_characters(*id)) {
    return invalid("permission_id", "must be the permission_id of a permission_request");
  }
  if (*decision != "allow" && *decision != "deny") {
    return invalid("decision", "must be \"allow\" or \"deny\"");
  }
  PermissionAnswer out;
  out.permission_id = std::move(*id);
  out.allow = *decision == "allow";
  if (message && message->empty()) message.reset();
  out.message = std::move(message);
  if (updated != nullptr) {
    if (!out.allow) return invalid("updated_input", "is only allowed with decision \"allow\"");
    out.updated_input = *updated;
  }
  if (remember) {
    if (*remember != "session") return invalid("remember", "must be \"session\" (or absent)");
    if (!out.allow) return invalid("remember", "is only allowed with decision \"allow\"");
    out.remember_session = true;
  }
  return out;
}

std::string allow_response_line(std::string_view cli_request_id, const json::value& updated_input,
                                const json::array* updated_permissions) {
  json::object decision{{"behavior", "allow"}, {"updatedInput", updated_input}};
  if (updated_permissions != nullptr && !updated_permissions->empty()) {
    decision["updatedPermissions"] = *updated_permissions;
  }
  return line_of(control_response(
      cli_request_id, json::object{{"subtype", "success"}, {"response", std::move(decision)}}));
}

std::string deny_response_line(std::string_view cli_request_id, std::string_view message) {
  json::object decision{{"behavior", "deny"}, {"message", message}};
  return line_of(control_response(
      cli_request_id, json::object{{"subtype", "success"}, {"response", std::move(decision)}}));
}

std::string control_error_line(std::string_view cli_request_id, std::string_view error) {
  return line_of(
      control_response(cli_request_id, json::object{{"subtype", "error"}, {"error", error}}));
}

json::array session_permission_updates(const PermissionAsk& ask) {
  json::array out;
  for (const auto& suggestion : ask.suggestions) {
    if (!suggestion.is_object()) continue;
    json::object update = suggestion.get_object();
    update["destination"] = "session";
    out.push_back(std::move(update));
  }
  if (out.empty()) {
    out.push_back(json::object{{"type", "addRules"},
                               {"rules", json::array{json::object{{"toolName", ask.tool_name}}}},
                               {"behavior", "allow"},
                               {"destination", "session"}});
  }
  return out;
}

std::string input_sha256(const json::value& input) {
  const std::string text = json::serialize(input);
  std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
  unsigned int length = 0;
  EVP_Digest(text.data(), text.size(), digest.data(), &length, EVP_sha256(), nullptr);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(length * 2);
  for (unsigned int i = 0; i < length; ++i) {
    out.push_back(kHex[digest[i] >> 4]);
    out.push_back(kHex[digest[i] & 0xF]);
  }
  return out;
}

}  // namespace pa::agent
