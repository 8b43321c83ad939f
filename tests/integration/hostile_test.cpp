// Hostile input at the message level (issue 5): every field of every message with wrong types,
// huge values, NUL bytes and control characters; invalid UTF-8; deeply nested JSON; prompts and
// option values that look like flags; ".." in paths; unknown project ids; 10,000 rapid messages.
// Each case gets its documented error (docs/protocol.md) or close code, and afterwards another
// client is served normally and the projects and their history on disk are unchanged.
#include <fstream>
#include <set>

#include "integration/fixture.hpp"

namespace pa::test {
namespace {

namespace fs = std::filesystem;

std::string field_of(const Json& m) {
  const auto* d = m.if_contains("data");
  if (d == nullptr || !d->is_object()) return "";
  const auto* details = d->as_object().if_contains("details");
  if (details == nullptr || !details->is_object()) return "";
  return str(details->as_object(), "field");
}

// Every flag the server itself may put in the CLI's argv (docs/protocol.md, execute): a bare
// flag, or a "--flag=" prefix whose value is one argv element.
bool is_server_flag(const std::string& arg) {
  static const std::set<std::string> kBare = {"-p", "--verbose", "--strict-mcp-config",
                                              "--dangerously-skip-permissions"};
  static const std::vector<std::string> kPrefixed = {
      "--input-format=",    "--output-format=",   "--model=",
      "--fallback-model=",  "--permission-mode=", "--allowedTools=",
      "--disallowedTools=", "--mcp-config=",      "--append-system-prompt=",
      "--add-dir=",         "--resume=",          "--permission-prompt-tool=",
      "--max-budget-usd="};
  if (kBare.count(arg) != 0) return true;
  for (const auto& p : kPrefixed) {
    if (arg.rfind(p, 0) == 0) return true;
  }
  return false;
}

class HostileTest : public AgentServerTest {
 protected:
  void SetUp() override {
    start_hostile_server({});
    // A project with some history, to check that nothing below disturbs it.
    auto client = connect();
    const auto created = create_project(*client, make_dir("base"));
    base_id_ = str(created, "project_id");
    ASSERT_FALSE(base_id_.empty()) << json::serialize(created);
    const auto reply = execute(*client, base_id_, "[[fake:text text=baseline]]");
    ASSERT_TRUE(is_state(reply, "EXECUTING")) << json::serialize(reply);
    ASSERT_TRUE(client->read_until([](const Json& m) { return is_state(m, "IDLE"); }, 30s));
    const auto history = client->request(Json{{"type", "get_messages"}, {"project_id", base_id_}});
    for (const auto& m : data(history).at("messages").as_array()) {
      base_history_.push_back(json::serialize(m));
    }
    ASSERT_GE(base_history_.size(), 4u);
    base_runs_ = records().size();
  }

  void start_hostile_server(std::vector<std::string> args) {
    ServerOptions options;
    options.args = std::move(args);
    options.args.insert(options.args.end(),
                        // No periodic server_stats: the tests read replies strictly in order.
                        {"--stats-interval", "0", "--limits-connection-rate", "0",
                         "--limits-prompt-size", "4096", "--claude-env",
                         "FAKE_CLAUDE_RECORD=" + record_file().string() +
                             ",FAKE_CLAUDE_STATE_DIR=" + (state_.path() / "sessions").string()});
    start_server(options);
  }

  // Sends raw text and returns the next message (the reply: a connection's requests are
  // answered in order).
  Json send_raw(WsClient& client, const std::string& text) {
    client.send_text(text);
    auto m = client.read();
    if (!m) {
      ADD_FAILURE() << "no reply to " << text.substr(0, 200);
      return {};
    }
    return *m;
  }

  void expect_invalid(WsClient& client, const std::string& text, const std::string& field) {
    const auto m = send_raw(client, text);
    EXPECT_EQ(error_code(m), "INVALID_MESSAGE") << text.substr(0, 300) << "\n"
                                                << json::serialize(m).substr(0, 300);
    EXPECT_EQ(field_of(m), field) << text.substr(0, 300);
  }

  // Another client is served normally; the base project and its history are as they were; every
  // project the server lists has intact metadata and history files on disk.
  void expect_server_and_disk_intact() {
    auto other = connect();
    ASSERT_TRUE(other->is_open());
    EXPECT_EQ(str(other->request(Json{{"type", "health"}}), "type"), "health_status");
    const auto list = other->request(Json{{"type", "project_list"}});
    ASSERT_EQ(str(list, "type"), "project_list_response");
    std::set<std::string> listed;
    bool base_found = false;
    for (const auto& p : data(list).at("projects").as_array()) {
      listed.insert(str(p.as_object(), "id"));
      if (str(p.as_object(), "id") == base_id_) {
        base_found = true;
        EXPECT_EQ(str(p.as_object(), "path"),
                  fs::canonical(projects_root_.path() / "base").string());
      }
    }
    EXPECT_TRUE(base_found);
    const auto history = other->request(Json{{"type", "get_messages"}, {"project_id", base_id_}});
    ASSERT_EQ(str(history, "type"), "messages_response");
    const auto& messages = data(history).at("messages").as_array();
    ASSERT_GE(messages.size(), base_history_.size());
    for (std::size_t i = 0; i < messages.size(); ++i) {
      if (i < base_history_.size()) {
        EXPECT_EQ(json::serialize(messages[i]), base_history_[i]);
      }
      EXPECT_EQ(messages[i].at("seq").as_int64(), static_cast<std::int64_t>(i + 1));
    }
    // On disk: one directory per listed project, each with parseable metadata and history.
    std::set<std::string> on_disk;
    for (const auto& entry : fs::directory_iterator(server_->data_dir() / "projects")) {
      on_disk.insert(entry.path().filename().string());
      std::ifstream meta(entry.path() / "project.json");
      std::string text((std::istreambuf_iterator<char>(meta)), std::istreambuf_iterator<char>());
      boost::system::error_code ec;
      const auto value = json::parse(text, ec);
      EXPECT_FALSE(ec) << entry.path();
      EXPECT_TRUE(value.is_object()) << entry.path();
      if (!fs::exists(entry.path() / "logs")) continue;
      for (const auto& log : fs::directory_iterator(entry.path() / "logs")) {
        std::ifstream in(log.path());
        for (std::string line; std::getline(in, line);) {
          const auto parsed = json::parse(line, ec);
          EXPECT_FALSE(ec) << log.path() << ": " << line.substr(0, 200);
          EXPECT_TRUE(parsed.is_object() && parsed.as_object().contains("seq")) << log.path();
        }
      }
    }
    EXPECT_EQ(on_disk, listed);
  }

