// Project's history appends when the disk refuses them: nothing is sent without a seq, held
// messages go out in order once writes work, try_* is all-or-nothing, the retry queue gives up
// with STORAGE_FAILED, and the storage problem is raised and cleared.
//
// Writes are made to fail with RLIMIT_FSIZE (EFBIG; SIGXFSZ ignored), which works as root too.
#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/resource.h>

#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/json.hpp>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <functional>
#include <future>
#include <mutex>
#include <vector>

#include "server/project.hpp"
#include "server/project_harness.hpp"

namespace pa::server {
namespace {

namespace fs = std::filesystem;
namespace json = boost::json;
using namespace std::chrono_literals;

class FakeConnection : public Connection {
 public:
  explicit FakeConnection(std::uint64_t id) : id_(id) {}
  std::uint64_t id() const override { return id_; }
  const std::string& remote_address() const override { return address_; }
  void send(protocol::SharedText text) override {
    std::lock_guard lock(mutex_);
    received_.push_back(json::parse(*text).as_object());
    cv_.notify_all();
  }
  void close(std::uint16_t, std::string) override {}
  void close_after_queued(std::uint16_t, std::string) override {}

  // Waits until `done(all received)` holds; false at the deadline.
  bool wait(const std::function<bool(const std::vector<json::object>&)>& done,
            std::chrono::milliseconds deadline = 10s) {
    std::unique_lock lock(mutex_);
    return cv_.wait_for(lock, deadline, [&] { return done(received_); });
  }
  std::vector<json::object> received() {
    std::lock_guard lock(mutex_);
    return received_;
  }

 private:
  std::uint64_t id_;
  std::string address_ = "test";
  std::mutex mutex_;
  std::condition_variable cv_;
  std::vector<json::object> received_;
};

std::string type_of(const json::object& m) {
  return std::string(m.at("type").as_string());
}
bool is_storage_failed(const json::object& m) {
  return type_of(m) == "error" && m.at("data").at("code").as_string() == "STORAGE_FAILED";
}
std::size_t count_type(const std::vector<json::object>& all, std::string_view type) {
  std::size_t n = 0;
  for (const auto& m : all) n += type_of(m) == type ? 1 : 0;
  return n;
}

class ProjectStorage : public ::testing::Test {
 protected:
  void SetUp() override {
    ::signal(SIGXFSZ, SIG_IGN);
    project_ = projects_.make_project();
    subscriber_ = std::make_shared<FakeConnection>(1);
    on_strand([&] { project_->subscribe(subscriber_); });
  }
  // Before the harness removes the project: its removal writes too.
  void TearDown() override { lift_limit(); }

  // Runs `fn` on the project's strand and waits for it.
  template <class Fn>
  auto on_strand(Fn fn) -> decltype(fn()) {
    return projects_.on_strand(*project_, std::move(fn));
  }

  // From now on no file may grow: the next history append fails (EFBIG).
  void refuse_writes() {
    rlimit limit{};
    ::getrlimit(RLIMIT_FSIZE, &limit);
    limit.rlim_cur = 0;
    ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &limit), 0);
  }
  void lift_limit() {
    rlimit limit{};
    ::getrlimit(RLIMIT_FSIZE, &limit);
    limit.rlim_cur = limit.rlim_max;
    ::setrlimit(RLIMIT_FSIZE, &limit);
  }
  std::string logs() const { return projects_.store().logs_dir(project_->id()).string(); }

  // Every message the subscriber got about history (not errors) has a seq, in order from `first`.
  void expect_seqs(const std::vector<json::object>& all, std::uint64_t first) {
    std::uint64_t next = first;
    for (const auto& m : all) {
      if (type_of(m) == "error") continue;
      ASSERT_TRUE(m.contains("seq")) << "sent without a seq: " << json::serialize(m);
      EXPECT_EQ(m.at("seq").to_number<std::uint64_t>(), next) << json::serialize(m);
      next = m.at("seq").to_number<std::uint64_t>() + 1;
    }
  }

