// The Redis connection: Asio does the I/O on a strand (TCP, or TLS for rediss://), hiredis only
// formats and parses (resp_codec). Commands are queued as formatted bytes and written one batch
// at a time; each command's callback waits in a FIFO and takes the next reply (pipelining).
#include "redis/redis_client.hpp"

#include <openssl/ssl.h>
#include <spdlog/spdlog.h>

#include <array>
#include <atomic>
#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/write.hpp>
#include <deque>
#include <stdexcept>

#include "redis/resp_codec.hpp"

namespace pa::redis {

namespace asio = boost::asio;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;

namespace {

class ClientCategory final : public std::error_category {
 public:
  const char* name() const noexcept override { return "redis"; }
  std::string message(int value) const override {
    switch (static_cast<ClientError>(value)) {
      case ClientError::kNotConnected:
        return "not connected to Redis";
      case ClientError::kDisconnected:
        return "the connection to Redis dropped before the reply";
      case ClientError::kProtocol:
        return "Redis sent a reply that breaks the protocol or the size limit";
      case ClientError::kAuthFailed:
        return "Redis refused AUTH or SELECT (see the log)";
      case ClientError::kTimeout:
        return "connecting to Redis timed out";
    }
    return "unknown Redis client error";
  }
};

bool is_ip_address(const std::string& host) {
  boost::system::error_code ec;
  asio::ip::make_address(host, ec);
  return !ec;
}

class AsioConnection final : public Connection {
 public:
  AsioConnection(asio::any_io_executor executor, RedisUrl url, ClientOptions options)
      : strand_(asio::make_strand(executor)),
        url_(std::move(url)),
        options_(std::move(options)),
        resolver_(strand_),
        socket_(strand_),
        connect_timer_(strand_),
        reader_(options_.max_reply_bytes) {}

  void connect(std::function<void(std::error_code)> done) override {
    asio::post(strand_, [self = self(), done = std::move(done)]() mutable {
      if (self->state_ != State::kNew) {
        done(self->state_ == State::kClosed
                 ? std::make_error_code(std::errc::operation_canceled)
                 : std::make_error_code(std::errc::connection_already_in_progress));
        return;
      }
      self->state_ = State::kConnecting;
      self->connect_done_ = std::move(done);
      self->start_connect();
    });
  }

  void command(std::vector<std::string> argv, Callback callback) override {
    asio::post(strand_,
               [self = self(), argv = std::move(argv), callback = std::move(callback)]() mutable {
                 if (self->state_ != State::kUp) {
                   callback(make_error_code(ClientError::kNotConnected), {});
                 } else if (argv.empty()) {
                   // Redis answers nothing to an empty command: its callback would wait forever.
                   callback(std::make_error_code(std::errc::invalid_argument), {});
                 } else {
                   self->enqueue(argv, std::move(callback));
                 }
               });
  }

  void on_disconnect(std::function<void(std::error_code)> handler) override {
    asio::post(strand_, [self = self(), handler = std::move(handler)]() mutable {
      if (self->drop_reason_ && !self->drop_reported_) {
        self->drop_reported_ = true;
        handler(*self->drop_reason_);
      } else if (!self->drop_reason_ && self->state_ != State::kClosed) {
        self->disconnect_handler_ = std::move(handler);
      }
    });
  }

  void close() override {
    asio::post(strand_, [self = self()] {
      if (self->state_ == State::kClosed) return;
      const State was = self->state_;
      self->state_ = State::kClosed;
      self->connected_ = false;
      self->disconnect_handler_ = nullptr;  // it may hold this connection: no cycle
      self->shut_down();
      self->fail_pending(make_error_code(ClientError::kDisconnected));
      if (was == State::kConnecting)
        std::exchange(self->connect_done_,
                      nullptr)(std::make_error_code(std::errc::operation_canceled));
    });
  }

  bool connected() const override { return connected_; }

 private:
  enum class State { kNew, kConnecting, kUp, kClosed };

  std::shared_ptr<AsioConnection> self() {
    return std::static_pointer_cast<AsioConnection>(shared_from_this());
  }

  // Every step below runs on the strand: the socket, resolver and timer use it as executor.

