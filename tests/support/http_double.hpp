// The HTTP server core of the tests' notification doubles (push service, ntfy, webhook): listens
// on 127.0.0.1, port 0, plain or TLS with the shared test certificate, on a thread of its own;
// any number of connections, each serving requests one after another (keep-alive). A handler
// decides each answer; it may also hold a request unanswered (a slow or dead service) until the
// test releases it or the double is destroyed.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace pa::test {

struct HttpRequest {
  std::string method;
  std::string target;  // path and query, as sent
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;

  // The first header of that name (case-insensitive), or nullopt.
  std::optional<std::string> header(std::string_view name) const;
};

struct HttpAnswer {
  unsigned status = 200;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  bool hold = false;  // send nothing until HttpDouble::release_held() answers it
};

class HttpDouble {
 public:
  // Called on the double's thread, one request at a time.
  using Handler = std::function<HttpAnswer(const HttpRequest&)>;
  // For each held request: the answer to send now, or nullopt to keep holding it.
  using Release = std::function<std::optional<HttpAnswer>(const HttpRequest&)>;

  HttpDouble(bool tls, Handler handler);
  ~HttpDouble();  // closes every connection, held ones included
  HttpDouble(const HttpDouble&) = delete;
  HttpDouble& operator=(const HttpDouble&) = delete;

  unsigned short port() const { return port_; }
  // "https://localhost:<port>" (the name the test certificate carries) or
  // "http://127.0.0.1:<port>".
  std::string origin() const;

  // Hands the held requests `release` gives an answer for their answers (each is written out on
  // the double's thread right after). Call from the test's thread, not from a handler.
  void release_held(const Release& release);
  // Requests held and not yet released (their clients may have given up meanwhile).
  std::size_t held() const { return held_count_.load(); }
  std::size_t connections() const { return connections_.load(); }

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  bool tls_;
  unsigned short port_ = 0;
  std::atomic<std::size_t> held_count_{0};
  std::atomic<std::size_t> connections_{0};
};

}  // namespace pa::test
