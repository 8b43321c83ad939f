#include "client.hpp"

#include <openssl/ssl.h>

#include <atomic>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/buffers_to_string.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/url/parse.hpp>
#include <mutex>
#include <stdexcept>
#include <type_traits>

namespace pa::bench {

namespace beast = boost::beast;
namespace websocket = beast::websocket;
namespace json = boost::json;
using asio::use_awaitable;
using tcp = asio::ip::tcp;

Target Target::parse(const std::string& url, const std::string& token, bool insecure) {
  auto parsed = boost::urls::parse_uri(url);
  if (!parsed) throw std::runtime_error("--url: not a URL: " + url);
  Target t;
  const auto scheme = parsed->scheme();
  if (scheme == "wss") {
    t.tls = true;
  } else if (scheme == "ws") {
    t.tls = false;
  } else {
    throw std::runtime_error("--url must start with ws:// or wss://");
  }
  t.host = parsed->host();
  if (!t.host.empty() && t.host.front() == '[') t.host = t.host.substr(1, t.host.size() - 2);
  t.port = parsed->has_port() ? std::string(parsed->port()) : (t.tls ? "443" : "80");
  if (!parsed->encoded_path().empty()) t.path = parsed->encoded_path();
  t.token = token;
  t.insecure = insecure;
  if (t.tls) {
    t.ssl = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_client);
    if (insecure) {
      t.ssl->set_verify_mode(asio::ssl::verify_none);
    } else {
      t.ssl->set_default_verify_paths();
      t.ssl->set_verify_mode(asio::ssl::verify_peer);
    }
    // No client-side cache: every connection makes a full handshake, unless --resume hands it
    // the first connection's session (Target::session).
    SSL_CTX_set_session_cache_mode(t.ssl->native_handle(), SSL_SESS_CACHE_OFF);
  }
  return t;
}

void Target::resolve(asio::io_context& io) {
  tcp::resolver resolver(io);
  auto results = resolver.resolve(host, port);
  if (results.empty()) throw std::runtime_error("cannot resolve " + host);
  endpoint = results.begin()->endpoint();
}

namespace {

// Target::session: set by the first connection that gets a resumable session, read by every
// later one, on any thread.
std::mutex session_mutex;

std::shared_ptr<ssl_session_st> load_session(const Target& t) {
  std::lock_guard lock(session_mutex);
  return t.session;
}

template <bool kTls>
class WsImpl final : public Ws {
  using Next = std::conditional_t<kTls, beast::ssl_stream<beast::tcp_stream>, beast::tcp_stream>;

 public:
  WsImpl(asio::io_context& io, const Target& target) : target_(target), ws_(make_next(io)) {}

  asio::awaitable<void> connect() override {
    auto& tcp_layer = beast::get_lowest_layer(ws_);
    tcp_layer.expires_after(std::chrono::seconds(30));
    co_await tcp_layer.async_connect(target_.endpoint, use_awaitable);
    tcp_layer.socket().set_option(tcp::no_delay(true));
    if constexpr (kTls) {
      if (!SSL_set_tlsext_host_name(ws_.next_layer().native_handle(), target_.host.c_str())) {
        throw std::runtime_error("cannot set SNI");
      }
      const auto session = target_.resume ? load_session(target_) : nullptr;
      if (session && SSL_set_session(ws_.next_layer().native_handle(), session.get()) != 1) {
        throw std::runtime_error("cannot set the TLS session to resume");
      }
      co_await ws_.next_layer().async_handshake(asio::ssl::stream_base::client, use_awaitable);
    }
    tcp_layer.expires_never();
    ws_.set_option(websocket::stream_base::timeout::suggested(beast::role_type::client));
    const std::string auth = "Bearer " + target_.token;
    ws_.set_option(websocket::stream_base::decorator([auth](websocket::request_type& req) {
      req.set(beast::http::field::authorization, auth);
      req.set(beast::http::field::user_agent, "pocket-agent-bench");
    }));
    co_await ws_.async_handshake(target_.host + ":" + target_.port, target_.path, use_awaitable);
    ws_.text(true);
    if constexpr (kTls) {
      // A TLS 1.3 ticket comes after the server's Finished, before the 101: it has been read.
      if (target_.resume && !load_session(target_)) {
        SSL_SESSION* s = SSL_get1_session(ws_.next_layer().native_handle());
        if (s != nullptr && SSL_SESSION_is_resumable(s) == 1) {
          std::lock_guard lock(session_mutex);
          if (!target_.session) {
            target_.session.reset(s, SSL_SESSION_free);
            s = nullptr;
          }
        }
        if (s != nullptr) SSL_SESSION_free(s);
      }
    }
  }

