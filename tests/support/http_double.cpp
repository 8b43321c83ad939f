#include "support/http_double.hpp"

#include <strings.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <future>
#include <list>
#include <thread>

#include "support/server_process.hpp"

namespace pa::test {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

namespace {
constexpr auto kTry = asio::as_tuple(asio::use_awaitable);
constexpr std::size_t kMaxRequestBody = 1024 * 1024;

HttpRequest to_request(const http::request<http::string_body>& req) {
  HttpRequest out;
  out.method = std::string(req.method_string());
  out.target = std::string(req.target());
  for (const auto& field : req) {
    out.headers.emplace_back(std::string(field.name_string()), std::string(field.value()));
  }
  out.body = req.body();
  return out;
}
}  // namespace

std::optional<std::string> HttpRequest::header(std::string_view name) const {
  for (const auto& [key, value] : headers) {
    if (key.size() == name.size() && ::strncasecmp(key.data(), name.data(), name.size()) == 0) {
      return value;
    }
  }
  return std::nullopt;
}

struct HttpDouble::Impl {
  // A request the handler chose to hold: its session waits on `wake` until `answer` is set.
  // Touched on the double's thread only.
  struct Held {
    const HttpRequest* request;
    asio::steady_timer* wake;
    std::optional<HttpAnswer>* answer;
  };

  Impl(HttpDouble& of, bool tls, Handler decide) : owner(of), handler(std::move(decide)) {
    if (tls) {
      const auto& cert = test_certificate();
      tls_context.use_certificate_chain_file(cert.cert);
      tls_context.use_private_key_file(cert.key, asio::ssl::context::pem);
    }
    acceptor.open(tcp::v4());
    acceptor.set_option(tcp::acceptor::reuse_address(true));
    acceptor.bind({asio::ip::make_address("127.0.0.1"), 0});
    acceptor.listen();
  }

  asio::awaitable<void> accept_loop() {
    for (;;) {
      auto [ec, socket] = co_await acceptor.async_accept(kTry);
      if (ec) co_return;
      ++owner.connections_;
      asio::co_spawn(io, session(std::move(socket)), asio::detached);
    }
  }

  asio::awaitable<void> session(tcp::socket socket) {
    beast::tcp_stream plain(std::move(socket));
    if (owner.tls_) {
      beast::ssl_stream<beast::tcp_stream> stream(std::move(plain), tls_context);
      auto [ec] = co_await stream.async_handshake(asio::ssl::stream_base::server, kTry);
      if (!ec) co_await serve(stream);
    } else {
      co_await serve(plain);
    }
  }

  // Requests one after another on one connection, until the peer closes or asks to.
  template <class Stream>
  asio::awaitable<void> serve(Stream& stream) {
    beast::flat_buffer buffer;
    for (;;) {
      http::request_parser<http::string_body> parser;
      parser.body_limit(kMaxRequestBody);
      auto [rec, read] = co_await http::async_read(stream, buffer, parser, kTry);
      if (rec) co_return;
      const auto& req = parser.get();
      const HttpRequest request = to_request(req);
      HttpAnswer answer = handler(request);
      if (answer.hold) {
        auto released = co_await hold(request);
        if (!released) co_return;
        answer = std::move(*released);
      }
      http::response<http::string_body> res{static_cast<http::status>(answer.status),
                                            req.version()};
      for (const auto& [name, value] : answer.headers) res.set(name, value);
      res.body() = std::move(answer.body);
      res.keep_alive(req.keep_alive());
      res.prepare_payload();
      auto [wec, written] = co_await http::async_write(stream, res, kTry);
      if (wec || !req.keep_alive()) co_return;
    }
  }

  asio::awaitable<std::optional<HttpAnswer>> hold(const HttpRequest& request) {
    asio::steady_timer wake(io, asio::steady_timer::time_point::max());
    std::optional<HttpAnswer> answer;
    const auto entry = held.insert(held.end(), Held{&request, &wake, &answer});
    ++owner.held_count_;
    co_await wake.async_wait(kTry);  // cancelled by release_held()
    held.erase(entry);
    --owner.held_count_;
    co_return answer;
  }

  HttpDouble& owner;
  Handler handler;
  asio::ssl::context tls_context{asio::ssl::context::tls_server};
  std::list<Held> held;
  // Destroyed before the members above: its destructor ends the sessions still suspended.
  asio::io_context io;
  tcp::acceptor acceptor{io};
  std::thread thread;
};

HttpDouble::HttpDouble(bool tls, Handler handler)
    : impl_(std::make_unique<Impl>(*this, tls, std::move(handler))), tls_(tls) {
  port_ = impl_->acceptor.local_endpoint().port();
  asio::co_spawn(impl_->io, impl_->accept_loop(), asio::detached);
  impl_->thread = std::thread([this] { impl_->io.run(); });
}

HttpDouble::~HttpDouble() {
  impl_->io.stop();
  impl_->thread.join();
}

std::string HttpDouble::origin() const {
  return tls_ ? "https://localhost:" + std::to_string(port_)
              : "http://127.0.0.1:" + std::to_string(port_);
}

void HttpDouble::release_held(const Release& release) {
  std::promise<void> done;
  asio::post(impl_->io, [&] {
    for (auto& entry : impl_->held) {
      if (entry.answer->has_value()) continue;  // released already, not yet resumed
      if (auto answer = release(*entry.request)) {
        *entry.answer = std::move(*answer);
        entry.wake->cancel();
      }
    }
    done.set_value();
  });
  done.get_future().wait();
}

}  // namespace pa::test
