// A raw TCP/TLS byte pipe to the server, for what a well-behaved client library cannot send:
// malformed HTTP, half-open and stalled connections, hand-made WebSocket frames. Every wait has a
// deadline; nothing sleeps.
#pragma once

#include <gtest/gtest.h>
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "support/server_process.hpp"

namespace pa::test {

class RawClient {
 public:
  RawClient(unsigned short port, bool tls) : port_(port), tls_(tls), ctx_(make_context()) {
    stream_.emplace(io_, ctx_);
  }
  ~RawClient() { abort(); }
  RawClient(const RawClient&) = delete;
  RawClient& operator=(const RawClient&) = delete;

  // TCP connect, plus the TLS handshake unless `tcp_only`. False on failure or deadline.
  bool connect(bool tcp_only = false,
               std::chrono::milliseconds deadline = std::chrono::seconds(10)) {
    bool ok = false;
    bool done = false;
    tcp().async_connect({boost::asio::ip::make_address("127.0.0.1"), port_},
                        [&](boost::system::error_code ec) {
                          if (ec || !tls_ || tcp_only) {
                            ok = !ec;
                            done = true;
                            return;
                          }
                          stream_->async_handshake(boost::asio::ssl::stream_base::client,
                                                   [&](boost::system::error_code hec) {
                                                     ok = !hec;
                                                     done = true;
                                                   });
                        });
    run(done, deadline);
    tls_ready_ = ok && tls_ && !tcp_only;
    return ok;
  }

  // Writes all of `bytes` (through TLS when the handshake was done). False on error.
  bool send(const std::string& bytes,
            std::chrono::milliseconds deadline = std::chrono::seconds(10)) {
    bool done = false;
    boost::system::error_code result;
    auto handler = [&](boost::system::error_code ec, std::size_t) {
      result = ec;
      done = true;
    };
    if (tls_ready_) {
      boost::asio::async_write(*stream_, boost::asio::buffer(bytes), handler);
    } else {
      boost::asio::async_write(tcp(), boost::asio::buffer(bytes), handler);
    }
    return run(done, deadline) && !result;
  }

