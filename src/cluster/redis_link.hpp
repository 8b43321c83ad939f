// One Redis connection kept up: connects, and after a drop (a Redis restart, a network cut)
// connects again with backoff (250 ms doubling to 5 s), for as long as the server runs. While it
// is down, commands fail at once (kNotConnected): the cluster's callers each know what to do (a
// forwarded request fails with NODE_UNAVAILABLE, a heartbeat waits for the next tick, an event
// is filled in later from history).
//
// Runs on its own strand; callable from any thread.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "redis/redis_client.hpp"

namespace pa::cluster {

class RedisLink : public std::enable_shared_from_this<RedisLink> {
 public:
  using Factory = std::function<std::shared_ptr<redis::Connection>()>;

  // `name`: what the log calls it ("commands", "replies", ...).
  RedisLink(boost::asio::any_io_executor executor, Factory factory, std::string name);

  // Connects now and keeps connecting. `on_up` runs on the link's strand after each connect
  // (the first one too), before queued work: the place to (re)create consumer groups and
  // (re)start blocking reads.
  void start(std::function<void()> on_up);
  void stop();  // closes; no reconnect

  void command(std::vector<std::string> argv, redis::Connection::Callback callback);
  bool up() const { return up_; }
  boost::asio::strand<boost::asio::any_io_executor>& strand() { return strand_; }

 private:
  void connect();
  void schedule_reconnect();

  boost::asio::strand<boost::asio::any_io_executor> strand_;
  Factory factory_;
  const std::string name_;
  std::function<void()> on_up_;
  std::shared_ptr<redis::Connection> connection_;
  boost::asio::steady_timer retry_timer_;
  unsigned attempt_ = 0;
  std::atomic<bool> up_{false};
  bool stopped_ = false;
  bool ever_up_ = false;
};

}  // namespace pa::cluster
