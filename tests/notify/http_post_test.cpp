// post_http against local doubles: an HTTPS server with the tests' certificate (trusted through
// ca_file), one whose certificate names another host, a plain HTTP one, and a listener that never
// answers. The double runs on a thread of its own; the client's io_context runs until the reply.
#include "notify/http_post.hpp"

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <optional>
#include <thread>

#include "support/server_process.hpp"

namespace pa::notify {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

// Serves one request, answering `status` (and a Location header), and keeps what it got.
class HttpDouble {
 public:
  HttpDouble(bool tls, const std::string& cert, const std::string& key, unsigned status)
      : tls_(tls), status_(status), ctx_(asio::ssl::context::tls_server) {
    if (tls_) {
      ctx_.use_certificate_chain_file(cert);
      ctx_.use_private_key_file(key, asio::ssl::context::pem);
    }
    acceptor_.open(tcp::v4());
    acceptor_.bind({asio::ip::make_address("127.0.0.1"), 0});
    acceptor_.listen();
    thread_ = std::thread([this] { serve(); });
  }
  ~HttpDouble() {
    boost::system::error_code ec;
    acceptor_.close(ec);
    thread_.join();
  }
  unsigned short port() const { return acceptor_.local_endpoint().port(); }
  // Valid once the client's reply has arrived (the double answered before it).
  const std::optional<http::request<http::string_body>>& received() const { return received_; }

 private:
  void serve() {
    boost::system::error_code ec;
    tcp::socket socket(io_);
    acceptor_.accept(socket, ec);
    if (ec) return;
    if (!tls_) return answer(socket);
    asio::ssl::stream<tcp::socket> stream(std::move(socket), ctx_);
    stream.handshake(asio::ssl::stream_base::server, ec);
    if (!ec) answer(stream);
  }
  template <class Stream>
  void answer(Stream& stream) {
    beast::flat_buffer buffer;
    http::request<http::string_body> req;
    boost::system::error_code ec;
    http::read(stream, buffer, req, ec);
    if (ec) return;
    received_ = req;
    http::response<http::string_body> res{static_cast<http::status>(status_), 11};
    res.set(http::field::location, "https://push.example/m/1");
    res.body() = "answered";
    res.prepare_payload();
    http::write(stream, res, ec);
  }

  bool tls_;
  unsigned status_;
  asio::ssl::context ctx_;
  asio::io_context io_;
  tcp::acceptor acceptor_{io_};
  std::thread thread_;
  std::optional<http::request<http::string_body>> received_;
};

HttpReply post(asio::ssl::context& tls, HttpPost request) {
  asio::io_context io;
  std::optional<HttpReply> reply;
  post_http(io.get_executor(), tls, std::move(request), [&](HttpReply r) { reply = std::move(r); });
  io.run();
  EXPECT_TRUE(reply.has_value());
  return reply.value_or(HttpReply{});
}

HttpPost request_to(const std::string& url) {
  HttpPost p;
  p.url = url;
  p.headers = {{"TTL", "60"}, {"Content-Encoding", "aes128gcm"}};
  p.body = "payload";
  p.timeout = std::chrono::seconds(20);
  return p;
}

TEST(HttpPost, PostsOverVerifiedTlsAndReturnsStatusBodyAndLocation) {
  const auto& cert = test::test_certificate();
  HttpDouble server(true, cert.cert, cert.key, 201);
  auto tls = make_client_tls_context(cert.cert);
  const auto reply =
      post(tls, request_to("https://localhost:" + std::to_string(server.port()) + "/push/abc?x=1"));
  EXPECT_EQ(reply.error, "");
  EXPECT_EQ(reply.status, 201u);
  EXPECT_EQ(reply.body, "answered");
  EXPECT_EQ(reply.location, "https://push.example/m/1");
  ASSERT_TRUE(server.received());
  const auto& req = *server.received();
  EXPECT_EQ(req.method(), http::verb::post);
  EXPECT_EQ(req.target(), "/push/abc?x=1");
  EXPECT_EQ(req[http::field::host], "localhost");
  EXPECT_EQ(req["TTL"], "60");
  EXPECT_EQ(req["Content-Encoding"], "aes128gcm");
  EXPECT_EQ(req.body(), "payload");
}

TEST(HttpPost, AnUntrustedCertificateGetsNoRequest) {
  const auto& cert = test::test_certificate();
  HttpDouble server(true, cert.cert, cert.key, 201);
  auto tls = make_client_tls_context("");  // the system store only
  const auto reply =
      post(tls, request_to("https://127.0.0.1:" + std::to_string(server.port()) + "/"));
  EXPECT_EQ(reply.status, 0u);
  EXPECT_NE(reply.error.find("TLS"), std::string::npos) << reply.error;
  EXPECT_FALSE(server.received());
}

TEST(HttpPost, ACertificateForAnotherHostIsRefused) {
  test::TempDir dir("pa-other-cert");
  const std::string crt = (dir / "other.crt").string();
  const std::string key = (dir / "other.key").string();
  const auto made = test::run_command(
      {"/usr/bin/openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
       "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key, "-out", crt, "-days", "2", "-subj",
       "/CN=other.example", "-addext", "subjectAltName=DNS:other.example"});
  ASSERT_EQ(made.exit_code, 0) << made.output;
  HttpDouble server(true, crt, key, 201);
  auto tls = make_client_tls_context(crt);  // trusted, but not for 127.0.0.1
  const auto reply =
      post(tls, request_to("https://127.0.0.1:" + std::to_string(server.port()) + "/"));
  EXPECT_EQ(reply.status, 0u);
  EXPECT_NE(reply.error.find("TLS"), std::string::npos) << reply.error;
  EXPECT_FALSE(server.received());
}

TEST(HttpPost, PlainHttpForLocalTargets) {
  HttpDouble server(false, "", "", 410);
  auto tls = make_client_tls_context("");
  const auto reply =
      post(tls, request_to("http://127.0.0.1:" + std::to_string(server.port()) + "/topic"));
  EXPECT_EQ(reply.error, "");
  EXPECT_EQ(reply.status, 410u);
  ASSERT_TRUE(server.received());
  EXPECT_EQ(server.received()->target(), "/topic");
}

TEST(HttpPost, APeerThatNeverAnswersEndsAtTheDeadline) {
  asio::io_context io;
  tcp::acceptor silent(io, {asio::ip::make_address("127.0.0.1"), 0});  // listens, never accepts
  auto tls = make_client_tls_context("");
  auto request = request_to("https://127.0.0.1:" + std::to_string(silent.local_endpoint().port()));
  request.timeout = std::chrono::milliseconds(300);
  const auto reply = post(tls, request);
  EXPECT_EQ(reply.status, 0u);
  EXPECT_EQ(reply.error, "TLS with 127.0.0.1: timed out");
}

TEST(HttpPost, BadUrlsAreErrorsWithoutAConnection) {
  auto tls = make_client_tls_context("");
  EXPECT_EQ(post(tls, request_to("ftp://example.org/x")).error, "not an http(s) URL");
  EXPECT_EQ(post(tls, request_to("no url")).error, "not an absolute URL");
  EXPECT_EQ(post(tls, request_to("https:///path")).error, "the URL has no host");
}

}  // namespace
}  // namespace pa::notify
