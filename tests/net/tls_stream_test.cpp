// TlsStream over loopback TCP on one io_context: the server side is TlsStream, the client side
// asio's own ssl::stream (verify_none). Nothing sleeps: every step runs the io_context until the
// step's handlers have run, with a 10 s limit that fails the test instead of hanging it.
#include "net/tls_stream.hpp"

#include <gtest/gtest.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <array>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/buffers_to_string.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>

namespace pa::net {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace ssl = boost::asio::ssl;
namespace websocket = boost::beast::websocket;
using tcp = boost::asio::ip::tcp;
using namespace std::chrono_literals;

constexpr std::size_t kMaxGather = 16 * 1024;

// A self-signed P-256 certificate for "localhost", made once per process.
struct Identity {
  EVP_PKEY* key = nullptr;
  X509* cert = nullptr;
};

const Identity& test_identity() {
  static const Identity identity = [] {
    Identity id;
    id.key = EVP_EC_gen("P-256");
    id.cert = X509_new();
    if (id.key == nullptr || id.cert == nullptr) throw std::runtime_error("OpenSSL: no key/cert");
    X509_set_version(id.cert, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(id.cert), 1);
    X509_gmtime_adj(X509_getm_notBefore(id.cert), -3600);
    X509_gmtime_adj(X509_getm_notAfter(id.cert), 24 * 3600);
    X509_set_pubkey(id.cert, id.key);
    X509_NAME* name = X509_get_subject_name(id.cert);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                               reinterpret_cast<const unsigned char*>("localhost"), -1, -1, 0);
    X509_set_issuer_name(id.cert, name);
    if (X509_sign(id.cert, id.key, EVP_sha256()) == 0) throw std::runtime_error("X509_sign");
    return id;
  }();
  return identity;
}

// As the server's context (src/net/tls.cpp) in what matters here: TLS 1.2+, one session ticket
// per handshake (a post-handshake record the client has not read), released idle buffers.
ssl::context make_server_context() {
  ssl::context ctx(ssl::context::tls_server);
  SSL_CTX* native = ctx.native_handle();
  const Identity& id = test_identity();
  if (SSL_CTX_use_certificate(native, id.cert) != 1 ||
      SSL_CTX_use_PrivateKey(native, id.key) != 1 || SSL_CTX_check_private_key(native) != 1) {
    throw std::runtime_error("cannot load the test certificate");
  }
  SSL_CTX_set_min_proto_version(native, TLS1_2_VERSION);
  SSL_CTX_set_options(native, SSL_OP_NO_RENEGOTIATION);
  SSL_CTX_set_num_tickets(native, 1);
  SSL_CTX_set_mode(native, SSL_MODE_RELEASE_BUFFERS);
  return ctx;
}

std::string pattern(std::size_t size, std::uint32_t seed) {
  std::mt19937 random(seed);
  std::string out(size, '\0');
  for (auto& c : out) c = static_cast<char>(random());
  return out;
}

// Restores SIGPIPE's disposition when the test ends, however it ends.
class SigpipeDefault {
 public:
  SigpipeDefault() {
    struct sigaction dfl {};
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    sigaction(SIGPIPE, &dfl, &old_);
  }
  ~SigpipeDefault() { sigaction(SIGPIPE, &old_, nullptr); }
  SigpipeDefault(const SigpipeDefault&) = delete;
  SigpipeDefault& operator=(const SigpipeDefault&) = delete;

 private:
  struct sigaction old_ {};
};

// The result of one asynchronous operation, once its handler has run.
struct Result {
  std::optional<beast::error_code> ec;
  std::size_t bytes = 0;
  bool done() const { return ec.has_value(); }
  auto handler() {
    return [this](beast::error_code e, std::size_t n) {
      ec = e;
      bytes = n;
    };
  }
  auto handler0() {
    return [this](beast::error_code e) { ec = e; };
  }
};

class TlsStreamTest : public ::testing::Test {
 protected:
  void SetUp() override { client_ctx_.set_verify_mode(ssl::verify_none); }

