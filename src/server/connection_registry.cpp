#include "server/connection_registry.hpp"

#include "server/connection.hpp"

namespace pa::server {

bool ConnectionRegistry::admit() {
  std::size_t current = admitted_.load();
  do {
    if (current >= max_connections_) return false;
  } while (!admitted_.compare_exchange_weak(current, current + 1));
  return true;
}

void ConnectionRegistry::release() {
  --admitted_;
}

void ConnectionRegistry::add(const std::shared_ptr<Connection>& connection) {
  std::lock_guard lock(mutex_);
  open_.emplace(connection->id(), connection);
}

bool ConnectionRegistry::remove(std::uint64_t id) {
  std::lock_guard lock(mutex_);
  if (open_.erase(id) == 0) return false;
  if (open_.empty()) emptied_.notify_all();
  return true;
}

std::shared_ptr<Connection> ConnectionRegistry::find(std::uint64_t id) const {
  std::lock_guard lock(mutex_);
  const auto it = open_.find(id);
  return it == open_.end() ? nullptr : it->second.lock();
}

std::size_t ConnectionRegistry::open_count() const {
  std::lock_guard lock(mutex_);
  return open_.size();
}

std::vector<std::shared_ptr<Connection>> ConnectionRegistry::open_connections() const {
  std::vector<std::shared_ptr<Connection>> out;
  std::lock_guard lock(mutex_);
  out.reserve(open_.size());
  for (const auto& [id, weak] : open_) {
    if (auto connection = weak.lock()) out.push_back(std::move(connection));
  }
  return out;
}

std::vector<std::shared_ptr<Connection>> ConnectionRegistry::connections_of_device(
    std::string_view device_id) const {
  if (device_id.empty()) return {};  // the master token is no device
  auto all = open_connections();     // the identity is read without holding mutex_
  std::erase_if(all, [&](const auto& c) { return c->identity().device_id != device_id; });
  return all;
}

void ConnectionRegistry::close_all(std::uint16_t code, const std::string& reason) {
  for (const auto& connection : open_connections()) connection->close_after_queued(code, reason);
}

bool ConnectionRegistry::wait_until_empty(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mutex_);
  return emptied_.wait_for(lock, timeout, [&] { return open_.empty(); });
}

}  // namespace pa::server
