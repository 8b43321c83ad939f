#include "net/tls_stream.hpp"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <sys/socket.h>

#include <array>
#include <boost/asio/ssl/error.hpp>
#include <boost/beast/core/error.hpp>
#include <cerrno>

namespace pa::net {

namespace asio = boost::asio;
namespace beast = boost::beast;

namespace {

// A socket BIO that sends with MSG_NOSIGNAL: OpenSSL's own writes with write(), and a peer gone
// away would raise SIGPIPE in whatever process hosts the server. Reads as the stock one does.
int bio_write(BIO* bio, const char* data, int size) {
  BIO_clear_retry_flags(bio);
  const ssize_t n =
      ::send(BIO_get_fd(bio, nullptr), data, static_cast<std::size_t>(size), MSG_NOSIGNAL);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
    BIO_set_retry_write(bio);
  return static_cast<int>(n);
}

int bio_read(BIO* bio, char* data, int size) {
  BIO_clear_retry_flags(bio);
  const ssize_t n = ::recv(BIO_get_fd(bio, nullptr), data, static_cast<std::size_t>(size), 0);
  if (n == 0) BIO_set_flags(bio, BIO_FLAGS_IN_EOF);  // OpenSSL then reports an unexpected EOF
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) BIO_set_retry_read(bio);
  return static_cast<int>(n);
}

// Everything but the writes is the stock socket BIO's (the descriptor, flush, EOF).
BIO_METHOD* nosignal_socket_method() {
  static BIO_METHOD* method = [] {
    BIO_METHOD* m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK | BIO_TYPE_DESCRIPTOR,
                                 "pocket-agent socket");
    const BIO_METHOD* stock = BIO_s_socket();
    if (m == nullptr || BIO_meth_set_write(m, bio_write) != 1 ||
        BIO_meth_set_read(m, bio_read) != 1 ||
        BIO_meth_set_ctrl(m, BIO_meth_get_ctrl(stock)) != 1 ||
        BIO_meth_set_create(m, BIO_meth_get_create(stock)) != 1 ||
        BIO_meth_set_destroy(m, BIO_meth_get_destroy(stock)) != 1) {
      BIO_meth_free(m);
      return static_cast<BIO_METHOD*>(nullptr);
    }
    return m;
  }();
  return method;
}

}  // namespace

TlsStream::TlsStream(socket_type socket, asio::ssl::context& ctx)
    : state_(std::make_shared<State>(std::move(socket))) {
  beast::error_code ec;
  state_->socket.native_non_blocking(true, ec);
  SSL* ssl = ec ? nullptr : SSL_new(ctx.native_handle());
  BIO* bio = ssl != nullptr && nosignal_socket_method() != nullptr
                 ? BIO_new(nosignal_socket_method())
                 : nullptr;
  if (bio == nullptr) {
    SSL_free(ssl);
    return;  // every operation reports ENOMEM
  }
  BIO_set_fd(bio, state_->socket.native_handle(), BIO_NOCLOSE);
  SSL_set_bio(ssl, bio, bio);
  // As asio's stream: SSL_write may finish after a record (async_write_some), may be retried from
  // another address with the same bytes (the gathered scratch), and frees idle buffers.
  SSL_set_mode(ssl, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                        SSL_MODE_RELEASE_BUFFERS);
  // Read what the socket has, not one record header and then its body: half the recv calls.
  SSL_set_read_ahead(ssl, 1);
  SSL_set_accept_state(ssl);
  state_->ssl = ssl;
}

TlsStream::~TlsStream() {
  if (state_) state_->timer.cancel();  // (null when moved from)
}

void TlsStream::expires_after(std::chrono::steady_clock::duration after) {
  state_->timed_out = false;
  const auto generation = ++state_->deadline_generation;
  state_->timer.expires_after(after);
  // A wait already completed but not yet run cannot be cancelled: the generation tells it apart.
  state_->timer.async_wait(
      [weak = std::weak_ptr<State>(state_), generation](const boost::system::error_code& ec) {
        const auto state = weak.lock();
        if (ec || !state || state->deadline_generation != generation) return;
        state->timed_out = true;
        boost::system::error_code ignored;
        state->socket.cancel(ignored);
      });
}

void TlsStream::expires_never() {
  state_->timed_out = false;
  ++state_->deadline_generation;
  state_->timer.cancel();
}

void TlsStream::close() {
  expires_never();
  boost::system::error_code ignored;
  state_->socket.close(ignored);
}

TlsStream::Next TlsStream::attempt(State& state, Action action, const Buffer& buffer,
                                   beast::error_code& ec, std::size_t& bytes) {
  ec = {};
  bytes = 0;
  if (state.timed_out) {
    ec = beast::error::timeout;
    return Next::done;
  }
  if (state.ssl == nullptr) {
    ec = std::make_error_code(std::errc::not_enough_memory);
    return Next::done;
  }
  ERR_clear_error();
  int r = 1;
  switch (action) {
    case Action::handshake:
      r = SSL_do_handshake(state.ssl);
      break;
    case Action::shutdown:
      r = SSL_shutdown(state.ssl);
      if (r == 0) r = 1;  // ours is sent; the peer's is not waited for
      break;
    case Action::read:
      if (buffer.single.size() == 0) return Next::done;
      r = SSL_read_ex(state.ssl, buffer.single.data(), buffer.single.size(), &bytes);
      break;
    case Action::write:
      if (!buffer.gather.empty()) {
        thread_local std::array<char, kMaxGather> scratch;
        const std::size_t n = asio::buffer_copy(asio::buffer(scratch), buffer.gather);
        r = SSL_write_ex(state.ssl, scratch.data(), n, &bytes);
      } else if (buffer.single.size() == 0) {
        return Next::done;
      } else {
        r = SSL_write_ex(state.ssl, buffer.single.data(), buffer.single.size(), &bytes);
      }
      break;
  }
  if (r == 1) return Next::done;
  const int saved_errno = errno;
  switch (SSL_get_error(state.ssl, r)) {
    case SSL_ERROR_WANT_READ:
      return Next::wait_read;
    case SSL_ERROR_WANT_WRITE:
      return Next::wait_write;
    case SSL_ERROR_ZERO_RETURN:  // the peer's close_notify
      ec = asio::error::eof;
      break;
    case SSL_ERROR_SYSCALL:
      ec = saved_errno != 0 ? beast::error_code(saved_errno, boost::system::system_category())
                            : beast::error_code(asio::ssl::error::stream_truncated);
      break;
    case SSL_ERROR_SSL: {
      const unsigned long e = ERR_get_error();
      ec = ERR_GET_REASON(e) == SSL_R_UNEXPECTED_EOF_WHILE_READING
               ? beast::error_code(asio::ssl::error::stream_truncated)
               : beast::error_code(static_cast<int>(e), asio::error::get_ssl_category());
      break;
    }
    default:
      ec = asio::error::fault;
      break;
  }
  bytes = 0;
  ERR_clear_error();
  return Next::done;
}

// Beast's synchronous close, which the server never uses: the TCP teardown only.
void teardown(beast::role_type role, TlsStream& stream, beast::error_code& ec) {
  beast::websocket::teardown(role, stream.socket(), ec);
}

}  // namespace pa::net
