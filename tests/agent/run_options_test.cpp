// Unit tests for run_options: option validation, the CLI's argv and environment, stdin lines and
// the inspection of CLI stdout lines (real 2.1.197 lines, copied from
// /work/shared/claude-cli/transcripts).
#include "agent/run_options.hpp"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <vector>

namespace pa::agent {
namespace {

namespace json = boost::json;
namespace fs = std::filesystem;
using protocol::ErrorCode;

// ---- real CLI stdout lines (@anthropic-ai/claude-code 2.1.197, no credentials) ----

constexpr std::string_view kInitLine =
    R"json({"type":"system","subtype":"init","cwd":"/home/user/project","session_id":"91c2aa5d-f775-40f8-9ebe-e9ff16c71278","tools":["Task","Bash","CronCreate","CronDelete","CronList","DesignSync","Edit","EnterWorktree","ExitWorktree","NotebookEdit","Read","ReportFindings","ScheduleWakeup","SendMessage","Skill","TaskCreate","TaskGet","TaskList","TaskOutput","TaskStop","TaskUpdate","ToolSearch","WebFetch","WebSearch","Workflow","Write"],"mcp_servers":[],"model":"claude-opus-4-8[1m]","permissionMode":"default","slash_commands":["deep-research","design-sync","update-config","verify","debug","code-review","simplify","batch","fewer-permission-prompts","loop","claude-api","run","run-skill-generator","clear","compact","config","context","heapdump","init","reload-skills","review","security-review","usage","insights","goal","team-onboarding"],"apiKeySource":"none","claude_code_version":"2.1.197","output_style":"default","agents":["claude","Explore","general-purpose","Plan","statusline-setup"],"skills":["deep-research","design-sync","update-config","verify","debug","code-review","simplify","batch","fewer-permission-prompts","loop","claude-api","run","run-skill-generator"],"plugins":[],"analytics_disabled":false,"product_feedback_disabled":false,"uuid":"0c383d6f-3a3c-41e8-90f5-d63b94503fd2","memory_paths":{"auto":"/home/user/.claude/projects/-home-user-project/memory/"},"fast_mode_state":"off"})json";

constexpr std::string_view kAssistantLine =
    R"json({"type":"assistant","message":{"id":"498bb1fe-5c83-4d21-9bb1-325ba04adc88","container":null,"model":"<synthetic>","role":"assistant","stop_details":null,"stop_reason":"stop_sequence","stop_sequence":"","type":"message","usage":{"input_tokens":0,"output_tokens":0,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"server_tool_use":{"web_search_requests":0,"web_fetch_requests":0},"service_tier":null,"cache_creation":{"ephemeral_1h_input_tokens":0,"ephemeral_5m_input_tokens":0},"inference_geo":null,"iterations":null,"speed":null},"content":[{"type":"text","text":"Not logged in · Please run /login"}],"context_management":null},"parent_tool_use_id":null,"session_id":"91c2aa5d-f775-40f8-9ebe-e9ff16c71278","uuid":"11dbaeab-5864-4d93-a1be-d52481af5750","error":"authentication_failed"})json";

constexpr std::string_view kResultSuccessLine =
    R"json({"type":"result","subtype":"success","is_error":true,"api_error_status":null,"duration_ms":197,"duration_api_ms":0,"num_turns":1,"result":"Not logged in · Please run /login","stop_reason":"stop_sequence","session_id":"91c2aa5d-f775-40f8-9ebe-e9ff16c71278","total_cost_usd":0,"usage":{"input_tokens":0,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":0,"server_tool_use":{"web_search_requests":0,"web_fetch_requests":0},"service_tier":"standard","cache_creation":{"ephemeral_1h_input_tokens":0,"ephemeral_5m_input_tokens":0},"inference_geo":"","iterations":[],"speed":"standard"},"modelUsage":{},"permission_denials":[],"terminal_reason":"completed","fast_mode_state":"off","uuid":"2d0b218b-f739-4234-bc1c-29ecb1274ea4"})json";

constexpr std::string_view kResultResumeErrorLine =
    R"json({"type":"result","subtype":"error_during_execution","duration_ms":0,"duration_api_ms":0,"is_error":true,"num_turns":0,"stop_reason":null,"session_id":"11111111-2222-4333-8444-555555555555","total_cost_usd":0,"usage":{"input_tokens":0,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":0,"server_tool_use":{"web_search_requests":0,"web_fetch_requests":0},"service_tier":"standard","cache_creation":{"ephemeral_1h_input_tokens":0,"ephemeral_5m_input_tokens":0},"inference_geo":"","iterations":[],"speed":"standard"},"modelUsage":{},"permission_denials":[],"uuid":"350578c1-6e00-419a-8b03-59cb3696309f","errors":["No conversation found with session ID: 11111111-2222-4333-8444-555555555555"]})json";

constexpr std::string_view kResultInterruptedLine =
    R"json({"type":"result","subtype":"error_during_execution","duration_ms":2422,"duration_api_ms":0,"is_error":true,"num_turns":2,"stop_reason":null,"session_id":"d792b9f3-090c-4670-9064-5a0fa164c68f","total_cost_usd":0,"usage":{"input_tokens":0,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":0,"server_tool_use":{"web_search_requests":0,"web_fetch_requests":0},"service_tier":"standard","cache_creation":{"ephemeral_1h_input_tokens":0,"ephemeral_5m_input_tokens":0},"inference_geo":"","iterations":[],"speed":"standard"},"modelUsage":{},"permission_denials":[],"terminal_reason":"aborted_streaming","fast_mode_state":"off","uuid":"e018ab83-868d-4ee4-a116-d8857f76a8a8","errors":["[ede_diagnostic] result_type=user last_content_type=n/a stop_reason=null"]})json";

constexpr std::string_view kControlResponseLine =
    R"json({"type":"control_response","response":{"subtype":"success","request_id":"int_1"}})json";

// ---- helpers ----

const Policy kPolicy{.allow_dangerous = false, .max_prompt_bytes = 262144};
const Policy kDangerousPolicy{.allow_dangerous = true, .max_prompt_bytes = 262144};

