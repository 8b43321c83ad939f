// A test client speaking TLS (or plain) WebSocket to the server, with deadlines on every wait.
#pragma once

#include <boost/json/object.hpp>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>

struct ssl_session_st;  // OpenSSL's SSL_SESSION

namespace pa::test {

using namespace std::chrono_literals;
using Json = boost::json::object;

struct ClientOptions {
  bool tls = true;
  std::optional<std::string> bearer;       // Authorization: Bearer <token>
  std::optional<std::string> query_token;  // ?token=
  std::optional<std::string> origin;
  std::string target = "/ws";
  int receive_buffer = 0;    // SO_RCVBUF before connecting (a small one makes a slow reader)
  bool compression = false;  // offer permessage-deflate
  // TLS: a session to resume (WsClient::tls_session() of an earlier connection); null makes a
  // full handshake. tls_max_version (TLS1_2_VERSION, ...) caps the version; 0 leaves it.
  std::shared_ptr<ssl_session_st> tls_session;
  int tls_max_version = 0;
};

struct CloseInfo {
  int code = 0;
  std::string reason;
};

class WsClient {
 public:
  WsClient(unsigned short port, ClientOptions options);
  ~WsClient();
  WsClient(const WsClient&) = delete;
  WsClient& operator=(const WsClient&) = delete;

  // Performs the upgrade; returns the HTTP status (101 on success).
  int connect(std::chrono::milliseconds deadline = 10s);

  void send_text(const std::string& text);
  void send_binary(const std::string& bytes);
  void send(const Json& message);

  // Next message, or nullopt when none arrived by the deadline or the connection closed.
  std::optional<Json> read(std::chrono::milliseconds deadline = 10s);
  // Reads until `predicate` matches (other messages are kept in `skipped()`).
  std::optional<Json> read_until(const std::function<bool(const Json&)>& predicate,
                                 std::chrono::milliseconds deadline = 10s);
  // Sends `message` with a fresh request_id and returns the reply carrying that id.
  Json request(Json message, std::chrono::milliseconds deadline = 10s);
  // Waits for the server to close the connection; returns its close frame.
  std::optional<CloseInfo> wait_closed(std::chrono::milliseconds deadline = 10s);
  bool is_open() const;
  void close();

  const std::vector<Json>& skipped() const { return skipped_; }
  // The text of the last message read (read, read_until, request), as received.
  const std::string& last_text() const;
  const std::string& response_body() const { return response_body_; }
  // The server's Sec-WebSocket-Extensions answer (empty when it accepted none).
  const std::string& extensions() const { return extensions_; }
  // TLS: this connection's session, to resume later (with TLS 1.3 the server's ticket arrives
  // after the handshake: read a message first); null without TLS. Whether the handshake resumed.
  std::shared_ptr<ssl_session_st> tls_session() const;
  bool tls_session_reused() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::vector<Json> skipped_;
  std::string response_body_;
  std::string extensions_;
  int next_request_ = 0;
};

struct HttpResult {
  int status = 0;
  std::string body;
  std::map<std::string, std::string> headers;
};
HttpResult http_get(unsigned short port, bool tls, const std::string& target,
                    const std::map<std::string, std::string>& headers = {},
                    std::chrono::milliseconds deadline = 10s);
// POST with `body` (Content-Length set; the caller adds Content-Type).
HttpResult http_post(unsigned short port, bool tls, const std::string& target,
                     const std::string& body,
                     const std::map<std::string, std::string>& headers = {},
                     std::chrono::milliseconds deadline = 10s);
// Any method; `body` nullopt sends none.
HttpResult http_request(unsigned short port, bool tls, const std::string& method,
                        const std::string& target,
                        const std::map<std::string, std::string>& headers,
                        const std::optional<std::string>& body,
                        std::chrono::milliseconds deadline = 10s);

}  // namespace pa::test