  std::string base_id_;
  std::vector<std::string> base_history_;
  std::size_t base_runs_ = 0;
};

TEST_F(HostileTest, EnvelopeFieldsWithWrongTypesAndHugeValues) {
  auto client = connect();
  const std::string huge(100'000, 'x');
  // type
  for (const std::string& v :
       std::vector<std::string>{"42", "true", "null", "[]", "{}", "\"\"", "1e999999", "-0"}) {
    expect_invalid(*client, R"({"type":)" + v + "}", "type");
  }
  expect_invalid(*client, R"({"type":")" + huge + "\"}", "type");
  // request_id: a string of 1 to 128 characters
  for (const std::string& v : std::vector<std::string>{"42", "true", "[]", "{}", "\"\"",
                                                       "\"" + std::string(129, 'r') + "\""}) {
    expect_invalid(*client, R"({"type":"health","request_id":)" + v + "}", "request_id");
  }
  // project_id, in the envelope and in data
  for (const std::string& v :
       std::vector<std::string>{"42", "false", "[]", "{}", "\"\"", "\"" + huge + "\""}) {
    expect_invalid(*client, R"({"type":"project_join","project_id":)" + v + "}", "project_id");
    expect_invalid(*client, R"({"type":"project_join","data":{"project_id":)" + v + "}}",
                   "data.project_id");
  }
  // data
  for (const std::string& v : std::vector<std::string>{"42", "\"x\"", "[]", "true", "[{}]"}) {
    expect_invalid(*client, R"({"type":"health","data":)" + v + "}", "data");
  }
  // unknown top-level fields, one of them huge and one with a NUL in its name
  expect_invalid(*client, R"({"type":"health","Type":"health"})", "Type");
  expect_invalid(*client, R"({"type":"health","x":")" + huge + "\"}", "x");
  {
    const auto m = send_raw(*client, R"({"type":"health","a\u0000b":1})");
    EXPECT_EQ(error_code(m), "INVALID_MESSAGE");
    EXPECT_EQ(field_of(m), std::string("a\0b", 3));
  }
  // not an object / not JSON
  for (const std::string& v :
       std::vector<std::string>{"", " ", "null", "42", "\"health\"", "[{\"type\":\"health\"}]",
                                "{\"type\":\"health\"", "{\"type\":\"health\"}}",
                                std::string("\0", 1), std::string("{\"type\":\"health\"}\0", 18)}) {
    expect_invalid(*client, v, "$");
  }
  // 50,000 keys in data (half a MiB): the first unknown one is named.
  std::string many = R"({"type":"health","data":{)";
  for (int i = 0; i < 50'000; ++i) many += (i ? ",\"k" : "\"k") + std::to_string(i) + "\":0";
  expect_invalid(*client, many + "}}", "data.k0");
  // The connection is still usable.
  EXPECT_EQ(str(client->request(Json{{"type", "project_list"}}), "type"), "project_list_response");
  expect_server_and_disk_intact();
}

TEST_F(HostileTest, DataFieldsOfEveryMessage) {
  auto client = connect();
  const std::string pid = R"("project_id":")" + base_id_ + "\"";
  const std::string huge(100'000, 'x');
  // Messages that take no data: any field is unknown.
  for (const std::string& type : std::vector<std::string>{"project_list", "health"}) {
    expect_invalid(*client, R"({"type":")" + type + R"(","data":{"limit":1}})", "data.limit");
  }
  for (const std::string& type :
       std::vector<std::string>{"project_delete", "project_join", "project_leave", "agent_kill",
                                "agent_new_session", "agent_interrupt"}) {
    expect_invalid(*client, R"({"type":")" + type + "\"," + pid + R"(,"data":{"force":true}})",
                   "data.force");
    expect_invalid(*client, R"({"type":")" + type + R"(","data":{"project_id":42}})",
                   "data.project_id");
  }
  // project_create: data.path
  for (const std::string& v : std::vector<std::string>{"42", "true", "[]", "{}", "[\"/tmp\"]"}) {
    expect_invalid(*client, R"({"type":"project_create","data":{"path":)" + v + "}}", "data.path");
  }
  expect_invalid(*client, R"({"type":"project_create","data":{}})", "data.path");
  expect_invalid(*client, R"({"type":"project_create","data":{"path":null}})", "data.path");
  expect_invalid(*client, R"({"type":"project_create","data":{"path":"/)" + huge + "\"}}",
                 "data.path");
  expect_invalid(*client, R"({"type":"project_create","data":{"path":"/tmp","mode":"rw"}})",
                 "data.mode");
  expect_invalid(*client, R"({"type":"project_create","project_id":"mine","data":{"path":"/tmp"}})",
                 "project_id");
  // get_messages: since, after_seq, limit
  const std::string gm = R"({"type":"get_messages",)" + pid + R"(,"data":)";
  for (const std::string& v : std::vector<std::string>{
           "42", "true", "[]", "\"yesterday\"", "\"2024-13-45T99:99:99Z\"",
           "\"" + std::string(65, '1') + "\"", "\"2024-01-01T00:00:00Z\\u0000\""}) {
    expect_invalid(*client, gm + R"({"since":)" + v + "}}", "data.since");
  }
  for (const std::string& v :
       std::vector<std::string>{"-1", "1.5", "\"1\"", "true", "[]", "1e300", "18446744073709551616",
                                "-9223372036854775808"}) {
    expect_invalid(*client, gm + R"({"after_seq":)" + v + "}}", "data.after_seq");
  }
  for (const std::string& v :
       std::vector<std::string>{"0", "-5", "1e3", "\"10\"", "1.5", "18446744073709551616"}) {
    expect_invalid(*client, gm + R"({"limit":)" + v + "}}", "data.limit");
  }
  // Above limits.history_page_max (1000) is capped, not refused; so is the largest integer.
  for (const std::string& v : std::vector<std::string>{"1001", "18446744073709551615"}) {
    const auto capped = send_raw(*client, gm + R"({"limit":)" + v + "}}");
    EXPECT_EQ(str(capped, "type"), "messages_response") << v << ": " << json::serialize(capped);
  }
  expect_invalid(*client, gm + R"({"before_of":1}})", "data.before_of");
  for (const std::string& v : std::vector<std::string>{"0", "-1", "1.5", "\"1\"", "true", "[]"}) {
    expect_invalid(*client, gm + R"({"before_seq":)" + v + "}}", "data.before_seq");
  }
  // The largest after_seq is valid: nothing after it.
  const auto page = send_raw(*client, gm + R"({"after_seq":18446744073709551615,"limit":1000}})");
  ASSERT_EQ(str(page, "type"), "messages_response") << json::serialize(page);
  EXPECT_TRUE(data(page).at("messages").as_array().empty());
  // execute: prompt and options (the option values are in ExecuteOptions... below)
  const std::string ex = R"({"type":"execute",)" + pid + R"(,"data":)";
  for (const std::string& v :
       std::vector<std::string>{"42", "true", "[]", "{}", "\"\"", "\" \\n\\t \"",
                                "\"" + std::string(4097, 'p') + "\""}) {
    expect_invalid(*client, ex + R"({"prompt":)" + v + "}}", "data.prompt");
  }
  expect_invalid(*client, ex + R"({}})", "data.prompt");
  for (const std::string& v : std::vector<std::string>{"42", "\"--verbose\"", "[]", "true"}) {
    expect_invalid(*client, ex + R"({"prompt":"hi","options":)" + v + "}}", "data.options");
  }
  expect_invalid(*client, ex + R"({"prompt":"hi","cwd":"/"}})", "data.cwd");
  EXPECT_EQ(records().size(), base_runs_) << "no CLI was started for a rejected request";
  expect_server_and_disk_intact();
}

