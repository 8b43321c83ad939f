#include "agent/run_options.hpp"

#include <algorithm>
#include <array>
#include <boost/json/monotonic_resource.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>
#include <cctype>
#include <charconv>
#include <cmath>
#include <filesystem>
#include <system_error>
#include <utility>

#include "projects/path_rules.hpp"
#include "projects/project_info.hpp"
#include "protocol/data_reader.hpp"
#include "protocol/json_text.hpp"
#include "protocol/utf8.hpp"

namespace pa::agent {

namespace json = boost::json;
namespace fs = std::filesystem;
using protocol::ErrorCode;

namespace {

constexpr std::string_view kPrefix = "data.options";

constexpr std::array<std::string_view, 6> kPermissionModes = {
    "acceptEdits", "auto", "bypassPermissions", "default", "dontAsk", "plan"};

protocol::Error field_error(ErrorCode code, const std::string& field, const std::string& message,
                            json::object details = {}) {
  details["field"] = field;
  return protocol::make_error(code, field + " " + message, std::move(details));
}

bool is_model_char(unsigned char c) {
  if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) return true;
  switch (c) {
    case '.':
    case '_':
    case ':':
    case '/':
    case '@':
    case '[':
    case ']':
    case '-':
      return true;
    default:
      return false;
  }
}

// A model name or alias: starts with a letter or digit (never '-', so it can never read as a
// flag), then letters, digits and . _ : / @ [ ] -.
bool valid_model(std::string_view s) {
  return !s.empty() && s.size() <= kMaxModelChars &&
         std::isalnum(static_cast<unsigned char>(s[0])) &&
         std::all_of(s.begin(), s.end(),
                     [](char c) { return is_model_char(static_cast<unsigned char>(c)); });
}

// C0 controls, DEL, and the C1 controls U+0080..U+009F (UTF-8: C2 80..C2 9F).
bool has_control_char(std::string_view s) {
  for (std::size_t i = 0; i < s.size(); ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x20 || c == 0x7F) return true;
    if (c == 0xC2 && i + 1 < s.size()) {
      const auto next = static_cast<unsigned char>(s[i + 1]);
      if (next >= 0x80 && next <= 0x9F) return true;
    }
  }
  return false;
}

// A tool list entry: it is joined with commas into one --allowedTools=/--disallowedTools= element.
std::optional<std::string> tool_name_problem(std::string_view name) {
  if (has_control_char(name)) return "must not contain control characters";
  if (name.find(',') != std::string_view::npos) return "must not contain commas";
  if (name.front() == '-') return "must not start with '-'";
  return std::nullopt;
}

bool valid_session_id(std::string_view s) {
  if (s.empty() || s.size() > 128) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '-';
  });
}

std::string join(const std::vector<std::string>& items, char sep) {
  std::string out;
  for (const auto& item : items) {
    if (!out.empty()) out += sep;
    out += item;
  }
  return out;
}

protocol::Error forbidden(const std::string& field, std::string_view what) {
  return field_error(ErrorCode::kForbidden, field,
                     "is refused: the server's policy (claude.allow_dangerous) forbids " +
                         std::string(what) +
                         "; ask the server's operator to enable claude.allow_dangerous");
}

// Canonicalizes one add_dirs entry; returns an INVALID_PATH error naming it on failure.
std::variant<std::string, protocol::Error> canonical_dir(const std::string& field,
                                                         const std::string& path,
                                                         const projects::PathPolicy* paths) {
  json::object details;
  details["path"] = path;
  auto fail = [&](std::string message) {
    return field_error(ErrorCode::kInvalidPath, field, message, details);
  };
  if (path.find('\0') != std::string::npos) return fail("must not contain NUL characters");
  if (path.front() != '/') return fail("must be an absolute path (starting with '/')");
  std::error_code ec;
  const fs::path canonical = fs::canonical(fs::path(path), ec);
  if (ec) {
    // The server's limit, not the path: INTERNAL_ERROR saying so.
    if (projects::out_of_descriptors(ec)) {
      auto error = projects::descriptor_exhaustion("resolving " + field, ec);
      error.details["field"] = field;
      return error;
    }
    if (ec == std::errc::no_such_file_or_directory || ec == std::errc::not_a_directory) {
      return fail("does not exist");
    }
    if (ec == std::errc::permission_denied) return fail("is not accessible (permission denied)");
    if (ec == std::errc::too_many_symbolic_link_levels) return fail("has a symbolic link loop");
    return fail("cannot be resolved (" + ec.message() + ")");
  }
  if (!fs::is_directory(canonical, ec) || ec) return fail("is not a directory");
  if (paths != nullptr) {
    if (auto reason = paths->refusal(canonical.string())) {
      details["canonical_path"] = canonical.string();
      return fail("is refused: " + *reason);
    }
  }
  return canonical.string();
}

}  // namespace

