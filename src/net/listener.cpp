#include "net/listener.hpp"

#include <fcntl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio/ip/v6_only.hpp>
#include <boost/asio/strand.hpp>
#include <stdexcept>

#include "config/config.hpp"
#include "net/http_session.hpp"

namespace pa::net {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

namespace {
constexpr auto kAcceptLogInterval = std::chrono::seconds(10);
constexpr auto kAcceptRetry = std::chrono::milliseconds(100);

int open_spare() {
  return ::open("/dev/null", O_RDONLY | O_CLOEXEC);
}

bool is_out_of_descriptors(const boost::system::error_code& ec) {
  return ec == asio::error::no_descriptors ||
         ec == boost::system::errc::too_many_files_open_in_system;
}

std::string open_file_limit_text() {
  rlimit lim{};
  if (::getrlimit(RLIMIT_NOFILE, &lim) != 0) return "unknown";
  return lim.rlim_cur == RLIM_INFINITY ? std::string("unlimited") : std::to_string(lim.rlim_cur);
}

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

Listener::Listener(asio::io_context& io, std::shared_ptr<server::SessionHost> hub,
                   std::optional<asio::ssl::context> tls, const tcp::endpoint& at, Serve serve,
                   std::shared_ptr<SocketSlots> slots)
    : io_(io),
      acceptor_(io),
      backoff_(io),
      hub_(std::move(hub)),
      serve_(serve),
      slots_(std::move(slots)),
      spare_fd_(open_spare()),
      out_of_descriptors_log_(kAcceptLogInterval),
      other_errors_log_(kAcceptLogInterval),
      log_timer_(io) {
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
  gate.device_identity = [hub = hub_](std::string_view token) {
    return hub->device_identity(token);
  };
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
    self->close_spare();  // it may be a reference to the listening socket
    self->backoff_.cancel();
    self->log_timer_.cancel();
  });
}

Listener::~Listener() {
  close_spare();
}

void Listener::do_accept() {
  if (!acceptor_.is_open()) return;
  // A slot for the socket about to be accepted; with none free, wait for one (the kernel's
  // backlog holds the clients meanwhile).
  std::shared_ptr<void> slot;
  if (slots_) {
    slot = slots_->take([weak = weak_from_this()] {
      if (auto self = weak.lock())
        asio::post(self->acceptor_.get_executor(), [self] { self->do_accept(); });
    });
    if (!slot) return;
  }
  acceptor_.async_accept(
      asio::make_strand(io_),
      [self = shared_from_this(), slot](boost::system::error_code ec, tcp::socket socket) mutable {
        if (ec == asio::error::operation_aborted || !self->acceptor_.is_open()) return;
        if (ec) {
          slot.reset();
          self->on_accept_error(ec);
          return;
        }
        std::shared_ptr<asio::ssl::context> tls;
        {
          std::lock_guard lock(self->tls_mutex_);
          tls = self->tls_;
        }
        start_http_session(std::move(socket), self->hub_, self->gate_, std::move(tls), self->serve_,
                           std::move(slot));
        self->do_accept();
      });
}

void Listener::on_accept_error(const boost::system::error_code& ec) {
  const bool out_of_descriptors = is_out_of_descriptors(ec);
  if (out_of_descriptors && refuse_with_spare(ec)) return;
  log_accept_error(ec, out_of_descriptors);
  retry_later();
}

void Listener::retry_later() {
  // Back off briefly instead of spinning on an error that persists, then keep accepting.
  backoff_.expires_after(kAcceptRetry);
  backoff_.async_wait([self = shared_from_this()](const boost::system::error_code&) {
    if (self->spare_fd_ < 0) self->spare_fd_ = open_spare();
    self->do_accept();
  });
}

