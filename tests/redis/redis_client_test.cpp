// The Redis client against a real redis-server (Debian's), started per test on 127.0.0.1.
#include <gtest/gtest.h>

#include <boost/asio/ip/tcp.hpp>
#include <string>
#include <vector>

#include "redis/redis_client.hpp"
#include "redis/redis_test_loop.hpp"
#include "support/redis_server.hpp"

namespace pa::redis::test {
namespace {

using pa::test::RedisOptions;
using pa::test::RedisServer;

class RedisClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!RedisServer::available()) GTEST_SKIP() << "redis-server is not installed";
  }

  // Waits until Redis counts `n` clients blocked (XREAD BLOCK), asking with `watcher`.
  bool wait_blocked_clients(Connection& watcher, int n) {
    const std::string wanted = "blocked_clients:" + std::to_string(n) + "\r\n";
    const auto until = std::chrono::steady_clock::now() + 20s;
    while (std::chrono::steady_clock::now() < until) {
      const auto info = loop.call(watcher, {"INFO", "clients"});
      if (info.ec) return false;
      if (info.reply.str.find(wanted) != std::string::npos) return true;
    }
    return false;
  }

  Loop loop;
};

std::error_code not_connected() {
  return make_error_code(ClientError::kNotConnected);
}
std::error_code disconnected() {
  return make_error_code(ClientError::kDisconnected);
}

TEST_F(RedisClientTest, ConnectsAndAnswersPing) {
  RedisServer server;
  server.start();
  auto redis = loop.open(server.url());
  EXPECT_TRUE(redis->connected());
  const auto pong = loop.call(*redis, {"PING"});
  ASSERT_FALSE(pong.ec);
  EXPECT_EQ(pong.reply.type, Reply::Type::kStatus);
  EXPECT_EQ(pong.reply.str, "PONG");
  const auto echo = loop.call(*redis, {"ECHO", "hello"});
  EXPECT_EQ(echo.reply.type, Reply::Type::kString);
  EXPECT_EQ(echo.reply.str, "hello");
  redis->close();
}

TEST_F(RedisClientTest, CommandsBeforeConnectAreRefused) {
  RedisServer server;
  server.start();
  auto redis = loop.create(server.url());
  EXPECT_FALSE(redis->connected());
  EXPECT_EQ(loop.call(*redis, {"PING"}).ec, not_connected());
}

TEST_F(RedisClientTest, ValuesAreBinarySafe) {
  RedisServer server;
  server.start();
  auto redis = loop.open(server.url());
  std::string all_bytes;
  for (int i = 0; i < 256; ++i) all_bytes.push_back(static_cast<char>(i));
  const std::vector<std::string> values = {
      std::string("a\0b\r\nc", 7),           "\r\n", "$3\r\n*1\r\n", "", all_bytes,
      std::string(1 << 20, '\0') + all_bytes};  // 1 MiB: many reads, one reply
  for (std::size_t i = 0; i < values.size(); ++i) {
    const std::string key = std::string("key\0\r\n", 6) + std::to_string(i);
    const auto set = loop.call(*redis, {"SET", key, values[i]});
    ASSERT_FALSE(set.ec);
    EXPECT_EQ(set.reply.str, "OK");
    const auto get = loop.call(*redis, {"GET", key});
    ASSERT_FALSE(get.ec);
    EXPECT_EQ(get.reply.type, Reply::Type::kString);
    EXPECT_EQ(get.reply.str, values[i]) << "value " << i;
  }
  EXPECT_TRUE(loop.call(*redis, {"GET", "missing"}).reply.is_nil());
}