std::variant<RunOptions, protocol::Error> parse_run_options(const json::object* options,
                                                            const Policy& policy) {
  RunOptions out;
  if (options == nullptr) return out;

  protocol::DataReader reader(*options, std::string(kPrefix));
  reader.allow_only({"model", "fallback_model", "permission_mode", "dangerously_skip_permissions",
                     "allowed_tools", "disallowed_tools", "append_system_prompt", "add_dirs",
                     "mcp_config", "strict_mcp_config", "permission_prompt", "session_id",
                     "max_budget_usd"});
  if (!reader.ok()) return reader.error();

  const std::string model_rule =
      "must be 1 to " + std::to_string(kMaxModelChars) +
      " characters of A-Z a-z 0-9 . _ : / @ [ ] -, starting with a letter or digit";
  using StringField = std::pair<std::string_view, std::optional<std::string>*>;
  for (auto [key, target] :
       {StringField{"model", &out.model}, StringField{"fallback_model", &out.fallback_model}}) {
    auto value = reader.string(key, false, kMaxModelChars);
    if (!reader.ok()) return reader.error();
    if (value && !valid_model(*value)) {
      return field_error(ErrorCode::kInvalidMessage, reader.field(key), model_rule);
    }
    *target = std::move(value);
  }

  out.permission_mode = reader.string("permission_mode", false, 64);
  if (!reader.ok()) return reader.error();
  if (out.permission_mode) {
    if (std::find(kPermissionModes.begin(), kPermissionModes.end(), *out.permission_mode) ==
        kPermissionModes.end()) {
      return field_error(ErrorCode::kInvalidMessage, reader.field("permission_mode"),
                         "must be one of acceptEdits, auto, bypassPermissions, default, dontAsk, "
                         "plan");
    }
    if (*out.permission_mode == "bypassPermissions" && !policy.allow_dangerous) {
      return forbidden(reader.field("permission_mode"), "permission mode bypassPermissions");
    }
  }

  out.dangerously_skip_permissions = reader.boolean("dangerously_skip_permissions").value_or(false);
  if (!reader.ok()) return reader.error();
  if (out.dangerously_skip_permissions && !policy.allow_dangerous) {
    return forbidden(reader.field("dangerously_skip_permissions"),
                     "skipping the CLI's permission checks");
  }

  using ListField = std::pair<std::string_view, std::optional<std::vector<std::string>>*>;
  for (auto [key, target] : {ListField{"allowed_tools", &out.allowed_tools},
                             ListField{"disallowed_tools", &out.disallowed_tools}}) {
    auto list = reader.string_list(key, kMaxToolEntries, kMaxToolBytes);
    if (!reader.ok()) return reader.error();
    if (list) {
      for (std::size_t i = 0; i < list->size(); ++i) {
        if (auto problem = tool_name_problem((*list)[i])) {
          return field_error(ErrorCode::kInvalidMessage,
                             reader.field(key) + "[" + std::to_string(i) + "]", *problem);
        }
      }
    }
    *target = std::move(list);
  }

  out.append_system_prompt =
      reader.string("append_system_prompt", false, kMaxAppendSystemPromptBytes);
  if (!reader.ok()) return reader.error();
  if (out.append_system_prompt && out.append_system_prompt->find('\0') != std::string::npos) {
    return field_error(ErrorCode::kInvalidMessage, reader.field("append_system_prompt"),
                       "must not contain NUL characters");
  }

  if (auto dirs = reader.string_list("add_dirs", kMaxAddDirs, kMaxAddDirBytes)) {
    for (std::size_t i = 0; i < dirs->size(); ++i) {
      auto dir = canonical_dir(reader.field("add_dirs") + "[" + std::to_string(i) + "]", (*dirs)[i],
                               policy.paths);
      if (auto* error = std::get_if<protocol::Error>(&dir)) return std::move(*error);
      auto& canonical = std::get<std::string>(dir);
      if (std::find(out.add_dirs.begin(), out.add_dirs.end(), canonical) == out.add_dirs.end()) {
        out.add_dirs.push_back(std::move(canonical));
      }
    }
  }
  if (!reader.ok()) return reader.error();

  if (const json::object* mcp = reader.object("mcp_config", false)) {
    std::string serialized = json::serialize(*mcp);
    if (serialized.size() > kMaxMcpConfigBytes) {
      return field_error(ErrorCode::kInvalidMessage, reader.field("mcp_config"),
                         "is too large (at most " + std::to_string(kMaxMcpConfigBytes) +
                             " bytes once serialized)");
    }
    out.mcp_config_json = std::move(serialized);
  }
  if (!reader.ok()) return reader.error();

  out.strict_mcp_config = reader.boolean("strict_mcp_config").value_or(false);
  if (!reader.ok()) return reader.error();

  out.permission_prompt = reader.string("permission_prompt", false, 16);
  if (!reader.ok()) return reader.error();
  if (out.permission_prompt && *out.permission_prompt != "client" &&
      *out.permission_prompt != "none") {
    return field_error(ErrorCode::kInvalidMessage, reader.field("permission_prompt"),
                       "must be \"client\" or \"none\"");
  }

  out.session_id = reader.string("session_id", false, 36);
  if (!reader.ok()) return reader.error();
  if (out.session_id && !projects::looks_like_uuid(*out.session_id)) {
    return field_error(ErrorCode::kInvalidMessage, reader.field("session_id"),
                       "must be a session id: a UUID such as "
                       "\"0f8fad5b-d9cb-469f-a165-70867728950e\" (see session_list)");
  }

  if (const json::value* budget = options->if_contains("max_budget_usd");
      budget != nullptr && !budget->is_null()) {
    const double usd = budget->is_number() ? budget->to_number<double>() : 0;
    if (!budget->is_number() || !std::isfinite(usd) || usd <= 0 || usd > kMaxBudgetUsd) {
      return field_error(ErrorCode::kInvalidMessage, reader.field("max_budget_usd"),
                         "must be a number of US dollars above 0 and at most " +
                             protocol::to_json_text(json::value(kMaxBudgetUsd)));
    }
    out.max_budget_usd = usd;
  }

  return out;
}

