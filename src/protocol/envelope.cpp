#include "protocol/envelope.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/string.hpp>

#include "protocol/clock.hpp"
#include "protocol/json_text.hpp"
#include "protocol/utf8.hpp"

namespace pa::protocol {

namespace json = boost::json;

Error make_error(ErrorCode code, std::string message, json::object details) {
  return Error{code, std::move(message), std::move(details)};
}

namespace {

Error field_error(std::string_view field, std::string message) {
  json::object details;
  details["field"] = field;
  return make_error(ErrorCode::kInvalidMessage, std::move(message), std::move(details));
}

// Reads an optional id-like string field; returns false (and sets error) if present but invalid.
bool read_id(const json::value* v, std::string_view field, std::optional<std::string>& out,
             Error& error) {
  if (v == nullptr || v->is_null()) return true;
  if (!v->is_string()) {
    error = field_error(field, std::string(field) + " must be a string");
    return false;
  }
  const auto& s = v->get_string();
  if (s.empty() || s.size() > kMaxIdLength) {
    error = field_error(field, std::string(field) + " must be 1 to " +
                                   std::to_string(kMaxIdLength) + " characters");
    return false;
  }
  if (has_control_characters(s)) {
    error = field_error(field, std::string(field) + " must not contain control characters");
    return false;
  }
  out = std::string(s);
  return true;
}

}  // namespace

ParseResult parse_client_message(std::string_view text) {
  ParseResult result;
  json::error_code ec;
  // Boost.JSON parses without recursion; the depth limit bounds the tree we build, and invalid
  // UTF-8 is an error rather than bytes passed on to the CLI.
  json::parse_options options;
  options.max_depth = kMaxJsonDepth;
  options.allow_invalid_utf8 = false;
  json::value root = json::parse(text, ec, {}, options);
  if (ec) {
    result.error =
        make_error(ErrorCode::kInvalidMessage, "message is not valid JSON: " + ec.message(),
                   json::object{{"field", "$"}});
    return result;
  }
  if (!root.is_object()) {
    result.error = field_error("$", "message must be a JSON object");
    return result;
  }
  auto& obj = root.get_object();

  // Read the ids first so that even a rejected message gets them echoed.
  std::optional<std::string> request_id;
  std::optional<std::string> envelope_project;
  Error id_error;
  bool ids_ok = read_id(obj.if_contains("request_id"), "request_id", request_id, id_error);
  ids_ok =
      ids_ok && read_id(obj.if_contains("project_id"), "project_id", envelope_project, id_error);
  result.request_id = request_id;
  result.project_id = envelope_project;
  if (!ids_ok) {
    result.error = std::move(id_error);
    return result;
  }

  for (const auto& kv : obj) {
    const auto key = kv.key();
    if (key != "type" && key != "project_id" && key != "data" && key != "request_id") {
      result.error = field_error(key, "unknown field '" + std::string(key) +
                                          "' (allowed: type, project_id, data, request_id)");
      return result;
    }
  }

  const json::value* type = obj.if_contains("type");
  if (type == nullptr || !type->is_string() || type->get_string().empty()) {
    result.error = field_error("type", type == nullptr ? "missing field 'type'"
                                                       : "field 'type' must be a non-empty string");
    return result;
  }

  ClientMessage message;
  message.type = std::string(type->get_string());
  message.request_id = std::move(request_id);

  if (const json::value* data = obj.if_contains("data"); data != nullptr && !data->is_null()) {
    if (!data->is_object()) {
      result.error = field_error("data", "field 'data' must be an object");
      return result;
    }
    message.data = std::move(obj.at("data").get_object());
  }

  std::optional<std::string> data_project;
  Error data_id_error;
  if (!read_id(message.data.if_contains("project_id"), "data.project_id", data_project,
               data_id_error)) {
    result.error = std::move(data_id_error);
    return result;
  }
  if (envelope_project && data_project && *envelope_project != *data_project) {
    result.error = field_error("project_id", "project_id and data.project_id differ; send one");
    return result;
  }
  message.project_id = envelope_project ? envelope_project : data_project;
  message.data.erase("project_id");
  result.project_id = message.project_id;
  result.message = std::move(message);
  return result;
}

namespace {

void append_json_string(std::string& out, std::string_view s) {
  out += json::serialize(json::string_view(s.data(), s.size()));
}

}  // namespace

std::string serialize(const Outgoing& head, std::string_view data_json) {
  std::string out;
  out.reserve(data_json.size() + 160);
  out += "{\"type\":";
  append_json_string(out, head.type);
  if (head.project_id) {
    out += ",\"project_id\":";
    append_json_string(out, *head.project_id);
  }
  out += ",\"data\":";
  out += data_json;
  if (head.request_id) {
    out += ",\"request_id\":";
    append_json_string(out, *head.request_id);
  }
  if (head.seq) {
    out += ",\"seq\":";
    out += std::to_string(*head.seq);
  }
  out += ",\"timestamp\":\"";
  if (head.timestamp.empty()) {
    out += now_rfc3339();
  } else {
    out += head.timestamp;
  }
  out += "\"}";
  return out;
}

std::string serialize(const Outgoing& head, const json::object& data) {
  return serialize(head, to_json_text(data));
}

json::object error_data(const Error& error) {
  json::object data;
  data["code"] = to_string(error.code);
  data["message"] = error.message;
  data["details"] = error.details;
  return data;
}

std::string serialize_error(const Error& error, std::optional<std::string_view> project_id,
                            std::optional<std::string_view> request_id) {
  return serialize(Outgoing{"error", project_id, request_id, std::nullopt, {}}, error_data(error));
}

}  // namespace pa::protocol
