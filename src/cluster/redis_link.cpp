#include "cluster/redis_link.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/asio/post.hpp>

namespace pa::cluster {

namespace asio = boost::asio;

RedisLink::RedisLink(asio::any_io_executor executor, Factory factory, std::string name)
    : strand_(asio::make_strand(executor)),
      factory_(std::move(factory)),
      name_(std::move(name)),
      retry_timer_(strand_) {}

void RedisLink::start(std::function<void()> on_up) {
  asio::post(strand_, [self = shared_from_this(), on_up = std::move(on_up)]() mutable {
    self->on_up_ = std::move(on_up);
    self->connect();
  });
}

void RedisLink::stop() {
  asio::post(strand_, [self = shared_from_this()] {
    self->stopped_ = true;
    self->up_ = false;
    self->retry_timer_.cancel();
    if (self->connection_) self->connection_->close();
  });
}

void RedisLink::connect() {
  BOOST_ASSERT(strand_.running_in_this_thread());
  if (stopped_) return;
  auto connection = factory_();
  connection_ = connection;
  connection->connect([self = shared_from_this(), connection](std::error_code ec) {
    asio::post(self->strand_, [self, connection, ec] {
      if (self->stopped_ || connection != self->connection_) return;
      if (ec) {
        if (self->attempt_ == 0 || self->attempt_ % 20 == 0)
          spdlog::warn("cluster: Redis ({}) not reachable: {}; retrying", self->name_,
                       ec.message());
        self->schedule_reconnect();
        return;
      }
      if (self->ever_up_ || self->attempt_ > 0)
        spdlog::info("cluster: Redis ({}) connected again", self->name_);
      self->ever_up_ = true;
      self->attempt_ = 0;
      self->up_ = true;
      connection->on_disconnect([self, connection](std::error_code why) {
        asio::post(self->strand_, [self, connection, why] {
          if (self->stopped_ || connection != self->connection_) return;
          self->up_ = false;
          spdlog::warn("cluster: Redis ({}) connection lost: {}; reconnecting", self->name_,
                       why.message());
          self->schedule_reconnect();
        });
      });
      if (self->on_up_) self->on_up_();
    });
  });
}

void RedisLink::schedule_reconnect() {
  BOOST_ASSERT(strand_.running_in_this_thread());
  const auto delay = std::min<std::chrono::milliseconds>(
      std::chrono::milliseconds(250) * (1u << std::min(attempt_, 5u)), std::chrono::seconds(5));
  ++attempt_;
  retry_timer_.expires_after(delay);
  retry_timer_.async_wait([self = shared_from_this()](boost::system::error_code ec) {
    if (!ec) self->connect();
  });
}

void RedisLink::command(std::vector<std::string> argv, redis::Connection::Callback callback) {
  asio::post(strand_, [self = shared_from_this(), argv = std::move(argv),
                       callback = std::move(callback)]() mutable {
    if (!self->up_ || !self->connection_) {
      callback(redis::make_error_code(redis::ClientError::kNotConnected), {});
      return;
    }
    self->connection_->command(std::move(argv), std::move(callback));
  });
}

}  // namespace pa::cluster
