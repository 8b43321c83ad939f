#include "notify/dispatcher.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/asio/post.hpp>
#include <cstdlib>

namespace pa::notify {

namespace asio = boost::asio;
using std::chrono::milliseconds;

std::shared_ptr<Dispatcher> Dispatcher::create(asio::any_io_executor executor, Sender sender,
                                               DispatcherOptions options, GoneHandler on_gone,
                                               OutcomeHandler on_outcome) {
  return std::shared_ptr<Dispatcher>(new Dispatcher(std::move(executor), std::move(sender), options,
                                                    std::move(on_gone), std::move(on_outcome)));
}

Dispatcher::Dispatcher(asio::any_io_executor executor, Sender sender, DispatcherOptions options,
                       GoneHandler on_gone, OutcomeHandler on_outcome)
    : strand_(asio::make_strand(std::move(executor))),
      sender_(std::move(sender)),
      options_(options),
      on_gone_(std::move(on_gone)),
      on_outcome_(std::move(on_outcome)) {}

bool Dispatcher::enqueue(Delivery delivery) {
  // Reserve a slot first, so concurrent callers cannot overshoot the bound.
  if (pending_.fetch_add(1) >= options_.max_queued) {
    pending_.fetch_sub(1);
    dropped_.fetch_add(1);
    spdlog::warn("notification to {} dropped: {} already waiting", delivery.channel,
                 options_.max_queued);
    return false;
  }
  asio::post(strand_, [self = shared_from_this(), d = std::move(delivery)]() mutable {
    if (self->stopped_) {
      self->pending_.fetch_sub(1);
      return;
    }
    self->queue_.push_back(std::move(d));
    self->pump();
  });
  return true;
}

void Dispatcher::pump() {
  BOOST_ASSERT(strand_.running_in_this_thread());
  while (!stopped_ && in_flight_ < options_.max_in_flight && !queue_.empty()) {
    Delivery d = std::move(queue_.front());
    queue_.pop_front();
    pending_.fetch_sub(1);
    ++in_flight_;
    ++d.attempt;
    HttpPost request = d.request;  // the delivery keeps its copy for a retry
    sender_(
        std::move(request), [self = shared_from_this(), d = std::move(d)](HttpReply reply) mutable {
          asio::post(self->strand_, [self, d = std::move(d), reply = std::move(reply)]() mutable {
            --self->in_flight_;
            self->on_reply(std::move(d), reply);
            self->pump();
          });
        });
  }
}

void Dispatcher::on_reply(Delivery d, const HttpReply& reply) {
  const unsigned s = reply.status;
  auto ended = [&](Outcome outcome) {
    if (on_outcome_) on_outcome_(d, outcome);
  };
  if (s >= 200 && s < 300) {
    sent_.fetch_add(1);
    ended(Outcome::kSent);
    return;
  }
  if ((s == 404 || s == 410) && !d.key.empty()) {
    gone_.fetch_add(1);
    spdlog::info("notification target gone ({}): removing it", s);
    if (on_gone_) on_gone_(d.key);
    ended(Outcome::kGone);
    return;
  }
  const bool may_pass_later = s == 0 || s == 429 || s >= 500;
  if (!may_pass_later || d.attempt >= options_.max_attempts) {
    failed_.fetch_add(1);
    spdlog::warn("notification to {} failed after {} attempt(s): {}", d.channel, d.attempt,
                 s == 0 ? reply.error : "HTTP " + std::to_string(s));
    ended(Outcome::kFailed);
    return;
  }
  const auto wait = retry_wait(d.attempt, reply, options_);
  retry_later(std::move(d), wait);
}

milliseconds retry_wait(int attempt, const HttpReply& reply, const DispatcherOptions& options) {
  milliseconds wait = options.first_backoff * (1LL << std::clamp(attempt - 1, 0, 20));
  if ((reply.status == 429 || reply.status == 503) && !reply.retry_after.empty()) {
    // Retry-After in seconds (the HTTP-date form is not worth honouring here).
    const char* digits = reply.retry_after.c_str();
    char* end = nullptr;
    const long seconds = std::strtol(digits, &end, 10);
    if (end != digits && *end == '\0' && seconds > 0)
      wait = std::max(wait, milliseconds(std::min(seconds, 86400L) * 1000));
  }
  return std::min(wait, options.max_backoff);
}

void Dispatcher::retry_later(Delivery d, milliseconds wait) {
  retried_.fetch_add(1);
  pending_.fetch_add(1);
  auto timer = std::make_shared<asio::steady_timer>(strand_, wait);
  retry_timers_.insert(timer);
  timer->async_wait([self = shared_from_this(), timer,
                     d = std::move(d)](const boost::system::error_code&) mutable {
    self->retry_timers_.erase(timer);
    if (self->stopped_) {
      self->pending_.fetch_sub(1);
      return;
    }
    self->queue_.push_back(std::move(d));  // already counted in pending_
    self->pump();
  });
}

DispatcherCounters Dispatcher::counters() const {
  return {sent_.load(), failed_.load(), retried_.load(), dropped_.load(), gone_.load()};
}

void Dispatcher::stop() {
  asio::post(strand_, [self = shared_from_this()] {
    self->stopped_ = true;
    self->pending_.fetch_sub(self->queue_.size());
    self->queue_.clear();
    for (const auto& timer : self->retry_timers_) timer->cancel();
  });
}

}  // namespace pa::notify
