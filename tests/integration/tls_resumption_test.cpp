// TLS session resumption (issue 15): a client that kept its session from one connection resumes
// it on the next (TLS 1.3 tickets and TLS 1.2 tickets), and a restarted server, whose ticket keys
// are new, makes a full handshake instead; so does a server that reloaded its context (SIGHUP).
#include <openssl/ssl.h>

#include <csignal>

#include "integration/fixture.hpp"

namespace pa::test {
namespace {

class TlsResumptionTest : public ServerTest {
 protected:
  // Connects (resuming `session` when given), checks that the connection works and returns it.
  std::unique_ptr<WsClient> connect_with(std::shared_ptr<ssl_session_st> session,
                                         int max_version = 0) {
    ClientOptions o;
    o.bearer = server_->token();
    o.tls_session = std::move(session);
    o.tls_max_version = max_version;
    auto client = std::make_unique<WsClient>(server_->port(), o);
    EXPECT_EQ(client->connect(), 101) << client->response_body();
    // A round trip: the connection works, and a TLS 1.3 ticket sent after the handshake has
    // been read.
    const auto reply = client->request(Json{{"type", "health"}});
    EXPECT_EQ(str(reply, "type"), "health_status") << json::serialize(reply);
    return client;
  }

  void expect_resumes(int max_version) {
    auto first = connect_with(nullptr, max_version);
    EXPECT_FALSE(first->tls_session_reused());
    const auto session = first->tls_session();
    ASSERT_NE(session, nullptr);
    EXPECT_EQ(SSL_SESSION_is_resumable(session.get()), 1);
    first->close();

    auto second = connect_with(session, max_version);
    EXPECT_TRUE(second->tls_session_reused());
    if (max_version == TLS1_2_VERSION) {
      EXPECT_EQ(SSL_SESSION_get_protocol_version(second->tls_session().get()), TLS1_2_VERSION);
    }
    second->close();

    // The same session again, from a third connection (a phone that reconnects twice before it
    // stores the newer ticket).
    auto third = connect_with(session, max_version);
    EXPECT_TRUE(third->tls_session_reused());
  }
};

TEST_F(TlsResumptionTest, Tls13TicketResumesTheSession) {
  expect_resumes(0);
}

TEST_F(TlsResumptionTest, Tls12TicketResumesTheSession) {
  expect_resumes(TLS1_2_VERSION);
}

TEST_F(TlsResumptionTest, ARestartedServerMakesAFullHandshake) {
  auto first = connect_with(nullptr);
  const auto session = first->tls_session();
  ASSERT_NE(session, nullptr);
  first->close();

  // Ticket keys live in the server's memory: a new process cannot decrypt the old ticket and
  // falls back to a full handshake (which succeeds).
  server_.reset();
  start_server();
  auto second = connect_with(session);
  EXPECT_FALSE(second->tls_session_reused());
}

TEST_F(TlsResumptionTest, ASighupReloadMakesAFullHandshake) {
  auto first = connect_with(nullptr);
  const auto session = first->tls_session();
  ASSERT_NE(session, nullptr);
  first->close();

  // The reload builds a new TLS context, whose ticket keys are new too.
  server_->send_signal(SIGHUP);
  ASSERT_TRUE(server_->wait_for_log(
      [](const std::string& l) { return l.find("SIGHUP: TLS certificate") != std::string::npos; },
      10s));
  auto second = connect_with(session);
  EXPECT_FALSE(second->tls_session_reused());
  // The new context's tickets resume.
  const auto fresh = second->tls_session();
  second->close();
  auto third = connect_with(fresh);
  EXPECT_TRUE(third->tls_session_reused());
}

}  // namespace
}  // namespace pa::test