TEST_F(HostileTest, ExecuteOptionsAreCheckedBeforeAnyRun) {
  auto client = connect();
  const auto dir = make_dir("dir-for-add-dirs");
  struct Case {
    std::string option;
    std::string value;  // JSON
    std::string code;
    std::string field;  // "" = data.options.<option>
  };
  const std::string big_tool(257, 't');
  std::string many_tools = "[";
  for (int i = 0; i < 65; ++i)
    many_tools += std::string(i ? "," : "") + "\"T" + std::to_string(i) + "\"";
  many_tools += "]";
  std::string many_dirs = "[";
  for (int i = 0; i < 33; ++i) many_dirs += std::string(i ? "," : "") + "\"" + dir.string() + "\"";
  many_dirs += "]";
  const std::string big_mcp = R"({"x":")" + std::string(70'000, 'm') + "\"}";
  const std::vector<Case> cases = {
      {"model", "42", "INVALID_MESSAGE", ""},
      {"model", "true", "INVALID_MESSAGE", ""},
      {"model", "[\"claude\"]", "INVALID_MESSAGE", ""},
      {"model", "\"\"", "INVALID_MESSAGE", ""},
      {"model", "\"claude opus\"", "INVALID_MESSAGE", ""},
      {"model", "\"claude;rm -rf /\"", "INVALID_MESSAGE", ""},
      {"model", "\"a\\u0000b\"", "INVALID_MESSAGE", ""},
      {"model", "\"a\\nb\"", "INVALID_MESSAGE", ""},
      {"model", "\"" + std::string(129, 'm') + "\"", "INVALID_MESSAGE", ""},
      {"model", "\"mod\\u00e8le\"", "INVALID_MESSAGE", ""},
      {"model", "\"--help\"", "INVALID_MESSAGE", ""},
      {"model", "\"-p\"", "INVALID_MESSAGE", ""},
      {"fallback_model", "{}", "INVALID_MESSAGE", ""},
      {"fallback_model", "\"-v\"", "INVALID_MESSAGE", ""},
      {"fallback_model", "\"--model x\"", "INVALID_MESSAGE", ""},
      {"permission_mode", "42", "INVALID_MESSAGE", ""},
      {"permission_mode", "\"root\"", "INVALID_MESSAGE", ""},
      {"permission_mode", "\"--dangerously-skip-permissions\"", "INVALID_MESSAGE", ""},
      {"permission_mode", "\"default\\u0000\"", "INVALID_MESSAGE", ""},
      {"permission_mode", "\"bypassPermissions\"", "FORBIDDEN", ""},
      {"dangerously_skip_permissions", "\"true\"", "INVALID_MESSAGE", ""},
      {"dangerously_skip_permissions", "1", "INVALID_MESSAGE", ""},
      {"dangerously_skip_permissions", "true", "FORBIDDEN", ""},
      {"allowed_tools", "\"Read\"", "INVALID_MESSAGE", ""},
      {"allowed_tools", "[42]", "INVALID_MESSAGE", ""},
      {"allowed_tools", "[\"\"]", "INVALID_MESSAGE", ""},
      {"allowed_tools", "[[\"Read\"]]", "INVALID_MESSAGE", ""},
      {"allowed_tools", "[\"" + big_tool + "\"]", "INVALID_MESSAGE", ""},
      {"allowed_tools", many_tools, "INVALID_MESSAGE", ""},
      {"allowed_tools", "[\"Read\",\"Bash,Write\"]", "INVALID_MESSAGE",
       "data.options.allowed_tools[1]"},
      {"allowed_tools", "[\"--dangerously-skip-permissions\"]", "INVALID_MESSAGE",
       "data.options.allowed_tools[0]"},
      {"allowed_tools", "[\"-p\"]", "INVALID_MESSAGE", "data.options.allowed_tools[0]"},
      {"allowed_tools", "[\"Bash\\u0000\"]", "INVALID_MESSAGE", "data.options.allowed_tools[0]"},
      {"allowed_tools", "[\"Bash\\n--verbose\"]", "INVALID_MESSAGE",
       "data.options.allowed_tools[0]"},
      {"allowed_tools", "[\"Bash\\u0085\"]", "INVALID_MESSAGE", "data.options.allowed_tools[0]"},
      {"disallowed_tools", "{}", "INVALID_MESSAGE", ""},
      {"disallowed_tools", "[\"-x\"]", "INVALID_MESSAGE", "data.options.disallowed_tools[0]"},
      {"mcp_config", "\"{}\"", "INVALID_MESSAGE", ""},
      {"mcp_config", "[]", "INVALID_MESSAGE", ""},
      {"mcp_config", "42", "INVALID_MESSAGE", ""},
      {"mcp_config", big_mcp, "INVALID_MESSAGE", ""},
      {"append_system_prompt", "42", "INVALID_MESSAGE", ""},
      {"append_system_prompt", "[\"x\"]", "INVALID_MESSAGE", ""},
      {"append_system_prompt", "\"a\\u0000b\"", "INVALID_MESSAGE", ""},
      {"append_system_prompt", "\"" + std::string(65537, 'a') + "\"", "INVALID_MESSAGE", ""},
      {"add_dirs", "\"/tmp\"", "INVALID_MESSAGE", ""},
      {"add_dirs", "[42]", "INVALID_MESSAGE", ""},
      {"add_dirs", "[\"\"]", "INVALID_MESSAGE", ""},
      {"add_dirs", many_dirs, "INVALID_MESSAGE", ""},
      {"add_dirs", "[\"relative/dir\"]", "INVALID_PATH", "data.options.add_dirs[0]"},
      {"add_dirs", "[\"--help\"]", "INVALID_PATH", "data.options.add_dirs[0]"},
      {"add_dirs", "[\"-rf\"]", "INVALID_PATH", "data.options.add_dirs[0]"},
      {"add_dirs", "[\"" + dir.string() + "\\u0000/x\"]", "INVALID_PATH",
       "data.options.add_dirs[0]"},
      {"add_dirs", "[\"" + dir.string() + "\",\"/nonexistent/x\"]", "INVALID_PATH",
       "data.options.add_dirs[1]"},
      {"add_dirs", "[\"" + dir.string() + "/../missing/..\"]", "INVALID_PATH",
       "data.options.add_dirs[0]"},
      {"strict_mcp_config", "\"yes\"", "INVALID_MESSAGE", ""},
      {"strict_mcp_config", "0", "INVALID_MESSAGE", ""},
      {"permission_prompt", "\"always\"", "INVALID_MESSAGE", ""},
      {"--dangerously-skip-permissions", "true", "INVALID_MESSAGE", ""},
      {"Model", "\"x\"", "INVALID_MESSAGE", ""},
  };
  for (const auto& c : cases) {
    const std::string text = R"({"type":"execute","project_id":")" + base_id_ +
                             R"(","data":{"prompt":"[[fake:text]]","options":{")" + c.option +
                             "\":" + c.value + "}}}";
    const auto m = send_raw(*client, text);
    const std::string field = c.field.empty() ? "data.options." + c.option : c.field;
    EXPECT_EQ(error_code(m), c.code) << c.option << " = " << c.value.substr(0, 100) << "\n"
                                     << json::serialize(m).substr(0, 300);
    EXPECT_EQ(field_of(m), field) << c.option << " = " << c.value.substr(0, 100);
  }
  // A deeply nested but small mcp_config is within the JSON depth limit only up to a point:
  // the whole message is refused as not parseable, never half-read.
  std::string deep = "{}";
  for (int i = 0; i < 70; ++i) deep = "{\"a\":" + deep + "}";  // past the depth limit of 64
  expect_invalid(*client,
                 R"({"type":"execute","project_id":")" + base_id_ +
                     R"(","data":{"prompt":"hi","options":{"mcp_config":)" + deep + "}}}",
                 "$");
  EXPECT_EQ(records().size(), base_runs_) << "no CLI was started for a rejected request";
  expect_server_and_disk_intact();
}

