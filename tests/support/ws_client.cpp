#include "support/ws_client.hpp"

#include <openssl/ssl.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <stdexcept>
#include <variant>

namespace pa::test {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
namespace json = boost::json;
using tcp = asio::ip::tcp;

namespace {

asio::ssl::context& client_tls() {
  static asio::ssl::context ctx = [] {
    asio::ssl::context c(asio::ssl::context::tls_client);
    c.set_verify_mode(asio::ssl::verify_none);  // the test server's certificate is self-signed
    return c;
  }();
  return ctx;
}

// Runs the io_context until `done` or the deadline; cancels outstanding work on timeout.
bool run_until(asio::io_context& io, const bool& done, std::chrono::milliseconds deadline,
               const std::function<void()>& cancel) {
  io.restart();
  const auto until = std::chrono::steady_clock::now() + deadline;
  while (!done) {
    const auto left = until - std::chrono::steady_clock::now();
    if (left <= std::chrono::steady_clock::duration::zero()) break;
    io.run_one_for(left);
    if (io.stopped()) io.restart();
  }
  if (!done) {
    cancel();
    io.restart();
    while (!done && io.run_one_for(std::chrono::seconds(2)) != 0) {
    }
    return false;
  }
  return true;
}

}  // namespace

using PlainWs = websocket::stream<beast::tcp_stream>;
using TlsWs = websocket::stream<beast::ssl_stream<beast::tcp_stream>>;

struct WsClient::Impl {
  std::string last_text;
  Impl(unsigned short p, ClientOptions o) : port(p), options(std::move(o)) {
    if (options.tls) {
      auto& t = ws.emplace<TlsWs>(io, client_tls());
      SSL* native = t.next_layer().native_handle();
      if (options.tls_max_version != 0) SSL_set_max_proto_version(native, options.tls_max_version);
      if (options.tls_session && SSL_set_session(native, options.tls_session.get()) != 1) {
        throw std::runtime_error("SSL_set_session failed");
      }
    } else {
      ws.emplace<PlainWs>(io);
    }
  }
  template <class F>
  void visit(F&& f) {
    if (auto* t = std::get_if<TlsWs>(&ws)) {
      f(*t);
    } else {
      f(std::get<PlainWs>(ws));
    }
  }
  void cancel() {
    visit([](auto& s) { beast::get_lowest_layer(s).cancel(); });
  }

