// Accepts TCP connections and starts an HTTP session on each (TLS or plain per configuration).
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <memory>
#include <mutex>
#include <optional>

#include "net/gate.hpp"
#include "net/http_session.hpp"
#include "server/hub.hpp"

namespace pa::net {

class Listener : public std::enable_shared_from_this<Listener> {
 public:
  // Binds and listens; throws std::runtime_error with a clear message when it cannot.
  Listener(boost::asio::io_context& io, std::shared_ptr<server::Hub> hub,
           std::optional<boost::asio::ssl::context> tls, const boost::asio::ip::tcp::endpoint& at,
           Serve serve = Serve::kAll);
  void start();
  void stop();  // stop accepting (graceful shutdown)
  // New connections use `tls` from now on (SIGHUP certificate reload); open ones keep theirs.
  void replace_tls(boost::asio::ssl::context tls);
  boost::asio::ip::tcp::endpoint local_endpoint() const;

 private:
  void do_accept();
  boost::asio::io_context& io_;
  boost::asio::ip::tcp::acceptor acceptor_;
  boost::asio::steady_timer backoff_;
  std::shared_ptr<server::Hub> hub_;
  mutable std::mutex tls_mutex_;
  std::shared_ptr<boost::asio::ssl::context> tls_;
  std::shared_ptr<Gate> gate_;
  Serve serve_;
};

}  // namespace pa::net
