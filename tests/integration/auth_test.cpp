// Authentication and Origin rules at the WebSocket upgrade.
#include "integration/fixture.hpp"

namespace pa::test {
namespace {

class AuthTest : public ServerTest {
 protected:
  int try_connect(ClientOptions o) {
    o.tls = server_->tls();
    WsClient client(server_->port(), o);
    return client.connect();
  }
};

TEST_F(AuthTest, TokenInHeaderOrQuery) {
  ClientOptions header;
  header.bearer = server_->token();
  EXPECT_EQ(try_connect(header), 101);
  ClientOptions query;
  query.query_token = server_->token();
  EXPECT_EQ(try_connect(query), 101);
}

TEST_F(AuthTest, MissingOrWrongTokenIs401) {
  EXPECT_EQ(try_connect({}), 401);
  ClientOptions wrong;
  wrong.bearer = "not-the-token";
  EXPECT_EQ(try_connect(wrong), 401);
  ClientOptions wrong_query;
  wrong_query.query_token = server_->token() + "x";
  EXPECT_EQ(try_connect(wrong_query), 401);
  // The token never appears in the logs.
  for (const auto& line : server_->log_lines()) {
    EXPECT_EQ(line.find(server_->token()), std::string::npos) << line;
  }
}

// Wrong tokens are limited per address; the right one always passes, so nobody on the owner's
// network (nor the owner's own client retrying a stale token) can lock the owner out.
TEST_F(AuthTest, WrongTokensAre429PastTheLimitAndTheRightTokenStillConnects) {
  ServerOptions options;
  options.args = {"--auth-max-failures", "3", "--limits-connection-rate", "0"};
  start_server(options);
  ClientOptions wrong;
  wrong.bearer = "wrong";
  EXPECT_EQ(try_connect(wrong), 401);
  EXPECT_EQ(try_connect(wrong), 401);
  EXPECT_EQ(try_connect(wrong), 401);
  for (int i = 0; i < 47; ++i) ASSERT_EQ(try_connect(wrong), 429) << "wrong token #" << i + 4;
  ClientOptions right;
  right.bearer = server_->token();
  EXPECT_EQ(try_connect(right), 101) << "the right token after 50 wrong ones";
  EXPECT_EQ(try_connect(wrong), 429) << "and wrong ones are still limited";
}

TEST_F(AuthTest, OriginMustBeAllowed) {
  ClientOptions own;
  own.bearer = server_->token();
  own.origin = "https://localhost:" + std::to_string(server_->port());
  EXPECT_EQ(try_connect(own), 101);
  ClientOptions evil = own;
  evil.origin = "https://evil.example";
  EXPECT_EQ(try_connect(evil), 403);

  ServerOptions options;
  options.args = {"--auth-allowed-origins", "https://phone.example,https://laptop.example"};
  start_server(options);
  ClientOptions listed;
  listed.bearer = server_->token();
  listed.origin = "https://laptop.example";
  EXPECT_EQ(try_connect(listed), 101);
  // The server's own origin (its console) stays allowed beside the listed ones.
  listed.origin = "https://localhost:" + std::to_string(server_->port());
  EXPECT_EQ(try_connect(listed), 101);
  listed.origin = "https://evil.example";
  EXPECT_EQ(try_connect(listed), 403);
}

TEST_F(AuthTest, GeneratedTokenIsKeptInDataDir) {
  ServerOptions options;
  options.token = "";
  start_server(options);
  const auto token_file = server_->data_dir() / "auth_token";
  ASSERT_TRUE(std::filesystem::exists(token_file));
  EXPECT_EQ(std::filesystem::status(token_file).permissions() & std::filesystem::perms::all,
            std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
  const auto printed =
      run_command({PA_SERVER_BINARY, "token", "--data-dir", server_->data_dir().string()});
  ASSERT_EQ(printed.exit_code, 0) << printed.output;
  const std::string token = printed.output.substr(0, printed.output.find('\n'));
  EXPECT_EQ(token.size(), 64u);
  ClientOptions o;
  o.bearer = token;
  EXPECT_EQ(try_connect(o), 101);
  for (const auto& line : server_->log_lines())
    EXPECT_EQ(line.find(token), std::string::npos) << line;
}

TEST_F(AuthTest, NoAuthOnLoopbackWarns) {
  ServerOptions options;
  options.args = {"--no-auth"};
  start_server(options);
  EXPECT_EQ(try_connect({}), 101);
  bool warned = false;
  for (const auto& l : server_->log_lines())
    warned |= l.find("authentication is OFF") != std::string::npos;
  EXPECT_TRUE(warned);
}

TEST_F(AuthTest, PlaintextWhenConfigured) {
  ServerOptions options;
  options.tls = false;
  start_server(options);
  ClientOptions o;
  o.bearer = server_->token();
  EXPECT_EQ(try_connect(o), 101);
  // Plaintext is never silent: the start-up log warns that the token travels in clear text.
  bool warned = false;
  for (const auto& l : server_->log_lines()) warned |= l.find("TLS is OFF") != std::string::npos;
  EXPECT_TRUE(warned);
}

TEST(StartupTest, RefusesInsecureNonLoopbackAndBadConfig) {
  TempDir data("pa-data");
  auto r = run_command(with_root_flag({PA_SERVER_BINARY, "--host", "0.0.0.0", "--port", "0",
                                       "--no-tls", "--data-dir", data.path().string()}));
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("--allow-insecure-remote"), std::string::npos) << r.output;

  // A missing certificate is found before anything is written: no data dir, no token.
  const auto fresh = data.path() / "fresh";
  r = run_command(with_root_flag({PA_SERVER_BINARY, "--port", "0", "--data-dir", fresh.string(),
                                  "--tls-cert", "/nonexistent.crt"}));
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("make certs"), std::string::npos) << r.output;
  EXPECT_FALSE(std::filesystem::exists(fresh));

  r = run_command({PA_SERVER_BINARY, "--port", "70000"});
  EXPECT_EQ(r.exit_code, 2) << r.output;
  r = run_command({PA_SERVER_BINARY}, {{"PA_EXECUTION_TIMEOUT", "5 minutes"}});
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("PA_EXECUTION_TIMEOUT"), std::string::npos) << r.output;
  EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1)
      << "one clear line: " << r.output;
}

}  // namespace
}  // namespace pa::test