TEST_F(RedisClientTest, PipelinedRepliesComeInOrder) {
  RedisServer server;
  server.start();
  auto redis = loop.open(server.url());
  std::vector<long long> seen;
  for (int i = 0; i < 1000; ++i) {
    redis->command({"INCR", "counter"}, [&seen](std::error_code ec, Reply reply) {
      EXPECT_FALSE(ec);
      seen.push_back(reply.type == Reply::Type::kInteger ? reply.integer : -1);
    });
  }
  ASSERT_TRUE(loop.run_until([&] { return seen.size() == 1000; }));
  for (int i = 0; i < 1000; ++i) ASSERT_EQ(seen[i], i + 1) << "reply " << i;
  // Replies of different shapes keep their order too.
  auto a = loop.send(*redis, {"RPUSH", "list", "x", "y"});
  auto b = loop.send(*redis, {"LRANGE", "list", "0", "-1"});
  auto c = loop.send(*redis, {"GET", "counter"});
  ASSERT_TRUE(loop.run_until([&] { return a->has_value() && b->has_value() && c->has_value(); }));
  EXPECT_EQ((*a)->reply.integer, 2);
  ASSERT_EQ((*b)->reply.elements.size(), 2u);
  EXPECT_EQ((*b)->reply.elements[1].str, "y");
  EXPECT_EQ((*c)->reply.str, "1000");
}

TEST_F(RedisClientTest, AnErrorReplyLeavesTheConnectionUsable) {
  RedisServer server;
  server.start();
  auto redis = loop.open(server.url());
  ASSERT_FALSE(loop.call(*redis, {"SET", "text", "not a number"}).ec);
  const auto incr = loop.call(*redis, {"INCR", "text"});
  ASSERT_FALSE(incr.ec);
  EXPECT_TRUE(incr.reply.is_error());
  EXPECT_EQ(incr.reply.str.rfind("ERR", 0), 0u) << incr.reply.str;
  const auto unknown = loop.call(*redis, {"NO-SUCH-COMMAND"});
  EXPECT_TRUE(unknown.reply.is_error());
  EXPECT_EQ(loop.call(*redis, {"PING"}).reply.str, "PONG");
  EXPECT_TRUE(redis->connected());
}

TEST_F(RedisClientTest, AnEmptyCommandIsRefusedWithoutSendingIt) {
  RedisServer server;
  server.start();
  auto redis = loop.open(server.url());
  EXPECT_EQ(loop.call(*redis, {}).ec, std::make_error_code(std::errc::invalid_argument));
  EXPECT_EQ(loop.call(*redis, {"PING"}).reply.str, "PONG");
}

TEST_F(RedisClientTest, AuthenticatesWithThePassword) {
  RedisOptions secured;
  secured.password = "s3cret:@/%";
  RedisServer server(secured);
  server.start();
  auto redis = loop.open(server.url());  // the URL percent-encodes it
  EXPECT_EQ(loop.call(*redis, {"PING"}).reply.str, "PONG");

  const auto port = std::to_string(server.port());
  auto wrong = loop.create("redis://:wrong@127.0.0.1:" + port);
  EXPECT_EQ(loop.connect(*wrong), make_error_code(ClientError::kAuthFailed));
  EXPECT_FALSE(wrong->connected());
  EXPECT_EQ(loop.call(*wrong, {"PING"}).ec, not_connected());

  // Without a password the connection is up, and Redis refuses its commands.
  auto anonymous = loop.open("redis://127.0.0.1:" + port);
  const auto refused = loop.call(*anonymous, {"GET", "x"});
  EXPECT_TRUE(refused.reply.is_error());
  EXPECT_EQ(refused.reply.str.rfind("NOAUTH", 0), 0u) << refused.reply.str;
}

TEST_F(RedisClientTest, AuthenticatesAnAclUser) {
  RedisServer server;
  server.start();
  ASSERT_NE(server.cli({"ACL", "SETUSER", "alice", "on", ">alice-pw", "~*", "+@all"}).find("OK"),
            std::string::npos);
  const auto port = std::to_string(server.port());
  auto alice = loop.open("redis://alice:alice-pw@127.0.0.1:" + port);
  EXPECT_EQ(loop.call(*alice, {"ACL", "WHOAMI"}).reply.str, "alice");
  auto wrong = loop.create("redis://alice:nope@127.0.0.1:" + port);
  EXPECT_EQ(loop.connect(*wrong), make_error_code(ClientError::kAuthFailed));
}