TEST_F(HostileTest, NulBytesAndControlCharactersInIdsAndText) {
  auto client = connect();
  // Ids with control characters are refused (they would end up in logs and replies); the
  // error names the field and echoes only a valid request_id.
  constexpr char kRequestId[] = "r\0\n\r\x1b[2J\x7f\nFORGED log line";
  constexpr char kProjectId[] = "p\0\x01\x1f\n\t\nFORGED log line";
  const std::string nasty_request_id(kRequestId, sizeof kRequestId - 1);
  const std::string nasty_project_id(kProjectId, sizeof kProjectId - 1);
  {
    client->send(
        Json{{"type", "project_join"}, {"project_id", base_id_}, {"request_id", nasty_request_id}});
    const auto m = client->read();
    ASSERT_TRUE(m);
    EXPECT_EQ(error_code(*m), "INVALID_MESSAGE");
    EXPECT_EQ(field_of(*m), "request_id");
    EXPECT_FALSE(m->contains("request_id"));
  }
  for (const std::string& bad :
       {nasty_project_id, std::string("\x7f"), std::string("a\tb"), std::string(1, '\0')}) {
    client->send(Json{{"type", "project_join"}, {"project_id", bad}, {"request_id", "ok-1"}});
    auto m = client->read();
    ASSERT_TRUE(m);
    EXPECT_EQ(error_code(*m), "INVALID_MESSAGE");
    EXPECT_EQ(field_of(*m), "project_id");
    EXPECT_EQ(str(*m, "request_id"), "ok-1");
    client->send(Json{{"type", "get_messages"}, {"data", {{"project_id", bad}}}});
    m = client->read();
    ASSERT_TRUE(m);
    EXPECT_EQ(error_code(*m), "INVALID_MESSAGE");
    EXPECT_EQ(field_of(*m), "data.project_id");
  }
  {
    client->send(Json{{"type", std::string("health\0", 7)}, {"request_id", "ok-2"}});
    const auto m = client->read();
    ASSERT_TRUE(m);
    EXPECT_EQ(error_code(*m), "INVALID_MESSAGE");
    EXPECT_EQ(field_of(*m), "type");
    EXPECT_EQ(str(*m, "request_id"), "ok-2");
  }
  // A NUL in a project path never truncates the path to an existing directory.
  const auto base_dir = projects_root_.path() / "nul-target";
  fs::create_directories(base_dir);
  auto r = create_project(*client, base_dir.string() + std::string("\0/../../etc", 11));
  EXPECT_EQ(error_code(r), "INVALID_PATH") << json::serialize(r);
  EXPECT_EQ(str(data(r).at("details").as_object(), "path"),
            base_dir.string() + std::string("\0/../../etc", 11));
  r = create_project(*client, base_dir.string() + "\n");
  EXPECT_EQ(error_code(r), "INVALID_PATH") << json::serialize(r);
  // A prompt may hold any text, NULs and escapes included: it goes to the CLI's stdin as JSON.
  constexpr char kPrompt[] = "say \0hi\x1b[31m\r\n--verbose\n[[fake:text]]";
  const std::string prompt(kPrompt, sizeof kPrompt - 1);
  const auto reply = execute(*client, base_id_, prompt);
  ASSERT_TRUE(is_state(reply, "EXECUTING")) << json::serialize(reply);
  ASSERT_TRUE(client->read_until([](const Json& m) { return is_state(m, "IDLE"); }, 30s));
  const auto rec = records();
  ASSERT_EQ(rec.size(), base_runs_ + 1);
  const auto& stdin_lines = rec.back().at("stdin").as_array();
  ASSERT_GE(stdin_lines.size(), 1u);
  const auto user = json::parse(stdin_lines[0].as_string()).as_object();
  EXPECT_EQ(str(user.at("message").as_object(), "content"), prompt);
  // The history keeps the prompt exactly.
  const auto history = client->request(
      Json{{"type", "get_messages"},
           {"project_id", base_id_},
           {"data", {{"after_seq", static_cast<std::uint64_t>(base_history_.size())}}}});
  const auto& entries = data(history).at("messages").as_array();
  ASSERT_FALSE(entries.empty());
  EXPECT_EQ(str(entries[0].as_object(), "direction"), "client");
  EXPECT_EQ(str(entries[0].at("message").at("data").as_object(), "prompt"), prompt);
  // No client text forged a log line.
  for (const auto& line : server_->log_lines()) {
    EXPECT_NE(line.rfind("FORGED", 0), 0u) << line;
    EXPECT_EQ(line.find('\x1b'), std::string::npos) << line;
  }
  // The base project's history gained exactly that run; compare only its start.
  expect_server_and_disk_intact();
}