  // Reads whatever arrives until the peer closes the connection (EOF, reset or TLS close) or
  // the deadline passes. `closed` tells which.
  struct Received {
    std::string bytes;
    bool closed = false;
  };
  Received read_until_closed(std::chrono::milliseconds deadline = std::chrono::seconds(10)) {
    Received out;
    out.bytes = std::move(pending_);  // what an earlier read_until left over
    pending_.clear();
    const auto until = std::chrono::steady_clock::now() + deadline;
    while (!out.closed) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          until - std::chrono::steady_clock::now());
      if (left.count() <= 0) break;
      auto chunk = read_some(left);
      if (!chunk) {
        out.closed = !timed_out_;
        break;
      }
      out.bytes += *chunk;
    }
    return out;
  }

  // Reads until the text `marker` arrived, the connection closed or the deadline passed; returns
  // what came up to and including the marker (the rest is kept for the next read).
  std::string read_until(const std::string& marker,
                         std::chrono::milliseconds deadline = std::chrono::seconds(10)) {
    const auto until = std::chrono::steady_clock::now() + deadline;
    while (pending_.find(marker) == std::string::npos) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          until - std::chrono::steady_clock::now());
      if (left.count() <= 0) break;
      auto chunk = read_some(left);
      if (!chunk) break;
      pending_ += *chunk;
    }
    const auto at = pending_.find(marker);
    const std::size_t take = at == std::string::npos ? pending_.size() : at + marker.size();
    std::string out = pending_.substr(0, take);
    pending_.erase(0, take);
    return out;
  }
  // Reads until `done(everything read so far)` holds, the connection closed or the deadline
  // passed; returns everything read (nothing is kept for the next read).
  template <class Done>
  std::string read_until_bytes(Done done,
                               std::chrono::milliseconds deadline = std::chrono::seconds(30)) {
    const auto until = std::chrono::steady_clock::now() + deadline;
    while (!done(pending_)) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          until - std::chrono::steady_clock::now());
      if (left.count() <= 0) break;
      auto chunk = read_some(left);
      if (!chunk) break;
      pending_ += *chunk;
    }
    return std::exchange(pending_, std::string());
  }
  // True when the last read ended because the peer closed (not because of a deadline).
  bool peer_closed() const { return peer_closed_; }

  // TCP half-close: no more bytes from us, the server's side stays open.
  void shutdown_write() {
    boost::system::error_code ec;
    tcp().shutdown(boost::asio::ip::tcp::socket::shutdown_send, ec);
  }
  // Vanishes with a TCP reset, without a TLS close_notify or a WebSocket close.
  void abort() {
    boost::system::error_code ec;
    if (!tcp().is_open()) return;
    tcp().set_option(boost::asio::socket_base::linger(true, 0), ec);
    tcp().close(ec);
  }

  SSL* native() { return stream_->native_handle(); }

 private:
  using Stream = boost::asio::ssl::stream<boost::asio::ip::tcp::socket>;

  static boost::asio::ssl::context make_context() {
    boost::asio::ssl::context c(boost::asio::ssl::context::tls_client);
    c.set_verify_mode(boost::asio::ssl::verify_none);  // the test certificate is self-signed
    return c;
  }
  boost::asio::ip::tcp::socket& tcp() { return stream_->next_layer(); }

  std::optional<std::string> read_some(std::chrono::milliseconds deadline) {
    char buf[16384];
    bool done = false;
    boost::system::error_code result;
    std::size_t got = 0;
    auto handler = [&](boost::system::error_code ec, std::size_t n) {
      result = ec;
      got = n;
      done = true;
    };
    if (tls_ready_) {
      stream_->async_read_some(boost::asio::buffer(buf), handler);
    } else {
      tcp().async_read_some(boost::asio::buffer(buf), handler);
    }
    timed_out_ = !run(done, deadline);
    if (timed_out_) return std::nullopt;
    if (result && got == 0) {
      peer_closed_ = true;
      return std::nullopt;
    }
    return std::string(buf, got);
  }

  // Runs the io_context until `done` or the deadline; on timeout cancels and drains.
  bool run(const bool& done, std::chrono::milliseconds deadline) {
    io_.restart();
    const auto until = std::chrono::steady_clock::now() + deadline;
    while (!done) {
      const auto left = until - std::chrono::steady_clock::now();
      if (left <= std::chrono::steady_clock::duration::zero()) break;
      io_.run_one_for(left);
      if (io_.stopped()) io_.restart();
    }
    if (done) return true;
    boost::system::error_code ec;
    tcp().cancel(ec);
    io_.restart();
    while (!done && io_.run_one_for(std::chrono::seconds(2)) != 0) {
    }
    return false;
  }

  boost::asio::io_context io_;
  unsigned short port_;
  bool tls_;
  boost::asio::ssl::context ctx_;
  std::optional<Stream> stream_;
  bool tls_ready_ = false;
  bool timed_out_ = false;
  bool peer_closed_ = false;
  std::string pending_;
};

// A WebSocket frame as a client sends it (masked unless told otherwise), FIN set.
inline std::string ws_frame(std::uint8_t opcode, const std::string& payload, bool masked = true,
                            bool fin = true) {
  std::string f;
  f.push_back(static_cast<char>((fin ? 0x80 : 0x00) | (opcode & 0x0F)));
  const std::uint8_t mask_bit = masked ? 0x80 : 0x00;
  if (payload.size() < 126) {
    f.push_back(static_cast<char>(mask_bit | payload.size()));
  } else if (payload.size() <= 0xFFFF) {
    f.push_back(static_cast<char>(mask_bit | 126));
    f.push_back(static_cast<char>((payload.size() >> 8) & 0xFF));
    f.push_back(static_cast<char>(payload.size() & 0xFF));
  } else {
    f.push_back(static_cast<char>(mask_bit | 127));
    for (int i = 7; i >= 0; --i) f.push_back(static_cast<char>((payload.size() >> (8 * i)) & 0xFF));
  }
  std::string key = "\x12\x34\x56\x78";
  if (masked) f += key;
  for (std::size_t i = 0; i < payload.size(); ++i) {
    f.push_back(masked ? static_cast<char>(payload[i] ^ key[i % 4]) : payload[i]);
  }
  return f;
}