  // Runs the io_context until done() or 10 s; false if it never got there.
  template <class Done>
  bool run_until(Done done, std::chrono::steady_clock::duration limit = 10s) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (!done()) {
      if (ioc_.stopped()) ioc_.restart();
      const auto now = std::chrono::steady_clock::now();
      if (now >= deadline) return false;
      if (ioc_.run_one_for(deadline - now) == 0 && ioc_.stopped()) return done();  // no work left
    }
    return true;
  }
  bool run_until(const Result& r) {
    return run_until([&] { return r.done(); });
  }

  // Runs every handler that is ready now, and those they make ready, without waiting.
  void drain() {
    if (ioc_.stopped()) ioc_.restart();
    while (ioc_.poll() > 0) {
    }
  }

  // A loopback pair: server_ is a TlsStream on the accepted socket, client_ not yet handshaken.
  // small_buffers > 0 shrinks both sides' socket buffers so that a large write cannot complete
  // until the peer reads.
  void connect(int small_buffers = 0) {
    tcp::acceptor acceptor(ioc_);
    acceptor.open(tcp::v4());
    client_.emplace(ioc_, client_ctx_);
    tcp::socket& cs = client_->next_layer();
    cs.open(tcp::v4());
    if (small_buffers > 0) {
      // Receive buffers before the connection exists (they set the window), send ones any time.
      acceptor.set_option(asio::socket_base::receive_buffer_size(small_buffers));
      cs.set_option(asio::socket_base::receive_buffer_size(small_buffers));
      cs.set_option(asio::socket_base::send_buffer_size(small_buffers));
    }
    acceptor.bind(tcp::endpoint(asio::ip::address_v4::loopback(), 0));
    acceptor.listen();
    std::optional<tcp::socket> accepted;
    boost::system::error_code accept_ec;
    std::optional<boost::system::error_code> connect_ec;
    acceptor.async_accept([&](boost::system::error_code ec, tcp::socket s) {
      accept_ec = ec;
      accepted.emplace(std::move(s));
    });
    cs.async_connect(acceptor.local_endpoint(),
                     [&](boost::system::error_code ec) { connect_ec = ec; });
    ASSERT_TRUE(run_until([&] { return accepted.has_value() && connect_ec.has_value(); }));
    ASSERT_FALSE(accept_ec) << accept_ec.message();
    ASSERT_FALSE(*connect_ec) << connect_ec->message();
    if (small_buffers > 0) accepted->set_option(asio::socket_base::send_buffer_size(small_buffers));
    server_.emplace(std::move(*accepted), server_ctx_);
  }

  void handshake() {
    Result server, client;
    server_->async_handshake(server.handler0());
    client_->async_handshake(ssl::stream_base::client, client.handler0());
    ASSERT_TRUE(run_until([&] { return server.done() && client.done(); }));
    ASSERT_FALSE(*server.ec) << server.ec->message();
    ASSERT_FALSE(*client.ec) << client.ec->message();
  }

  void connect_and_handshake(int small_buffers = 0) {
    ASSERT_NO_FATAL_FAILURE(connect(small_buffers));
    ASSERT_NO_FATAL_FAILURE(handshake());
  }

  void client_write(const std::string& data) {
    Result r;
    asio::async_write(*client_, asio::buffer(data), r.handler());
    ASSERT_TRUE(run_until(r));
    ASSERT_FALSE(*r.ec) << r.ec->message();
    ASSERT_EQ(r.bytes, data.size());
  }

  std::string client_read_exactly(std::size_t n) {
    std::string out(n, '\0');
    Result r;
    asio::async_read(*client_, asio::buffer(out), r.handler());
    EXPECT_TRUE(run_until(r));
    if (!r.done()) return {};
    EXPECT_FALSE(*r.ec) << r.ec->message();
    out.resize(r.bytes);
    return out;
  }

  // n bytes through the server's async_read_some itself, as many calls as it takes.
  std::string server_read_some_until(std::size_t n) {
    std::string out;
    std::array<char, 4096> buf{};
    while (out.size() < n) {
      Result r;
      server_->async_read_some(asio::buffer(buf), r.handler());
      EXPECT_TRUE(run_until(r));
      if (!r.done() || *r.ec) {
        ADD_FAILURE() << "read ended: " << (r.done() ? r.ec->message() : "not completed");
        break;
      }
      EXPECT_GT(r.bytes, 0u);
      out.append(buf.data(), r.bytes);
    }
    return out;
  }

  asio::io_context ioc_;
  ssl::context server_ctx_ = make_server_context();
  ssl::context client_ctx_{ssl::context::tls_client};
  std::optional<TlsStream> server_;
  std::optional<ssl::stream<tcp::socket>> client_;
};