TEST_F(HostileTest, InvalidUtf8) {
  // JSON escapes that are not valid UTF-16 are refused as unparseable.
  {
    auto client = connect();
    expect_invalid(*client, R"({"type":"health","request_id":"\ud800"})", "$");
    expect_invalid(*client, R"({"type":"health","request_id":"\udc00\ud800"})", "$");
    expect_invalid(*client, R"({"type":"health","request_id":"\u12"})", "$");
    // A binary frame of invalid UTF-8 is INVALID_MESSAGE; the connection stays.
    client->send_binary("{\"type\":\"\xff\xfe\"}");
    const auto m = client->read();
    ASSERT_TRUE(m);
    EXPECT_EQ(error_code(*m), "INVALID_MESSAGE");
    EXPECT_EQ(field_of(*m), "$");
    EXPECT_EQ(str(client->request(Json{{"type", "health"}}), "type"), "health_status");
  }
  // A text frame that is not UTF-8 fails the connection with 1007 (RFC 6455 §8.1).
  for (const std::string& bad : std::vector<std::string>{
           std::string("{\"type\":\"\xff\"}"), std::string("{\"type\":\"\xc0\xaf\"}"),
           std::string("{\"type\":\"\xed\xa0\x80\"}"),
           std::string("{\"type\":\"\xf4\x90\x80\x80\"}"),
           std::string("{\"type\":\"health\",\"request_id\":\"\xe2\x82\"}")}) {
    auto client = connect();
    client->send_text(bad);
    const auto closed = client->wait_closed();
    ASSERT_TRUE(closed) << "no close after invalid UTF-8";
    EXPECT_EQ(closed->code, 1007);
    for (const auto& m : client->skipped()) ADD_FAILURE() << json::serialize(m);
  }
  expect_server_and_disk_intact();
}

