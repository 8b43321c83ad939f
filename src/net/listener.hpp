// Accepts TCP connections and starts an HTTP session on each (TLS or plain per configuration).
//
// Descriptors: each accepted socket takes one of `slots` (net/socket_slots.hpp) until its HTTP
// session ends; with none free the listener stops accepting (the kernel's backlog keeps the
// clients waiting) until one is. When accept fails anyway for lack of descriptors (EMFILE,
// ENFILE: the limit was lowered, or something else took them), the listener closes its spare
// descriptor (/dev/null, opened at start), accepts one connection in its place, answers it 503
// (after the TLS handshake and the request head, like any answer, within 2 s) and reopens the
// spare when that connection is done: waiting clients are told, one at a time, instead of
// hanging until their handshake times out. Accept errors are logged at most once per 10 s, with a
// count.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/system/error_code.hpp>
#include <memory>
#include <mutex>
#include <optional>

#include "net/gate.hpp"
#include "net/http_session.hpp"
#include "net/log_throttle.hpp"
#include "net/socket_slots.hpp"
#include "server/session_host.hpp"

namespace pa::net {

class Listener : public std::enable_shared_from_this<Listener> {
 public:
  // Binds and listens; throws std::runtime_error with a clear message when it cannot.
  Listener(boost::asio::io_context& io, std::shared_ptr<server::SessionHost> hub,
           std::optional<boost::asio::ssl::context> tls, const boost::asio::ip::tcp::endpoint& at,
           Serve serve = Serve::kAll, std::shared_ptr<SocketSlots> slots = nullptr);
  ~Listener();
  void start();
  void stop();  // stop accepting (graceful shutdown)
  // New connections use `tls` from now on (SIGHUP certificate reload); open ones keep theirs.
  void replace_tls(boost::asio::ssl::context tls);
  boost::asio::ip::tcp::endpoint local_endpoint() const;

 private:
  void do_accept();
  void on_accept_error(const boost::system::error_code& ec);
  // Out of descriptors: accept one connection with the spare's descriptor and answer it 503.
  // False when that was not possible (no spare, nothing waiting, or the descriptor went elsewhere).
  bool refuse_with_spare(const boost::system::error_code& ec);
  // The refusal ended; `spare` is its descriptor kept open as the new spare (-1: it was lost).
  void after_refusal(int spare);
  void close_spare();
  void retry_later();
  // Throttled logging of accept errors (any thread: log_mutex_).
  void log_accept_error(const boost::system::error_code& ec, bool out_of_descriptors);
  void flush_accept_log();

  boost::asio::io_context& io_;
  boost::asio::ip::tcp::acceptor acceptor_;
  boost::asio::steady_timer backoff_;
  std::shared_ptr<server::SessionHost> hub_;
  mutable std::mutex tls_mutex_;
  std::shared_ptr<boost::asio::ssl::context> tls_;
  std::shared_ptr<Gate> gate_;
  Serve serve_;
  std::shared_ptr<SocketSlots> slots_;  // null: unbounded
  // /dev/null, or a refused connection's descriptor made a reference to the listening socket;
  // used by the accept chain only.
  int spare_fd_ = -1;
  std::mutex log_mutex_;
  LogThrottle out_of_descriptors_log_;
  LogThrottle other_errors_log_;
  boost::asio::steady_timer log_timer_;
  bool log_timer_armed_ = false;  // log_mutex_
};

}  // namespace pa::net
