// The server with the real Claude CLI (tools/claude-cli, installed by `make deps`), no
// credentials: health reports its version, and an execute streams the CLI's own lines and ends
// IDLE with a clear outcome instead of hanging.
#include <unistd.h>

#include "integration/fixture.hpp"

namespace pa::test {
namespace {

namespace fs = std::filesystem;

std::string real_cli() {
  return std::string(PA_SOURCE_DIR) + "/tools/claude-cli/node_modules/.bin/claude";
}

// The pinned version, from the one place it is set: tools/claude-cli/package.json.
std::string pinned_version() {
  std::ifstream in(std::string(PA_SOURCE_DIR) + "/tools/claude-cli/package.json");
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return str(json::parse(text).at("dependencies").as_object(), "@anthropic-ai/claude-code");
}

class RealCliTest : public ServerTest {
 protected:
  void SetUp() override {
    if (::access(real_cli().c_str(), X_OK) != 0) {
      GTEST_SKIP() << "the real CLI is not installed; run `make deps`";
    }
    ServerOptions options;
    options.claude_binary = real_cli();
    // A private HOME so the CLI neither reads nor writes the user's own ~/.claude.
    options.args = {"--claude-home", home_.path().string(), "--claude-env",
                    "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1,DISABLE_AUTOUPDATER=1"};
    options.env["ANTHROPIC_API_KEY"] = "";
    start_server(options);
  }
  TempDir home_{"pa-claude-home"};
};

TEST_F(RealCliTest, HealthReportsTheVersionAndANoCredentialsRunEndsIdle) {
  ASSERT_TRUE(server_->wait_for_log(
      [](const std::string& l) { return l.find("claude CLI available") != std::string::npos; },
      60s));
  auto client = connect();
  const auto health = client->request(Json{{"type", "health"}});
  EXPECT_EQ(str(data(health).at("claude").as_object(), "version"), pinned_version());

  const auto id = str(create_project(*client, make_dir("real")), "project_id");
  const auto reply = client->request(
      Json{{"type", "execute"}, {"project_id", id}, {"data", {{"prompt", "say hi"}}}});
  ASSERT_EQ(str(data(reply), "state"), "EXECUTING") << json::serialize(reply);
  std::vector<Json> seen;
  const auto idle = client->read_until(
      [&](const Json& m) {
        seen.push_back(m);
        return str(m, "type") == "project_state" && str(data(m), "state") == "IDLE";
      },
      120s);
  ASSERT_TRUE(idle) << "the run did not end";
  std::vector<std::string> line_types;
  std::string result_text;
  std::string session;
  for (const auto& m : seen) {
    if (str(m, "type") == "agent_message") {
      line_types.push_back(str(data(m), "type"));
      if (str(data(m), "type") == "result") {
        result_text = str(data(m), "result");
        session = str(data(m), "session_id");
        EXPECT_TRUE(data(m).at("is_error").as_bool());
      }
    }
  }
  ASSERT_FALSE(line_types.empty());
  EXPECT_EQ(line_types.front(), "system");
  EXPECT_EQ(line_types.back(), "result");
  EXPECT_NE(result_text.find("Not logged in"), std::string::npos) << result_text;
  EXPECT_EQ(str(data(*idle), "session_id"), session);
}

}  // namespace
}  // namespace pa::test