  asio::io_context io;
  unsigned short port;
  ClientOptions options;
  std::variant<std::monostate, PlainWs, TlsWs> ws;
  beast::flat_buffer buffer;
  bool open = false;
  std::optional<CloseInfo> closed;
};

WsClient::WsClient(unsigned short port, ClientOptions options)
    : impl_(std::make_unique<Impl>(port, std::move(options))) {}

WsClient::~WsClient() {
  if (impl_->open) {
    try {
      close();
    } catch (...) {
    }
  }
}

int WsClient::connect(std::chrono::milliseconds deadline) {
  int status = 0;
  bool done = false;
  websocket::response_type response;
  std::string target = impl_->options.target;
  if (impl_->options.query_token) target += "?token=" + *impl_->options.query_token;
  impl_->visit([&](auto& s) {
    auto& tcp_layer = beast::get_lowest_layer(s);
    tcp_layer.expires_after(deadline);
    if (impl_->options.receive_buffer > 0) {
      tcp_layer.socket().open(tcp::v4());
      tcp_layer.socket().set_option(
          asio::socket_base::receive_buffer_size(impl_->options.receive_buffer));
    }
    tcp_layer.async_connect(
        tcp::endpoint(asio::ip::make_address("127.0.0.1"), impl_->port), [&](beast::error_code ec) {
          if (ec) {
            done = true;
            return;
          }
          auto do_ws = [&] {
            tcp_layer.expires_never();
            s.set_option(websocket::stream_base::decorator([this](websocket::request_type& req) {
              if (impl_->options.bearer)
                req.set(http::field::authorization, "Bearer " + *impl_->options.bearer);
              if (impl_->options.origin) req.set(http::field::origin, *impl_->options.origin);
            }));
            s.read_message_max(64u << 20);
            if (impl_->options.compression) {
              websocket::permessage_deflate pmd;
              pmd.client_enable = true;
              s.set_option(pmd);
            }
            s.async_handshake(response, "localhost:" + std::to_string(impl_->port), target,
                              [&](beast::error_code hec) {
                                status = static_cast<int>(response.result_int());
                                if (!hec) status = 101;
                                done = true;
                              });
          };
          if constexpr (std::is_same_v<std::decay_t<decltype(s)>, TlsWs>) {
            s.next_layer().async_handshake(asio::ssl::stream_base::client,
                                           [&, do_ws](beast::error_code tec) {
                                             if (tec) {
                                               done = true;
                                               return;
                                             }
                                             do_ws();
                                           });
          } else {
            do_ws();
          }
        });
  });
  run_until(impl_->io, done, deadline, [this] { impl_->cancel(); });
  response_body_ = response.body();
  extensions_ = std::string(response[http::field::sec_websocket_extensions]);
  impl_->open = status == 101;
  return status;
}

std::shared_ptr<ssl_session_st> WsClient::tls_session() const {
  const auto* t = std::get_if<TlsWs>(&impl_->ws);
  if (t == nullptr) return nullptr;
  SSL_SESSION* session = SSL_get1_session(const_cast<TlsWs*>(t)->next_layer().native_handle());
  if (session == nullptr) return nullptr;
  return {session, SSL_SESSION_free};
}

bool WsClient::tls_session_reused() const {
  const auto* t = std::get_if<TlsWs>(&impl_->ws);
  return t != nullptr &&
         SSL_session_reused(const_cast<TlsWs*>(t)->next_layer().native_handle()) == 1;
}

void WsClient::send_text(const std::string& text) {
  bool done = false;
  beast::error_code result;
  impl_->visit([&](auto& s) {
    s.text(true);
    s.async_write(asio::buffer(text), [&](beast::error_code ec, std::size_t) {
      result = ec;
      done = true;
    });
  });
  run_until(impl_->io, done, 10s, [this] { impl_->cancel(); });
  if (result) throw std::runtime_error("send failed: " + result.message());
}

void WsClient::send_binary(const std::string& bytes) {
  bool done = false;
  impl_->visit([&](auto& s) {
    s.binary(true);
    s.async_write(asio::buffer(bytes), [&](beast::error_code, std::size_t) { done = true; });
  });
  run_until(impl_->io, done, 10s, [this] { impl_->cancel(); });
}

void WsClient::send(const Json& message) {
  send_text(json::serialize(message));
}

std::optional<Json> WsClient::read(std::chrono::milliseconds deadline) {
  if (!impl_->open) return std::nullopt;
  bool done = false;
  beast::error_code result;
  impl_->visit([&](auto& s) {
    s.async_read(impl_->buffer, [&](beast::error_code ec, std::size_t) {
      result = ec;
      done = true;
    });
  });
  if (!run_until(impl_->io, done, deadline, [this] { impl_->cancel(); })) {
    // A timed-out read cancels the socket; the stream cannot be used after that.
    impl_->open = false;
    return std::nullopt;
  }
  if (result) {
    impl_->open = false;
    impl_->visit([&](auto& s) {
      impl_->closed = CloseInfo{s.reason().code, std::string(s.reason().reason.c_str())};
    });
    return std::nullopt;
  }
  impl_->last_text = beast::buffers_to_string(impl_->buffer.data());
  impl_->buffer.consume(impl_->buffer.size());
  auto value = json::parse(impl_->last_text);
  return value.as_object();
}

const std::string& WsClient::last_text() const {
  return impl_->last_text;
}

std::optional<Json> WsClient::read_until(const std::function<bool(const Json&)>& predicate,
                                         std::chrono::milliseconds deadline) {
  const auto until = std::chrono::steady_clock::now() + deadline;
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        until - std::chrono::steady_clock::now());
    if (left <= 0ms) return std::nullopt;
    auto message = read(left);
    if (!message) return std::nullopt;
    if (predicate(*message)) return message;
    skipped_.push_back(std::move(*message));
  }
}

