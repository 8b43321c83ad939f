// What a client may ask of one CLI run (`execute.data.options`), and how that becomes the CLI's
// argv, environment and stdin.
//
// Every byte of `options` comes from the network. The rules that keep it harmless:
// - options are validated strictly (unknown names, wrong types, patterns, sizes) before use;
// - every value reaches the CLI as one `--flag=value` argv element, so no value can become a flag
//   or swallow the next argument (the CLI's list flags are variadic, see CLI-BEHAVIOUR.md §2);
// - the prompt never goes into argv: it is written to the CLI's stdin as a stream-json user line;
// - the CLI's environment is built from an allow-list, never inherited wholesale.
#pragma once

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "config/config.hpp"
#include "projects/path_policy.hpp"
#include "protocol/envelope.hpp"

namespace pa::agent {

struct RunOptions {
  std::optional<std::string> model, fallback_model, permission_mode, append_system_prompt;
  bool dangerously_skip_permissions = false, strict_mcp_config = false;
  // Set (possibly empty) when the client sent a list; an empty list means "none", not "default".
  std::optional<std::vector<std::string>> allowed_tools, disallowed_tools;
  std::vector<std::string> add_dirs;  // canonical (symlinks resolved), existing directories
  std::optional<std::string> mcp_config_json;    // a serialized JSON object
  std::optional<std::string> permission_prompt;  // "client" | "none"; unset = the config default
  // A past session (a UUID) to resume instead of the project's stored one (session_list).
  std::optional<std::string> session_id;
  // The CLI's own cap on this run's cost (--max-budget-usd): it ends the turn it reaches it in.
  std::optional<double> max_budget_usd;
};

struct Policy {
  bool allow_dangerous = false;      // claude.allow_dangerous
  std::size_t max_prompt_bytes = 0;  // limits.prompt_size (checked by the caller, with the prompt)
  const projects::PathPolicy* paths = nullptr;  // deny list / allowed roots for add_dirs
};

// Limits on options.
inline constexpr std::size_t kMaxModelChars = 128;
inline constexpr std::size_t kMaxToolEntries = 64;
inline constexpr std::size_t kMaxToolBytes = 256;
inline constexpr std::size_t kMaxAppendSystemPromptBytes = 65536;
inline constexpr std::size_t kMaxAddDirs = 32;
inline constexpr std::size_t kMaxAddDirBytes = 4096;
inline constexpr std::size_t kMaxMcpConfigBytes = 65536;
inline constexpr double kMaxBudgetUsd = 10000;  // options.max_budget_usd: (0, kMaxBudgetUsd]

// Validates `data.options` (nullptr = absent or null). A null option is unset. Errors:
// INVALID_MESSAGE naming "data.options.<name>" (unknown name, wrong type, bad value); INVALID_PATH
// naming "data.options.add_dirs[i]"; FORBIDDEN for dangerously_skip_permissions:true or
// permission_mode "bypassPermissions" unless policy.allow_dangerous.
std::variant<RunOptions, protocol::Error> parse_run_options(const boost::json::object* options,
                                                            const Policy& policy);

// Whether the run asks clients to approve tool calls (`--permission-prompt-tool=stdio`): the
// option if set, else claude.permission_prompt, else "client" unless claude.allow_dangerous.
bool uses_client_permission_prompt(const RunOptions& options,
                                   const config::Config::Claude& defaults);

// argv[1..] of a run: "-p", "--input-format=stream-json", "--output-format=stream-json",
// "--verbose", then one `--flag=value` element per option (config defaults for model and
// allowed_tools when the client sent none, `--max-budget-usd=<v>` when the client sent one),
// `--permission-prompt-tool=stdio` when clients
// approve tool calls, then --resume=<id> if the id looks like a session id.
// `mcp_config_path` names a file into which the caller wrote options.mcp_config_json.
// The argv, and what it decided: the session it resumes (a stored id that does not look like a
// session id is not passed, so the run starts a new conversation).
struct CliArgs : std::vector<std::string> {
  std::optional<std::string> resumed_session;
};
CliArgs build_cli_args(const RunOptions& options, const config::Config::Claude& defaults,
                       const std::optional<std::string>& resume_session_id,
                       const std::optional<std::string>& mcp_config_path);

// The CLI's whole environment ("KEY=VALUE", sorted by key): PATH, HOME, LANG, LC_ALL, LC_CTYPE,
// TZ, TMPDIR, USER, LOGNAME, SHELL, TERM and every ANTHROPIC_* / CLAUDE_* from `server_env`, then
// claude.env (overrides), then HOME=claude.home if set, then NO_COLOR=1.
std::vector<std::string> build_cli_env(const std::map<std::string, std::string>& server_env,
                                       const config::Config::Claude& claude);

// Lines for the CLI's stdin (compact JSON + "\n"). `prompt` must be valid UTF-8 (it comes from a
// parsed JSON message).
std::string user_message_line(std::string_view prompt);
// The same with content blocks (images and files before the prompt's text, issue 19).
std::string user_message_line(const boost::json::array& content);
std::string interrupt_request_line(std::string_view request_id);

// What the server needs from one line of the CLI's stdout.
struct CliLine {
  bool is_json_object = false;
  std::string type, subtype;  // empty when absent or not strings
  std::optional<std::string> session_id;
  bool is_result = false;           // type == "result"
  bool is_error = false;            // "is_error": true
  std::vector<std::string> errors;  // a result's "errors" (non-strings serialized)
  bool has_double = false;          // a number with a fraction or an exponent somewhere
  // A result's numbers and the start of its text (notifications say what a run did and cost).
  // total_cost_usd: finite, 0..kMaxCostUsd, else absent. The tokens of its `usage` (this
  // turn's; 0 when absent or not a count), which the spend totals add up.
  std::optional<double> total_cost_usd;
  std::optional<std::int64_t> duration_ms, num_turns;
  std::uint64_t input_tokens = 0, output_tokens = 0, cache_read_input_tokens = 0,
                cache_creation_input_tokens = 0;
  static constexpr double kMaxCostUsd = 1e9;
  static constexpr std::uint64_t kMaxTokens = 1'000'000'000'000;
  std::string result_text;  // at most kResultTextBytes, cut at a code point
  static constexpr std::size_t kResultTextBytes = 300;
};
CliLine inspect_cli_line(std::string_view line);

}  // namespace pa::agent