TEST_F(HostileTest, DeeplyNestedJsonIsRefusedWithoutCrashing) {
  auto client = connect();
  // Far deeper than any recursive parser's stack could take, within the 1 MiB message limit.
  const std::size_t depth = 400'000;
  expect_invalid(*client, std::string(depth, '['), "$");
  expect_invalid(*client, std::string(depth, '[') + std::string(depth, ']'), "$");
  std::string objects;
  for (int i = 0; i < 100'000; ++i) objects += "{\"a\":";
  expect_invalid(*client, objects + "1" + std::string(100'000, '}'), "$");
  // The same inside an otherwise valid message.
  expect_invalid(
      *client,
      R"({"type":"health","data":)" + std::string(200'000, '[') + std::string(200'000, ']') + "}",
      "$");
  // Nesting within the limit is accepted: the options parse, then the project is unknown.
  std::string shallow = "{}";
  for (int i = 0; i < 20; ++i) shallow = "{\"a\":" + shallow + "}";
  const auto m = send_raw(*client, R"({"type":"execute","project_id":"nope","data":{"prompt":"hi",)"
                                   R"("options":{"mcp_config":)" +
                                       shallow + "}}}");
  EXPECT_EQ(error_code(m), "PROJECT_NOT_FOUND") << json::serialize(m);
  EXPECT_EQ(str(client->request(Json{{"type", "health"}}), "type"), "health_status");
  expect_server_and_disk_intact();
}

TEST_F(HostileTest, FlagLookingPromptsAndOptionsNeverReachFlagPosition) {
  auto client = connect();
  const auto dash_dir = make_dir("-rf");  // an absolute path whose last component looks like a flag
  const auto extra = make_dir("extra");
  const std::vector<std::string> client_texts = {"--dangerously-skip-permissions", "--help",
                                                 "--model=evil", "-v"};
  struct Run {
    std::string prompt;
    Json options;
  };
  const std::vector<Run> runs = {
      {"--dangerously-skip-permissions [[fake:text]]", {}},
      {"-p", {}},
      {"--help", {{"model", "opus"}, {"append_system_prompt", "-p"}}},
      {"--model=evil [[fake:text]]",
       {{"append_system_prompt", "--dangerously-skip-permissions"},
        {"allowed_tools", json::array{"Bash(--force)", "Read"}},
        {"disallowed_tools", json::array{"Bash(rm -rf:*)"}},
        {"add_dirs", json::array{dash_dir.string(), (extra / ".." / "extra" / ".").string()}},
        {"mcp_config", Json{{"--dangerously-skip-permissions", "-p"}}}}},
  };
  for (const auto& run : runs) {
    const auto reply = execute(*client, base_id_, run.prompt, run.options);
    ASSERT_TRUE(is_state(reply, "EXECUTING")) << json::serialize(reply);
    ASSERT_TRUE(client->read_until([](const Json& m) { return is_state(m, "IDLE"); }, 30s));
  }
  const auto rec = records();
  ASSERT_EQ(rec.size(), base_runs_ + runs.size());
  for (std::size_t i = base_runs_; i < rec.size(); ++i) {
    const auto& argv = rec[i].at("argv").as_array();
    ASSERT_GE(argv.size(), 2u);
    for (std::size_t a = 1; a < argv.size(); ++a) {
      const std::string arg(argv[a].as_string());
      EXPECT_TRUE(is_server_flag(arg)) << "argv[" << a << "] = " << arg;
      for (const auto& text : client_texts) EXPECT_NE(arg, text);
      EXPECT_EQ(arg.find("[[fake"), std::string::npos) << "a prompt reached argv: " << arg;
    }
    // The server's own "-p" is there once; the "-p" prompt is not.
    EXPECT_EQ(std::count(argv.begin(), argv.end(), json::value("-p")), 1);
    // The prompt went to stdin.
    const auto& stdin_lines = rec[i].at("stdin").as_array();
    ASSERT_GE(stdin_lines.size(), 1u);
    const auto user = json::parse(stdin_lines[0].as_string()).as_object();
    EXPECT_EQ(str(user.at("message").as_object(), "content"), runs[i - base_runs_].prompt);
  }
  // Values that begin with "-" stay inside their own --flag=value element.
  const auto argv_text = [&](std::size_t i) {
    std::vector<std::string> out;
    for (const auto& a : rec[i].at("argv").as_array()) out.emplace_back(a.as_string());
    return out;
  };
  const auto third = argv_text(base_runs_ + 2);
  EXPECT_NE(std::find(third.begin(), third.end(), "--append-system-prompt=-p"), third.end());
  const auto fourth = argv_text(base_runs_ + 3);
  EXPECT_NE(std::find(fourth.begin(), fourth.end(),
                      "--append-system-prompt=--dangerously-skip-permissions"),
            fourth.end());
  EXPECT_NE(
      std::find(fourth.begin(), fourth.end(), "--add-dir=" + fs::canonical(dash_dir).string()),
      fourth.end());
  // ".." in an add_dirs entry is resolved before it reaches argv.
  EXPECT_NE(std::find(fourth.begin(), fourth.end(), "--add-dir=" + fs::canonical(extra).string()),
            fourth.end());
  EXPECT_NE(std::find(fourth.begin(), fourth.end(), "--allowedTools=Bash(--force),Read"),
            fourth.end());
  EXPECT_EQ(std::count(fourth.begin(), fourth.end(), "--dangerously-skip-permissions"), 0);
  expect_server_and_disk_intact();
}

TEST_F(HostileTest, DotDotInPathsAndProjectIds) {
  auto client = connect();
  const auto target = make_dir("dots/target");
  make_dir("dots/sub");
  // ".." is resolved: the project is the canonical directory.
  auto r = create_project(*client, projects_root_.path() / "dots/sub/../target/.");
  ASSERT_EQ(str(r, "type"), "project_state") << json::serialize(r);
  EXPECT_EQ(str(data(r), "path"), fs::canonical(target).string());
  const std::string id = str(r, "project_id");
  // The same directory reached another way is the same project.
  r = create_project(*client, projects_root_.path() / "dots/target/../../dots/./target");
  EXPECT_EQ(error_code(r), "PROJECT_NESTING") << json::serialize(r);
  // ".." through a directory that does not exist does not resolve.
  r = create_project(*client, projects_root_.path() / "dots/missing/../target");
  EXPECT_EQ(error_code(r), "INVALID_PATH") << json::serialize(r);
  // ".." climbing out of the base project into its parent nests with it.
  r = create_project(*client, projects_root_.path() / "base/..");
  EXPECT_EQ(error_code(r), "PROJECT_NESTING") << json::serialize(r);
  // Relative paths with ".." are refused, whatever the server's working directory is.
  r = create_project(*client, "../../../../../../tmp");
  EXPECT_EQ(error_code(r), "INVALID_PATH");
  EXPECT_EQ(error_code(create_project(*client, "..")), "INVALID_PATH");
  // Project ids are looked up, never used as paths.
  for (const std::string& bad :
       std::vector<std::string>{"..", "../" + base_id_, base_id_ + "/..", "../../etc/passwd",
                                "/" + base_id_, base_id_ + "/../" + base_id_, ".", "/"}) {
    for (const std::string& type :
         std::vector<std::string>{"project_join", "get_messages", "project_delete"}) {
      const auto m = client->request(Json{{"type", type}, {"project_id", bad}});
      EXPECT_EQ(error_code(m), "PROJECT_NOT_FOUND") << type << " " << bad;
    }
  }
  // Deleting the new project removes its data only.
  EXPECT_EQ(str(client->request(Json{{"type", "project_delete"}, {"project_id", id}}), "type"),
            "project_deleted");
  EXPECT_TRUE(fs::is_directory(target));
  EXPECT_FALSE(fs::exists(server_->data_dir() / "projects" / id));
  expect_server_and_disk_intact();
}

TEST_F(HostileTest, UnknownProjectIdsInEveryProjectMessage) {
  auto client = connect();
  const std::vector<std::string> types = {
      "project_delete", "project_join",      "project_leave",   "get_messages",
      "agent_kill",     "agent_new_session", "agent_interrupt", "permission_response",
      "execute",        "project_changes",   "project_diff",    "file_read",
      "file_list",      "session_list"};
  const std::vector<std::string> ids = {"00000000-0000-4000-8000-000000000000",
                                        base_id_.substr(0, 35), base_id_ + " ",
                                        std::string(128, 'f'), "\u00e9\u4e2d\U0001F600"};
  // The data each type needs to get as far as the project lookup.
  auto valid_data = [](const std::string& type) {
    if (type == "execute") return Json{{"prompt", "hi"}};
    if (type == "permission_response") return Json{{"permission_id", "p"}, {"decision", "allow"}};
    if (type == "file_read") return Json{{"path", "README.md"}};
    return Json{};
  };
  for (const auto& type : types) {
    for (const auto& id : ids) {
      Json message{{"type", type}, {"project_id", id}, {"data", valid_data(type)}};
      const auto m = client->request(message);
      EXPECT_EQ(error_code(m), "PROJECT_NOT_FOUND") << type << " " << id;
      EXPECT_EQ(str(m, "project_id"), id);
      EXPECT_EQ(str(data(m).at("details").as_object(), "project_id"), id);
    }
    // The id in data works the same way.
    Json in_data = valid_data(type);
    in_data["project_id"] = ids[0];
    EXPECT_EQ(error_code(client->request(Json{{"type", type}, {"data", in_data}})),
              "PROJECT_NOT_FOUND");
    // Without an id: INVALID_MESSAGE naming project_id.
    const auto m = client->request(Json{{"type", type}, {"data", valid_data(type)}});
    EXPECT_EQ(error_code(m), "INVALID_MESSAGE") << type;
    EXPECT_EQ(field_of(m), "project_id") << type;
  }
  // A deleted project's id is unknown from then on.
  const auto created = create_project(*client, make_dir("short-lived"));
  const std::string id = str(created, "project_id");
  ASSERT_EQ(str(client->request(Json{{"type", "project_delete"}, {"project_id", id}}), "type"),
            "project_deleted");
  for (const auto& type : types) {
    Json message{{"type", type}, {"project_id", id}, {"data", valid_data(type)}};
    EXPECT_EQ(error_code(client->request(message)), "PROJECT_NOT_FOUND") << type;
  }
  EXPECT_EQ(records().size(), base_runs_);
  expect_server_and_disk_intact();
}

TEST_F(HostileTest, TenThousandRapidMessagesOnOneConnection) {
  auto client = connect();
  auto bystander = connect();
  const std::vector<std::string> bodies = {
      R"("type":"project_list")",
      R"("type":"get_messages","project_id":")" + base_id_ + R"(","data":{"limit":1})",
      R"("type":"no_such_type")",
      R"("type":"project_join","project_id":"nope")",
      R"("type":"health","data":{"x":1})",
      R"("type":"project_join","project_id":")" + base_id_ + "\"",
      R"("type":"project_leave","project_id":")" + base_id_ + "\"",
  };
  const int total = 10'000;
  const int window = 64;  // fewer than websocket.message_buffer replies are ever outstanding
  int sent = 0;
  int received = 0;
  std::map<std::string, int> kinds;
  while (received < total) {
    while (sent < total && sent - received < window) {
      client->send_text("{" + bodies[static_cast<std::size_t>(sent) % bodies.size()] +
                        R"(,"request_id":"q)" + std::to_string(sent) + "\"}");
      ++sent;
    }
    const auto m = client->read(30s);
    ASSERT_TRUE(m) << "reply " << received << " did not come";
    if (str(*m, "type") == "server_stats") continue;  // the periodic broadcast, not a reply
    ASSERT_EQ(str(*m, "request_id"), "q" + std::to_string(received)) << json::serialize(*m);
    ++kinds[str(*m, "type") + "/" + error_code(*m)];
    ++received;
    if (received % 2500 == 0) {
      // Another client is served in the middle of the flood.
      EXPECT_EQ(str(bystander->request(Json{{"type", "health"}}), "type"), "health_status");
    }
  }
  EXPECT_EQ(kinds["project_list_response/"], 1429);
  EXPECT_EQ(kinds["messages_response/"], 1429);
  EXPECT_EQ(kinds["error/INVALID_MESSAGE"], 1429 + 1428);
  EXPECT_EQ(kinds["error/PROJECT_NOT_FOUND"], 1429);
  EXPECT_EQ(kinds["project_joined/"], 1428);
  EXPECT_EQ(kinds["project_left/"], 1428);

  // The same burst without reading a single reply: every reply arrives in order, or (if the
  // replies pile up faster than this client reads) the documented slow-consumer close 1013.
  auto blaster = connect();
  int blasted = 0;
  try {
    for (; blasted < total; ++blasted) {
      blaster->send_text(R"({"type":"project_list","request_id":"b)" + std::to_string(blasted) +
                         "\"}");
    }
  } catch (const std::exception&) {
    // The server closed the connection while we were still sending.
  }
  int replies = 0;
  while (replies < blasted) {
    const auto m = blaster->read(30s);
    if (!m) break;
    if (str(*m, "type") == "server_stats") continue;  // the periodic broadcast, not a reply
    ASSERT_EQ(str(*m, "request_id"), "b" + std::to_string(replies)) << json::serialize(*m);
    ++replies;
  }
  if (replies < total) {
    const auto closed = blaster->wait_closed();
    if (closed && closed->code != 0) {
      EXPECT_EQ(closed->code, 1013);
    }
    EXPECT_TRUE(server_->wait_for_log(
        [](const std::string& l) { return l.find("closing slow connection") != std::string::npos; },
        10s))
        << "only " << replies << " of " << total << " replies, and no slow-consumer close";
  }
  EXPECT_EQ(str(bystander->request(Json{{"type", "health"}}), "type"), "health_status");
  EXPECT_EQ(str(client->request(Json{{"type", "project_list"}}), "type"), "project_list_response");
  expect_server_and_disk_intact();
}

