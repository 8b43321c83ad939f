#include "server/scheduler.hpp"

#include <vector>

namespace pa::server {

Scheduler::Scheduler(std::size_t max_concurrent, std::size_t queue_size)
    : max_concurrent_(max_concurrent), queue_size_(queue_size) {}

Scheduler::Admit Scheduler::admit(Ticket ticket, std::size_t& position) {
  std::lock_guard lock(mutex_);
  if (active_ < max_concurrent_ && queue_.empty()) {
    ++active_;
    position = 0;
    return Admit::kStartNow;
  }
  if (queue_.size() >= queue_size_) return Admit::kFull;
  queue_.push_back(std::move(ticket));
  position = queue_.size();
  return Admit::kQueued;
}

namespace {
struct Moved {
  std::function<void(std::size_t)> callback;
  std::size_t position;
};
}  // namespace

void Scheduler::occupy() {
  std::lock_guard lock(mutex_);
  ++active_;
}

void Scheduler::release() {
  std::function<void()> start;
  std::vector<Moved> moved;
  {
    std::lock_guard lock(mutex_);
    if (active_ > 0) --active_;
    if (!queue_.empty() && active_ < max_concurrent_) {
      ++active_;
      start = std::move(queue_.front().start);
      queue_.pop_front();
      for (std::size_t i = 0; i < queue_.size(); ++i) moved.push_back({queue_[i].moved, i + 1});
    }
  }
  idle_.notify_all();
  if (start) start();
  for (auto& m : moved) {
    if (m.callback) m.callback(m.position);
  }
}

bool Scheduler::cancel(const std::string& project_id) {
  std::vector<Moved> moved;
  {
    std::lock_guard lock(mutex_);
    std::size_t index = 0;
    for (; index < queue_.size(); ++index) {
      if (queue_[index].project_id == project_id) break;
    }
    if (index == queue_.size()) return false;
    queue_.erase(queue_.begin() + static_cast<std::ptrdiff_t>(index));
    for (std::size_t i = index; i < queue_.size(); ++i) moved.push_back({queue_[i].moved, i + 1});
  }
  idle_.notify_all();
  for (auto& m : moved) {
    if (m.callback) m.callback(m.position);
  }
  return true;
}

bool Scheduler::wait_until_idle(std::chrono::steady_clock::duration timeout) {
  std::unique_lock lock(mutex_);
  const auto generation = wake_generation_;
  idle_.wait_for(lock, timeout, [&] {
    return (active_ == 0 && queue_.empty()) || wake_generation_ != generation;
  });
  return active_ == 0 && queue_.empty();
}

void Scheduler::wake_waiters() {
  {
    std::lock_guard lock(mutex_);
    ++wake_generation_;
  }
  idle_.notify_all();
}

std::size_t Scheduler::active() const {
  std::lock_guard lock(mutex_);
  return active_;
}

std::size_t Scheduler::queued() const {
  std::lock_guard lock(mutex_);
  return queue_.size();
}

}  // namespace pa::server