json::object obj(std::string_view text) {
  return json::parse(text).as_object();
}

RunOptions parse_ok(std::string_view text, const Policy& policy = kPolicy) {
  const json::object options = obj(text);
  auto result = parse_run_options(&options, policy);
  if (auto* error = std::get_if<protocol::Error>(&result)) {
    ADD_FAILURE() << "unexpected error for " << text << ": " << error->message;
    return {};
  }
  return std::get<RunOptions>(result);
}

protocol::Error parse_error(std::string_view text, const Policy& policy = kPolicy) {
  const json::object options = obj(text);
  auto result = parse_run_options(&options, policy);
  if (!std::holds_alternative<protocol::Error>(result)) {
    ADD_FAILURE() << "expected an error for " << text;
    return {};
  }
  return std::get<protocol::Error>(result);
}

bool accepted(std::string_view text) {
  const json::object options = obj(text);
  return std::holds_alternative<RunOptions>(parse_run_options(&options, kPolicy));
}

std::string field_of(const protocol::Error& error) {
  const auto* field = error.details.if_contains("field");
  return field != nullptr && field->is_string() ? std::string(field->get_string()) : "<none>";
}

// Expects INVALID_MESSAGE (or `code`) naming `field` in details.field and in the message.
void expect_error(std::string_view text, std::string_view field,
                  ErrorCode code = ErrorCode::kInvalidMessage, const Policy& policy = kPolicy) {
  SCOPED_TRACE(std::string(text));
  const auto error = parse_error(text, policy);
  EXPECT_EQ(error.code, code) << error.message;
  EXPECT_EQ(field_of(error), field) << error.message;
  EXPECT_NE(error.message.find(field), std::string::npos) << error.message;
}

std::string jstr(std::string_view s) {
  return json::serialize(json::value(s));
}

std::vector<std::string> head() {
  return {"-p", "--input-format=stream-json", "--output-format=stream-json", "--verbose"};
}

config::Config::Claude no_defaults() {
  config::Config::Claude claude;
  claude.default_model.clear();
  claude.allowed_tools.clear();
  claude.permission_prompt = "none";
  return claude;
}

bool contains(const std::vector<std::string>& items, std::string_view item) {
  return std::find(items.begin(), items.end(), item) != items.end();
}

