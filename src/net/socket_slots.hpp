// Sockets a listener holds that are not (yet) connections: in their TLS handshake or HTTP request.
// Connections are counted by the hub (limits.max_connections, then 503); these are bounded here
// so that both together stay within the open file limit (net/descriptor_plan.hpp). A listener
// takes a slot per accepted socket and stops accepting while none is free; the HTTP session
// holds the slot and gives it back when it ends (after an upgrade the hub counts the connection).
//
// Thread-safe. One instance is shared by every listener of the process.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <mutex>
#include <vector>

namespace pa::net {

class SocketSlots : public std::enable_shared_from_this<SocketSlots> {
 public:
  static std::shared_ptr<SocketSlots> create(std::size_t limit) {
    return std::shared_ptr<SocketSlots>(new SocketSlots(limit));
  }

  // A slot, given back when the last copy of the token goes; or null when all are taken: then
  // `on_free` runs (once, on the thread that gives a slot back) as soon as one is free, and the
  // caller tries again from there.
  std::shared_ptr<void> take(std::function<void()> on_free);

  std::size_t limit() const { return limit_; }
  std::size_t in_use() const;

 private:
  explicit SocketSlots(std::size_t limit) : limit_(limit == 0 ? 1 : limit) {}
  void give_back();

  const std::size_t limit_;
  mutable std::mutex mutex_;
  std::size_t in_use_ = 0;
  std::vector<std::function<void()>> waiting_;
};

}  // namespace pa::net