bool uses_client_permission_prompt(const RunOptions& options,
                                   const config::Config::Claude& defaults) {
  if (options.permission_prompt) return *options.permission_prompt == "client";
  if (!defaults.permission_prompt.empty()) return defaults.permission_prompt == "client";
  return !defaults.allow_dangerous;
}

CliArgs build_cli_args(const RunOptions& options, const config::Config::Claude& defaults,
                       const std::optional<std::string>& resume_session_id,
                       const std::optional<std::string>& mcp_config_path) {
  CliArgs args;
  args.assign({"-p", "--input-format=stream-json", "--output-format=stream-json", "--verbose"});
  const std::string& model = options.model ? *options.model : defaults.default_model;
  if (!model.empty()) args.push_back("--model=" + model);
  if (options.fallback_model) args.push_back("--fallback-model=" + *options.fallback_model);
  if (options.permission_mode) args.push_back("--permission-mode=" + *options.permission_mode);
  if (options.max_budget_usd) {
    // The shortest text that reads back as the same number ("0.5", not "0.500000").
    char buf[32];
    const auto end = std::to_chars(buf, buf + sizeof buf, *options.max_budget_usd).ptr;
    args.push_back("--max-budget-usd=" + std::string(buf, end));
  }
  if (options.dangerously_skip_permissions) args.emplace_back("--dangerously-skip-permissions");
  if (uses_client_permission_prompt(options, defaults)) {
    args.emplace_back("--permission-prompt-tool=stdio");
  }
  // A list the client sent wins, even when empty (= none); otherwise the configured default.
  const auto& allowed = options.allowed_tools ? *options.allowed_tools : defaults.allowed_tools;
  if (!allowed.empty()) args.push_back("--allowedTools=" + join(allowed, ','));
  if (options.disallowed_tools && !options.disallowed_tools->empty()) {
    args.push_back("--disallowedTools=" + join(*options.disallowed_tools, ','));
  }
  if (mcp_config_path && !mcp_config_path->empty()) {
    args.push_back("--mcp-config=" + *mcp_config_path);
  }
  if (options.strict_mcp_config) args.emplace_back("--strict-mcp-config");
  if (options.append_system_prompt && !options.append_system_prompt->empty()) {
    args.push_back("--append-system-prompt=" + *options.append_system_prompt);
  }
  for (const auto& dir : options.add_dirs) args.push_back("--add-dir=" + dir);
  if (resume_session_id && valid_session_id(*resume_session_id)) {
    args.push_back("--resume=" + *resume_session_id);
    args.resumed_session = *resume_session_id;
  }
  return args;
}

