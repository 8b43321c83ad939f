// Runs the Redis client's io_context on the test's thread until what the test waits for has
// happened, with a deadline (never a sleep), and wraps connect/command into blocking calls.
#pragma once

#include <gtest/gtest.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "redis/redis_client.hpp"

namespace pa::redis::test {

using namespace std::chrono_literals;

struct Result {
  std::error_code ec;
  Reply reply;
};

class Loop {
 public:
  boost::asio::any_io_executor executor() { return io_.get_executor(); }

  // Runs handlers until `done()` holds; false at the deadline.
  bool run_until(const std::function<bool()>& done, std::chrono::milliseconds deadline = 20s) {
    const auto until = std::chrono::steady_clock::now() + deadline;
    while (!done()) {
      const auto now = std::chrono::steady_clock::now();
      if (now >= until) return false;
      io_.run_one_for(until - now);
    }
    return true;
  }
  // Runs every handler that is ready now (to see that nothing more happens).
  void drain() { io_.poll(); }

  std::shared_ptr<Connection> create(const std::string& url_text, ClientOptions options = {}) {
    std::string error;
    auto url = RedisUrl::parse(url_text, error);
    EXPECT_TRUE(url) << url_text << ": " << error;
    return Connection::create(executor(), url.value_or(RedisUrl{}), std::move(options));
  }

  std::error_code connect(Connection& connection) {
    auto result = std::make_shared<std::optional<std::error_code>>();
    connection.connect([result](std::error_code ec) { *result = ec; });
    EXPECT_TRUE(run_until([&] { return result->has_value(); })) << "connect did not complete";
    return result->value_or(std::make_error_code(std::errc::timed_out));
  }

  // A connection that is up, or a test failure.
  std::shared_ptr<Connection> open(const std::string& url_text, ClientOptions options = {}) {
    auto connection = create(url_text, std::move(options));
    const auto ec = connect(*connection);
    EXPECT_FALSE(ec) << url_text << ": " << ec.message();
    return connection;
  }

  // Sends a command; returns a slot that its callback fills.
  std::shared_ptr<std::optional<Result>> send(Connection& connection,
                                              std::vector<std::string> argv) {
    auto slot = std::make_shared<std::optional<Result>>();
    connection.command(std::move(argv), [slot](std::error_code ec, Reply reply) {
      *slot = Result{ec, std::move(reply)};
    });
    return slot;
  }

  Result call(Connection& connection, std::vector<std::string> argv) {
    auto slot = send(connection, std::move(argv));
    EXPECT_TRUE(run_until([&] { return slot->has_value(); })) << "no reply";
    return slot->value_or(Result{std::make_error_code(std::errc::timed_out), {}});
  }

 private:
  boost::asio::io_context io_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_{
      io_.get_executor()};
};

}  // namespace pa::redis::test