TEST_F(TlsStreamTest, HandshakeThenEchoBothWays) {
  ASSERT_NO_FATAL_FAILURE(connect_and_handshake());

  const std::string hello = "hello from the client";
  ASSERT_NO_FATAL_FAILURE(client_write(hello));
  EXPECT_EQ(server_read_some_until(hello.size()), hello);

  // Three buffers, one call: all of it is written, in order.
  const std::string a = "alpha|", b = "beta|", c = "gamma";
  const std::array<asio::const_buffer, 3> parts{asio::buffer(a), asio::buffer(b), asio::buffer(c)};
  Result w;
  server_->async_write_some(parts, w.handler());
  ASSERT_TRUE(run_until(w));
  ASSERT_FALSE(*w.ec) << w.ec->message();
  EXPECT_EQ(w.bytes, a.size() + b.size() + c.size());
  EXPECT_EQ(client_read_exactly(a.size() + b.size() + c.size()), a + b + c);

  // And the client again after the server wrote: the stream reads on.
  ASSERT_NO_FATAL_FAILURE(client_write("second"));
  EXPECT_EQ(server_read_some_until(6), "second");
}

TEST_F(TlsStreamTest, GatheredWriteIsCappedAtOneRecordAndAsyncWriteSendsTheRest) {
  ASSERT_NO_FATAL_FAILURE(connect_and_handshake());
  const std::string a = pattern(10 * 1024, 1), b = pattern(10 * 1024, 2), c = pattern(10 * 1024, 3);
  const std::string all = a + b + c;
  const std::array<asio::const_buffer, 3> parts{asio::buffer(a), asio::buffer(b), asio::buffer(c)};

  Result some;
  server_->async_write_some(parts, some.handler());
  ASSERT_TRUE(run_until(some));
  ASSERT_FALSE(*some.ec) << some.ec->message();
  // One record's worth gathered from the first two buffers (the socket has room for it all).
  EXPECT_EQ(some.bytes, kMaxGather);
  const std::string first = client_read_exactly(some.bytes);
  EXPECT_TRUE(first == all.substr(0, some.bytes)) << "gathered bytes differ from the buffers'";

  Result rest;
  asio::async_write(*server_, parts, rest.handler());
  ASSERT_TRUE(run_until(rest));
  ASSERT_FALSE(*rest.ec) << rest.ec->message();
  EXPECT_EQ(rest.bytes, all.size());
  const std::string second = client_read_exactly(all.size());
  EXPECT_EQ(second.size(), all.size());
  EXPECT_TRUE(second == all) << "bytes written through async_write arrived different";
}

TEST_F(TlsStreamTest, MegabyteEachWayWaitsForTheSocketAndArrivesIntact) {
  ASSERT_NO_FATAL_FAILURE(connect_and_handshake(/*small_buffers=*/16 * 1024));
  const std::string down = pattern(1 << 20, 11);
  const std::string up = pattern(1 << 20, 12);

  // One way at a time: the reader starts only once the writer is stuck on a full socket.
  const auto transfer = [&](auto& writer, auto& reader, const std::string& data) {
    Result w;
    asio::async_write(writer, asio::buffer(data), w.handler());
    drain();
    ASSERT_FALSE(w.done()) << "1 MiB fit in the socket buffers: the write never had to wait";
    std::string got(data.size(), '\0');
    Result r;
    asio::async_read(reader, asio::buffer(got), r.handler());
    ASSERT_TRUE(run_until([&] { return w.done() && r.done(); }));
    ASSERT_FALSE(*w.ec) << w.ec->message();
    ASSERT_FALSE(*r.ec) << r.ec->message();
    EXPECT_EQ(w.bytes, data.size());
    EXPECT_EQ(r.bytes, data.size());
    EXPECT_TRUE(got == data) << "bytes differ";
  };
  {
    SCOPED_TRACE("server to client");
    transfer(*server_, *client_, down);
  }
  {
    SCOPED_TRACE("client to server");
    transfer(*client_, *server_, up);
  }
}

