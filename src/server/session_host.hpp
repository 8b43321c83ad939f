// What the network layer (net/: listener, HTTP and WebSocket sessions) needs of the server, and
// nothing more: net/ includes this header, not hub.hpp. Implemented by server::Hub.
#pragma once

#include <boost/json/object.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "devices/identity.hpp"

namespace boost::asio {
class thread_pool;
}  // namespace boost::asio

namespace pa::config {
struct Config;
}  // namespace pa::config

namespace pa::ops {
struct ServerMetrics;
}  // namespace pa::ops

namespace pa::server {

class Connection;

// The answer to POST /pair: its status, JSON body and (429) Retry-After.
struct PairAnswer {
  int status = 200;
  boost::json::object body;
  std::chrono::seconds retry_after{0};
};

class SessionHost {
 public:
  virtual ~SessionHost() = default;

  virtual const config::Config& config() const = 0;
  virtual ops::ServerMetrics& metrics() = 0;
  // Prometheus text of every metric (gauges refreshed first): GET /metrics.
  virtual std::string render_metrics() = 0;
  // Where blocking work goes (GET /health reads /proc and statvfs there).
  virtual boost::asio::thread_pool& blocking_pool() = 0;
  // The health document (blocking: /proc and statvfs). Call off the I/O threads.
  virtual boost::json::object health_data() = 0;

  // Connection admission, before the WebSocket upgrade: false when limits.max_connections are
  // open or the server is shutting down (answer 503; stopping() tells which). An admitted
  // connection calls release_connection() once when it is destroyed.
  virtual bool admit_connection() = 0;
  virtual bool stopping() const = 0;
  virtual void release_connection() = 0;
  virtual std::uint64_t next_connection_id() = 0;

  // The paired device whose token this is (memory only, constant time); nullopt for any other.
  virtual std::optional<devices::Identity> device_identity(std::string_view token) = 0;
  // POST /pair with this body from `remote_address`: redeems the pairing code and makes the
  // device (docs/protocol.md "Pairing a device"). Blocking (devices.json is written): call on
  // the blocking pool.
  virtual PairAnswer pair_device(std::string_view body, std::string_view remote_address) = 0;

  // A WebSocket's life, called on its strand: opened (handshake done), each message, closed.
  virtual void on_open(const std::shared_ptr<Connection>& connection) = 0;
  // `done` runs when the request is fully handled (the connection then reads its next message).
  virtual void on_message(const std::shared_ptr<Connection>& connection, std::string text,
                          std::function<void()> done) = 0;
  virtual void on_binary_message(const std::shared_ptr<Connection>& connection) = 0;
  virtual void on_close(const std::shared_ptr<Connection>& connection) = 0;

 protected:
  SessionHost() = default;
  SessionHost(const SessionHost&) = default;
  SessionHost& operator=(const SessionHost&) = default;
};

}  // namespace pa::server