  void start_connect() {
    if (url_.tls) {
      try {
        tls_context_ =
            options_.tls_context ? options_.tls_context : make_tls_context(options_.tls_ca_file);
      } catch (const std::exception& e) {
        spdlog::warn("redis {}: {}", url_.redacted(), e.what());
        finish_connect(std::make_error_code(std::errc::invalid_argument));
        return;
      }
    }
    connect_timer_.expires_after(options_.connect_timeout);
    connect_timer_.async_wait([self = self()](boost::system::error_code ec) {
      if (!ec) self->finish_connect(make_error_code(ClientError::kTimeout));
    });
    resolver_.async_resolve(
        url_.host, std::to_string(url_.port),
        [self = self()](boost::system::error_code ec, const tcp::resolver::results_type& found) {
          if (self->state_ != State::kConnecting) return;
          if (ec) return self->finish_connect(ec);
          asio::async_connect(self->socket_, found,
                              [self](boost::system::error_code cec, const tcp::endpoint&) {
                                self->on_tcp_connected(cec);
                              });
        });
  }

  void on_tcp_connected(boost::system::error_code ec) {
    if (state_ != State::kConnecting) return;
    if (ec) return finish_connect(ec);
    socket_.set_option(tcp::no_delay(true), ec);  // small pipelined commands go out at once
    if (!url_.tls) return log_in();
    tls_ = std::make_unique<ssl::stream<tcp::socket&>>(socket_, *tls_context_);
    // SNI carries host names only (RFC 6066); the certificate check covers IP addresses too.
    if (!is_ip_address(url_.host) &&
        SSL_set_tlsext_host_name(tls_->native_handle(), url_.host.c_str()) != 1)
      return finish_connect(std::make_error_code(std::errc::invalid_argument));
    tls_->set_verify_mode(ssl::verify_peer);
    tls_->set_verify_callback(ssl::host_name_verification(url_.host));
    tls_->async_handshake(ssl::stream_base::client, [self = self()](boost::system::error_code hec) {
      if (self->state_ != State::kConnecting) return;
      if (hec) return self->finish_connect(hec);
      self->log_in();
    });
  }

  // AUTH and SELECT when the URL asks, pipelined; the last answer completes the connect.
  void log_in() {
    read_next();
    std::vector<std::vector<std::string>> steps;
    if (!url_.password.empty()) {
      if (url_.user.empty())
        steps.push_back({"AUTH", url_.password});
      else
        steps.push_back({"AUTH", url_.user, url_.password});
    }
    if (url_.db != 0) steps.push_back({"SELECT", std::to_string(url_.db)});
    if (steps.empty()) return finish_connect({});
    for (std::size_t i = 0; i < steps.size(); ++i) {
      const bool last = i + 1 == steps.size();
      enqueue(steps[i], [self = self(), last, what = steps[i][0]](std::error_code ec, Reply reply) {
        if (!ec && reply.is_error()) {
          spdlog::warn("redis {}: {} refused: {}", self->url_.redacted(), what, reply.str);
          ec = make_error_code(ClientError::kAuthFailed);
        }
        if (ec || last) self->finish_connect(ec);
      });
    }
  }

  void finish_connect(std::error_code ec) {
    if (state_ != State::kConnecting) return;
    connect_timer_.cancel();
    if (ec) {
      state_ = State::kClosed;
      disconnect_handler_ = nullptr;  // never up: nothing to report, and no cycle to keep
      shut_down();
      fail_pending(make_error_code(ClientError::kDisconnected));
    } else {
      state_ = State::kUp;
      connected_ = true;
    }
    std::exchange(connect_done_, nullptr)(ec);
  }

  void enqueue(const std::vector<std::string>& argv, Callback callback) {
    try {
      outbox_ += format_command(argv);
    } catch (const std::bad_alloc&) {
      callback(std::make_error_code(std::errc::not_enough_memory), {});
      return;
    }
    pending_.push_back(std::move(callback));
    write_next();
  }

  // One write in flight; what is queued meanwhile goes out as the next batch.
  void write_next() {
    if (writing_ || outbox_.empty() || state_ == State::kClosed) return;
    writing_ = true;
    in_flight_.swap(outbox_);
    outbox_.clear();
    auto done = [self = self()](boost::system::error_code ec, std::size_t) {
      self->writing_ = false;
      self->in_flight_.clear();
      if (ec) return self->broken(ec);
      self->write_next();
    };
    if (tls_)
      asio::async_write(*tls_, asio::buffer(in_flight_), std::move(done));
    else
      asio::async_write(socket_, asio::buffer(in_flight_), std::move(done));
  }

  void read_next() {
    auto done = [self = self()](boost::system::error_code ec, std::size_t n) {
      self->on_read(ec, n);
    };
    if (tls_)
      tls_->async_read_some(asio::buffer(read_buffer_), std::move(done));
    else
      socket_.async_read_some(asio::buffer(read_buffer_), std::move(done));
  }