TEST_F(HostileTest, RapidMessagesWhileARunWritesHistory) {
  auto client = connect();
  auto watcher = connect();
  ASSERT_EQ(str(watcher->request(Json{{"type", "project_join"}, {"project_id", base_id_}}), "type"),
            "project_joined");
  ASSERT_TRUE(is_state(execute(*client, base_id_, "[[fake:hang]]"), "EXECUTING"));
  // Everything that would change the busy project is refused, 2,000 times over, while reads work.
  const std::vector<std::pair<std::string, std::string>> requests = {
      {R"("type":"execute","project_id":")" + base_id_ + R"(","data":{"prompt":"again"})",
       "error/PROCESS_ACTIVE"},
      {R"("type":"agent_new_session","project_id":")" + base_id_ + "\"", "error/PROCESS_ACTIVE"},
      {R"("type":"project_delete","project_id":")" + base_id_ + "\"", "error/PROCESS_ACTIVE"},
      {R"("type":"get_messages","project_id":")" + base_id_ + R"(","data":{"limit":5})",
       "messages_response/"},
      {R"("type":"project_join","project_id":")" + base_id_ + "\"", "project_joined/"},
  };
  const int total = 2000;
  const int window = 32;
  int sent = 0;
  int received = 0;
  while (received < total) {
    while (sent < total && sent - received < window) {
      client->send_text("{" + requests[static_cast<std::size_t>(sent) % requests.size()].first +
                        R"(,"request_id":"w)" + std::to_string(sent) + "\"}");
      ++sent;
    }
    const auto m = client->read_until([](const Json& r) { return r.contains("request_id"); }, 30s);
    ASSERT_TRUE(m) << "reply " << received << " did not come";
    ASSERT_EQ(str(*m, "request_id"), "w" + std::to_string(received));
    EXPECT_EQ(str(*m, "type") + "/" + error_code(*m),
              requests[static_cast<std::size_t>(received) % requests.size()].second)
        << json::serialize(*m).substr(0, 300);
    ++received;
  }
  const auto killed = client->request(Json{{"type", "agent_kill"}, {"project_id", base_id_}}, 30s);
  EXPECT_TRUE(is_state(killed, "IDLE")) << json::serialize(killed);
  ASSERT_TRUE(watcher->read_until([](const Json& m) { return is_state(m, "IDLE"); }, 30s));
  EXPECT_EQ(records().size(), base_runs_ + 1) << "exactly one run started";
  expect_server_and_disk_intact();
}

}  // namespace
}  // namespace pa::test
