// Server-wide run admission: at most `max_concurrent` runs at once, then a FIFO of `queue_size`
// waiting runs. Thread-safe. Callbacks run outside the lock, on the thread that caused them.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <string>

namespace pa::server {

class Scheduler {
 public:
  enum class Admit { kStartNow, kQueued, kFull };

  struct Ticket {
    std::string project_id;
    std::function<void()> start;             // the run may start now
    std::function<void(std::size_t)> moved;  // new 1-based queue position
  };

  Scheduler(std::size_t max_concurrent, std::size_t queue_size);

  // kStartNow takes a slot (the caller starts at once; `start` is not called). kQueued puts the
  // ticket at `position` (1-based). kFull: nothing changed.
  Admit admit(Ticket ticket, std::size_t& position);
  // A run taken over after a restart holds a slot, whatever the limit (it is running).
  void occupy();
  // A run ended: frees its slot and starts the next queued ticket, if any.
  void release();
  // Removes a queued ticket; false when it is not queued (it may be starting right now).
  bool cancel(const std::string& project_id);

  // Blocks until no run is active or queued, the timeout passes, or wake_waiters() is called;
  // true when idle.
  bool wait_until_idle(std::chrono::steady_clock::duration timeout);
  void wake_waiters();

  std::size_t active() const;
  std::size_t queued() const;

 private:
  const std::size_t max_concurrent_;
  const std::size_t queue_size_;
  mutable std::mutex mutex_;
  std::condition_variable idle_;
  std::uint64_t wake_generation_ = 0;
  std::size_t active_ = 0;
  std::deque<Ticket> queue_;
};

}  // namespace pa::server
