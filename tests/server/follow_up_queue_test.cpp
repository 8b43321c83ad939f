// FollowUpQueue: follow-ups leave in the order they came, the queue holds kMaxFollowUps at
// most, cancelling says so for each one, and the queue survives run.json.
#include "server/follow_up_queue.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

namespace pa::server {
namespace {

namespace json = boost::json;

json::object who(std::int64_t connection_id) {
  return json::object{
      {"type", "client"}, {"connection_id", connection_id}, {"client_name", nullptr}};
}

TEST(FollowUpQueue, PushAnnouncesEachPromptWithItsPosition) {
  FollowUpQueue queue;
  EXPECT_TRUE(queue.empty());
  const json::object first = queue.push("one", who(1));
  const json::object second = queue.push("two", who(2));
  EXPECT_EQ(first.at("prompt"), "one");
  EXPECT_EQ(first.at("position"), 1);
  EXPECT_EQ(first.at("by"), who(1));
  EXPECT_EQ(second.at("prompt"), "two");
  EXPECT_EQ(second.at("position"), 2);
  EXPECT_NE(first.at("queue_id"), second.at("queue_id"));
  // The field order of prompt_queued, as clients have always seen it.
  std::vector<std::string> keys;
  for (const auto& [key, value] : first) keys.emplace_back(key);
  EXPECT_THAT(keys, ::testing::ElementsAre("queue_id", "prompt", "position", "by"));
  EXPECT_EQ(queue.size(), 2u);
}

TEST(FollowUpQueue, HoldsAtMostTheLimit) {
  FollowUpQueue queue;
  for (std::size_t i = 0; i < FollowUpQueue::kMaxFollowUps; ++i) {
    EXPECT_FALSE(queue.full()) << i;
    queue.push("p" + std::to_string(i), who(1));
  }
  EXPECT_TRUE(queue.full());
  EXPECT_EQ(queue.size(), FollowUpQueue::kMaxFollowUps);
  ASSERT_TRUE(queue.take_next());
  EXPECT_FALSE(queue.full());  // one started: room for one more
}

TEST(FollowUpQueue, TakesThemInOrder) {
  FollowUpQueue queue;
  const std::string a = std::string(queue.push("first", who(1)).at("queue_id").as_string());
  const std::string b = std::string(queue.push("second", who(1)).at("queue_id").as_string());
  const std::string c = std::string(queue.push("third", who(1)).at("queue_id").as_string());

  auto next = queue.take_next();
  ASSERT_TRUE(next);
  EXPECT_EQ(next->follow_up.queue_id, a);
  EXPECT_EQ(next->follow_up.prompt, "first");
  EXPECT_EQ(next->dequeued,
            (json::object{{"queue_id", json::value(a)}, {"reason", "started"}, {"remaining", 2}}));

  // Positions in project_joined are current ones, not the ones announced.
  const json::array listed = queue.queued_prompts();
  ASSERT_EQ(listed.size(), 2u);
  EXPECT_EQ(listed[0].at("queue_id"), json::value(b));
  EXPECT_EQ(listed[0].at("position"), 1);
  EXPECT_EQ(listed[1].at("queue_id"), json::value(c));
  EXPECT_EQ(listed[1].at("position"), 2);
  EXPECT_EQ(listed[1].at("prompt"), "third");

  next = queue.take_next();
  ASSERT_TRUE(next);
  EXPECT_EQ(next->follow_up.prompt, "second");
  EXPECT_EQ(next->dequeued.at("remaining"), 1);
  next = queue.take_next();
  ASSERT_TRUE(next);
  EXPECT_EQ(next->follow_up.prompt, "third");
  EXPECT_EQ(next->dequeued.at("remaining"), 0);
  EXPECT_FALSE(queue.take_next());
  EXPECT_TRUE(queue.empty());
}

TEST(FollowUpQueue, CancelAllSaysSoForEachInOrder) {
  FollowUpQueue queue;
  const std::string a = std::string(queue.push("first", who(1)).at("queue_id").as_string());
  const std::string b = std::string(queue.push("second", who(2)).at("queue_id").as_string());
  const auto dequeued = queue.cancel_all("the run was stopped (agent_kill)");
  ASSERT_EQ(dequeued.size(), 2u);
  EXPECT_EQ(dequeued[0], (json::object{{"queue_id", json::value(a)},
                                       {"reason", "cancelled"},
                                       {"message", "the run was stopped (agent_kill)"},
                                       {"remaining", 1}}));
  EXPECT_EQ(dequeued[1].at("queue_id"), json::value(b));
  EXPECT_EQ(dequeued[1].at("remaining"), 0);
  EXPECT_TRUE(queue.empty());
  EXPECT_TRUE(queue.queued_prompts().empty());
  EXPECT_TRUE(queue.cancel_all("again").empty());
}

TEST(FollowUpQueue, SurvivesRunJson) {
  FollowUpQueue queue;
  queue.push("first", who(1));
  queue.push("second", who(2));
  RunState saved;
  queue.save(saved);
  ASSERT_EQ(saved.follow_ups.size(), 2u);
  EXPECT_EQ(saved.follow_ups[0].prompt, "first");
  EXPECT_EQ(saved.follow_ups[1].prompt, "second");

  FollowUpQueue restored;
  restored.restore(run_state_from_json(to_json(saved)));
  EXPECT_EQ(restored.queued_prompts(), queue.queued_prompts());
  auto next = restored.take_next();
  ASSERT_TRUE(next);
  EXPECT_EQ(next->follow_up.queue_id, saved.follow_ups[0].queue_id);
  EXPECT_EQ(next->follow_up.prompt, "first");
  EXPECT_EQ(next->follow_up.announced, saved.follow_ups[0].announced);
  EXPECT_EQ(restored.size(), 1u);
}

}  // namespace
}  // namespace pa::server
