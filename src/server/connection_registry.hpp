// The server's client connections: how many are admitted (limits.max_connections), their ids,
// and the open WebSockets (for server_stats and the close at shutdown). Per connection it keeps
// nothing but the connection: what a connection joined is the projects' (Project::subscribe),
// and a connection leaves them itself when it closes (Connection::feed_joined). Thread-safe; its
// mutex is private and never held while a connection is called.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace pa::server {

class Connection;

class ConnectionRegistry {
 public:
  explicit ConnectionRegistry(std::size_t max_connections) : max_connections_(max_connections) {}

  // Counts a connection in, before its upgrade: false when max_connections are admitted.
  bool admit();
  // An admitted connection is gone (once per admit()).
  void release();
  std::size_t admitted() const { return admitted_.load(); }
  std::uint64_t next_id() { return ++last_id_; }

  // A WebSocket opened / closed (by its id). Kept as weak pointers: the registry never keeps a
  // connection alive. remove() returns false for an id that is not open.
  void add(const std::shared_ptr<Connection>& connection);
  bool remove(std::uint64_t id);
  // The open connection with this id (a reply from another node names it), or null.
  std::shared_ptr<Connection> find(std::uint64_t id) const;
  std::size_t open_count() const;
  // The open connections that still exist, at this moment.
  std::vector<std::shared_ptr<Connection>> open_connections() const;
  // The open connections of one paired device (to close them when it is revoked).
  std::vector<std::shared_ptr<Connection>> connections_of_device(std::string_view device_id) const;

  // Shutdown: closes every open connection after what is queued for it (close_after_queued),
  // then waits until all are removed or `timeout` passed. True if none is left.
  void close_all(std::uint16_t code, const std::string& reason);
  bool wait_until_empty(std::chrono::milliseconds timeout);

 private:
  const std::size_t max_connections_;
  std::atomic<std::size_t> admitted_{0};
  std::atomic<std::uint64_t> last_id_{0};
  mutable std::mutex mutex_;
  std::map<std::uint64_t, std::weak_ptr<Connection>> open_;
  std::condition_variable emptied_;
};

}  // namespace pa::server