  asio::awaitable<std::string_view> read() override {
    buffer_.consume(buffer_.size());
    co_await ws_.async_read(buffer_, use_awaitable);
    const auto data = buffer_.cdata();
    co_return std::string_view(static_cast<const char*>(data.data()), data.size());
  }

  asio::awaitable<void> write(std::string text) override {
    co_await ws_.async_write(asio::buffer(text), use_awaitable);
  }

  asio::awaitable<void> close() override {
    auto [ec] =
        co_await ws_.async_close(websocket::close_code::normal, asio::as_tuple(use_awaitable));
    (void)ec;
  }

  bool resumed() const override {
    if constexpr (kTls) {
      return SSL_session_reused(const_cast<Next&>(ws_.next_layer()).native_handle()) == 1;
    } else {
      return false;
    }
  }

  void abort() override {
    beast::error_code ec;
    beast::get_lowest_layer(ws_).socket().close(ec);
  }

  asio::any_io_executor executor() override { return ws_.get_executor(); }

 private:
  Next make_next(asio::io_context& io) {
    if constexpr (kTls) {
      return Next(io, *target_.ssl);
    } else {
      return Next(io);
    }
  }

  const Target& target_;
  websocket::stream<Next> ws_;
  beast::flat_buffer buffer_;
};

// Finds "key":"value" at the top level of the envelope (the server writes these keys before
// data, and values without escapes).
std::string_view string_field(std::string_view text, std::string_view quoted_key,
                              bool last = false) {
  const auto pos = last ? text.rfind(quoted_key) : text.find(quoted_key);
  if (pos == std::string_view::npos) return {};
  const auto start = pos + quoted_key.size();
  const auto end = text.find('"', start);
  if (end == std::string_view::npos) return {};
  return text.substr(start, end - start);
}

std::atomic<std::uint64_t> next_request_id{1};

}  // namespace

std::unique_ptr<Ws> make_ws(asio::io_context& io, const Target& target) {
  if (target.tls) return std::make_unique<WsImpl<true>>(io, target);
  return std::make_unique<WsImpl<false>>(io, target);
}

Head peek_head(std::string_view text) {
  Head h;
  if (text.rfind("{\"type\":\"", 0) == 0) h.type = string_field(text.substr(0, 64), "\"type\":\"");
  // request_id comes after data, so search from the end; the server writes it last-but-one or
  // -two ("request_id","seq"?,"timestamp").
  const auto tail_start = text.size() > 256 ? text.size() - 256 : 0;
  h.request_id = string_field(text.substr(tail_start), "\"request_id\":\"", true);
  return h;
}

asio::awaitable<json::value> request(Ws& ws, json::object req, bool throw_on_error) {
  const std::string id = "b" + std::to_string(next_request_id++);
  req["request_id"] = id;
  co_await ws.write(json::serialize(req));
  for (;;) {
    const auto text = co_await ws.read();
    const auto head = peek_head(text);
    if (head.request_id != id) continue;
    auto v = json::parse(text);
    if (throw_on_error && v.as_object().at("type").as_string() == "error") {
      throw std::runtime_error("error reply to " + std::string(req.at("type").as_string()) + ": " +
                               json::serialize(v.as_object().at("data")));
    }
    co_return v;
  }
}

asio::awaitable<void> sleep_for(std::chrono::steady_clock::duration d) {
  asio::steady_timer timer(co_await asio::this_coro::executor);
  timer.expires_after(d);
  co_await timer.async_wait(use_awaitable);
}

void Latch::count_down() {
  // The decrement runs on the latch's thread. The waiter returns only at zero, after the last
  // posted decrement ran, so no posted handler outlives the latch.
  asio::post(timer_.get_executor(), [this] {
    if (count_ > 0 && --count_ == 0 && waiting_) timer_.cancel();
  });
}

asio::awaitable<void> Latch::wait() {
  while (count_ > 0) {
    waiting_ = true;
    timer_.expires_at(asio::steady_timer::time_point::max());
    auto [ec] = co_await timer_.async_wait(asio::as_tuple(use_awaitable));
    (void)ec;
  }
  waiting_ = false;
}

Pool::Pool(std::size_t threads) {
  if (threads == 0) threads = 1;
  for (std::size_t i = 0; i < threads; ++i) {
    ios_.push_back(std::make_unique<asio::io_context>(1));
    guards_.push_back(asio::make_work_guard(*ios_.back()));
  }
}

Pool::~Pool() {
  stop();
  for (auto& t : threads_) {
    if (t.joinable()) t.join();
  }
}

void Pool::run() {
  for (std::size_t i = 1; i < ios_.size(); ++i) {
    threads_.emplace_back([io = ios_[i].get()] { io->run(); });
  }
  ios_.front()->run();
  stop();
  for (auto& t : threads_) t.join();
  threads_.clear();
}

void Pool::stop() {
  for (auto& io : ios_) io->stop();
}

}  // namespace pa::bench