TEST_F(TlsStreamTest, ReadAndWriteInFlightAtOnceBothComplete) {
  ASSERT_NO_FATAL_FAILURE(connect_and_handshake(/*small_buffers=*/16 * 1024));
  const std::string down = pattern(1 << 20, 21);
  const std::string up = pattern(1 << 20, 22);
  std::string server_got(up.size(), '\0'), client_got(down.size(), '\0');
  Result sw, sr, cw, cr;
  asio::async_write(*server_, asio::buffer(down), sw.handler());
  asio::async_read(*server_, asio::buffer(server_got), sr.handler());
  asio::async_write(*client_, asio::buffer(up), cw.handler());
  asio::async_read(*client_, asio::buffer(client_got), cr.handler());
  ASSERT_TRUE(run_until([&] { return sw.done() && sr.done() && cw.done() && cr.done(); }));
  for (const Result* r : {&sw, &sr, &cw, &cr}) ASSERT_FALSE(*r->ec) << r->ec->message();
  EXPECT_TRUE(server_got == up) << "client-to-server bytes differ";
  EXPECT_TRUE(client_got == down) << "server-to-client bytes differ";
}

TEST_F(TlsStreamTest, ReadWithASilentPeerTimesOutUntilExpiresNever) {
  ASSERT_NO_FATAL_FAILURE(connect_and_handshake());
  std::array<char, 64> buf{};

  server_->expires_after(100ms);
  Result first;
  server_->async_read_some(asio::buffer(buf), first.handler());
  ASSERT_TRUE(run_until(first));
  EXPECT_EQ(*first.ec, beast::error::timeout) << first.ec->message();
  EXPECT_EQ(first.bytes, 0u);

  // Until a new deadline is set, a later operation ends with timeout too.
  Result later;
  server_->async_read_some(asio::buffer(buf), later.handler());
  ASSERT_TRUE(run_until(later));
  EXPECT_EQ(*later.ec, beast::error::timeout) << later.ec->message();

  // expires_never lifts it: a read waits (nothing completes it), then gets the data.
  server_->expires_never();
  Result again;
  server_->async_read_some(asio::buffer(buf), again.handler());
  drain();
  EXPECT_FALSE(again.done()) << "read completed with nothing to read: "
                             << (again.done() ? again.ec->message() : "");
  ASSERT_NO_FATAL_FAILURE(client_write("after the deadline"));
  ASSERT_TRUE(run_until(again));
  ASSERT_FALSE(*again.ec) << again.ec->message();
  EXPECT_EQ(std::string(buf.data(), again.bytes), "after the deadline");
}

// A deadline replaced before it passes (by expires_never, or by a later expires_after) never
// ends an operation: the data arriving after the first deadline is read.
TEST_F(TlsStreamTest, ReplacedDeadlineDoesNotFire) {
  ASSERT_NO_FATAL_FAILURE(connect_and_handshake());
  for (const bool never : {true, false}) {
    SCOPED_TRACE(never ? "expires_never" : "expires_after(10s)");
    server_->expires_after(20ms);
    if (never) {
      server_->expires_never();
    } else {
      server_->expires_after(10s);
    }
    std::array<char, 64> buf{};
    Result r;
    server_->async_read_some(asio::buffer(buf), r.handler());
    // The client writes once well past the first deadline (a timer, not a sleep).
    asio::steady_timer later(ioc_, 300ms);
    Result cw;
    const std::string data = "late data";
    later.async_wait([&](boost::system::error_code) {
      asio::async_write(*client_, asio::buffer(data), cw.handler());
    });
    ASSERT_TRUE(run_until([&] { return r.done() && cw.done(); }));
    ASSERT_FALSE(*r.ec) << r.ec->message();
    EXPECT_EQ(std::string(buf.data(), r.bytes), data);
  }
  server_->expires_never();
}

TEST_F(TlsStreamTest, HandshakeWithASilentPeerTimesOut) {
  ASSERT_NO_FATAL_FAILURE(connect());
  server_->expires_after(100ms);
  Result h;
  server_->async_handshake(h.handler0());
  ASSERT_TRUE(run_until(h));
  EXPECT_EQ(*h.ec, beast::error::timeout) << h.ec->message();
}

