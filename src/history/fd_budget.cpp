#include "history/fd_budget.hpp"

#include <iterator>
#include <vector>

namespace pa::history {

FdBudget& FdBudget::process() {
  // Never destroyed: a log that outlives main()'s objects may still leave it at exit.
  static FdBudget* const budget = new FdBudget(kDefaultLimit);
  return *budget;
}

void FdBudget::opened(Member& m) {
  std::vector<Member*> victims;
  {
    std::lock_guard lock(mutex_);
    if (m.listed_) {
      lru_.splice(lru_.begin(), lru_, m.position_);
    } else {
      lru_.push_front(&m);
      m.position_ = lru_.begin();
      m.listed_ = true;
    }
    // Oldest first; a member busy right now (its mutex taken) is passed over, not waited for.
    std::size_t over = lru_.size() > limit_ ? lru_.size() - limit_ : 0;
    for (auto it = std::prev(lru_.end()); over > 0 && *it != &m;) {
      Member* victim = *it;
      const bool first = it == lru_.begin();
      auto next = first ? it : std::prev(it);
      if (victim->mutex_.try_lock()) {
        lru_.erase(it);
        victim->listed_ = false;
        victims.push_back(victim);
        --over;
        ++evictions_;
      }
      if (first) break;
      it = next;
    }
  }
  // Closed outside the budget's lock (closing may fdatasync); each victim's mutex is held, so its
  // owner waits for this before touching its descriptor again (or destroying it).
  for (Member* victim : victims) {
    victim->release_descriptor();
    victim->mutex_.unlock();
  }
}

void FdBudget::used(Member& m) {
  std::lock_guard lock(mutex_);
  if (m.listed_) lru_.splice(lru_.begin(), lru_, m.position_);
}

void FdBudget::closed(Member& m) {
  std::lock_guard lock(mutex_);
  if (!m.listed_) return;
  lru_.erase(m.position_);
  m.listed_ = false;
}

std::size_t FdBudget::open_count() const {
  std::lock_guard lock(mutex_);
  return lru_.size();
}

std::size_t FdBudget::evictions() const {
  std::lock_guard lock(mutex_);
  return evictions_;
}

}  // namespace pa::history