TEST_F(RedisClientTest, SelectsTheDatabaseOfTheUrl) {
  RedisServer server;
  server.start();
  auto redis = loop.open(server.url() + "/3");
  ASSERT_EQ(loop.call(*redis, {"SET", "where", "db3"}).reply.str, "OK");
  EXPECT_EQ(server.cli({"-n", "3", "GET", "where"}), "db3\n");
  EXPECT_EQ(server.cli({"-n", "0", "EXISTS", "where"}), "0\n");
  // Redis has 16 databases by default: SELECT 99 is refused, and so is the connect.
  auto beyond = loop.create(server.url() + "/99");
  EXPECT_EQ(loop.connect(*beyond), make_error_code(ClientError::kAuthFailed));
}

TEST_F(RedisClientTest, ABlockingReadGetsAnEntryAddedOnAnotherConnection) {
  RedisServer server;
  server.start();
  auto reader = loop.open(server.url());
  auto writer = loop.open(server.url());
  auto read = loop.send(*reader, {"XREAD", "BLOCK", "0", "STREAMS", "events", "0-0"});
  ASSERT_TRUE(wait_blocked_clients(*writer, 1));  // the read waits in Redis; the writer is free
  EXPECT_FALSE(read->has_value());
  const auto added =
      loop.call(*writer, {"XADD", "events", "*", "line", std::string("hello\0world", 11)});
  ASSERT_FALSE(added.ec);
  ASSERT_EQ(added.reply.type, Reply::Type::kString);
  ASSERT_TRUE(loop.run_until([&] { return read->has_value(); }));
  const Reply& reply = (*read)->reply;
  // [[stream, [[id, [field, value]]]]]
  ASSERT_EQ(reply.type, Reply::Type::kArray);
  ASSERT_EQ(reply.elements.size(), 1u);
  EXPECT_EQ(reply.elements[0].elements[0].str, "events");
  const Reply& entry = reply.elements[0].elements[1].elements.at(0);
  EXPECT_EQ(entry.elements[0].str, added.reply.str);
  EXPECT_EQ(entry.elements[1].elements[0].str, "line");
  EXPECT_EQ(entry.elements[1].elements[1].str, std::string("hello\0world", 11));
}

TEST_F(RedisClientTest, ARedisRestartFailsPendingCommandsAndReportsTheDropOnce) {
  RedisServer server;
  server.start();
  auto redis = loop.open(server.url());
  auto watcher = loop.open(server.url());
  std::vector<std::string> events;
  std::error_code drop_reason;
  redis->on_disconnect([&](std::error_code why) {
    events.push_back("disconnect");
    drop_reason = why;
  });
  std::vector<std::error_code> failures;
  for (const char* stream : {"a", "b"}) {
    redis->command({"XREAD", "BLOCK", "0", "STREAMS", stream, "$"},
                   [&events, &failures](std::error_code ec, Reply) {
                     events.push_back("callback");
                     failures.push_back(ec);
                   });
  }
  ASSERT_TRUE(wait_blocked_clients(*watcher, 1));  // the first read blocks, the second queues
  server.stop();
  ASSERT_TRUE(loop.run_until([&] { return events.size() == 3; }));
  loop.drain();
  EXPECT_EQ(events, (std::vector<std::string>{"callback", "callback", "disconnect"}));
  EXPECT_EQ(failures, (std::vector<std::error_code>{disconnected(), disconnected()}));
  EXPECT_TRUE(drop_reason);
  EXPECT_FALSE(redis->connected());
  EXPECT_EQ(loop.call(*redis, {"PING"}).ec, not_connected());

  server.start();  // same port
  auto again = loop.open(server.url());
  EXPECT_EQ(loop.call(*again, {"PING"}).reply.str, "PONG");
  loop.drain();
  EXPECT_EQ(events.size(), 3u);  // the old connection stays down and quiet
}

