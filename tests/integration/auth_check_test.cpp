// GET/POST /auth/check: what a WebSocket upgrade with the same token and Origin would get, so
// that a browser (which cannot read the status of a refused upgrade) can say why it failed.
#include "integration/fixture.hpp"

namespace pa::test {
namespace {

class AuthCheckTest : public ServerTest {
 protected:
  HttpResult check(const std::optional<std::string>& token,
                   const std::optional<std::string>& origin = std::nullopt) {
    std::map<std::string, std::string> headers;
    if (token) headers["Authorization"] = "Bearer " + *token;
    if (origin) headers["Origin"] = *origin;
    return http_get(server_->port(), server_->tls(), "/auth/check", headers);
  }
  int upgrade(const std::string& token) {
    ClientOptions o;
    o.tls = server_->tls();
    o.bearer = token;
    WsClient client(server_->port(), o);
    return client.connect();
  }
  std::string own_origin() const { return "https://localhost:" + std::to_string(server_->port()); }
};

TEST_F(AuthCheckTest, AnswersWhatTheUpgradeWouldGet) {
  EXPECT_EQ(check(server_->token()).status, 204);
  EXPECT_EQ(check(server_->token(), own_origin()).status, 204);

  const auto missing = check(std::nullopt);
  EXPECT_EQ(missing.status, 401);
  EXPECT_EQ(missing.headers.at("WWW-Authenticate"), "Bearer");
  EXPECT_NE(missing.body.find("missing or wrong token"), std::string::npos) << missing.body;
  EXPECT_EQ(check("wrong").status, 401);

  const auto origin = check(server_->token(), "https://evil.example");
  EXPECT_EQ(origin.status, 403);
  EXPECT_NE(origin.body.find("auth.allowed_origins"), std::string::npos) << origin.body;
}

// A check right after a failed upgrade, with the same wrong token, is the same attempt: it does
// not count again. Any other wrong token counts, so the check is no way around the limit; past
// it the check answers 429 with Retry-After, as the upgrade does; the right token still passes.
TEST_F(AuthCheckTest, CountsWrongTokensOncePerAttempt) {
  ServerOptions options;
  options.args = {"--auth-max-failures", "3", "--limits-connection-rate", "0"};
  start_server(options);
  EXPECT_EQ(upgrade("wrong-1"), 401);       // 1
  EXPECT_EQ(check("wrong-1").status, 401);  // the same attempt: still 1
  EXPECT_EQ(check("wrong-1").status, 401);
  EXPECT_EQ(upgrade("wrong-1"), 401);       // 2: the upgrade counts each
  EXPECT_EQ(check("wrong-2").status, 401);  // 3: another token counts
  const auto locked = check("wrong-1");
  EXPECT_EQ(locked.status, 429);
  ASSERT_TRUE(locked.headers.contains("Retry-After"));
  const int wait = std::stoi(locked.headers.at("Retry-After"));
  EXPECT_GE(wait, 1);
  EXPECT_LE(wait, 60);
  EXPECT_NE(locked.body.find("too many wrong tokens"), std::string::npos) << locked.body;
  EXPECT_EQ(upgrade("wrong-3"), 429);
  EXPECT_EQ(check(server_->token()).status, 204);
  EXPECT_EQ(upgrade(server_->token()), 101);
}

TEST_F(AuthCheckTest, ChecksAloneReachTheLimit) {
  ServerOptions options;
  options.args = {"--auth-max-failures", "3", "--limits-connection-rate", "0"};
  start_server(options);
  EXPECT_EQ(check("guess-1").status, 401);
  EXPECT_EQ(check("guess-2").status, 401);
  EXPECT_EQ(check("guess-3").status, 401);
  EXPECT_EQ(check("guess-4").status, 429);
  EXPECT_EQ(upgrade("guess-5"), 429);
}

// At limits.max_connections the check says 503 like the upgrade, and takes no slot itself.
TEST_F(AuthCheckTest, AtTheConnectionLimitIs503AndTakesNoSlot) {
  ServerOptions options;
  options.args = {"--limits-max-connections", "1"};
  start_server(options);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(check(server_->token()).status, 204);
  auto first = connect();
  const auto full = check(server_->token());
  EXPECT_EQ(full.status, 503);
  EXPECT_NE(full.body.find("limits.max_connections"), std::string::npos) << full.body;
  first->close();
  EXPECT_TRUE(eventually([&] { return check(server_->token()).status == 204; }, 10s));
}

}  // namespace
}  // namespace pa::test