Json WsClient::request(Json message, std::chrono::milliseconds deadline) {
  const std::string id = "t-" + std::to_string(++next_request_);
  message["request_id"] = id;
  send(message);
  auto reply = read_until(
      [&](const Json& m) {
        const auto* rid = m.if_contains("request_id");
        return rid != nullptr && rid->is_string() && rid->get_string() == id;
      },
      deadline);
  if (!reply) throw std::runtime_error("no reply to " + json::serialize(message));
  return *reply;
}

std::optional<CloseInfo> WsClient::wait_closed(std::chrono::milliseconds deadline) {
  const auto until = std::chrono::steady_clock::now() + deadline;
  while (impl_->open) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        until - std::chrono::steady_clock::now());
    if (left <= 0ms) return std::nullopt;
    auto m = read(left);
    if (m) skipped_.push_back(std::move(*m));
  }
  return impl_->closed;
}

bool WsClient::is_open() const {
  return impl_->open;
}

void WsClient::close() {
  if (!impl_->open) return;
  bool done = false;
  impl_->visit([&](auto& s) {
    s.async_close(websocket::close_code::normal, [&](beast::error_code) { done = true; });
  });
  run_until(impl_->io, done, 5s, [this] { impl_->cancel(); });
  impl_->open = false;
}

HttpResult http_get(unsigned short port, bool tls, const std::string& target,
                    const std::map<std::string, std::string>& headers,
                    std::chrono::milliseconds deadline) {
  return http_request(port, tls, "GET", target, headers, std::nullopt, deadline);
}

HttpResult http_post(unsigned short port, bool tls, const std::string& target,
                     const std::string& body, const std::map<std::string, std::string>& headers,
                     std::chrono::milliseconds deadline) {
  return http_request(port, tls, "POST", target, headers, body, deadline);
}

HttpResult http_request(unsigned short port, bool tls, const std::string& method,
                        const std::string& target,
                        const std::map<std::string, std::string>& headers,
                        const std::optional<std::string>& body,
                        std::chrono::milliseconds deadline) {
  asio::io_context io;
  HttpResult result;
  bool done = false;
  http::request<http::string_body> req{http::string_to_verb(method), target, 11};
  req.set(http::field::host, "localhost:" + std::to_string(port));
  for (const auto& [k, v] : headers) req.set(k, v);
  if (body) {
    req.body() = *body;
    req.prepare_payload();
  }
  http::response<http::string_body> res;
  beast::flat_buffer buffer;
  const tcp::endpoint at(asio::ip::make_address("127.0.0.1"), port);
  auto finish = [&] {
    result.status = static_cast<int>(res.result_int());
    result.body = res.body();
    for (const auto& field : res)
      result.headers[std::string(field.name_string())] = std::string(field.value());
    done = true;
  };
  if (tls) {
    beast::ssl_stream<beast::tcp_stream> s(io, client_tls());
    beast::get_lowest_layer(s).expires_after(deadline);
    beast::get_lowest_layer(s).async_connect(at, [&](beast::error_code ec) {
      if (ec) return void(done = true);
      s.async_handshake(asio::ssl::stream_base::client, [&](beast::error_code hec) {
        if (hec) return void(done = true);
        http::async_write(s, req, [&](beast::error_code wec, std::size_t) {
          if (wec) return void(done = true);
          http::async_read(s, buffer, res, [&](beast::error_code, std::size_t) { finish(); });
        });
      });
    });
    run_until(io, done, deadline, [&] { beast::get_lowest_layer(s).cancel(); });
  } else {
    beast::tcp_stream s(io);
    s.expires_after(deadline);
    s.async_connect(at, [&](beast::error_code ec) {
      if (ec) return void(done = true);
      http::async_write(s, req, [&](beast::error_code wec, std::size_t) {
        if (wec) return void(done = true);
        http::async_read(s, buffer, res, [&](beast::error_code, std::size_t) { finish(); });
      });
    });
    run_until(io, done, deadline, [&] { s.cancel(); });
  }
  return result;
}

}  // namespace pa::test