// An upgrade request for /ws with the bearer token; `extra` is inserted before the blank line.
inline std::string upgrade_request(unsigned short port, const std::string& token,
                                   const std::string& extra = "",
                                   const std::string& key = "dGhlIHNhbXBsZSBub25jZQ==",
                                   const std::string& version = "13") {
  std::string r = "GET /ws HTTP/1.1\r\nHost: localhost:" + std::to_string(port) +
                  "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n";
  if (!key.empty()) r += "Sec-WebSocket-Key: " + key + "\r\n";
  if (!version.empty()) r += "Sec-WebSocket-Version: " + version + "\r\n";
  if (!token.empty()) r += "Authorization: Bearer " + token + "\r\n";
  return r + extra + "\r\n";
}

// The status code of an HTTP response head ("HTTP/1.1 404 Not Found" -> 404), or 0.
inline int http_status(const std::string& response) {
  if (response.rfind("HTTP/1.", 0) != 0 || response.size() < 12) return 0;
  try {
    return std::stoi(response.substr(9, 3));
  } catch (...) {
    return 0;
  }
}

// The frames the server sent (unmasked), in order: {opcode, payload}. A trailing partial frame
// is left out.
inline std::vector<std::pair<int, std::string>> server_frames(const std::string& bytes) {
  std::vector<std::pair<int, std::string>> out;
  std::size_t at = 0;
  while (at + 2 <= bytes.size()) {
    const auto b0 = static_cast<unsigned char>(bytes[at]);
    const auto b1 = static_cast<unsigned char>(bytes[at + 1]);
    std::size_t len = b1 & 0x7F;
    std::size_t head = 2;
    if (len == 126) {
      if (at + 4 > bytes.size()) break;
      len = (static_cast<std::size_t>(static_cast<unsigned char>(bytes[at + 2])) << 8) |
            static_cast<unsigned char>(bytes[at + 3]);
      head = 4;
    } else if (len == 127) {
      if (at + 10 > bytes.size()) break;
      len = 0;
      for (int i = 0; i < 8; ++i) len = (len << 8) | static_cast<unsigned char>(bytes[at + 2 + i]);
      head = 10;
    }
    if ((b1 & 0x80) != 0) head += 4;  // masked (a server never sends that)
    if (at + head + len > bytes.size()) break;
    out.emplace_back(b0 & 0x0F, bytes.substr(at + head, len));
    at += head + len;
  }
  return out;
}

inline std::vector<int> frame_opcodes(const std::string& bytes) {
  std::vector<int> out;
  for (const auto& [opcode, payload] : server_frames(bytes)) out.push_back(opcode);
  return out;
}

// The code of the first close frame the server sent, 1005 for a close without a code, or -1 when
// there is no close frame.
inline int close_code_of(const std::string& bytes) {
  for (const auto& [opcode, payload] : server_frames(bytes)) {
    if (opcode != 0x8) continue;
    if (payload.size() < 2) return 1005;
    return (static_cast<unsigned char>(payload[0]) << 8) | static_cast<unsigned char>(payload[1]);
  }
  return -1;
}

// A raw connection to `server` upgraded to WebSocket (the 101 head consumed), for tests that
// need to send or withhold bytes a library would not (no pong, broken frames).
inline std::unique_ptr<RawClient> raw_websocket(ServerProcess& server) {
  auto raw = std::make_unique<RawClient>(server.port(), server.tls());
  EXPECT_TRUE(raw->connect());
  EXPECT_TRUE(raw->send(upgrade_request(server.port(), server.token())));
  const auto head = raw->read_until("\r\n\r\n");
  EXPECT_EQ(http_status(head), 101) << head;
  return raw;
}

}  // namespace pa::test