TEST_F(RedisClientTest, AHandlerSetAfterTheDropIsCalledAtOnce) {
  RedisServer server;
  server.start();
  auto redis = loop.open(server.url());
  server.kill_hard();
  ASSERT_TRUE(loop.run_until([&] { return !redis->connected(); }));
  int calls = 0;
  redis->on_disconnect([&](std::error_code) { ++calls; });
  ASSERT_TRUE(loop.run_until([&] { return calls == 1; }));
  redis->on_disconnect([&](std::error_code) { ++calls; });  // once only
  loop.drain();
  EXPECT_EQ(calls, 1);
}

TEST_F(RedisClientTest, CloseFailsPendingCommandsAndIsNotADrop) {
  RedisServer server;
  server.start();
  auto redis = loop.open(server.url());
  auto watcher = loop.open(server.url());
  int drops = 0;
  redis->on_disconnect([&](std::error_code) { ++drops; });
  auto read = loop.send(*redis, {"XREAD", "BLOCK", "0", "STREAMS", "s", "$"});
  ASSERT_TRUE(wait_blocked_clients(*watcher, 1));
  redis->close();
  redis->close();  // idempotent
  ASSERT_TRUE(loop.run_until([&] { return read->has_value(); }));
  EXPECT_EQ((*read)->ec, disconnected());
  EXPECT_FALSE(redis->connected());
  EXPECT_EQ(loop.call(*redis, {"PING"}).ec, not_connected());
  EXPECT_TRUE(loop.connect(*redis));               // a closed connection does not come back
  ASSERT_TRUE(wait_blocked_clients(*watcher, 0));  // Redis saw it go
  loop.drain();
  EXPECT_EQ(drops, 0);
}

TEST_F(RedisClientTest, ConnectingToAClosedPortFailsAtOnce) {
  RedisServer server;
  server.start();
  const auto port = std::to_string(server.port());
  server.stop();
  ClientOptions options;
  options.connect_timeout = 10min;  // a hang would show as the test's deadline, not a timeout
  auto redis = loop.create("redis://127.0.0.1:" + port, options);
  const auto ec = loop.connect(*redis);
  EXPECT_TRUE(ec);
  EXPECT_NE(ec, make_error_code(ClientError::kTimeout));
  EXPECT_FALSE(redis->connected());
}

TEST_F(RedisClientTest, ConnectTimesOutWhenNoAnswerComes) {
  // A listening socket that never accepts: TCP connects (the kernel's backlog), AUTH waits.
  boost::asio::ip::tcp::acceptor silent(loop.executor(),
                                        {boost::asio::ip::address_v4::loopback(), 0});
  ClientOptions options;
  options.connect_timeout = 300ms;
  auto redis = loop.create(
      "redis://:pw@127.0.0.1:" + std::to_string(silent.local_endpoint().port()), options);
  EXPECT_EQ(loop.connect(*redis), make_error_code(ClientError::kTimeout));
  EXPECT_FALSE(redis->connected());
}

TEST_F(RedisClientTest, ConnectsOverTlsAndVerifiesTheCertificate) {
  RedisOptions tls;
  tls.password = "tls-pw";
  tls.tls = true;
  RedisServer server(tls);
  server.start();
  ASSERT_EQ(server.url().rfind("rediss://", 0), 0u);
  ClientOptions options;
  options.tls_ca_file = pa::test::test_certificate().cert;
  auto redis = loop.open(server.url() + "/2", options);
  ASSERT_EQ(loop.call(*redis, {"SET", "k", std::string("v\0\r\n", 4)}).reply.str, "OK");
  EXPECT_EQ(loop.call(*redis, {"GET", "k"}).reply.str, std::string("v\0\r\n", 4));
  // A context made once at start-up serves every connection.
  ClientOptions shared;
  shared.tls_context = make_tls_context(pa::test::test_certificate().cert);
  auto second = loop.open(server.url(), shared);
  EXPECT_EQ(loop.call(*second, {"PING"}).reply.str, "PONG");

  // The system's trust store does not know the test's self-signed certificate.
  auto untrusted = loop.create(server.url());
  EXPECT_TRUE(loop.connect(*untrusted));
  EXPECT_FALSE(untrusted->connected());
  // Nor does a plain connection get anywhere with a TLS port.
  ClientOptions quick;
  quick.connect_timeout = 2s;
  auto plain = loop.create("redis://:tls-pw@127.0.0.1:" + std::to_string(server.port()), quick);
  EXPECT_TRUE(loop.connect(*plain));
}

