#include "notify/http_post.hpp"

#include <openssl/ssl.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <boost/url/parse.hpp>
#include <stdexcept>

namespace pa::notify {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

namespace {

constexpr auto kTry = asio::as_tuple(asio::use_awaitable);

struct Target {
  bool tls = false;
  std::string host;
  std::string port;
  std::string path;
};

bool parse_target(const std::string& url, Target& out, std::string& error) {
  const auto parsed = boost::urls::parse_absolute_uri(url);
  if (!parsed) {
    error = "not an absolute URL";
    return false;
  }
  const auto scheme = parsed->scheme();
  if (scheme != "https" && scheme != "http") {
    error = "not an http(s) URL";
    return false;
  }
  out.tls = scheme == "https";
  out.host = parsed->encoded_host();
  if (out.host.empty()) {
    error = "the URL has no host";
    return false;
  }
  if (out.host.front() == '[' && out.host.back() == ']')
    out.host = out.host.substr(1, out.host.size() - 2);
  out.port = parsed->has_port() ? std::string(parsed->port()) : (out.tls ? "443" : "80");
  out.path = parsed->encoded_target().empty() ? "/" : std::string(parsed->encoded_target());
  if (out.path.front() != '/') out.path.insert(0, "/");
  return true;
}

http::request<http::string_body> make_request(const Target& target, HttpPost& post) {
  http::request<http::string_body> req{http::verb::post, target.path, 11};
  req.set(http::field::host, target.host);
  req.set(http::field::user_agent, "pocket-agent-server");
  for (auto& [name, value] : post.headers) req.set(name, value);
  req.body() = std::move(post.body);
  req.prepare_payload();
  return req;
}

// beast::error::timeout reads "The socket was closed due to a timeout": say what happened.
std::string describe(const boost::system::error_code& ec) {
  return ec == beast::error::timeout ? std::string("timed out") : ec.message();
}

void take_reply(http::response_parser<http::string_body>& parser, HttpReply& reply) {
  const auto& res = parser.get();
  reply.status = res.result_int();
  reply.body = res.body();
  if (const auto it = res.find(http::field::location); it != res.end())
    reply.location = std::string(it->value());
  if (const auto it = res.find(http::field::retry_after); it != res.end())
    reply.retry_after = std::string(it->value());
}

template <class Stream>
asio::awaitable<void> exchange(Stream& stream, http::request<http::string_body>& req,
                               HttpReply& reply) {
  auto [wec, written] = co_await http::async_write(stream, req, kTry);
  if (wec) {
    reply.error = "send: " + describe(wec);
    co_return;
  }
  beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.body_limit(kMaxReplyBody);
  auto [rec, read] = co_await http::async_read(stream, buffer, parser, kTry);
  // A body over the cap still leaves the status: that is what the caller acts on.
  if (rec && !(rec == http::error::body_limit && parser.is_header_done())) {
    reply.error = "reply: " + describe(rec);
    co_return;
  }
  take_reply(parser, reply);
}

asio::awaitable<HttpReply> run(asio::ssl::context& tls, HttpPost post) {
  HttpReply reply;
  Target target;
  if (!parse_target(post.url, target, reply.error)) co_return reply;
  auto executor = co_await asio::this_coro::executor;
  tcp::resolver resolver(executor);
  beast::tcp_stream tcp_stream(executor);
  tcp_stream.expires_after(post.timeout);  // one deadline for the whole exchange
  auto [rec, endpoints] = co_await resolver.async_resolve(target.host, target.port, kTry);
  if (rec) {
    reply.error = "resolve " + target.host + ": " + describe(rec);
    co_return reply;
  }
  auto [cec, ep] = co_await tcp_stream.async_connect(endpoints, kTry);
  if (cec) {
    reply.error = "connect " + target.host + ":" + target.port + ": " + describe(cec);
    co_return reply;
  }
  auto req = make_request(target, post);
  if (!target.tls) {
    co_await exchange(tcp_stream, req, reply);
    beast::error_code ignored;
    tcp_stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
    co_return reply;
  }
  beast::ssl_stream<beast::tcp_stream> stream(std::move(tcp_stream), tls);
  if (SSL_set_tlsext_host_name(stream.native_handle(), target.host.c_str()) != 1) {
    reply.error = "TLS: cannot set the server name";
    co_return reply;
  }
  stream.set_verify_mode(asio::ssl::verify_peer);
  stream.set_verify_callback(asio::ssl::host_name_verification(target.host));
  auto [hec] = co_await stream.async_handshake(asio::ssl::stream_base::client, kTry);
  if (hec) {
    reply.error = "TLS with " + target.host + ": " + describe(hec);
    co_return reply;
  }
  co_await exchange(stream, req, reply);
  auto [sec] = co_await stream.async_shutdown(kTry);  // a peer that just closes is fine
  (void)sec;
  co_return reply;
}

}  // namespace

asio::ssl::context make_client_tls_context(const std::string& ca_file) {
  asio::ssl::context ctx(asio::ssl::context::tls_client);
  ctx.set_options(asio::ssl::context::no_sslv2 | asio::ssl::context::no_sslv3 |
                  asio::ssl::context::no_tlsv1 | asio::ssl::context::no_tlsv1_1);
  boost::system::error_code ec;
  ctx.set_default_verify_paths(ec);
  if (ec) throw std::runtime_error("cannot load the system's certificate store: " + ec.message());
  if (!ca_file.empty()) {
    ctx.load_verify_file(ca_file, ec);
    if (ec) throw std::runtime_error("cannot load CA file " + ca_file + ": " + ec.message());
  }
  return ctx;
}

void post_http(asio::any_io_executor executor, asio::ssl::context& tls, HttpPost request,
               std::function<void(HttpReply)> done) {
  asio::co_spawn(executor, run(tls, std::move(request)),
                 [executor, done = std::move(done)](std::exception_ptr failure, HttpReply reply) {
                   if (failure) {
                     reply = HttpReply{};
                     reply.error = "internal error";
                     try {
                       std::rethrow_exception(failure);
                     } catch (const std::exception& e) {
                       reply.error = std::string("internal error: ") + e.what();
                     } catch (...) {
                     }
                   }
                   asio::post(executor, [done, reply = std::move(reply)] { done(reply); });
                 });
}

}  // namespace pa::notify