bool Listener::refuse_with_spare(const boost::system::error_code& ec) {
  if (spare_fd_ < 0) spare_fd_ = open_spare();
  if (spare_fd_ < 0) return false;
  // Only when a client waits (the listening socket is non-blocking for Asio's async accepts
  // already; poll makes sure accept cannot block).
  pollfd waiting{acceptor_.native_handle(), POLLIN, 0};
  if (::poll(&waiting, 1, 0) != 1 || (waiting.revents & POLLIN) == 0) return false;
  ::close(spare_fd_);
  spare_fd_ = -1;
  const int fd = ::accept4(acceptor_.native_handle(), nullptr, nullptr, SOCK_CLOEXEC);
  if (fd < 0) {
    spare_fd_ = open_spare();  // the descriptor went elsewhere meanwhile, or the client left
    return false;
  }
  log_accept_error(ec, true);
  boost::system::error_code assign_ec;
  tcp::socket socket(asio::make_strand(io_));
  socket.assign(acceptor_.local_endpoint(assign_ec).protocol(), fd, assign_ec);
  if (assign_ec) {
    ::close(fd);
    spare_fd_ = open_spare();
    return false;
  }
  std::shared_ptr<asio::ssl::context> tls;
  {
    std::lock_guard lock(tls_mutex_);
    tls = tls_;
  }
  // Accepting goes on when this connection is done and its descriptor is the spare again. It
  // becomes the spare without ever being free: dup2 turns it into another reference to the
  // listening socket in one step. Closing it and then opening /dev/null would let anything else
  // in the process (a storage retry, a run, the probe) take the number in between, and while
  // starved the spare would be lost for good: every later client would wait in the backlog.
  Refusal refusal;
  refusal.text = "server out of file descriptors (open file limit " + open_file_limit_text() +
                 "); try again later";
  refusal.reclaim = [self = shared_from_this()](tcp::socket& refused) {
    int spare = -1;
    boost::system::error_code release_ec;
    if (refused.is_open()) {
      const int number = refused.release(release_ec);
      if (!release_ec && number >= 0) {
        if (::dup2(self->acceptor_.native_handle(), number) == number) {
          spare = number;
        } else {
          ::close(number);
        }
      }
    }
    asio::post(self->acceptor_.get_executor(), [self, spare] { self->after_refusal(spare); });
  };
  start_http_session(std::move(socket), hub_, gate_, std::move(tls), serve_, nullptr,
                     std::move(refusal));
  return true;
}

void Listener::after_refusal(int spare) {
  if (spare >= 0 && spare_fd_ < 0) {
    spare_fd_ = spare;
  } else if (spare >= 0) {
    ::close(spare);
  }
  if (spare_fd_ < 0) spare_fd_ = open_spare();
  if (!acceptor_.is_open()) {  // stopped meanwhile: the spare must not keep the port bound
    close_spare();
    return;
  }
  do_accept();
}

void Listener::close_spare() {
  if (spare_fd_ >= 0) ::close(spare_fd_);
  spare_fd_ = -1;
}

void Listener::log_accept_error(const boost::system::error_code& ec, bool out_of_descriptors) {
  std::lock_guard lock(log_mutex_);
  auto& throttle = out_of_descriptors ? out_of_descriptors_log_ : other_errors_log_;
  const auto decision = throttle.note(LogThrottle::Clock::now());
  if (decision.log) {
    const std::string earlier =
        decision.suppressed == 0
            ? std::string()
            : " (" + std::to_string(decision.suppressed) + " more since the last report)";
    if (out_of_descriptors) {
      spdlog::warn(
          "accept: out of file descriptors ({}; open file limit {}): new connections are "
          "answered 503 one at a time until descriptors are free{}. Raise the limit (ulimit -n, "
          "LimitNOFILE= in the systemd unit) or lower limits.max_connections",
          ec.message(), open_file_limit_text(), earlier);
    } else {
      spdlog::warn("accept failed: {}{}", ec.message(), earlier);
    }
    return;
  }
  if (log_timer_armed_) return;
  // Report what was not logged when the interval ends (if nothing logs it before).
  log_timer_armed_ = true;
  log_timer_.expires_at(throttle.next_line_at());
  log_timer_.async_wait([self = shared_from_this()](const boost::system::error_code& wait_ec) {
    if (wait_ec) return;
    self->flush_accept_log();
  });
}

void Listener::flush_accept_log() {
  std::lock_guard lock(log_mutex_);
  log_timer_armed_ = false;
  const auto now = LogThrottle::Clock::now();
  if (const auto n = out_of_descriptors_log_.flush(now); n != 0)
    spdlog::warn("accept: out of file descriptors: {} more times in the last {} s", n,
                 std::chrono::duration_cast<std::chrono::seconds>(kAcceptLogInterval).count());
  if (const auto n = other_errors_log_.flush(now); n != 0)
    spdlog::warn("accept failed {} more times in the last {} s", n,
                 std::chrono::duration_cast<std::chrono::seconds>(kAcceptLogInterval).count());
}

}  // namespace pa::net