std::vector<std::string> build_cli_env(const std::map<std::string, std::string>& server_env,
                                       const config::Config::Claude& claude) {
  static constexpr std::array<std::string_view, 11> kPassThrough = {
      "PATH",   "HOME", "LANG",    "LC_ALL", "LC_CTYPE", "TZ",
      "TMPDIR", "USER", "LOGNAME", "SHELL",  "TERM"};
  std::map<std::string, std::string> env;
  for (const auto& [name, value] : server_env) {
    const bool listed =
        std::find(kPassThrough.begin(), kPassThrough.end(), name) != kPassThrough.end();
    if (listed || name.starts_with("ANTHROPIC_") || name.starts_with("CLAUDE_")) env[name] = value;
  }
  for (const auto& [name, value] : claude.env) env[name] = value;
  if (!claude.home.empty()) env["HOME"] = claude.home;
  env["NO_COLOR"] = "1";

  std::vector<std::string> out;
  out.reserve(env.size());
  for (const auto& [name, value] : env) {
    // An entry that cannot be represented in envp is dropped rather than mangled.
    if (name.empty() || name.find_first_of(std::string_view("=\0", 2)) != std::string::npos ||
        value.find('\0') != std::string::npos) {
      continue;
    }
    out.push_back(name + "=" + value);
  }
  return out;
}

namespace {
std::string user_line(json::value content) {
  json::object message;
  message["role"] = "user";
  message["content"] = std::move(content);
  json::object line;
  line["type"] = "user";
  line["message"] = std::move(message);
  line["parent_tool_use_id"] = nullptr;
  line["session_id"] = "";
  return json::serialize(line) + "\n";
}
}  // namespace

std::string user_message_line(std::string_view prompt) {
  return user_line(json::string(prompt));
}

std::string user_message_line(const json::array& content) {
  return user_line(content);
}

std::string interrupt_request_line(std::string_view request_id) {
  json::object request;
  request["subtype"] = "interrupt";
  json::object line;
  line["type"] = "control_request";
  line["request_id"] = request_id;
  line["request"] = std::move(request);
  return json::serialize(line) + "\n";
}

CliLine inspect_cli_line(std::string_view line) {
  CliLine out;
  while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.remove_suffix(1);

  json::monotonic_resource resource;
  json::parse_options parse_options;
  parse_options.max_depth = 1024;  // tool inputs come from the model and may nest deeply
  boost::system::error_code ec;
  const json::value value = json::parse(line, ec, &resource, parse_options);
  if (ec || !value.is_object()) return out;
  const json::object& object = value.get_object();
  out.is_json_object = true;
  out.has_double = protocol::contains_double(object);

  auto string_field = [&](std::string_view key) -> std::optional<std::string> {
    const json::value* v = object.if_contains(key);
    if (v == nullptr || !v->is_string()) return std::nullopt;
    return std::string(v->get_string());
  };
  out.type = string_field("type").value_or("");
  out.subtype = string_field("subtype").value_or("");
  out.session_id = string_field("session_id");
  out.is_result = out.type == "result";
  if (const json::value* v = object.if_contains("is_error"))
    out.is_error = v->is_bool() && v->get_bool();
  if (const json::value* v = object.if_contains("errors"); v != nullptr && v->is_array()) {
    for (const auto& item : v->get_array()) {
      out.errors.push_back(item.is_string() ? std::string(item.get_string())
                                            : json::serialize(item));
    }
  }
  if (out.is_result) {
    auto number = [&](std::string_view key) -> std::optional<double> {
      const json::value* v = object.if_contains(key);
      if (v == nullptr || !v->is_number()) return std::nullopt;
      return v->to_number<double>();
    };
    if (auto cost = number("total_cost_usd");
        cost && std::isfinite(*cost) && *cost >= 0 && *cost <= CliLine::kMaxCostUsd)
      out.total_cost_usd = cost;
    if (const json::value* u = object.if_contains("usage"); u != nullptr && u->is_object()) {
      // A count beyond kMaxTokens is not believed (and could not overflow the totals).
      auto count = [&](std::string_view key) -> std::uint64_t {
        const json::value* v = u->get_object().if_contains(key);
        std::uint64_t n = 0;
        if (v != nullptr && v->is_uint64()) n = v->get_uint64();
        if (v != nullptr && v->is_int64() && v->get_int64() > 0)
          n = static_cast<std::uint64_t>(v->get_int64());
        return n <= CliLine::kMaxTokens ? n : 0;
      };
      out.input_tokens = count("input_tokens");
      out.output_tokens = count("output_tokens");
      out.cache_read_input_tokens = count("cache_read_input_tokens");
      out.cache_creation_input_tokens = count("cache_creation_input_tokens");
    }
    if (auto d = number("duration_ms"); d && *d >= 0) out.duration_ms = std::llround(*d);
    if (auto n = number("num_turns"); n && *n >= 0) out.num_turns = std::llround(*n);
    if (auto text = string_field("result"))
      out.result_text = protocol::shorten_utf8(*text, CliLine::kResultTextBytes);
  }
  return out;
}

}  // namespace pa::agent