class TempDir {
 public:
  TempDir() {
    std::string pattern = (fs::temp_directory_path() / "pa-runopts-XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = fs::canonical(pattern);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

// ---- parse_run_options: shape, nulls, unknown names, types ----

TEST(RunOptionsParse, AbsentAndEmptyOptionsLeaveEverythingUnset) {
  ASSERT_TRUE(std::holds_alternative<RunOptions>(parse_run_options(nullptr, kPolicy)));
  const RunOptions o = parse_ok("{}");
  EXPECT_FALSE(o.model || o.fallback_model || o.permission_mode || o.append_system_prompt);
  EXPECT_FALSE(o.allowed_tools || o.disallowed_tools || o.mcp_config_json || o.permission_prompt);
  EXPECT_FALSE(o.dangerously_skip_permissions || o.strict_mcp_config);
  EXPECT_TRUE(o.add_dirs.empty());
}

TEST(RunOptionsParse, TheSpecExampleWithNullsParses) {
  const RunOptions o = parse_ok(R"({
      "model": "claude-3-5-sonnet-20241022",
      "dangerously_skip_permissions": false,
      "allowed_tools": ["read", "write", "run"],
      "disallowed_tools": [],
      "permission_mode": "default",
      "mcp_config": null,
      "append_system_prompt": null,
      "fallback_model": null,
      "add_dirs": [],
      "strict_mcp_config": false})");
  EXPECT_EQ(o.model, "claude-3-5-sonnet-20241022");
  EXPECT_EQ(o.allowed_tools, (std::vector<std::string>{"read", "write", "run"}));
  ASSERT_TRUE(o.disallowed_tools);
  EXPECT_TRUE(o.disallowed_tools->empty());
  EXPECT_EQ(o.permission_mode, "default");
  EXPECT_FALSE(o.mcp_config_json || o.append_system_prompt || o.fallback_model);
  EXPECT_FALSE(o.dangerously_skip_permissions || o.strict_mcp_config);
}

TEST(RunOptionsParse, EveryNullIsUnset) {
  const RunOptions o = parse_ok(R"({"model":null,"fallback_model":null,"permission_mode":null,
      "dangerously_skip_permissions":null,"allowed_tools":null,"disallowed_tools":null,
      "append_system_prompt":null,"add_dirs":null,"mcp_config":null,"strict_mcp_config":null,
      "permission_prompt":null})");
  EXPECT_FALSE(o.model || o.fallback_model || o.permission_mode || o.append_system_prompt);
  EXPECT_FALSE(o.allowed_tools || o.disallowed_tools || o.mcp_config_json || o.permission_prompt);
  EXPECT_FALSE(o.dangerously_skip_permissions || o.strict_mcp_config);
  EXPECT_TRUE(o.add_dirs.empty());
}

TEST(RunOptionsParse, UnknownOptionNamesItsField) {
  expect_error(R"({"frobnicate": 1})", "data.options.frobnicate");
  expect_error(R"({"model": "opus", "resume": "x"})", "data.options.resume");
  // Flag spellings are not option names.
  expect_error(R"({"--model": "opus"})", "data.options.--model");
  expect_error(R"({"allowedTools": ["Read"]})", "data.options.allowedTools");
}

TEST(RunOptionsParse, WrongTypesNameTheField) {
  expect_error(R"({"model": 5})", "data.options.model");
  expect_error(R"({"fallback_model": ["a"]})", "data.options.fallback_model");
  expect_error(R"({"permission_mode": true})", "data.options.permission_mode");
  expect_error(R"({"dangerously_skip_permissions": "false"})",
               "data.options.dangerously_skip_permissions");
  expect_error(R"({"dangerously_skip_permissions": 0})",
               "data.options.dangerously_skip_permissions");
  expect_error(R"({"allowed_tools": "Read"})", "data.options.allowed_tools");
  expect_error(R"({"allowed_tools": [1]})", "data.options.allowed_tools");
  expect_error(R"({"disallowed_tools": {"a": 1}})", "data.options.disallowed_tools");
  expect_error(R"({"append_system_prompt": 1})", "data.options.append_system_prompt");
  expect_error(R"({"add_dirs": "/tmp"})", "data.options.add_dirs");
  expect_error(R"({"add_dirs": [null]})", "data.options.add_dirs");
  expect_error(R"({"mcp_config": "{\"mcpServers\":{}}"})", "data.options.mcp_config");
  expect_error(R"({"mcp_config": []})", "data.options.mcp_config");
  expect_error(R"({"strict_mcp_config": 1})", "data.options.strict_mcp_config");
  expect_error(R"({"permission_prompt": false})", "data.options.permission_prompt");
}

// ---- values ----

TEST(RunOptionsParse, ModelNamesFollowThePattern) {
  for (const std::string& good : std::vector<std::string>{
           "opus", "claude-opus-4-8[1m]", "claude-3-5-sonnet-20241022", "us.anthropic.claude-v2:1",
           "org/model@v1_2", std::string(128, 'm')}) {
    SCOPED_TRACE(good);
    const RunOptions o =
        parse_ok("{\"model\":" + jstr(good) + ",\"fallback_model\":" + jstr(good) + "}");
    EXPECT_EQ(o.model, good);
    EXPECT_EQ(o.fallback_model, good);
  }
  for (const std::string& bad : std::vector<std::string>{
           std::string(), std::string(129, 'm'), std::string("a b"), std::string("opus,haiku"),
           std::string("$(id)"), std::string("a;b"), std::string("x\ny"),
           std::string("mod\xC3\xA9le"), std::string("a=b"), std::string("a\0b", 3)}) {
    expect_error("{\"model\":" + jstr(bad) + "}", "data.options.model");
    expect_error("{\"fallback_model\":" + jstr(bad) + "}", "data.options.fallback_model");
  }
}

TEST(RunOptionsParse, PermissionModeIsOneOfTheCliChoices) {
  for (const char* mode : {"acceptEdits", "auto", "default", "dontAsk", "plan"}) {
    EXPECT_EQ(parse_ok(std::string("{\"permission_mode\":\"") + mode + "\"}").permission_mode,
              mode);
  }
  EXPECT_EQ(
      parse_ok(R"({"permission_mode":"bypassPermissions"})", kDangerousPolicy).permission_mode,
      "bypassPermissions");
  for (const char* bad : {"bogus", "Default", "", "plan ", "acceptedits"}) {
    expect_error(std::string("{\"permission_mode\":\"") + bad + "\"}",
                 "data.options.permission_mode");
  }
}

TEST(RunOptionsParse, ToolNamesAreCheckedOneByOne) {
  const RunOptions o = parse_ok(
      R"j({"allowed_tools":["Read","Bash(git *)","mcp__server__tool","Edit(/src/**)"],
          "disallowed_tools":["WebFetch","Bash(curl:*)"]})j");
  EXPECT_EQ(o.allowed_tools, (std::vector<std::string>{"Read", "Bash(git *)", "mcp__server__tool",
                                                       "Edit(/src/**)"}));
  EXPECT_EQ(o.disallowed_tools, (std::vector<std::string>{"WebFetch", "Bash(curl:*)"}));

  for (const char* key : {"allowed_tools", "disallowed_tools"}) {
    SCOPED_TRACE(key);
    const std::string field = std::string("data.options.") + key;
    auto list = [&](const std::string& items) {
      return std::string("{\"") + key + "\":[" + items + "]}";
    };
    expect_error(list(R"("Read","a,b")"), field + "[1]");
    expect_error(list(R"("-x")"), field + "[0]");
    expect_error(list(R"("Read","--dangerously-skip-permissions")"), field + "[1]");
    expect_error(list(R"("a\tb")"), field + "[0]");
    expect_error(list(R"("a\nb")"), field + "[0]");
    expect_error(list(R"("a\u007fb")"), field + "[0]");
    expect_error(list(R"("a\u0085b")"), field + "[0]");  // a C1 control
    expect_error(list(R"("")"), field);                  // an empty entry
    expect_error(list(jstr(std::string(257, 't'))), field);
    EXPECT_TRUE(accepted(list(jstr(std::string(256, 't')))));
    std::string many;
    for (int i = 0; i < 65; ++i) many += (i ? "," : "") + jstr("T" + std::to_string(i));
    expect_error(list(many), field);
    many = many.substr(0, many.rfind(','));  // 64 entries
    EXPECT_TRUE(accepted(list(many)));
  }
}

TEST(RunOptionsParse, AppendSystemPromptIsBoundedAndHasNoNul) {
  const std::string big(65536, 'x');
  EXPECT_EQ(parse_ok("{\"append_system_prompt\":" + jstr(big) + "}").append_system_prompt, big);
  EXPECT_EQ(
      parse_ok(R"({"append_system_prompt":"line 1\nline \"2\"\t--help"})").append_system_prompt,
      "line 1\nline \"2\"\t--help");
  expect_error("{\"append_system_prompt\":" + jstr(big + "x") + "}",
               "data.options.append_system_prompt");
  expect_error(R"({"append_system_prompt":"a\u0000b"})", "data.options.append_system_prompt");
}

TEST(RunOptionsParse, McpConfigMustBeABoundedObject) {
  const RunOptions o =
      parse_ok(R"({"mcp_config":{"mcpServers":{"s":{"command":"x","args":["--y"]}}}})");
  ASSERT_TRUE(o.mcp_config_json);
  EXPECT_EQ(*o.mcp_config_json, R"({"mcpServers":{"s":{"command":"x","args":["--y"]}}})");
  EXPECT_TRUE(json::parse(*o.mcp_config_json).is_object());

  for (const char* bad : {"[]", "\"{}\"", "1", "true"}) {
    expect_error(std::string("{\"mcp_config\":") + bad + "}", "data.options.mcp_config");
  }
  // Serialized {"k":"<v>"} is 8 bytes + v: exactly at and just over the limit.
  const std::string at(kMaxMcpConfigBytes - 8, 'v');
  EXPECT_EQ(parse_ok("{\"mcp_config\":{\"k\":" + jstr(at) + "}}").mcp_config_json->size(),
            kMaxMcpConfigBytes);
  expect_error("{\"mcp_config\":{\"k\":" + jstr(at + "v") + "}}", "data.options.mcp_config");
}

TEST(RunOptionsParse, BooleansAndPermissionPrompt) {
  const RunOptions o = parse_ok(R"({"strict_mcp_config":true,"permission_prompt":"client"})");
  EXPECT_TRUE(o.strict_mcp_config);
  EXPECT_EQ(o.permission_prompt, "client");
  EXPECT_EQ(parse_ok(R"({"permission_prompt":"none"})").permission_prompt, "none");
  expect_error(R"({"permission_prompt":"stdio"})", "data.options.permission_prompt");
  expect_error(R"({"permission_prompt":""})", "data.options.permission_prompt");
}

// ---- policy ----

// session_id: a past session to resume; only a UUID can reach --resume.
TEST(RunOptionsParse, SessionIdIsAUuid) {
  const std::string id = "0f8fad5b-d9cb-469f-a165-70867728950e";
  EXPECT_EQ(parse_ok(R"({"session_id":")" + id + R"("})").session_id, id);
  EXPECT_FALSE(parse_ok(R"({"session_id":null})").session_id);
  for (const char* bad :
       {R"({"session_id":"not-a-uuid"})", R"({"session_id":"--resume"})",
        R"({"session_id":"0f8fad5b-d9cb-469f-a165-70867728950"})",
        R"({"session_id":"0f8fad5b-d9cb-469f-a165-70867728950ee"})",
        R"({"session_id":"0f8fad5bxd9cb-469f-a165-70867728950e"})",
        R"({"session_id":"0f8fad5b-d9cb-469f-a165-70867728950g"})", R"({"session_id":5})"}) {
    expect_error(bad, "data.options.session_id");
  }
}

TEST(RunOptionsParse, DangerousOptionsAreForbiddenByDefault) {
  for (const char* text :
       {R"({"dangerously_skip_permissions":true})", R"({"permission_mode":"bypassPermissions"})"}) {
    const auto error = parse_error(text);
    EXPECT_EQ(error.code, ErrorCode::kForbidden) << text;
    EXPECT_NE(error.message.find("claude.allow_dangerous"), std::string::npos) << error.message;
    EXPECT_NE(error.message.find("policy"), std::string::npos) << error.message;
  }
  EXPECT_EQ(field_of(parse_error(R"({"dangerously_skip_permissions":true})")),
            "data.options.dangerously_skip_permissions");
  EXPECT_EQ(field_of(parse_error(R"({"permission_mode":"bypassPermissions"})")),
            "data.options.permission_mode");
  // false is always fine.
  EXPECT_FALSE(parse_ok(R"({"dangerously_skip_permissions":false})").dangerously_skip_permissions);
  // Allowed by the policy.
  const RunOptions o =
      parse_ok(R"({"dangerously_skip_permissions":true,"permission_mode":"bypassPermissions"})",
               kDangerousPolicy);
  EXPECT_TRUE(o.dangerously_skip_permissions);
  EXPECT_EQ(o.permission_mode, "bypassPermissions");
}

// ---- add_dirs ----

TEST(RunOptionsParse, AddDirsAreCanonicalized) {
  TempDir tmp;
  const fs::path root = tmp.path();
  fs::create_directories(root / "a" / "b");
  fs::create_directory_symlink(root / "a", root / "link");
  fs::create_directory_symlink("a/b", root / "rel-link");

  const std::string text = "{\"add_dirs\":[" + jstr((root / "link").string()) + "," +
                           jstr((root / "a" / "." / "b" / "").string()) + "," +
                           jstr((root / "a" / "b" / ".." / "..").string()) + "," +
                           jstr((root / "rel-link").string()) + "," + jstr((root / "a").string()) +
                           "]}";
  const RunOptions o = parse_ok(text);
  // Symlinks resolved, "." and ".." folded, duplicates dropped (first position kept).
  EXPECT_EQ(o.add_dirs, (std::vector<std::string>{(root / "a").string(),
                                                  (root / "a" / "b").string(), root.string()}));
}

TEST(RunOptionsParse, BadAddDirsAreInvalidPathNamingTheEntry) {
  TempDir tmp;
  const fs::path root = tmp.path();
  fs::create_directory(root / "d");
  std::ofstream(root / "file") << "x";
  fs::create_directory_symlink(root / "missing", root / "dangling");
  fs::create_symlink(root / "loop1", root / "loop2");
  fs::create_symlink(root / "loop2", root / "loop1");
  const std::string ok = jstr((root / "d").string());

  auto entries = [&](const std::string& second) {
    return "{\"add_dirs\":[" + ok + "," + second + "]}";
  };
  for (const std::string& bad : std::vector<std::string>{
           jstr("relative/dir"), jstr("d"), jstr(""), jstr("~/x"),
           jstr((root / "missing").string()), jstr((root / "file").string()),
           jstr((root / "file" / "sub").string()), jstr((root / "dangling").string()),
           jstr((root / "loop1").string()), std::string("\"") + root.string() + "/d\\u0000/x\""}) {
    if (bad == jstr("")) {
      expect_error(entries(bad), "data.options.add_dirs");  // empty entry: a malformed list
      continue;
    }
    expect_error(entries(bad), "data.options.add_dirs[1]", ErrorCode::kInvalidPath);
  }
  const auto error = parse_error(entries(jstr((root / "file").string())));
  EXPECT_NE(error.message.find("not a directory"), std::string::npos) << error.message;

  std::string many;
  for (int i = 0; i < 33; ++i) many += (i ? "," : "") + ok;
  expect_error("{\"add_dirs\":[" + many + "]}", "data.options.add_dirs");
  many = many.substr(0, many.rfind(','));  // 32 entries (the same dir: deduplicated)
  EXPECT_EQ(parse_ok("{\"add_dirs\":[" + many + "]}").add_dirs.size(), 1U);
}

// ---- build_cli_args ----

TEST(RunOptionsArgs, FixedHeadAndConfigDefaults) {
  config::Config::Claude claude;  // default_model claude-3-5-sonnet-20241022, tools read,write,run
  auto expected = head();
  expected.push_back("--model=claude-3-5-sonnet-20241022");
  expected.push_back("--permission-prompt-tool=stdio");  // clients approve tool calls
  expected.push_back("--allowedTools=read,write,run");
  EXPECT_EQ(build_cli_args(RunOptions{}, claude, std::nullopt, std::nullopt), expected);

  EXPECT_EQ(build_cli_args(RunOptions{}, no_defaults(), std::nullopt, std::nullopt), head());
}

TEST(RunOptionsArgs, EveryOptionMapsToExactlyOneElement) {
  RunOptions o;
  o.model = "opus";
  o.fallback_model = "sonnet";
  o.permission_mode = "plan";
  o.dangerously_skip_permissions = true;
  o.allowed_tools = {"Read", "Bash(git *)"};
  o.disallowed_tools = {"WebFetch", "Bash(curl:*)"};
  o.mcp_config_json = R"({"mcpServers":{}})";
  o.strict_mcp_config = true;
  o.append_system_prompt = "Be terse.\nReally.";
  o.add_dirs = {"/srv/a", "/srv/b c"};
  o.permission_prompt = "client";
  config::Config::Claude claude;
  const auto args = build_cli_args(o, claude, std::string("0b9d2f3a-1c2d-4e5f-8a9b-0c1d2e3f4a5b"),
                                   std::string("/run/pa/mcp.json"));
  auto expected = head();
  for (const char* e :
       {"--model=opus", "--fallback-model=sonnet", "--permission-mode=plan",
        "--dangerously-skip-permissions", "--permission-prompt-tool=stdio",
        "--allowedTools=Read,Bash(git *)", "--disallowedTools=WebFetch,Bash(curl:*)",
        "--mcp-config=/run/pa/mcp.json", "--strict-mcp-config",
        "--append-system-prompt=Be terse.\nReally.", "--add-dir=/srv/a", "--add-dir=/srv/b c",
        "--resume=0b9d2f3a-1c2d-4e5f-8a9b-0c1d2e3f4a5b"}) {
    expected.emplace_back(e);
  }
  EXPECT_EQ(args, expected);
}

// Issue 19: the CLI's own cost cap, a bounded positive number of dollars.
TEST(RunOptionsParse, MaxBudgetUsdIsABoundedPositiveNumber) {
  EXPECT_EQ(parse_ok(R"({"max_budget_usd": 0.5})").max_budget_usd, 0.5);
  EXPECT_EQ(parse_ok(R"({"max_budget_usd": 3})").max_budget_usd, 3.0);
  EXPECT_EQ(parse_ok(R"({"max_budget_usd": 10000})").max_budget_usd, kMaxBudgetUsd);
  EXPECT_FALSE(parse_ok(R"({"max_budget_usd": null})").max_budget_usd.has_value());
  for (const char* bad :
       {R"({"max_budget_usd": 0})", R"({"max_budget_usd": -1})", R"({"max_budget_usd": 10000.5})",
        R"({"max_budget_usd": 1e300})", R"({"max_budget_usd": "1"})", R"({"max_budget_usd": true})",
        R"({"max_budget_usd": [1]})"}) {
    expect_error(bad, "data.options.max_budget_usd");
  }
}

TEST(RunOptionsArgs, MaxBudgetUsdIsOneElementInItsShortestForm) {
  RunOptions o;
  o.max_budget_usd = 0.5;
  auto args = build_cli_args(o, no_defaults(), std::nullopt, std::nullopt);
  auto expected = head();
  expected.emplace_back("--max-budget-usd=0.5");
  EXPECT_EQ(args, expected);
  o.max_budget_usd = 12;
  args = build_cli_args(o, no_defaults(), std::nullopt, std::nullopt);
  EXPECT_EQ(args.back(), "--max-budget-usd=12");
}

TEST(RunOptionsArgs, PermissionPromptFollowsOptionThenConfigThenPolicy) {
  config::Config::Claude claude;
  RunOptions o;
  // Unset everywhere: clients approve unless the server allows skipping permissions.
  EXPECT_TRUE(uses_client_permission_prompt(o, claude));
  claude.allow_dangerous = true;
  EXPECT_FALSE(uses_client_permission_prompt(o, claude));
  claude.permission_prompt = "client";
  EXPECT_TRUE(uses_client_permission_prompt(o, claude));
  o.permission_prompt = "none";
  EXPECT_FALSE(uses_client_permission_prompt(o, claude));
  EXPECT_FALSE(contains(build_cli_args(o, claude, std::nullopt, std::nullopt),
                        "--permission-prompt-tool=stdio"));
  claude.permission_prompt = "none";
  o.permission_prompt = "client";
  EXPECT_TRUE(contains(build_cli_args(o, claude, std::nullopt, std::nullopt),
                       "--permission-prompt-tool=stdio"));
}

TEST(RunOptionsArgs, ClientValuesWinOverConfigDefaults) {
  config::Config::Claude claude;
  RunOptions o;
  o.model = "haiku";
  o.allowed_tools = std::vector<std::string>{"Edit"};
  auto args = build_cli_args(o, claude, std::nullopt, std::nullopt);
  EXPECT_TRUE(contains(args, "--model=haiku"));
  EXPECT_TRUE(contains(args, "--allowedTools=Edit"));
  EXPECT_FALSE(contains(args, "--allowedTools=read,write,run"));

  // An explicit empty list means "none": neither the client's nor the default list is passed.
  o.allowed_tools = std::vector<std::string>{};
  o.disallowed_tools = std::vector<std::string>{};
  args = build_cli_args(o, claude, std::nullopt, std::nullopt);
  for (const auto& arg : args) {
    EXPECT_FALSE(arg.starts_with("--allowedTools") || arg.starts_with("--disallowedTools")) << arg;
  }
}

TEST(RunOptionsArgs, ValuesThatLookLikeFlagsStayInsideTheirElement) {
  TempDir tmp;
  fs::create_directory(tmp.path() / "--help");
  const RunOptions o = parse_ok(
      "{\"model\":\"m--dangerously-skip-permissions\",\"fallback_model\":\"x-p\","
      "\"append_system_prompt\":\"--resume=x --permission-mode bypassPermissions\","
      "\"allowed_tools\":[\"Bash(--help)\",\"Read --verbose\"],"
      "\"add_dirs\":[" +
      jstr((tmp.path() / "--help").string()) + "]}");
  const auto args = build_cli_args(o, no_defaults(), std::string("--help"), std::nullopt);
  auto expected = head();
  for (const std::string& e : std::vector<std::string>{
           std::string("--model=m--dangerously-skip-permissions"),
           std::string("--fallback-model=x-p"),
           std::string("--allowedTools=Bash(--help),Read --verbose"),
           std::string("--append-system-prompt=--resume=x --permission-mode bypassPermissions"),
           "--add-dir=" + (tmp.path() / "--help").string(), std::string("--resume=--help")}) {
    expected.push_back(e);
  }
  EXPECT_EQ(args, expected);
  EXPECT_FALSE(contains(args, "--dangerously-skip-permissions"));
  // A model name can never start like a flag.
  for (const char* model : {"--dangerously-skip-permissions", "-p", "-"}) {
    EXPECT_EQ(field_of(parse_error(std::string("{\"model\":") + jstr(model) + "}")),
              "data.options.model")
        << model;
  }
  // After the fixed head, every element is one `--flag=value` or one of the two boolean flags.
  for (std::size_t i = 4; i < args.size(); ++i) {
    EXPECT_TRUE(args[i].starts_with("--") && args[i].find('=') != std::string::npos) << args[i];
  }
}

TEST(RunOptionsArgs, ThePromptNeverAppearsInArgv) {
  const std::string prompt = "--dangerously-skip-permissions";
  RunOptions o = parse_ok(R"({"model":"opus","allowed_tools":["Read"]})");
  const auto args = build_cli_args(o, config::Config::Claude{}, std::nullopt, std::nullopt);
  for (const auto& arg : args) EXPECT_EQ(arg.find(prompt), std::string::npos) << arg;
  // It travels on stdin instead.
  EXPECT_NE(user_message_line(prompt).find(prompt), std::string::npos);
}

TEST(RunOptionsArgs, ResumeOnlyWithASessionLikeId) {
  const auto last = [](const std::optional<std::string>& id) {
    return build_cli_args(RunOptions{}, no_defaults(), id, std::nullopt);
  };
  EXPECT_EQ(last(std::string("11111111-2222-4333-8444-555555555555")).back(),
            "--resume=11111111-2222-4333-8444-555555555555");
  EXPECT_EQ(last(std::string(128, 'a')).back(), "--resume=" + std::string(128, 'a'));
  for (const std::string& bad : std::vector<std::string>{
           std::string(), std::string(129, 'a'), std::string("a b"), std::string("../x"),
           std::string("a;b"), std::string("id=1"), std::string("a\nb"), std::string("\xC3\xA9")}) {
    EXPECT_EQ(last(bad), head()) << bad;
  }
  EXPECT_EQ(last(std::nullopt), head());
}

TEST(RunOptionsArgs, McpConfigIsPassedAsTheGivenPath) {
  EXPECT_EQ(
      build_cli_args(RunOptions{}, no_defaults(), std::nullopt, std::string("/p/m.json")).back(),
      "--mcp-config=/p/m.json");
  EXPECT_EQ(build_cli_args(RunOptions{}, no_defaults(), std::nullopt, std::string()), head());
}

// ---- build_cli_env ----

std::map<std::string, std::string> env_map(const std::vector<std::string>& env) {
  std::map<std::string, std::string> out;
  for (const auto& entry : env) {
    const auto eq = entry.find('=');
    EXPECT_NE(eq, std::string::npos) << entry;
    EXPECT_TRUE(out.emplace(entry.substr(0, eq), entry.substr(eq + 1)).second)
        << "duplicate " << entry;
  }
  return out;
}

const std::map<std::string, std::string> kServerEnv = {
    {"PATH", "/usr/bin:/bin"},
    {"HOME", "/home/server"},
    {"LANG", "C.UTF-8"},
    {"LC_ALL", "C"},
    {"LC_CTYPE", "C"},
    {"TZ", "UTC"},
    {"TMPDIR", "/tmp"},
    {"USER", "pa"},
    {"LOGNAME", "pa"},
    {"SHELL", "/bin/bash"},
    {"TERM", "xterm"},
    {"ANTHROPIC_API_KEY", "sk-test"},
    {"ANTHROPIC_BASE_URL", "http://127.0.0.1:9"},
    {"CLAUDE_CODE_USE_BEDROCK", "1"},
    {"PA_AUTH_TOKEN", "secret"},
    {"PA_CONFIG", "/etc/pa.yaml"},
    {"PA_CLAUDE_ENV", "X=1"},
    {"SSH_AUTH_SOCK", "/run/ssh"},
    {"LD_PRELOAD", "/evil.so"},
    {"AWS_SECRET_ACCESS_KEY", "aws"},
    {"anthropic_api_key", "lower"},
    {"XANTHROPIC_FOO", "x"},
    {"PWD", "/"},
};

TEST(RunOptionsEnv, OnlyTheAllowListPasses) {
  config::Config::Claude claude;
  const auto env = env_map(build_cli_env(kServerEnv, claude));
  const std::map<std::string, std::string> expected = {
      {"PATH", "/usr/bin:/bin"},
      {"HOME", "/home/server"},
      {"LANG", "C.UTF-8"},
      {"LC_ALL", "C"},
      {"LC_CTYPE", "C"},
      {"TZ", "UTC"},
      {"TMPDIR", "/tmp"},
      {"USER", "pa"},
      {"LOGNAME", "pa"},
      {"SHELL", "/bin/bash"},
      {"TERM", "xterm"},
      {"ANTHROPIC_API_KEY", "sk-test"},
      {"ANTHROPIC_BASE_URL", "http://127.0.0.1:9"},
      {"CLAUDE_CODE_USE_BEDROCK", "1"},
      {"NO_COLOR", "1"},
  };
  EXPECT_EQ(env, expected);
  for (const auto& [name, value] : env) EXPECT_FALSE(name.starts_with("PA_")) << name;
}

TEST(RunOptionsEnv, ConfigEnvOverridesThenHomeThenNoColor) {
  config::Config::Claude claude;
  claude.env = {{"ANTHROPIC_BASE_URL", "http://stub:1"},
                {"EXTRA", "yes"},
                {"NO_COLOR", "0"},
                {"HOME", "/from/env"},
                {"PATH", "/opt/bin"}};
  claude.home = "/var/lib/pa/claude-home";
  const auto env = env_map(build_cli_env(kServerEnv, claude));
  EXPECT_EQ(env.at("ANTHROPIC_BASE_URL"), "http://stub:1");
  EXPECT_EQ(env.at("ANTHROPIC_API_KEY"), "sk-test");
  EXPECT_EQ(env.at("EXTRA"), "yes");
  EXPECT_EQ(env.at("PATH"), "/opt/bin");
  EXPECT_EQ(env.at("HOME"), "/var/lib/pa/claude-home");
  EXPECT_EQ(env.at("NO_COLOR"), "1");
  EXPECT_FALSE(env.contains("PA_AUTH_TOKEN"));

  claude.home.clear();
  EXPECT_EQ(env_map(build_cli_env(kServerEnv, claude)).at("HOME"), "/from/env");
  claude.env.clear();
  EXPECT_EQ(env_map(build_cli_env(kServerEnv, claude)).at("HOME"), "/home/server");
}

TEST(RunOptionsEnv, EmptyServerEnvGivesOnlyNoColor) {
  EXPECT_EQ(build_cli_env({}, config::Config::Claude{}), std::vector<std::string>{"NO_COLOR=1"});
}

// ---- stdin lines ----

TEST(RunOptionsLines, UserMessageLineHasTheStreamJsonShape) {
  EXPECT_EQ(user_message_line("hi"), R"({"type":"user","message":{"role":"user","content":"hi"},)"
                                     R"("parent_tool_use_id":null,"session_id":""})"
                                     "\n");
}

TEST(RunOptionsLines, UserMessageLineEscapesAndRoundTrips) {
  const std::string prompt = std::string("say \"hi\"\\ \n\r\t line2 \x01 nul:") + '\0' +
                             " caf\xC3\xA9 \xF0\x9F\x98\x80 \xE2\x80\xA8 </script> --help";
  const std::string line = user_message_line(prompt);
  ASSERT_FALSE(line.empty());
  EXPECT_EQ(line.back(), '\n');
  const std::string_view body(line.data(), line.size() - 1);
  EXPECT_EQ(body.find('\n'), std::string_view::npos);
  EXPECT_EQ(body.find('\r'), std::string_view::npos);
  EXPECT_EQ(body.find('\0'), std::string_view::npos);
  EXPECT_NE(body.find(R"(say \"hi\"\\ \n\r\t line2 \u0001 nul:\u0000)"), std::string_view::npos)
      << body;

  const json::value parsed = json::parse(body);
  EXPECT_EQ(parsed.at("type"), "user");
  EXPECT_EQ(parsed.at("message").at("role"), "user");
  EXPECT_EQ(std::string(parsed.at("message").at("content").as_string()), prompt);
  EXPECT_TRUE(parsed.at("parent_tool_use_id").is_null());
  EXPECT_EQ(parsed.at("session_id"), "");
}

TEST(RunOptionsLines, InterruptRequestLine) {
  EXPECT_EQ(interrupt_request_line("int_1"),
            R"({"type":"control_request","request_id":"int_1","request":{"subtype":"interrupt"}})"
            "\n");
  const json::value parsed = json::parse(interrupt_request_line("a\"b"));
  EXPECT_EQ(parsed.at("request_id"), "a\"b");
}

// ---- inspect_cli_line ----

TEST(RunOptionsInspect, RealInitLine) {
  const CliLine l = inspect_cli_line(kInitLine);
  EXPECT_TRUE(l.is_json_object);
  EXPECT_EQ(l.type, "system");
  EXPECT_EQ(l.subtype, "init");
  EXPECT_EQ(l.session_id, "91c2aa5d-f775-40f8-9ebe-e9ff16c71278");
  EXPECT_FALSE(l.is_result);
  EXPECT_FALSE(l.is_error);
  EXPECT_TRUE(l.errors.empty());
}

// What a notification says of a run's end comes from its result line (a real one, transcript
// copied-gleam-2.1.3-bash-ls).
TEST(RunOptionsInspect, AResultLinesNumbersAndTheStartOfItsText) {
  const CliLine l = inspect_cli_line(
      R"({"type":"result","subtype":"success","is_error":false,"duration_ms":8722,)"
      R"("duration_api_ms":21034,"num_turns":2,"result":"Here are the files in the current )"
      R"(directory.","session_id":"40e7b02d-c0f9-4876-9010-f514d4eb0603","total_cost_usd":)"
      R"(0.24722425,"usage":{"input_tokens":18,"output_tokens":424}})");
  ASSERT_TRUE(l.is_result);
  EXPECT_EQ(l.total_cost_usd, 0.24722425);
  EXPECT_EQ(l.duration_ms, 8722);
  EXPECT_EQ(l.num_turns, 2);
  EXPECT_EQ(l.result_text, "Here are the files in the current directory.");

  const CliLine long_text =
      inspect_cli_line(R"({"type":"result","result":")" + std::string(1000, 'x') + R"("})");
  EXPECT_LE(long_text.result_text.size(), CliLine::kResultTextBytes);
  EXPECT_FALSE(long_text.total_cost_usd.has_value());

  const CliLine not_result =
      inspect_cli_line(R"({"type":"assistant","total_cost_usd":1,"result":"x"})");
  EXPECT_FALSE(not_result.total_cost_usd.has_value());
  EXPECT_EQ(not_result.result_text, "");
}

// The spend totals add a result's usage (this turn's tokens) and its total_cost_usd (issue 19);
// figures that cannot be right are not believed.
TEST(RunOptionsInspect, AResultLinesUsageTokens) {
  const CliLine l = inspect_cli_line(
      R"({"type":"result","total_cost_usd":0.0013700000000000001,"usage":{"input_tokens":24,)"
      R"("cache_creation_input_tokens":5,"cache_read_input_tokens":7,"output_tokens":50}})");
  ASSERT_TRUE(l.total_cost_usd.has_value());
  EXPECT_DOUBLE_EQ(*l.total_cost_usd, 0.00137);
  EXPECT_EQ(l.input_tokens, 24u);
  EXPECT_EQ(l.output_tokens, 50u);
  EXPECT_EQ(l.cache_read_input_tokens, 7u);
  EXPECT_EQ(l.cache_creation_input_tokens, 5u);

  const CliLine odd = inspect_cli_line(
      R"({"type":"result","total_cost_usd":-1,"usage":{"input_tokens":-3,"output_tokens":"9",)"
      R"("cache_read_input_tokens":1e30,"cache_creation_input_tokens":2000000000000}})");
  EXPECT_FALSE(odd.total_cost_usd.has_value());
  EXPECT_EQ(odd.input_tokens, 0u);
  EXPECT_EQ(odd.output_tokens, 0u);
  EXPECT_EQ(odd.cache_read_input_tokens, 0u);
  EXPECT_EQ(odd.cache_creation_input_tokens, 0u);
  EXPECT_FALSE(inspect_cli_line(R"({"type":"result","total_cost_usd":1e12})").total_cost_usd);
  EXPECT_EQ(inspect_cli_line(R"({"type":"result","usage":5})").input_tokens, 0u);
}

TEST(RunOptionsInspect, RealAssistantLine) {
  const CliLine l = inspect_cli_line(kAssistantLine);
  EXPECT_TRUE(l.is_json_object);
  EXPECT_EQ(l.type, "assistant");
  EXPECT_EQ(l.subtype, "");
  EXPECT_EQ(l.session_id, "91c2aa5d-f775-40f8-9ebe-e9ff16c71278");
  EXPECT_FALSE(l.is_result);
  EXPECT_FALSE(l.is_error);  // "error":"authentication_failed" is not is_error
}

TEST(RunOptionsInspect, RealResultSuccessLine) {
  // subtype "success" but is_error true: the no-credentials turn.
  const CliLine l = inspect_cli_line(std::string(kResultSuccessLine) + "\n");
  EXPECT_TRUE(l.is_json_object);
  EXPECT_EQ(l.type, "result");
  EXPECT_EQ(l.subtype, "success");
  EXPECT_TRUE(l.is_result);
  EXPECT_TRUE(l.is_error);
  EXPECT_EQ(l.session_id, "91c2aa5d-f775-40f8-9ebe-e9ff16c71278");
  EXPECT_TRUE(l.errors.empty());
}

TEST(RunOptionsInspect, RealErrorDuringExecutionLines) {
  CliLine l = inspect_cli_line(kResultResumeErrorLine);
  EXPECT_TRUE(l.is_result);
  EXPECT_TRUE(l.is_error);
  EXPECT_EQ(l.subtype, "error_during_execution");
  EXPECT_EQ(l.session_id, "11111111-2222-4333-8444-555555555555");
  EXPECT_EQ(l.errors, (std::vector<std::string>{"No conversation found with session ID: "
                                                "11111111-2222-4333-8444-555555555555"}));

  l = inspect_cli_line(std::string(kResultInterruptedLine) + "\r\n");
  EXPECT_TRUE(l.is_result);
  EXPECT_TRUE(l.is_error);
  EXPECT_EQ(l.subtype, "error_during_execution");
  EXPECT_EQ(l.session_id, "d792b9f3-090c-4670-9064-5a0fa164c68f");
  ASSERT_EQ(l.errors.size(), 1U);
  EXPECT_TRUE(l.errors[0].starts_with("[ede_diagnostic]"));
}

TEST(RunOptionsInspect, ControlResponseHasNoSession) {
  const CliLine l = inspect_cli_line(kControlResponseLine);
  EXPECT_TRUE(l.is_json_object);
  EXPECT_EQ(l.type, "control_response");
  EXPECT_FALSE(l.session_id);
  EXPECT_FALSE(l.is_result);
}

TEST(RunOptionsInspect, NonObjectsAreNotJsonObjects) {
  for (const std::string_view line :
       {std::string_view("Error parsing streaming input line: x: SyntaxError"),
        std::string_view("[1,2,3]"), std::string_view(R"([{"type":"result"}])"),
        std::string_view("\"result\""), std::string_view("42"), std::string_view("null"),
        std::string_view(""), std::string_view(R"({"type":"result","is_error":true)"),
        std::string_view(R"({"type":"result"} trailing)")}) {
    const CliLine l = inspect_cli_line(line);
    EXPECT_FALSE(l.is_json_object) << line;
    EXPECT_FALSE(l.is_result) << line;
    EXPECT_FALSE(l.is_error) << line;
  }
}

TEST(RunOptionsInspect, OddFieldTypesAreTolerated) {
  const CliLine l = inspect_cli_line(
      R"({"type":5,"subtype":null,"session_id":7,"is_error":"yes","errors":[1,"a",{"b":2}]})");
  EXPECT_TRUE(l.is_json_object);
  EXPECT_EQ(l.type, "");
  EXPECT_EQ(l.subtype, "");
  EXPECT_FALSE(l.session_id);
  EXPECT_FALSE(l.is_error);
  EXPECT_EQ(l.errors, (std::vector<std::string>{"1", "a", R"({"b":2})"}));
}

TEST(RunOptionsInspect, DeeplyNestedToolInputIsStillAnObject) {
  std::string nested = R"({"type":"assistant","session_id":"s","message":)";
  for (int i = 0; i < 500; ++i) nested += "[";
  for (int i = 0; i < 500; ++i) nested += "]";
  nested += "}";
  const CliLine l = inspect_cli_line(nested);
  EXPECT_TRUE(l.is_json_object);
  EXPECT_EQ(l.type, "assistant");
}

}  // namespace
}  // namespace pa::agent
