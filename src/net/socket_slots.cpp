#include "net/socket_slots.hpp"

namespace pa::net {

std::shared_ptr<void> SocketSlots::take(std::function<void()> on_free) {
  std::lock_guard lock(mutex_);
  if (in_use_ < limit_) {
    ++in_use_;
    auto self = shared_from_this();
    return std::shared_ptr<void>(self.get(), [self](void*) { self->give_back(); });
  }
  waiting_.push_back(std::move(on_free));
  return nullptr;
}

std::size_t SocketSlots::in_use() const {
  std::lock_guard lock(mutex_);
  return in_use_;
}

void SocketSlots::give_back() {
  std::vector<std::function<void()>> wake;
  {
    std::lock_guard lock(mutex_);
    --in_use_;
    wake.swap(waiting_);
  }
  for (auto& f : wake) f();
}

}  // namespace pa::net
