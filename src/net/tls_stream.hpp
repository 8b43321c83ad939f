// A server-side TLS stream for Beast: OpenSSL reads and writes the socket itself (SSL_set_fd on
// a non-blocking socket), and the stream waits on the socket's readiness when OpenSSL wants it.
//
// Why not asio::ssl::stream: it keeps two 17 KiB staging vectors and a BIO pair (two more 17 KiB
// buffers once data has flowed) for the life of every connection, about 64 KiB of an idle TLS
// connection's memory. Here the only record buffers are OpenSSL's own, and with
// SSL_MODE_RELEASE_BUFFERS they are freed whenever the connection is idle. It also needs no
// flat_stream: a write of several buffers (a WebSocket frame header and its payload) is gathered
// into one record here.
//
// The same face as beast::tcp_stream where sessions use it (expires_after, expires_never,
// socket, close; get_lowest_layer() is the stream itself) plus async_handshake and
// async_shutdown. One read and one write may be in flight at once, both on the socket's strand.
#pragma once

#include <openssl/ssl.h>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/compose.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/core/role.hpp>
#include <boost/beast/websocket/teardown.hpp>
#include <boost/container/small_vector.hpp>
#include <chrono>
#include <cstddef>
#include <memory>
#include <type_traits>

namespace pa::net {

class TlsStream {
 public:
  using executor_type = boost::asio::any_io_executor;
  using socket_type = boost::asio::ip::tcp::socket;

  // Takes the accepted socket; the handshake is the server's side. Out of memory for the SSL
  // object, every operation fails with ENOMEM.
  TlsStream(socket_type socket, boost::asio::ssl::context& ctx);
  TlsStream(TlsStream&&) noexcept = default;
  TlsStream& operator=(TlsStream&&) noexcept = default;
  ~TlsStream();

  executor_type get_executor() noexcept { return state_->socket.get_executor(); }
  socket_type& socket() noexcept { return state_->socket; }

  // As beast::tcp_stream: when the deadline passes, pending and later operations end with
  // beast::error::timeout until a new deadline is set.
  void expires_after(std::chrono::steady_clock::duration after);
  void expires_never();
  void close();

  template <class Handler>
  auto async_handshake(Handler&& handler) {
    return start<false>(Action::handshake, {}, handler);
  }
  // Sends close_notify; does not wait for the peer's.
  template <class Handler>
  auto async_shutdown(Handler&& handler) {
    return start<false>(Action::shutdown, {}, handler);
  }
  template <class MutableBufferSequence, class Handler>
  auto async_read_some(const MutableBufferSequence& buffers, Handler&& handler) {
    auto it = boost::asio::buffer_sequence_begin(buffers);
    const auto end = boost::asio::buffer_sequence_end(buffers);
    while (it != end && boost::asio::mutable_buffer(*it).size() == 0) ++it;
    const boost::asio::mutable_buffer first =
        it == end ? boost::asio::mutable_buffer() : boost::asio::mutable_buffer(*it);
    return start<true>(Action::read, Buffer{first, {}}, handler);
  }
  // Up to kMaxGather bytes of several buffers go out as one record (gathered in a per-thread
  // scratch buffer, re-gathered identically if OpenSSL asks to retry).
  template <class ConstBufferSequence, class Handler>
  auto async_write_some(const ConstBufferSequence& buffers, Handler&& handler) {
    return start<true>(Action::write, gather(buffers), handler);
  }

 private:
  enum class Action { handshake, shutdown, read, write };
  struct Buffer {
    boost::asio::mutable_buffer single;  // read target, or the one buffer to write
    // Several buffers to write as one record (a frame header and its payload, or a few more).
    boost::container::small_vector<boost::asio::const_buffer, 4> gather;
  };
  struct State {
    explicit State(socket_type s) : socket(std::move(s)), timer(socket.get_executor()) {}
    State(const State&) = delete;
    State& operator=(const State&) = delete;
    ~State() { SSL_free(ssl); }  // here, not in ~TlsStream: a posted completion may outlive it
    socket_type socket;
    SSL* ssl = nullptr;
    boost::asio::steady_timer timer;
    std::uint64_t deadline_generation = 0;
    bool timed_out = false;
  };
  static constexpr std::size_t kMaxGather = 16 * 1024;