TEST_F(RedisClientTest, TlsChecksTheServersName) {
  // A certificate the client trusts (as its own CA) but made out to another name.
  pa::test::TempDir dir("pa-redis-cert");
  const auto cert = (dir / "elsewhere.crt").string();
  const auto key = (dir / "elsewhere.key").string();
  const auto made = pa::test::run_command(
      {"/usr/bin/openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
       "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key, "-out", cert, "-days", "2",
       "-subj", "/CN=elsewhere.test", "-addext", "subjectAltName=DNS:elsewhere.test"});
  ASSERT_EQ(made.exit_code, 0) << made.output;
  RedisOptions tls;
  tls.tls = true;
  tls.tls_cert = cert;
  tls.tls_key = key;
  RedisServer elsewhere(tls);
  elsewhere.start();
  ClientOptions trusting;
  trusting.tls_ca_file = cert;
  auto mismatched = loop.create(elsewhere.url(), trusting);  // rediss://127.0.0.1:port
  EXPECT_TRUE(loop.connect(*mismatched));
  EXPECT_FALSE(mismatched->connected());

  // The shared test certificate names localhost: a host name (sent as SNI) that matches.
  tls.tls_cert.clear();
  tls.tls_key.clear();
  RedisServer server(tls);
  server.start();
  ClientOptions options;
  options.tls_ca_file = pa::test::test_certificate().cert;
  auto redis = loop.open("rediss://localhost:" + std::to_string(server.port()), options);
  EXPECT_EQ(loop.call(*redis, {"PING"}).reply.str, "PONG");
}

TEST_F(RedisClientTest, AMissingCaFileFailsTheConnect) {
  RedisOptions tls;
  tls.tls = true;
  RedisServer server(tls);
  server.start();
  ClientOptions options;
  options.tls_ca_file = "/nonexistent/ca.pem";
  auto redis = loop.create(server.url(), options);
  EXPECT_EQ(loop.connect(*redis), std::make_error_code(std::errc::invalid_argument));
  EXPECT_THROW(make_tls_context("/nonexistent/ca.pem"), std::runtime_error);
}

TEST_F(RedisClientTest, AReplyOverTheSizeLimitClosesTheConnection) {
  RedisServer server;
  server.start();
  ClientOptions options;
  options.max_reply_bytes = 1024;
  auto redis = loop.open(server.url(), options);
  std::optional<std::error_code> drop;
  redis->on_disconnect([&](std::error_code why) { drop = why; });
  // Commands are not limited; replies are.
  ASSERT_EQ(loop.call(*redis, {"SET", "small", std::string(900, 's')}).reply.str, "OK");
  ASSERT_EQ(loop.call(*redis, {"SET", "big", std::string(4096, 'b')}).reply.str, "OK");
  EXPECT_EQ(loop.call(*redis, {"GET", "small"}).reply.str.size(), 900u);
  auto big = loop.send(*redis, {"GET", "big"});
  auto after = loop.send(*redis, {"PING"});
  ASSERT_TRUE(loop.run_until([&] { return big->has_value() && after->has_value() && drop; }));
  EXPECT_EQ((*big)->ec, make_error_code(ClientError::kProtocol));
  EXPECT_EQ((*after)->ec, disconnected());
  EXPECT_EQ(*drop, make_error_code(ClientError::kProtocol));
  EXPECT_FALSE(redis->connected());
}

}  // namespace
}  // namespace pa::redis::test
