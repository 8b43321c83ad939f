// What the hub knows of a client connection. Implemented by net::WsSession; a fake in tests.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "protocol/envelope.hpp"

namespace pa::server {

class Connection {
 public:
  virtual ~Connection() = default;
  virtual std::uint64_t id() const = 0;
  virtual const std::string& remote_address() const = 0;
  // The name the client gave at connect (`/ws?client_name=`), empty if none. For audit records.
  virtual const std::string& client_name() const = 0;
  // Queues a text frame. Thread-safe; never blocks. When the bounded outbound queue is full the
  // connection is closed as a slow consumer (it can catch up from history after reconnecting).
  virtual void send(protocol::SharedText text) = 0;
  // Closes with a WebSocket close code and reason, after the write in flight. Idempotent.
  virtual void close(std::uint16_t code, std::string reason) = 0;
  // Closes after everything already queued has been written (shutdown). Idempotent.
  virtual void close_after_queued(std::uint16_t code, std::string reason) = 0;
};

}  // namespace pa::server
