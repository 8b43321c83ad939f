#include "net/listener.hpp"

#include <spdlog/spdlog.h>

#include <boost/asio/ip/v6_only.hpp>
#include <boost/asio/strand.hpp>
#include <stdexcept>

#include "net/http_session.hpp"

namespace pa::net {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

Listener::Listener(asio::io_context& io, std::shared_ptr<server::Hub> hub,
                   std::optional<asio::ssl::context> tls, const tcp::endpoint& at, Serve serve)
    : io_(io), acceptor_(io), backoff_(io), hub_(std::move(hub)), serve_(serve) {
  if (tls) tls_ = std::make_shared<asio::ssl::context>(std::move(*tls));
  const auto& cfg = hub_->config();
  GateOptions gate;
  gate.auth_enabled = cfg.auth.enabled;
  gate.token = cfg.auth.token;
  gate.allowed_origins = cfg.auth.allowed_origins;
  gate.tls = static_cast<bool>(tls_);
  gate.max_failures = cfg.auth.max_failures;
  gate.connection_rate = cfg.limits.connection_rate;
  gate_ = std::make_shared<Gate>(std::move(gate));

  boost::system::error_code ec;
  const auto fail = [&](const char* what) {
    throw std::runtime_error(
        std::string("cannot ") + what + " " + at.address().to_string() + ":" +
        std::to_string(at.port()) + ": " + ec.message() +
        (ec == asio::error::address_in_use
             ? std::string(" (another process uses the port; pick another with ") +
                   (serve == Serve::kMetricsOnly ? "--metrics-port" : "--port") + ")"
             : std::string()));
  };
  acceptor_.open(at.protocol(), ec);
  if (ec) fail("open a socket on");
  acceptor_.set_option(asio::socket_base::reuse_address(true), ec);
  if (at.address().is_v6()) acceptor_.set_option(asio::ip::v6_only(false), ec);
  acceptor_.bind(at, ec);
  if (ec) fail("listen on");
  acceptor_.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) fail("listen on");
}

tcp::endpoint Listener::local_endpoint() const {
  boost::system::error_code ec;
  return acceptor_.local_endpoint(ec);
}

void Listener::start() {
  do_accept();
}

void Listener::replace_tls(asio::ssl::context tls) {
  auto fresh = std::make_shared<asio::ssl::context>(std::move(tls));
  std::lock_guard lock(tls_mutex_);
  tls_ = std::move(fresh);
}

void Listener::stop() {
  asio::post(acceptor_.get_executor(), [self = shared_from_this()] {
    boost::system::error_code ec;
    self->acceptor_.close(ec);
  });
}

void Listener::do_accept() {
  acceptor_.async_accept(asio::make_strand(io_), [self = shared_from_this()](
                                                     boost::system::error_code ec,
                                                     tcp::socket socket) {
    if (ec == asio::error::operation_aborted || !self->acceptor_.is_open()) return;
    if (ec) {
      // EMFILE and friends: back off briefly instead of spinning, then keep accepting.
      spdlog::warn("accept failed: {}", ec.message());
      self->backoff_.expires_after(std::chrono::milliseconds(100));
      self->backoff_.async_wait([self](const boost::system::error_code&) { self->do_accept(); });
      return;
    }
    std::shared_ptr<asio::ssl::context> tls;
    {
      std::lock_guard lock(self->tls_mutex_);
      tls = self->tls_;
    }
    start_http_session(std::move(socket), self->hub_, self->gate_, std::move(tls), self->serve_);
    self->do_accept();
  });
}

}  // namespace pa::net
