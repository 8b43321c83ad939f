#include "server/scheduler.hpp"

#include <gtest/gtest.h>

#include <vector>

namespace pa::server {
namespace {

Scheduler::Ticket ticket(const std::string& id, std::vector<std::string>& started,
                         std::vector<std::pair<std::string, std::size_t>>& moves) {
  return Scheduler::Ticket{id, [&started, id] { started.push_back(id); },
                           [&moves, id](std::size_t p) { moves.emplace_back(id, p); }};
}

TEST(Scheduler, RunsUpToTheLimitThenQueuesFifo) {
  Scheduler s(2, 2);
  std::vector<std::string> started;
  std::vector<std::pair<std::string, std::size_t>> moves;
  std::size_t position = 99;
  EXPECT_EQ(s.admit(ticket("a", started, moves), position), Scheduler::Admit::kStartNow);
  EXPECT_EQ(position, 0u);
  EXPECT_EQ(s.admit(ticket("b", started, moves), position), Scheduler::Admit::kStartNow);
  EXPECT_EQ(s.admit(ticket("c", started, moves), position), Scheduler::Admit::kQueued);
  EXPECT_EQ(position, 1u);
  EXPECT_EQ(s.admit(ticket("d", started, moves), position), Scheduler::Admit::kQueued);
  EXPECT_EQ(position, 2u);
  EXPECT_EQ(s.admit(ticket("e", started, moves), position), Scheduler::Admit::kFull);
  EXPECT_EQ(s.active(), 2u);
  EXPECT_EQ(s.queued(), 2u);

  s.release();
  EXPECT_EQ(started, (std::vector<std::string>{"c"}));
  EXPECT_EQ(moves, (std::vector<std::pair<std::string, std::size_t>>{{"d", 1}}));
  s.release();
  EXPECT_EQ(started, (std::vector<std::string>{"c", "d"}));
  EXPECT_EQ(s.active(), 2u);
  s.release();
  s.release();
  EXPECT_EQ(s.active(), 0u);
  EXPECT_TRUE(s.wait_until_idle(std::chrono::milliseconds(0)));
}

TEST(Scheduler, CancelRemovesAQueuedTicketAndRenumbers) {
  Scheduler s(1, 3);
  std::vector<std::string> started;
  std::vector<std::pair<std::string, std::size_t>> moves;
  std::size_t position = 0;
  s.admit(ticket("a", started, moves), position);
  s.admit(ticket("b", started, moves), position);
  s.admit(ticket("c", started, moves), position);
  EXPECT_TRUE(s.cancel("b"));
  EXPECT_FALSE(s.cancel("b"));
  EXPECT_FALSE(s.cancel("a")) << "running, not queued";
  EXPECT_EQ(moves, (std::vector<std::pair<std::string, std::size_t>>{{"c", 1}}));
  EXPECT_FALSE(s.wait_until_idle(std::chrono::milliseconds(0)));
  s.release();
  EXPECT_EQ(started, (std::vector<std::string>{"c"}));
}

TEST(Scheduler, NewArrivalsDoNotOvertakeTheQueue) {
  Scheduler s(1, 5);
  std::vector<std::string> started;
  std::vector<std::pair<std::string, std::size_t>> moves;
  std::size_t position = 0;
  s.admit(ticket("a", started, moves), position);
  s.admit(ticket("b", started, moves), position);
  s.release();  // b starts
  EXPECT_EQ(started, (std::vector<std::string>{"b"}));
  EXPECT_EQ(s.admit(ticket("c", started, moves), position), Scheduler::Admit::kQueued);
}

}  // namespace
}  // namespace pa::server