TEST_F(TlsStreamTest, WriteToAPeerThatDoesNotReadTimesOut) {
  ASSERT_NO_FATAL_FAILURE(connect_and_handshake(/*small_buffers=*/16 * 1024));
  const std::string down = pattern(1 << 20, 31);
  server_->expires_after(200ms);
  Result w;
  asio::async_write(*server_, asio::buffer(down), w.handler());
  ASSERT_TRUE(run_until(w));
  EXPECT_EQ(*w.ec, beast::error::timeout) << w.ec->message();
  EXPECT_LT(w.bytes, down.size());
}

TEST_F(TlsStreamTest, HandshakeWithPlainHttpFails) {
  ASSERT_NO_FATAL_FAILURE(connect());
  server_->expires_after(10s);  // a hang would show as timeout, not as the TLS error
  Result h;
  server_->async_handshake(h.handler0());
  const std::string request = "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n";
  Result cw;
  asio::async_write(client_->next_layer(), asio::buffer(request), cw.handler());
  ASSERT_TRUE(run_until(h));
  ASSERT_TRUE(*h.ec) << "a plain HTTP request passed for a TLS handshake";
  EXPECT_NE(*h.ec, beast::error::timeout);
  EXPECT_EQ(h.ec->category(), asio::error::get_ssl_category()) << h.ec->message();
  EXPECT_EQ(ERR_GET_REASON(static_cast<unsigned long>(h.ec->value())), SSL_R_HTTP_REQUEST)
      << h.ec->message();
}

TEST_F(TlsStreamTest, HandshakeFailsWhenThePeerHangsUp) {
  ASSERT_NO_FATAL_FAILURE(connect());
  Result h;
  server_->async_handshake(h.handler0());
  client_->next_layer().shutdown(tcp::socket::shutdown_send);
  ASSERT_TRUE(run_until(h));
  EXPECT_TRUE(*h.ec) << "handshake succeeded with a peer that sent nothing";
}

TEST_F(TlsStreamTest, PeerClosingTcpWithoutCloseNotifyEndsAPendingRead) {
  ASSERT_NO_FATAL_FAILURE(connect_and_handshake());
  std::array<char, 64> buf{};
  Result r;
  server_->async_read_some(asio::buffer(buf), r.handler());
  drain();
  ASSERT_FALSE(r.done()) << r.ec->message();
  client_->next_layer().shutdown(tcp::socket::shutdown_send);  // FIN, no close_notify
  ASSERT_TRUE(run_until(r));
  EXPECT_TRUE(*r.ec == ssl::error::stream_truncated || *r.ec == asio::error::eof)
      << r.ec->message();
  EXPECT_EQ(r.bytes, 0u);
}

TEST_F(TlsStreamTest, PeerResettingTcpEndsAPendingRead) {
  ASSERT_NO_FATAL_FAILURE(connect_and_handshake());
  std::array<char, 64> buf{};
  Result r;
  server_->async_read_some(asio::buffer(buf), r.handler());
  drain();
  ASSERT_FALSE(r.done()) << r.ec->message();
  client_->next_layer().set_option(asio::socket_base::linger(true, 0));  // close sends RST
  client_->next_layer().close();
  ASSERT_TRUE(run_until(r));
  EXPECT_TRUE(*r.ec) << "read succeeded from a reset connection";
  EXPECT_EQ(r.bytes, 0u);
}

TEST_F(TlsStreamTest, PeerCloseNotifyEndsAReadWithEofAndShutdownAnswersIt) {
  ASSERT_NO_FATAL_FAILURE(connect_and_handshake());
  std::array<char, 64> buf{};
  Result r;
  server_->async_read_some(asio::buffer(buf), r.handler());
  Result client_shutdown;
  client_->async_shutdown(client_shutdown.handler0());
  ASSERT_TRUE(run_until(r));
  EXPECT_EQ(*r.ec, asio::error::eof) << r.ec->message();
  EXPECT_EQ(r.bytes, 0u);

  // The client's shutdown waits for the server's close_notify.
  Result server_shutdown;
  server_->async_shutdown(server_shutdown.handler0());
  ASSERT_TRUE(run_until([&] { return server_shutdown.done() && client_shutdown.done(); }));
  EXPECT_FALSE(*server_shutdown.ec) << server_shutdown.ec->message();
  EXPECT_FALSE(*client_shutdown.ec) << client_shutdown.ec->message();
}

