// The dispatcher with a scripted sender: each request gets the next reply of its URL's script.
// The io_context runs until nothing is left (retries wait a millisecond), so every check below
// sees the end state; nothing sleeps.
#include "notify/dispatcher.hpp"

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <deque>
#include <map>

namespace pa::notify {
namespace {

using namespace std::chrono_literals;

HttpReply status(unsigned s) {
  HttpReply r;
  r.status = s;
  if (s == 0) r.error = "connect: refused";
  return r;
}

struct ScriptedSender {
  std::map<std::string, std::deque<HttpReply>> scripts;
  std::map<std::string, int> attempts;
  void operator()(HttpPost post, std::function<void(HttpReply)> done) {
    ++attempts[post.url];
    auto& script = scripts[post.url];
    HttpReply reply = script.empty() ? status(201) : script.front();
    if (!script.empty()) script.pop_front();
    done(reply);
  }
};

Delivery to(const std::string& url, const std::string& key = {}) {
  Delivery d;
  d.channel = "web_push";
  d.key = key;
  d.request.url = url;
  return d;
}

DispatcherOptions quick() {
  DispatcherOptions o;
  o.first_backoff = 1ms;
  o.max_backoff = 4ms;
  o.max_attempts = 3;
  return o;
}

class DispatcherTest : public ::testing::Test {
 protected:
  std::shared_ptr<Dispatcher> make(DispatcherOptions options = quick()) {
    return Dispatcher::create(
        io_.get_executor(),
        [this](HttpPost p, std::function<void(HttpReply)> done) { sender_(std::move(p), done); },
        options, [this](const std::string& key) { gone_.push_back(key); },
        [this](const Delivery& d, Dispatcher::Outcome outcome) {
          outcomes_.emplace_back(d.request.url, outcome);
        });
  }
  boost::asio::io_context io_;
  ScriptedSender sender_;
  std::vector<std::string> gone_;
  std::vector<std::pair<std::string, Dispatcher::Outcome>> outcomes_;  // per delivery, at its end
};

TEST_F(DispatcherTest, SuccessIsSentOnce) {
  auto d = make();
  EXPECT_TRUE(d->enqueue(to("https://a/1")));
  io_.run();
  EXPECT_EQ(sender_.attempts["https://a/1"], 1);
  EXPECT_EQ(d->counters().sent, 1u);
  EXPECT_EQ(d->counters().failed, 0u);
  ASSERT_EQ(outcomes_.size(), 1u);
  EXPECT_EQ(outcomes_[0], std::pair(std::string("https://a/1"), Dispatcher::Outcome::kSent));
}

TEST_F(DispatcherTest, ServerErrorsAndNoAnswerAreRetriedThenGivenUp) {
  sender_.scripts["https://a/5xx"] = {status(500), status(503), status(201)};
  sender_.scripts["https://a/down"] = {status(0), status(0), status(0), status(0)};
  auto d = make();
  d->enqueue(to("https://a/5xx"));
  d->enqueue(to("https://a/down"));
  io_.run();
  EXPECT_EQ(sender_.attempts["https://a/5xx"], 3);
  EXPECT_EQ(sender_.attempts["https://a/down"], 3);  // max_attempts
  const auto c = d->counters();
  EXPECT_EQ(c.sent, 1u);
  EXPECT_EQ(c.failed, 1u);
  EXPECT_EQ(c.retried, 4u);
}

TEST_F(DispatcherTest, GoneSubscriptionsAreReportedOnceAndOtherClientErrorsNotRetried) {
  sender_.scripts["https://a/410"] = {status(410)};
  sender_.scripts["https://a/404"] = {status(404)};
  sender_.scripts["https://a/400"] = {status(400)};
  auto d = make();
  d->enqueue(to("https://a/410", "sub-410"));
  d->enqueue(to("https://a/404", "sub-404"));
  d->enqueue(to("https://a/400", "sub-400"));
  io_.run();
  EXPECT_EQ(gone_, (std::vector<std::string>{"sub-410", "sub-404"}));
  EXPECT_EQ(sender_.attempts["https://a/400"], 1);
  const auto c = d->counters();
  EXPECT_EQ(c.gone, 2u);
  EXPECT_EQ(c.failed, 1u);
  EXPECT_EQ(c.retried, 0u);
  using O = Dispatcher::Outcome;
  EXPECT_EQ(outcomes_, (std::vector<std::pair<std::string, O>>{{"https://a/410", O::kGone},
                                                               {"https://a/404", O::kGone},
                                                               {"https://a/400", O::kFailed}}));
}

TEST_F(DispatcherTest, AFullQueueDropsWithoutBlocking) {
  auto options = quick();
  options.max_queued = 2;
  auto d = make(options);
  EXPECT_TRUE(d->enqueue(to("https://a/1")));
  EXPECT_TRUE(d->enqueue(to("https://a/2")));
  EXPECT_FALSE(d->enqueue(to("https://a/3")));  // nothing has run yet: both still queued
  EXPECT_EQ(d->counters().dropped, 1u);
  io_.run();
  EXPECT_EQ(d->counters().sent, 2u);
  EXPECT_TRUE(d->enqueue(to("https://a/4")));  // room again
}

TEST_F(DispatcherTest, NoMoreThanMaxInFlightAtOnce) {
  std::vector<std::function<void(HttpReply)>> held;
  std::size_t most = 0;
  auto options = quick();
  options.max_in_flight = 2;
  auto d = Dispatcher::create(io_.get_executor(),
                              [&](HttpPost, std::function<void(HttpReply)> done) {
                                held.push_back(std::move(done));
                                most = std::max(most, held.size());
                              },
                              options, {});
  auto drain = [&] {  // run what is ready (a context that ran out of work must be restarted)
    io_.restart();
    io_.poll();
  };
  for (int i = 0; i < 5; ++i) d->enqueue(to("https://a/" + std::to_string(i)));
  drain();
  EXPECT_EQ(held.size(), 2u);
  while (!held.empty()) {  // answer one at a time; the next goes out as one comes back
    auto done = std::move(held.front());
    held.erase(held.begin());
    done(status(201));
    drain();
  }
  EXPECT_EQ(most, 2u);
  EXPECT_EQ(d->counters().sent, 5u);
}

TEST_F(DispatcherTest, StopCancelsWaitingRetries) {
  sender_.scripts["https://a/1"] = {status(500)};
  auto options = quick();
  options.first_backoff = std::chrono::hours(1);
  options.max_backoff = std::chrono::hours(1);
  auto d = make(options);
  d->enqueue(to("https://a/1"));
  io_.poll();  // sent once; the retry now waits an hour
  EXPECT_EQ(d->counters().retried, 1u);
  d->stop();
  io_.run();  // returns: the retry's timer was cancelled
  EXPECT_EQ(sender_.attempts["https://a/1"], 1);
  EXPECT_EQ(d->counters().sent, 0u);
}

TEST(RetryWait, DoublesFromTheFirstBackoffHonoursRetryAfterAndIsCapped) {
  DispatcherOptions o;
  o.first_backoff = 1s;
  o.max_backoff = 60s;
  EXPECT_EQ(retry_wait(1, status(500), o), 1s);
  EXPECT_EQ(retry_wait(2, status(500), o), 2s);
  EXPECT_EQ(retry_wait(4, status(0), o), 8s);
  EXPECT_EQ(retry_wait(30, status(500), o), 60s);
  HttpReply limited = status(429);
  limited.retry_after = "30";
  EXPECT_EQ(retry_wait(1, limited, o), 30s);
  limited.retry_after = "100000";
  EXPECT_EQ(retry_wait(1, limited, o), 60s);
  limited.retry_after = "Wed, 21 Oct 2026 07:28:00 GMT";  // not seconds: ignored
  EXPECT_EQ(retry_wait(1, limited, o), 1s);
}

}  // namespace
}  // namespace pa::notify