  test::ProjectHarness projects_{2};
  ops::StorageProblems& problems_ = projects_.problems;
  ops::Counter& storage_errors_ = projects_.storage_errors;
  std::shared_ptr<Project> project_;
  std::shared_ptr<FakeConnection> subscriber_;
};

TEST_F(ProjectStorage, FailedPublishesAreHeldInOrderAndSentWithTheirSeqOnceWritesWork) {
  const auto first = on_strand([&] { return project_->publish("note", {{"n", 0}}); });
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(first.seq, 1u);

  refuse_writes();
  std::vector<PublishResult> held;
  on_strand([&] {
    for (int n = 1; n <= 3; ++n) held.push_back(project_->publish("note", {{"n", n}}));
    held.push_back(project_->publish_raw(history::Direction::kClaude, R"({"type":"x"})",
                                         "agent_message", R"({"type":"x"})"));
    held.push_back(project_->record(history::Direction::kClient, R"({"type":"execute"})"));
  });
  for (const auto& r : held) {
    EXPECT_FALSE(r.ok());
    EXPECT_TRUE(r.deferred);
    EXPECT_EQ(r.error, std::errc::file_too_large) << r.error.message();
  }
  EXPECT_EQ(on_strand([&] { return project_->deferred_count(); }), 5u);
  EXPECT_FALSE(on_strand([&] { return project_->history_writable(); }));
  // Told once (rate-limited), not once per message; registered; counted.
  ASSERT_TRUE(subscriber_->wait(
      [](const auto& all) { return std::any_of(all.begin(), all.end(), is_storage_failed); }));
  const auto problems = problems_.list();
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_EQ(problems[0].what, "history");
  EXPECT_EQ(problems[0].path, logs());
  EXPECT_EQ(problems[0].project_id, project_->id());
  EXPECT_GE(storage_errors_.value(), 1u);

  lift_limit();
  // The retry timer writes them, in order: notes 1..3, the CLI line (the record is not sent).
  ASSERT_TRUE(subscriber_->wait([](const auto& all) { return count_type(all, "agent_message"); }));
  const auto all = subscriber_->received();
  EXPECT_EQ(count_type(all, "error"), 1u) << "a flood of failures is told once";
  expect_seqs(all, 1);
  std::vector<std::int64_t> order;
  for (const auto& m : all) {
    if (type_of(m) == "note") order.push_back(m.at("data").at("n").as_int64());
  }
  EXPECT_EQ(order, (std::vector<std::int64_t>{0, 1, 2, 3}));
  EXPECT_EQ(on_strand([&] { return project_->last_seq(); }), 6u) << "five held + the first";
  EXPECT_EQ(on_strand([&] { return project_->deferred_count(); }), 0u);
  EXPECT_TRUE(on_strand([&] { return project_->history_writable(); }));
  EXPECT_TRUE(problems_.list().empty()) << "cleared by the write that worked";
}

TEST_F(ProjectStorage, TryPublishIsAllOrNothingAndTheSameMessageCanBeTriedAgain) {
  ASSERT_TRUE(on_strand([&] { return project_->publish("note", {{"n", 0}}); }).ok());
  refuse_writes();
  const std::string line = R"({"type":"assistant","n":1})";
  const auto failed = on_strand([&] {
    return project_->try_publish_raw(history::Direction::kClaude, line, "agent_message", line);
  });
  EXPECT_FALSE(failed.ok());
  EXPECT_FALSE(failed.deferred) << "try_* keeps nothing";
  EXPECT_EQ(failed.error, std::errc::file_too_large);
  EXPECT_EQ(on_strand([&] { return project_->deferred_count(); }), 0u);
  EXPECT_FALSE(on_strand([&] { return project_->history_writable(); }));
  EXPECT_EQ(problems_.size(), 1u);
  // A second failing try: still nothing sent but the one STORAGE_FAILED.
  EXPECT_FALSE(on_strand([&] {
                 return project_->try_publish_raw(history::Direction::kClaude, line,
                                                  "agent_message", line);
               }).ok());
  EXPECT_EQ(count_type(subscriber_->received(), "agent_message"), 0u);

  lift_limit();
  const auto again = on_strand([&] {
    return project_->try_publish_raw(history::Direction::kClaude, line, "agent_message", line);
  });
  ASSERT_TRUE(again.ok()) << again.error.message();
  EXPECT_EQ(again.seq, 2u) << "no gap: the failed tries used no seq";
  ASSERT_TRUE(subscriber_->wait([](const auto& all) { return count_type(all, "agent_message"); }));
  const auto all = subscriber_->received();
  EXPECT_EQ(count_type(all, "agent_message"), 1u);
  expect_seqs(all, 1);
  EXPECT_TRUE(problems_.list().empty());
  EXPECT_TRUE(on_strand([&] { return project_->history_writable(); }));
}