TEST_F(TlsStreamTest, ShutdownSendsCloseNotifyAndLeavesTheSocketOpen) {
  ASSERT_NO_FATAL_FAILURE(connect_and_handshake());
  Result s;
  server_->async_shutdown(s.handler0());
  ASSERT_TRUE(run_until(s));
  ASSERT_FALSE(*s.ec) << s.ec->message();
  EXPECT_TRUE(server_->socket().is_open());

  std::array<char, 64> buf{};
  Result r;
  client_->async_read_some(asio::buffer(buf), r.handler());
  ASSERT_TRUE(run_until(r));
  EXPECT_EQ(*r.ec, asio::error::eof) << r.ec->message();
  EXPECT_EQ(r.bytes, 0u);

  // Nothing more goes out after close_notify.
  const std::string more = "after shutdown";
  Result w;
  server_->async_write_some(asio::buffer(more), w.handler());
  ASSERT_TRUE(run_until(w));
  EXPECT_TRUE(*w.ec) << "wrote after close_notify";
  EXPECT_EQ(w.bytes, 0u);
}

TEST_F(TlsStreamTest, CompletionNeverRunsInsideTheInitiatingCall) {
  ASSERT_NO_FATAL_FAILURE(connect_and_handshake());
  ASSERT_NO_FATAL_FAILURE(client_write("0123456789"));  // in the server's socket now

  // Starts an operation through `start(handler)` and checks its handler ran only afterwards.
  auto check = [&](const char* what, auto start) -> Result {
    SCOPED_TRACE(what);
    bool initiated = false;
    bool ran_inside = false;
    Result r;
    start([&](beast::error_code ec, std::size_t n) {
      ran_inside = !initiated;
      r.ec = ec;
      r.bytes = n;
    });
    initiated = true;
    EXPECT_FALSE(r.done()) << "completed inside the initiating call";
    EXPECT_TRUE(run_until(r));
    EXPECT_FALSE(ran_inside);
    return r;
  };

  std::array<char, 64> buf{};
  // Data already in the socket: OpenSSL reads the record and has the rest of it buffered.
  Result r = check("read, data in the socket", [&](auto h) {
    server_->async_read_some(asio::buffer(buf.data(), 1), std::move(h));
  });
  ASSERT_FALSE(*r.ec) << r.ec->message();
  EXPECT_EQ(std::string(buf.data(), r.bytes), "0");
  r = check("read, data in OpenSSL's buffer",
            [&](auto h) { server_->async_read_some(asio::buffer(buf), std::move(h)); });
  ASSERT_FALSE(*r.ec) << r.ec->message();
  EXPECT_EQ(std::string(buf.data(), r.bytes), "123456789");
  r = check("empty read",
            [&](auto h) { server_->async_read_some(asio::mutable_buffer(), std::move(h)); });
  EXPECT_FALSE(*r.ec) << r.ec->message();
  EXPECT_EQ(r.bytes, 0u);

  const std::string out = "out";
  r = check("write to a writable socket",
            [&](auto h) { server_->async_write_some(asio::buffer(out), std::move(h)); });
  ASSERT_FALSE(*r.ec) << r.ec->message();
  EXPECT_EQ(r.bytes, out.size());
  EXPECT_EQ(client_read_exactly(out.size()), out);
  const std::array<asio::const_buffer, 3> parts{asio::buffer(out), asio::buffer(out),
                                                asio::buffer(out)};
  r = check("gathered write", [&](auto h) { server_->async_write_some(parts, std::move(h)); });
  ASSERT_FALSE(*r.ec) << r.ec->message();
  EXPECT_EQ(r.bytes, 3 * out.size());
  EXPECT_EQ(client_read_exactly(3 * out.size()), out + out + out);
  r = check("empty write",
            [&](auto h) { server_->async_write_some(asio::const_buffer(), std::move(h)); });
  EXPECT_FALSE(*r.ec) << r.ec->message();

  // Past a deadline: timeout, still posted.
  server_->expires_after(1ms);
  Result timed;
  server_->async_read_some(asio::buffer(buf), timed.handler());
  ASSERT_TRUE(run_until(timed));
  ASSERT_EQ(*timed.ec, beast::error::timeout);
  r = check("read after the deadline",
            [&](auto h) { server_->async_read_some(asio::buffer(buf), std::move(h)); });
  EXPECT_EQ(*r.ec, beast::error::timeout) << r.ec->message();

  // A closed stream fails at once, still posted.
  server_->close();
  EXPECT_FALSE(server_->socket().is_open());
  r = check("read on a closed stream",
            [&](auto h) { server_->async_read_some(asio::buffer(buf), std::move(h)); });
  EXPECT_TRUE(*r.ec);
}

