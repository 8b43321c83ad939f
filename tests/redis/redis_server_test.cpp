// The test Redis itself (tests/support/redis_server.*): the cluster's tests rely on a restart
// keeping the port, and on data surviving it only when asked to (appendonly).
#include <gtest/gtest.h>

#include "support/redis_server.hpp"

namespace pa::test {
namespace {

class RedisServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!RedisServer::available()) GTEST_SKIP() << "redis-server is not installed";
  }
};

TEST_F(RedisServerTest, ARestartKeepsThePortAndForgetsTheData) {
  RedisServer server;
  server.start();
  ASSERT_TRUE(server.running());
  const auto port = server.port();
  EXPECT_EQ(server.url(), "redis://127.0.0.1:" + std::to_string(port));
  ASSERT_EQ(server.cli({"SET", "k", "v"}), "OK\n");
  server.stop();
  EXPECT_FALSE(server.running());
  server.start();
  EXPECT_EQ(server.port(), port);
  EXPECT_EQ(server.cli({"EXISTS", "k"}), "0\n");
}

TEST_F(RedisServerTest, PersistKeepsTheDataAcrossAStop) {
  RedisOptions options;
  options.persist = true;
  RedisServer server(options);
  server.start();
  ASSERT_EQ(server.cli({"SET", "k", "kept"}), "OK\n");
  server.stop();
  server.start();
  EXPECT_EQ(server.cli({"GET", "k"}), "kept\n");
}

TEST_F(RedisServerTest, APasswordIsRequiredAndInTheUrl) {
  RedisOptions options;
  options.password = "p@ss word";
  RedisServer server(options);
  server.start();
  EXPECT_EQ(server.url(), "redis://:p%40ss%20word@127.0.0.1:" + std::to_string(server.port()));
  EXPECT_EQ(server.cli({"PING"}), "PONG\n");  // cli() authenticates
  const auto anonymous =
      run_command({"/usr/bin/env", "redis-cli", "-p", std::to_string(server.port()), "GET", "k"});
  EXPECT_NE(anonymous.output.find("NOAUTH"), std::string::npos) << anonymous.output;
}

TEST_F(RedisServerTest, KillHardEndsItAtOnce) {
  RedisServer server;
  server.start();
  server.kill_hard();
  EXPECT_FALSE(server.running());
  server.start();
  EXPECT_EQ(server.cli({"PING"}), "PONG\n");
}

}  // namespace
}  // namespace pa::test
