#include "net/listener.hpp"

#include <openssl/x509v3.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <boost/asio/ip/v6_only.hpp>
#include <boost/asio/strand.hpp>
#include <stdexcept>

#include "net/http_session.hpp"

namespace pa::net {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

namespace {
// The DNS names of the context's certificate (subjectAltName); IP addresses need no entry.
std::vector<std::string> certificate_names(asio::ssl::context* tls) {
  std::vector<std::string> names;
  if (tls == nullptr) return names;
  X509* cert = SSL_CTX_get0_certificate(tls->native_handle());
  if (cert == nullptr) return names;
  auto* sans =
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
  if (sans == nullptr) return names;
  for (int i = 0; i < sk_GENERAL_NAME_num(sans); ++i) {
    const GENERAL_NAME* name = sk_GENERAL_NAME_value(sans, i);
    if (name->type != GEN_DNS) continue;
    const auto* text = reinterpret_cast<const char*>(ASN1_STRING_get0_data(name->d.dNSName));
    names.emplace_back(text, static_cast<std::size_t>(ASN1_STRING_length(name->d.dNSName)));
  }
  GENERAL_NAMES_free(sans);
  return names;
}

// Host names the server answers to besides IP literals, localhost and its certificate's names:
// server.host when it is a name, the machine's name, the hosts of auth.allowed_origins and
// server.allowed_hosts.
std::vector<std::string> own_host_names(const config::Config& cfg) {
  std::vector<std::string> names = cfg.server.allowed_hosts;
  const std::string host = Gate::host_name_of(cfg.server.host);
  if (!host.empty()) names.push_back(host);
  char hostname[256] = {};
  if (::gethostname(hostname, sizeof hostname - 1) == 0 && hostname[0] != '\0')
    names.emplace_back(hostname);
  for (const auto& origin : cfg.auth.allowed_origins) {
    const auto scheme = origin.find("://");
    if (scheme == std::string::npos) continue;
    const std::string name = Gate::host_name_of(std::string_view(origin).substr(scheme + 3));
    if (!name.empty()) names.push_back(name);
  }
  return names;
}
}  // namespace

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
  gate.allowed_hosts = own_host_names(cfg);
  gate_ = std::make_shared<Gate>(std::move(gate));
  gate_->set_certificate_names(certificate_names(tls_.get()));

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
  gate_->set_certificate_names(certificate_names(fresh.get()));
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