TEST_F(TlsStreamTest, WritingToAClosedPeerFailsWithoutSigpipe) {
  ASSERT_NO_FATAL_FAILURE(connect_and_handshake());
  client_->next_layer().close();
  SigpipeDefault sigpipe;  // a send without MSG_NOSIGNAL would now end the test binary

  // The first write may still be accepted by the kernel; the peer's reset fails a later one.
  const std::string chunk = pattern(4096, 41);
  std::optional<beast::error_code> failed;
  for (int i = 0; i < 100 && !failed; ++i) {
    Result w;
    server_->async_write_some(asio::buffer(chunk), w.handler());
    ASSERT_TRUE(run_until(w));
    if (*w.ec) failed = *w.ec;
  }
  ASSERT_TRUE(failed.has_value()) << "100 writes to a closed peer all succeeded";
  // Writes after the first failure, and close_notify, reach send() again (EPIPE by now).
  for (int i = 0; i < 3; ++i) {
    Result w;
    server_->async_write_some(asio::buffer(chunk), w.handler());
    ASSERT_TRUE(run_until(w));
    EXPECT_TRUE(*w.ec) << "write " << i << " after the failure succeeded";
  }
  Result s;
  server_->async_shutdown(s.handler0());
  ASSERT_TRUE(run_until(s));
  SUCCEED() << "still alive; first failure: " << failed->message();
}

// Under websocket::stream, as the server uses it: a message each way, then the server's close
// runs the teardown (close_notify, then TCP) and the client sees a clean close.
TEST_F(TlsStreamTest, WebSocketOverTlsStreamExchangesAndClosesCleanly) {
  ASSERT_NO_FATAL_FAILURE(connect_and_handshake());
  websocket::stream<TlsStream> server_ws(std::move(*server_));
  websocket::stream<ssl::stream<tcp::socket>&> client_ws(*client_);

  Result accepted, upgraded;
  server_ws.async_accept(accepted.handler0());
  client_ws.async_handshake("localhost", "/", upgraded.handler0());
  ASSERT_TRUE(run_until([&] { return accepted.done() && upgraded.done(); }));
  ASSERT_FALSE(*accepted.ec) << accepted.ec->message();
  ASSERT_FALSE(*upgraded.ec) << upgraded.ec->message();

  const std::string big = pattern(40 * 1024, 51);  // several records per frame
  beast::flat_buffer server_buf, client_buf;
  Result cw, sr;
  client_ws.binary(true);
  client_ws.async_write(asio::buffer(big), cw.handler());
  server_ws.async_read(server_buf, sr.handler());
  ASSERT_TRUE(run_until([&] { return cw.done() && sr.done(); }));
  ASSERT_FALSE(*cw.ec) << cw.ec->message();
  ASSERT_FALSE(*sr.ec) << sr.ec->message();
  EXPECT_TRUE(beast::buffers_to_string(server_buf.data()) == big);

  Result sw, cr;
  server_ws.text(true);
  server_ws.async_write(asio::buffer(std::string_view("pong")), sw.handler());
  client_ws.async_read(client_buf, cr.handler());
  ASSERT_TRUE(run_until([&] { return sw.done() && cr.done(); }));
  ASSERT_FALSE(*sw.ec) << sw.ec->message();
  ASSERT_FALSE(*cr.ec) << cr.ec->message();
  EXPECT_EQ(beast::buffers_to_string(client_buf.data()), "pong");

  client_buf.clear();
  Result closed, client_end;
  server_ws.async_close(websocket::close_code::normal, closed.handler0());
  client_ws.async_read(client_buf, client_end.handler());
  ASSERT_TRUE(run_until([&] { return closed.done() && client_end.done(); }));
  EXPECT_FALSE(*closed.ec) << closed.ec->message();
  EXPECT_EQ(*client_end.ec, websocket::error::closed) << client_end.ec->message();
  EXPECT_EQ(client_ws.reason().code, websocket::close_code::normal);
}

}  // namespace
}  // namespace pa::net
