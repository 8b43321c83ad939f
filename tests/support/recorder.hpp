// What a test double received, in arrival order, and waits on it with a deadline: a test blocks
// until the Nth item or a matching one arrives instead of sleeping. Thread-safe: the double adds
// from its own thread while the test reads and waits.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <functional>
#include <mutex>
#include <optional>
#include <vector>

namespace pa::test {

template <class T>
class Recorder {
 public:
  void add(T item) {
    {
      std::lock_guard lock(mu_);
      items_.push_back(std::move(item));
    }
    cv_.notify_all();
  }

  std::vector<T> all() const {
    std::lock_guard lock(mu_);
    return items_;
  }
  std::size_t size() const {
    std::lock_guard lock(mu_);
    return items_.size();
  }

  // Waits until `done(everything received so far)` holds; false at the deadline.
  bool wait_until(const std::function<bool(const std::vector<T>&)>& done,
                  std::chrono::milliseconds deadline) const {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, deadline, [&] { return done(items_); });
  }
  // Waits until at least `n` items arrived.
  bool wait_for_count(std::size_t n, std::chrono::milliseconds deadline) const {
    return wait_until([n](const std::vector<T>& items) { return items.size() >= n; }, deadline);
  }
  // The first item (oldest) that matches, waiting for it; nullopt at the deadline.
  std::optional<T> wait_for(const std::function<bool(const T&)>& match,
                            std::chrono::milliseconds deadline) const {
    std::optional<T> found;
    wait_until(
        [&](const std::vector<T>& items) {
          for (const auto& item : items) {
            if (match(item)) {
              found = item;
              return true;
            }
          }
          return false;
        },
        deadline);
    return found;
  }

 private:
  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  std::vector<T> items_;
};

}  // namespace pa::test
