// A WebSocket client of the public protocol, plain or TLS, for C++20 coroutines, and the threads
// it runs on: a Pool of single-threaded io_contexts. A connection belongs to one io_context and
// every operation on it must start on that io_context's thread (Ws::executor()).
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/json/object.hpp>
#include <boost/json/value.hpp>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

struct ssl_session_st;  // OpenSSL's SSL_SESSION

namespace pa::bench {

namespace asio = boost::asio;

// Where and how to connect: from --url, --token and --insecure.
struct Target {
  bool tls = true;
  std::string host;
  std::string port;
  std::string path = "/ws";
  std::string token;
  bool insecure = false;
  asio::ip::tcp::endpoint endpoint;  // resolved once
  std::shared_ptr<asio::ssl::context> ssl;
  // --resume: the first TLS connection's session is kept in `session` and every later one
  // resumes it (an abbreviated handshake); otherwise every connection makes a full handshake.
  // Connections on several threads share it: client.cpp guards it with a mutex.
  bool resume = false;
  mutable std::shared_ptr<ssl_session_st> session;

  // Parses ws:// or wss:// URLs; throws std::runtime_error.
  static Target parse(const std::string& url, const std::string& token, bool insecure);
  void resolve(asio::io_context& io);
};

class Ws {
 public:
  virtual ~Ws() = default;
  // TCP connect, TLS handshake (wss), WebSocket upgrade with the bearer token. Throws.
  virtual asio::awaitable<void> connect() = 0;
  // The next text message. Throws on error or close.
  virtual asio::awaitable<std::string_view> read() = 0;
  virtual asio::awaitable<void> write(std::string text) = 0;
  virtual asio::awaitable<void> close() = 0;  // close handshake; never throws
  virtual void abort() = 0;                   // drops the socket; pending reads fail
  virtual bool resumed() const = 0;           // the TLS handshake resumed a session
  // The io_context (thread) the connection belongs to: start every operation there.
  virtual asio::any_io_executor executor() = 0;
};

std::unique_ptr<Ws> make_ws(asio::io_context& io, const Target& target);

// A message's type, request_id and project_id without a full parse (they are the envelope's).
struct Head {
  std::string_view type;
  std::string_view request_id;
};
Head peek_head(std::string_view text);

// Writes `request` (an object without request_id; one is added) and reads until the reply with
// that request_id. Broadcasts that arrive meanwhile are skipped. Throws on error replies when
// `throw_on_error`.
asio::awaitable<boost::json::value> request(Ws& ws, boost::json::object request,
                                            bool throw_on_error = true);

// Sleeps on the current executor.
asio::awaitable<void> sleep_for(std::chrono::steady_clock::duration d);

// Counts down and lets one coroutine (on `io`'s thread) wait for zero. count_down() may be
// called from any thread: it posts the decrement to `io`. add() only on `io`'s thread.
class Latch {
 public:
  Latch(asio::io_context& io, std::size_t count) : timer_(io), count_(count) {}
  void add(std::size_t n = 1) { count_ += n; }
  void count_down();
  asio::awaitable<void> wait();

 private:
  asio::steady_timer timer_;
  std::size_t count_;
  bool waiting_ = false;
};

// --threads N: N io_contexts, each run by one thread. main() (the first) runs on the thread that
// calls run() and carries the scenario drivers; connections are spread over all N round-robin
// (at(w): connection attempt worker or churn worker w on thread w % N), so a connection's reads,
// writes and timers never take a lock.
class Pool {
 public:
  explicit Pool(std::size_t threads);
  Pool(const Pool&) = delete;
  Pool& operator=(const Pool&) = delete;
  ~Pool();

  std::size_t size() const { return ios_.size(); }
  asio::io_context& main() { return *ios_.front(); }
  asio::io_context& at(std::size_t i) { return *ios_[i % ios_.size()]; }
  // Runs main() on this thread and the others on their own; returns after stop().
  void run();
  void stop();  // any thread

 private:
  std::vector<std::unique_ptr<asio::io_context>> ios_;
  std::vector<asio::executor_work_guard<asio::io_context::executor_type>> guards_;
  std::vector<std::thread> threads_;
};

}  // namespace pa::bench