TEST_F(ProjectStorage, TryPublishWritesWhatWaitsFirst) {
  refuse_writes();
  EXPECT_TRUE(on_strand([&] { return project_->publish("note", {{"n", 1}}); }).deferred);
  lift_limit();
  // Before the retry timer fires: the held note goes first, then this one.
  const auto tried = on_strand([&] { return project_->try_publish("note", {{"n", 2}}); });
  ASSERT_TRUE(tried.ok());
  EXPECT_EQ(tried.seq, 2u);
  ASSERT_TRUE(subscriber_->wait([](const auto& all) { return count_type(all, "note") == 2; }));
  const auto all = subscriber_->received();
  expect_seqs(all, 1);
  std::vector<std::int64_t> order;
  for (const auto& m : all) {
    if (type_of(m) == "note") order.push_back(m.at("data").at("n").as_int64());
  }
  EXPECT_EQ(order, (std::vector<std::int64_t>{1, 2}));
}

TEST_F(ProjectStorage, TheRetryQueueGivesUpWithStorageFailedToRequesterAndSubscribers) {
  on_strand([&] { project_->set_give_up_after(300ms); });
  auto requester = std::make_shared<FakeConnection>(2);  // not subscribed
  refuse_writes();
  on_strand([&] {
    const Requester r{requester, std::string("req-7")};
    EXPECT_TRUE(project_->publish("project_state", {{"state", "IDLE"}}, &r).deferred);
    project_->publish("note", {{"n", 1}});
  });
  // The requester learns that its reply will not come, with its request_id.
  ASSERT_TRUE(requester->wait([](const auto& all) {
    return std::any_of(all.begin(), all.end(), [](const json::object& m) {
      return is_storage_failed(m) && m.contains("request_id") &&
             m.at("data").at("details").as_object().contains("dropped");
    });
  }));
  for (const auto& m : requester->received()) {
    if (!is_storage_failed(m) || !m.contains("request_id")) continue;
    EXPECT_EQ(m.at("request_id").as_string(), "req-7");
    EXPECT_EQ(m.at("data").at("details").at("dropped").to_number<int>(), 2);
    EXPECT_EQ(m.at("data").at("details").at("path").as_string(), logs());
  }
  // The subscribers are told what was dropped.
  ASSERT_TRUE(subscriber_->wait([](const auto& all) {
    return std::any_of(all.begin(), all.end(), [](const json::object& m) {
      return is_storage_failed(m) && m.at("data").at("details").as_object().contains("dropped");
    });
  }));
  EXPECT_EQ(on_strand([&] { return project_->deferred_count(); }), 0u);
  for (const auto& m : subscriber_->received()) {
    EXPECT_TRUE(is_storage_failed(m))
        << "only errors, nothing without a seq: " << json::serialize(m);
  }

  // Writes work again: history goes on without a gap (the dropped ones had no seq).
  lift_limit();
  const auto next = on_strand([&] { return project_->publish("note", {{"n", 3}}); });
  ASSERT_TRUE(next.ok());
  EXPECT_EQ(next.seq, 1u);
  EXPECT_TRUE(problems_.list().empty());
}

}  // namespace
}  // namespace pa::server
