// Sends notification requests without ever holding up a run or a broadcast: a bounded queue
// (enqueue never blocks; a full queue drops and counts), a few requests in flight at once,
// retries with exponential backoff for what may pass later (no answer, 429, 5xx; Retry-After is
// honoured up to the backoff cap), and no retry for what will not (other 4xx). A push service's
// 404 or 410 means the subscription is gone: `on_gone` hears its key once.
#pragma once

#include <atomic>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <set>
#include <string>

#include "notify/http_post.hpp"

namespace pa::notify {

struct Delivery {
  std::string channel;  // "web_push", "ntfy", "webhook": for logs and metrics
  std::string key;      // what on_gone names (a subscription's endpoint), or empty
  HttpPost request;
  int attempt = 0;  // sends so far
};

struct DispatcherOptions {
  std::size_t max_queued = 1000;
  std::size_t max_in_flight = 4;
  int max_attempts = 5;
  std::chrono::milliseconds first_backoff{1000};
  std::chrono::milliseconds max_backoff{5 * 60 * 1000};
};

struct DispatcherCounters {
  std::uint64_t sent = 0;     // answered 2xx
  std::uint64_t failed = 0;   // given up: a 4xx, or max_attempts without success
  std::uint64_t retried = 0;  // sends scheduled again
  std::uint64_t dropped = 0;  // refused because the queue was full
  std::uint64_t gone = 0;     // 404/410: the subscription was removed
};

// How long before attempt `attempt` + 1 after `reply`: first_backoff doubled per attempt, at least
// a 429's or 503's Retry-After (seconds), at most max_backoff.
std::chrono::milliseconds retry_wait(int attempt, const HttpReply& reply,
                                     const DispatcherOptions& options);

class Dispatcher : public std::enable_shared_from_this<Dispatcher> {
 public:
  // Sends one request and calls back with the reply (post_http in the server; tests pass their
  // own). Called on the dispatcher's strand; the callback may come on any thread.
  using Sender = std::function<void(HttpPost, std::function<void(HttpReply)>)>;
  using GoneHandler = std::function<void(const std::string& key)>;
  // How each delivery ended, for per-channel metrics (called on the strand).
  enum class Outcome { kSent, kFailed, kGone };
  using OutcomeHandler = std::function<void(const Delivery& delivery, Outcome outcome)>;

  static std::shared_ptr<Dispatcher> create(boost::asio::any_io_executor executor, Sender sender,
                                            DispatcherOptions options, GoneHandler on_gone,
                                            OutcomeHandler on_outcome = {});

  // Thread-safe, never blocks. False when the queue is full (the delivery is dropped).
  bool enqueue(Delivery delivery);
  DispatcherCounters counters() const;
  // Drops what is queued and waiting for a retry; requests in flight finish on their own.
  void stop();

 private:
  Dispatcher(boost::asio::any_io_executor executor, Sender sender, DispatcherOptions options,
             GoneHandler on_gone, OutcomeHandler on_outcome);
  void pump();
  void on_reply(Delivery delivery, const HttpReply& reply);
  void retry_later(Delivery delivery, std::chrono::milliseconds wait);

  boost::asio::strand<boost::asio::any_io_executor> strand_;
  Sender sender_;
  DispatcherOptions options_;
  GoneHandler on_gone_;
  OutcomeHandler on_outcome_;
  // On the strand:
  std::deque<Delivery> queue_;
  std::size_t in_flight_ = 0;
  std::set<std::shared_ptr<boost::asio::steady_timer>> retry_timers_;  // cancelled by stop()
  bool stopped_ = false;
  // Read from any thread:
  std::atomic<std::size_t> pending_{0};  // queued + waiting for a retry: what enqueue bounds
  std::atomic<std::uint64_t> sent_{0}, failed_{0}, retried_{0}, dropped_{0}, gone_{0};
};

}  // namespace pa::notify