  void on_read(boost::system::error_code ec, std::size_t n) {
    if (state_ == State::kClosed) return;
    if (ec) return broken(ec);
    reader_.feed(std::string_view(read_buffer_.data(), n));
    for (;;) {
      Reply reply;
      const auto status = reader_.next(reply);
      if (status == ReplyReader::Status::kIncomplete) break;
      if (status == ReplyReader::Status::kBroken) {
        spdlog::warn("redis {}: {}; closing the connection", url_.redacted(), reader_.error());
        return broken(make_error_code(ClientError::kProtocol));
      }
      if (pending_.empty()) {
        spdlog::warn("redis {}: a reply came with no command waiting; closing the connection",
                     url_.redacted());
        return broken(make_error_code(ClientError::kProtocol));
      }
      auto callback = std::move(pending_.front());
      pending_.pop_front();
      callback({}, std::move(reply));
      if (state_ == State::kClosed) return;  // a refused AUTH ends the connect
    }
    read_next();
  }

  // The transport failed (`why`): a connect in progress fails, an established connection drops.
  void broken(std::error_code why) {
    if (state_ == State::kConnecting) return finish_connect(why);
    if (state_ != State::kUp) return;
    state_ = State::kClosed;
    connected_ = false;
    shut_down();
    // The command whose reply broke the protocol learns so; the others just lost their reply.
    fail_pending(why == make_error_code(ClientError::kProtocol)
                     ? why
                     : make_error_code(ClientError::kDisconnected));
    drop_reason_ = why;
    if (auto handler = std::exchange(disconnect_handler_, nullptr)) {
      drop_reported_ = true;
      handler(why);
    }
  }

  void fail_pending(std::error_code first) {
    auto failed = std::exchange(pending_, {});
    for (auto& callback : failed) {
      callback(first, {});
      first = make_error_code(ClientError::kDisconnected);
    }
  }

  void shut_down() {
    boost::system::error_code ignored;
    connect_timer_.cancel();
    resolver_.cancel();
    socket_.shutdown(tcp::socket::shutdown_both, ignored);
    socket_.close(ignored);
    outbox_.clear();
  }

  asio::strand<asio::any_io_executor> strand_;
  const RedisUrl url_;
  const ClientOptions options_;
  tcp::resolver resolver_;
  tcp::socket socket_;
  asio::steady_timer connect_timer_;
  std::shared_ptr<ssl::context> tls_context_;
  std::unique_ptr<ssl::stream<tcp::socket&>> tls_;  // rediss:// only, over socket_

  State state_ = State::kNew;
  std::function<void(std::error_code)> connect_done_;
  std::function<void(std::error_code)> disconnect_handler_;
  std::optional<std::error_code> drop_reason_;  // set when an established connection dropped
  bool drop_reported_ = false;
  std::atomic<bool> connected_{false};

  std::string outbox_;     // formatted commands not written yet
  std::string in_flight_;  // the batch being written
  bool writing_ = false;
  std::deque<Callback> pending_;  // one per command written or queued, in order
  ReplyReader reader_;
  std::array<char, 16 * 1024> read_buffer_{};
};

}  // namespace

const std::error_category& client_category() {
  static const ClientCategory category;
  return category;
}

std::error_code make_error_code(ClientError e) {
  return {static_cast<int>(e), client_category()};
}

std::shared_ptr<ssl::context> make_tls_context(const std::string& ca_file) {
  auto context = std::make_shared<ssl::context>(ssl::context::tls_client);
  context->set_options(ssl::context::no_sslv2 | ssl::context::no_sslv3 | ssl::context::no_tlsv1 |
                       ssl::context::no_tlsv1_1);
  boost::system::error_code ec;
  if (ca_file.empty()) {
    context->set_default_verify_paths(ec);
    if (ec) throw std::runtime_error("cannot load the system's certificate store: " + ec.message());
  } else {
    context->load_verify_file(ca_file, ec);
    if (ec) throw std::runtime_error("cannot load the CA file " + ca_file + ": " + ec.message());
  }
  context->set_verify_mode(ssl::verify_peer);
  return context;
}

std::shared_ptr<Connection> Connection::create(asio::any_io_executor executor, RedisUrl url,
                                               ClientOptions options) {
  return std::make_shared<AsioConnection>(std::move(executor), std::move(url), std::move(options));
}

}  // namespace pa::redis