  // One OpenSSL call for `action`: done (ec, bytes), or the socket readiness to wait for.
  enum class Next { done, wait_read, wait_write };
  static Next attempt(State& state, Action action, const Buffer& buffer,
                      boost::beast::error_code& ec, std::size_t& bytes);

  template <class ConstBufferSequence>
  static Buffer gather(const ConstBufferSequence& buffers) {
    Buffer out;
    for (auto it = boost::asio::buffer_sequence_begin(buffers);
         it != boost::asio::buffer_sequence_end(buffers); ++it) {
      const boost::asio::const_buffer b(*it);
      if (b.size() > 0) out.gather.push_back(b);
    }
    if (out.gather.size() == 1) {
      out.single = boost::asio::mutable_buffer(const_cast<void*>(out.gather[0].data()),
                                               out.gather[0].size());
      out.gather.clear();
    }
    return out;
  }

  // The composed operation: attempt, wait for readiness, attempt again. A result reached
  // without waiting is posted, never delivered inside the initiating call.
  template <bool kBytes>  // completes with (error_code, bytes), else with (error_code)
  struct Op {
    std::shared_ptr<State> state;
    Action action;
    Buffer buffer;
    boost::beast::error_code result{};
    std::size_t bytes = 0;
    bool waited = false;
    bool finished = false;

    template <class Self>
    void operator()(Self& self, boost::system::error_code ec = {}) {
      if (finished) return complete(self);
      if (ec) {
        result = ec == boost::asio::error::operation_aborted && state->timed_out
                     ? boost::beast::error_code(boost::beast::error::timeout)
                     : ec;
        return complete(self);
      }
      switch (attempt(*state, action, buffer, result, bytes)) {
        case Next::wait_read:
          waited = true;
          return state->socket.async_wait(socket_type::wait_read, std::move(self));
        case Next::wait_write:
          waited = true;
          return state->socket.async_wait(socket_type::wait_write, std::move(self));
        case Next::done:
          if (waited) return complete(self);
          finished = true;
          return boost::asio::post(std::move(self));
      }
    }

    template <class Self>
    void complete(Self& self) {
      if constexpr (kBytes) {
        self.complete(result, bytes);
      } else {
        self.complete(result);
      }
    }
  };

  template <bool kBytes, class Handler>
  auto start(Action action, Buffer buffer, Handler& handler) {
    using Signature = std::conditional_t<kBytes, void(boost::beast::error_code, std::size_t),
                                         void(boost::beast::error_code)>;
    return boost::asio::async_compose<Handler, Signature>(
        Op<kBytes>{state_, action, std::move(buffer)}, handler, state_->socket);
  }

  std::shared_ptr<State> state_;
};

// Beast closes a stream it gives up on (a failed WebSocket operation) through this.
inline void beast_close_socket(TlsStream& stream) {
  stream.close();
}

// websocket::stream tears its next layer down through these (argument-dependent lookup):
// close_notify, then the TCP teardown Beast does for a plain socket.
void teardown(boost::beast::role_type role, TlsStream& stream, boost::beast::error_code& ec);

template <class TeardownHandler>
void async_teardown(boost::beast::role_type role, TlsStream& stream, TeardownHandler&& handler) {
  stream.async_shutdown([role, &stream, h = std::forward<TeardownHandler>(handler)](
                            boost::beast::error_code) mutable {
    boost::beast::websocket::async_teardown(role, stream.socket(), std::move(h));
  });
}

}  // namespace pa::net
