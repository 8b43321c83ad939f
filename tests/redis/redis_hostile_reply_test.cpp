// The client against a peer that is not Redis, or a broken one: a fake server on the test's
// io_context answers with forged bytes. Each case must end the connection as a protocol error
// (the command learns kProtocol, on_disconnect fires once), never hang, crash or over-allocate.
#include <gtest/gtest.h>

#include <array>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>
#include <string>

#include "redis/redis_client.hpp"
#include "redis/redis_test_loop.hpp"

namespace pa::redis::test {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

// Accepts one connection; answers `reply` to the first bytes it reads, or sends it at once
// (`unsolicited`). Keeps the socket open afterwards: only the client may close it.
class FakeRedis {
 public:
  FakeRedis(Loop& loop, std::string reply, bool unsolicited = false)
      : acceptor_(loop.executor(), {asio::ip::address_v4::loopback(), 0}),
        peer_(loop.executor()),
        reply_(std::move(reply)) {
    acceptor_.async_accept(peer_, [this, unsolicited](boost::system::error_code ec) {
      if (ec) return;
      if (unsolicited) return answer();
      peer_.async_read_some(asio::buffer(request_),
                            [this](boost::system::error_code rec, std::size_t) {
                              if (!rec) answer();
                            });
    });
  }
  std::string url() const {
    return "redis://127.0.0.1:" + std::to_string(acceptor_.local_endpoint().port());
  }
  // The client closed its end (the fake saw EOF or a reset after answering).
  bool peer_closed() const { return peer_closed_; }

 private:
  void answer() {
    asio::async_write(peer_, asio::buffer(reply_), [](boost::system::error_code, std::size_t) {});
    watch_for_close();
  }
  void watch_for_close() {
    peer_.async_read_some(asio::buffer(request_),
                          [this](boost::system::error_code ec, std::size_t) {
                            if (ec)
                              peer_closed_ = true;
                            else
                              watch_for_close();
                          });
  }

  tcp::acceptor acceptor_;
  tcp::socket peer_;
  std::string reply_;
  std::array<char, 4096> request_{};
  bool peer_closed_ = false;
};

struct Outcome {
  std::optional<Result> reply;
  std::optional<std::error_code> drop;
  int drops = 0;
};

// Connects to `fake`, sends PING (unless `send` is false) and waits for the end.
Outcome exchange(Loop& loop, FakeRedis& fake, ClientOptions options = {}, bool send = true) {
  auto redis = loop.open(fake.url(), options);
  auto outcome = std::make_shared<Outcome>();
  redis->on_disconnect([outcome](std::error_code why) {
    outcome->drop = why;
    ++outcome->drops;
  });
  if (send) {
    redis->command({"PING"}, [outcome](std::error_code ec, Reply reply) {
      outcome->reply = Result{ec, reply};
    });
  }
  EXPECT_TRUE(loop.run_until([&] { return outcome->drop && (!send || outcome->reply); }));
  EXPECT_FALSE(redis->connected());
  EXPECT_TRUE(loop.run_until([&] { return fake.peer_closed(); })) << "the client kept the socket";
  loop.drain();
  return *outcome;
}

void expect_protocol_error(const Outcome& outcome) {
  const auto protocol = make_error_code(ClientError::kProtocol);
  ASSERT_TRUE(outcome.reply);
  EXPECT_EQ(outcome.reply->ec, protocol);
  EXPECT_EQ(outcome.drop, protocol);
  EXPECT_EQ(outcome.drops, 1);
}

TEST(RedisHostileReplyTest, GarbageIsAProtocolError) {
  Loop loop;
  FakeRedis fake(loop, "HTTP/1.1 400 Bad Request\r\n\r\n");
  expect_protocol_error(exchange(loop, fake));
}

TEST(RedisHostileReplyTest, AHugeArrayHeaderIsRefusedBeforeAllocating) {
  Loop loop;
  // 2^31-1 elements: hiredis alone would calloc 16 GiB for the element table.
  FakeRedis fake(loop, "*2147483647\r\n");
  expect_protocol_error(exchange(loop, fake));
}

TEST(RedisHostileReplyTest, AnArrayLongerThanTheLimitAllowsIsRefused) {
  Loop loop;
  FakeRedis fake(loop, "*300\r\n");  // 300 elements need at least 1200 bytes
  ClientOptions options;
  options.max_reply_bytes = 1024;
  expect_protocol_error(exchange(loop, fake, options));
}

TEST(RedisHostileReplyTest, AnEndlessBulkStringIsCutAtTheLimit) {
  Loop loop;
  // Announces 1 GiB and sends 64 KiB of it: the client stops at max_reply_bytes.
  FakeRedis fake(loop, "$1073741824\r\n" + std::string(64 * 1024, 'x'));
  ClientOptions options;
  options.max_reply_bytes = 16 * 1024;
  expect_protocol_error(exchange(loop, fake, options));
}

TEST(RedisHostileReplyTest, ManySmallElementsCountTowardTheLimit) {
  Loop loop;
  std::string reply = "*1000\r\n";
  for (int i = 0; i < 1000; ++i) reply += ":1\r\n";  // 4 KiB in all
  FakeRedis fake(loop, reply);
  ClientOptions options;
  options.max_reply_bytes = 4000;  // the header passes (1000 elements fit in 4000 bytes); the
                                   // reply, 4007 bytes, arrives whole in one read and is refused
  expect_protocol_error(exchange(loop, fake, options));
}

TEST(RedisHostileReplyTest, AReplyNobodyAskedForIsAProtocolError) {
  Loop loop;
  FakeRedis fake(loop, "+OK\r\n", /*unsolicited=*/true);
  const auto outcome = exchange(loop, fake, {}, /*send=*/false);
  EXPECT_EQ(outcome.drop, make_error_code(ClientError::kProtocol));
  EXPECT_EQ(outcome.drops, 1);
}

TEST(RedisHostileReplyTest, AWellFormedReplyUnderTheLimitIsAccepted) {
  Loop loop;
  FakeRedis fake(loop, std::string("*2\r\n$3\r\na\0b\r\n*1\r\n:-7\r\n", 22));
  auto redis = loop.open(fake.url());
  const auto result = loop.call(*redis, {"PING"});
  ASSERT_FALSE(result.ec);
  ASSERT_EQ(result.reply.type, Reply::Type::kArray);
  ASSERT_EQ(result.reply.elements.size(), 2u);
  EXPECT_EQ(result.reply.elements[0].str, std::string("a\0b", 3));
  EXPECT_EQ(result.reply.elements[1].elements.at(0).integer, -7);
  EXPECT_TRUE(redis->connected());
  redis->close();
}

}  // namespace
}  // namespace pa::redis::test
