#include "net/http_session.hpp"

#include <spdlog/spdlog.h>

#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/json/serialize.hpp>
#include <boost/url/parse.hpp>
#include <optional>

#include "config/config.hpp"
#include "net/tls_stream.hpp"
#include "net/ws_session.hpp"
#include "protocol/handshake.hpp"
#include "protocol/json_text.hpp"
#include "web/static_assets.hpp"

namespace pa::net {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace json = boost::json;

namespace {

// A request head is bounded in bytes (Beast stops reading past it) and in header fields (a
// head of many tiny fields fits the byte bound but costs a field object each).
constexpr std::uint32_t kHeaderLimit = 8 * 1024;
constexpr std::size_t kMaxHeaderFields = 100;
constexpr std::uint64_t kBodyLimit = 4 * 1024;
// How long a connection answered 503 for lack of descriptors may take for its TLS handshake and
// request head (see handshake_deadline()).
constexpr auto kRefusalDeadline = std::chrono::seconds(2);

struct Target {
  std::string path;
  std::optional<std::string> token;
  std::optional<std::string> client_name;  // names the client in audit records
};

constexpr const char* kTooManyWrongTokens =
    "too many wrong tokens from your address: wrong tokens get 429 for a minute; the right token "
    "is still accepted (see `pocket-agent-server token`)";

// The 503 body when limits.max_connections connections are open, naming the open file limit
// when that lowered it (net/descriptor_plan.hpp).
std::string at_limit_message(const config::Config::Limits& limits) {
  std::string text = "server at limits.max_connections (" + std::to_string(limits.max_connections);
  if (limits.configured_max_connections > limits.max_connections)
    text += ", lowered from " + std::to_string(limits.configured_max_connections) +
            " to fit the open file limit " + std::to_string(limits.open_file_limit);
  return text + "); try again later";
}

std::string_view trim(std::string_view v) {
  while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
  while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
  return v;
}

std::optional<Target> parse_target(std::string_view target) {
  auto parsed = boost::urls::parse_origin_form(target);
  if (!parsed) return std::nullopt;
  Target out;
  out.path = std::string(parsed->encoded_path());
  auto params = parsed->params();
  auto it = params.find("token");
  if (it != params.end() && (*it).has_value) out.token = std::string((*it).value);
  it = params.find("client_name");
  if (it != params.end()) out.client_name = (*it).has_value ? std::string((*it).value) : "";
  return out;
}

template <class Stream>
class HttpSession : public std::enable_shared_from_this<HttpSession<Stream>> {
 public:
  HttpSession(Stream&& stream, std::shared_ptr<server::SessionHost> hub, std::shared_ptr<Gate> gate,
              std::string remote, bool rate_limited, Serve serve, std::shared_ptr<void> hold,
              Refusal refusal)
      : hold_(std::move(hold)),
        stream_(std::move(stream)),
        hub_(std::move(hub)),
        gate_(std::move(gate)),
        remote_(std::move(remote)),
        rate_limited_(rate_limited),
        serve_(serve),
        refuse_(std::move(refusal.text)),
        reclaim_(std::move(refusal.reclaim)) {}

  // A refusal's descriptor goes back to the listener (net/listener.cpp, refuse_with_spare). Only
  // refusals have reclaim_, and they are never upgraded: stream_ is still this session's.
  ~HttpSession() {
    if (reclaim_) reclaim_(beast::get_lowest_layer(stream_).socket());
  }

  void run() {
    asio::dispatch(stream_.get_executor(), [self = this->shared_from_this()] { self->start(); });
  }

 private:
  static constexpr bool kTls = !std::is_same_v<Stream, beast::tcp_stream>;

  // TLS and the request head must be in within this. A connection being refused holds the
  // listener's spare descriptor, and the listener accepts nothing else meanwhile: a client that
  // stays silent gets little time.
  std::chrono::steady_clock::duration handshake_deadline() const {
    const std::chrono::steady_clock::duration configured = hub_->config().timeouts.handshake;
    if (refuse_.empty()) return configured;
    return std::min(configured, std::chrono::steady_clock::duration(kRefusalDeadline));
  }

  void start() {
    beast::get_lowest_layer(stream_).expires_after(handshake_deadline());
    if constexpr (kTls) {
      stream_.async_handshake([self = this->shared_from_this()](beast::error_code ec) {
        if (ec) {
          spdlog::debug("TLS handshake with {} failed: {}", self->remote_, ec.message());
          return;
        }
        self->do_read();
      });
    } else {
      do_read();
    }
  }

  void do_read() {
    parser_.emplace();
    parser_->header_limit(kHeaderLimit);
    parser_->body_limit(kBodyLimit);
    beast::get_lowest_layer(stream_).expires_after(handshake_deadline());
    // The head first: what it says decides whether a body is read at all (Expect, an unknown
    // Transfer-Encoding, a bad Host are answered without waiting for one).
    http::async_read_header(
        stream_, buffer_, *parser_,
        beast::bind_front_handler(&HttpSession::on_header, this->shared_from_this()));
  }

  // A read failed: answer what deserves an answer, then (respond) close.
  void read_failed(beast::error_code ec) {
    if (ec == http::error::end_of_stream) {
      shutdown();
      return;
    }
    if (ec == http::error::header_limit || ec == http::error::body_limit) {
      respond(http::status::request_header_fields_too_large, "request too large", false);
    } else if (ec.category() == http::make_error_code(http::error::bad_method).category() &&
               ec != http::error::partial_message) {
      // Not HTTP/1.1 (a bad method, version, header line...): say so before closing.
      spdlog::debug("malformed HTTP request from {}: {}", remote_, ec.message());
      respond(http::status::bad_request, "malformed HTTP request: " + ec.message(), false);
    } else {
      spdlog::debug("HTTP read from {} failed: {}", remote_, ec.message());
    }
  }

  // The head is in: refuse what HTTP/1.1 does not allow or this server does not do, then read
  // the body (if any) and handle the request.
  void on_header(beast::error_code ec, std::size_t) {
    if (ec) {
      read_failed(ec);
      return;
    }
    if (!refuse_.empty()) {
      respond(http::status::service_unavailable, refuse_, false);
      return;
    }
    auto& req = parser_->get();
    if (static_cast<std::size_t>(std::distance(req.begin(), req.end())) > kMaxHeaderFields) {
      respond(http::status::request_header_fields_too_large,
              "too many header fields (at most " + std::to_string(kMaxHeaderFields) + ")", false);
      return;
    }
    // RFC 9112 3.2: exactly one Host; a server must answer 400 to none or several.
    if (req.count(http::field::host) != 1) {
      respond(http::status::bad_request,
              req.count(http::field::host) == 0 ? "the request has no Host header"
                                                : "the request has more than one Host header",
              false);
      return;
    }
    // Beast knows only chunked; any other coding would leave the body's length unknown (and its
    // bytes read as the next request). RFC 9112 6.1: 501 for a coding not understood.
    if (req.count(http::field::transfer_encoding) != 0) {
      const bool only_chunked =
          req.count(http::field::transfer_encoding) == 1 &&
          beast::iequals(trim(req[http::field::transfer_encoding]), "chunked");
      if (!only_chunked) {
        respond(http::status::not_implemented,
                "Transfer-Encoding '" + std::string(req[http::field::transfer_encoding]) +
                    "' is not supported (only chunked)",
                false);
        return;
      }
    }
    // Expect: 100-continue asks for a go-ahead before the body is sent. Only POST /pair takes a
    // body (4 KiB at most, sent at once by browsers), so one announced that way is refused at
    // once (417) rather than waited for; without a body there is nothing to wait for and the
    // field is ignored. Other expectations: 417.
    if (req.count(http::field::expect) != 0) {
      const bool continue_only = req.count(http::field::expect) == 1 &&
                                 beast::iequals(trim(req[http::field::expect]), "100-continue");
      if (!continue_only || !parser_->is_done()) {
        respond(http::status::expectation_failed,
                continue_only ? "this server takes no request body; send the request without "
                                "one (and without Expect: 100-continue)"
                              : "unsupported Expect: " + std::string(req[http::field::expect]),
                false);
        return;
      }
    }
    if (!gate_->host_allowed(req[http::field::host])) {
      spdlog::warn("refused a request from {} for Host '{}': not one of this server's names",
                   remote_, std::string(req[http::field::host]).substr(0, 256));
      respond(http::status::forbidden,
              "Host '" + std::string(req[http::field::host]).substr(0, 256) +
                  "' is not a name of this server (a page from another name must not reach it: "
                  "DNS rebinding); add it to server.allowed_hosts",
              false);
      return;
    }
    if (parser_->is_done()) {
      on_read({}, 0);
      return;
    }
    http::async_read(stream_, buffer_, *parser_,
                     beast::bind_front_handler(&HttpSession::on_read, this->shared_from_this()));
  }

  void on_read(beast::error_code ec, std::size_t) {
    if (ec) {
      read_failed(ec);
      return;
    }
    auto& req = parser_->get();
    if (rate_limited_) {
      respond(Refused{http::status::too_many_requests,
                      "too many new connections from your address; retry in a few seconds",
                      std::chrono::seconds(1)});
      return;
    }
    const auto target = parse_target(req.target());
    if (!target) {
      respond(http::status::bad_request, "malformed request target", false);
      return;
    }
    if (serve_ == Serve::kMetricsOnly) {
      if (target->path == "/metrics" && req.method() == http::verb::get) {
        serve_metrics(*target);
      } else {
        respond(http::status::not_found, "not found (this port serves only /metrics)",
                req.keep_alive());
      }
      return;
    }
    if (target->path == "/ws" && req.method() == http::verb::get &&
        beast::websocket::is_upgrade(req)) {
      upgrade(*target);
      return;
    }
    if (target->path == "/metrics" && req.method() == http::verb::get &&
        hub_->config().metrics.enabled) {
      serve_metrics(*target);
      return;
    }
    if (target->path == "/auth/check" &&
        (req.method() == http::verb::get || req.method() == http::verb::post)) {
      auth_check(*target);
      return;
    }
    if (target->path == "/pair" && req.method() == http::verb::post) {
      pair();
      return;
    }
    if (target->path == "/health" && req.method() == http::verb::get) {
      serve_health(req.keep_alive());
      return;
    }
    // The web console: static files, no token (they hold no secrets; its WebSocket needs one).
    if (req.method() == http::verb::get || req.method() == http::verb::head) {
      if (const auto* asset = web::find_asset(target->path)) {
        serve_asset(*asset);
        return;
      }
    }
    respond(http::status::not_found, "not found", req.keep_alive());
  }

  void serve_asset(const web::Asset& asset) {
    send(std::make_shared<web::Response>(web::respond(asset, parser_->get())));
  }

  // Writes a response; then reads the next request, or shuts down when not kept alive.
  template <class Response>
  void send(std::shared_ptr<Response> res) {
    const bool keep_alive = res->keep_alive();
    http::async_write(
        stream_, *res,
        [self = this->shared_from_this(), res, keep_alive](beast::error_code ec, std::size_t) {
          if (ec) return;
          if (keep_alive) {
            self->do_read();
          } else {
            self->shutdown();
          }
        });
  }

  // What the gate needs from the request (views into the parser's request and `target`).
  UpgradeRequest credentials(const Target& target) {
    auto& req = parser_->get();
    UpgradeRequest check;
    check.remote_address = remote_;
    if (auto it = req.find(http::field::authorization); it != req.end()) {
      check.authorization = it->value();
    }
    if (target.token) check.query_token = *target.token;
    check.host = req[http::field::host];
    return check;
  }

  void upgrade(const Target& target) {
    if (target.client_name && !protocol::valid_client_name(*target.client_name)) {
      respond(http::status::bad_request,
              "client_name must be 1 to " + std::to_string(protocol::kMaxClientNameBytes) +
                  " bytes of printable UTF-8",
              false);
      return;
    }
    devices::Identity who;
    if (auto refusal = gate_refusal(target, Counting::kEach, &who)) {
      respond(*refusal);
      return;
    }
    if (!hub_->admit_connection()) {
      respond(at_limits());
      return;
    }
    if (who.is_device())  // the device, never its token
      spdlog::debug("WebSocket from {}: device {} ({}, {})", remote_, who.device_id,
                    who.device_name, devices::role_name(who.role));
    auto session = std::make_shared<WsSession<Stream>>(
        std::move(stream_), hub_, remote_, target.client_name.value_or(""), std::move(who));
    session->run(parser_->release());
  }

  // An answer that refuses the request: status, the {"error"} text, and Retry-After for 429.
  struct Refused {
    http::status status;
    std::string message;
    std::chrono::seconds retry_after{0};
  };

  // What the gate says to this request's token and Origin: nothing when it may pass. The same
  // for a WebSocket upgrade and for /auth/check, which tells a browser why its upgrade failed.
  std::optional<Refused> gate_refusal(const Target& target, Counting counting,
                                      devices::Identity* who = nullptr) {
    auto& req = parser_->get();
    UpgradeRequest check = credentials(target);
    if (auto it = req.find(http::field::origin); it != req.end()) check.origin = it->value();
    switch (gate_->check_upgrade(check, Clock::now(), counting, who)) {
      case Verdict::kAllow:
        return std::nullopt;
      case Verdict::kUnauthorized:
        spdlog::warn("rejected {} from {}: missing or wrong token", describe(target), remote_);
        return Refused{http::status::unauthorized,
                       "missing or wrong token: send 'Authorization: Bearer <token>' or "
                       "?token=<token> (see `pocket-agent-server token`)"};
      case Verdict::kForbiddenOrigin:
        spdlog::warn("rejected {} from {}: Origin not allowed", describe(target), remote_);
        return Refused{http::status::forbidden,
                       "Origin not allowed; add it to auth.allowed_origins"};
      case Verdict::kTooManyFailures:
      case Verdict::kRateLimited:
        return Refused{http::status::too_many_requests, kTooManyWrongTokens,
                       std::max(std::chrono::seconds(1), gate_->blocked_for(remote_))};
    }
    return std::nullopt;
  }

  std::string describe(const Target& target) const {
    if (target.path == "/ws") return "WebSocket upgrade";
    return std::string(parser_->get().method_string()) + " " + target.path;
  }

  // limits.max_connections reached, or shutting down: 503.
  Refused at_limits() {
    return Refused{http::status::service_unavailable,
                   hub_->stopping() ? std::string("server shutting down; try again later")
                                    : at_limit_message(hub_->config().limits)};
  }

  // GET (or POST, so that a browser sends its Origin) /auth/check: what a WebSocket upgrade
  // with these credentials and this Origin would get now, without upgrading: 204, or the
  // upgrade's own refusal. A browser cannot read the status of a failed upgrade; the console
  // asks here after one. A wrong token counts as the upgrade's does, but the same wrong token
  // right after the failed upgrade does not count a second time (Counting::kOncePerAttempt).
  void auth_check(const Target& target) {
    if (auto refusal = gate_refusal(target, Counting::kOncePerAttempt)) {
      respond(*refusal, parser_->get().keep_alive());
      return;
    }
    // Admission as for an upgrade, given back at once: only the answer is wanted.
    if (!hub_->admit_connection()) {
      respond(at_limits(), parser_->get().keep_alive());
      return;
    }
    hub_->release_connection();
    write(http::status::no_content, "", "application/json", parser_->get().keep_alive());
  }

  // POST /pair {code, name?}: a new device redeems its pairing code (no token: the code is the
  // credential) and gets its own token. The Origin is checked as for /auth/check; a JSON
  // Content-Type makes a cross-origin browser ask first (a preflight this server never allows).
  void pair() {
    auto& req = parser_->get();
    const bool keep_alive = req.keep_alive();
    if (auto it = req.find(http::field::origin);
        it != req.end() && !gate_->origin_allowed(it->value(), req[http::field::host])) {
      spdlog::warn("rejected POST /pair from {}: Origin not allowed", remote_);
      write_pair(server::PairAnswer{403,
                                    json::object{{"error",
                                                  "Origin not allowed; add it to "
                                                  "auth.allowed_origins"},
                                                 {"reason", "origin_not_allowed"}},
                                    {}},
                 keep_alive);
      return;
    }
    const auto type = req[http::field::content_type];
    if (!beast::iequals(trim(type.substr(0, type.find(';'))), "application/json")) {
      write_pair(server::PairAnswer{415,
                                    json::object{{"error",
                                                  "send the body as Content-Type: "
                                                  "application/json"},
                                                 {"reason", "unsupported_media_type"}},
                                    {}},
                 keep_alive);
      return;
    }
    // devices.json is written: off the I/O thread.
    asio::post(hub_->blocking_pool(),
               [self = this->shared_from_this(), body = std::move(req.body()), keep_alive] {
                 auto answer = self->hub_->pair_device(body, self->remote_);
                 asio::dispatch(self->stream_.get_executor(),
                                [self, answer = std::move(answer), keep_alive]() mutable {
                                  self->write_pair(std::move(answer), keep_alive);
                                });
               });
  }

  void write_pair(server::PairAnswer answer, bool keep_alive) {
    write(static_cast<http::status>(answer.status), protocol::to_json_text(answer.body),
          "application/json", keep_alive, answer.retry_after);
  }

  // Prometheus text; the token is required unless metrics.public (Origin is not checked: this
  // is not a browser endpoint).
  void serve_metrics(const Target& target) {
    auto& req = parser_->get();
    if (!hub_->config().metrics.is_public) {
      switch (gate_->check_upgrade(credentials(target))) {
        case Verdict::kAllow:
          break;
        case Verdict::kTooManyFailures:
        case Verdict::kRateLimited:
          respond(Refused{http::status::too_many_requests, kTooManyWrongTokens,
                          std::max(std::chrono::seconds(1), gate_->blocked_for(remote_))});
          return;
        default:
          respond(http::status::unauthorized,
                  "missing or wrong token: send 'Authorization: Bearer <token>' (or set "
                  "metrics.public)",
                  false);
          return;
      }
    }
    write(http::status::ok, hub_->render_metrics(), "text/plain; version=0.0.4; charset=utf-8",
          req.keep_alive());
  }

  void serve_health(bool keep_alive) {
    asio::post(hub_->blocking_pool(), [self = this->shared_from_this(), keep_alive] {
      auto data = self->hub_->health_data();
      const bool unhealthy = data.at("status").as_string() == "unhealthy";
      std::string body = protocol::to_json_text(data);
      asio::dispatch(self->stream_.get_executor(),
                     [self, body = std::move(body), keep_alive, unhealthy]() mutable {
                       self->write(unhealthy ? http::status::service_unavailable : http::status::ok,
                                   std::move(body), "application/json", keep_alive);
                     });
    });
  }

  void respond(http::status status, std::string message, bool keep_alive) {
    write(status, json::serialize(json::object{{"error", message}}), "application/json",
          keep_alive);
  }

  void respond(const Refused& refused, bool keep_alive = false) {
    write(refused.status, json::serialize(json::object{{"error", refused.message}}),
          "application/json", keep_alive, refused.retry_after);
  }

  void write(http::status status, std::string body, const char* content_type, bool keep_alive,
             std::chrono::seconds retry_after = std::chrono::seconds(0)) {
    auto res = std::make_shared<http::response<http::string_body>>(status, 11);
    res->set(http::field::server, "pocket-agent-server");
    res->set(http::field::content_type, content_type);
    res->set(http::field::cache_control, "no-store");
    if (status == http::status::unauthorized) res->set(http::field::www_authenticate, "Bearer");
    if (retry_after.count() > 0)
      res->set(http::field::retry_after, std::to_string(retry_after.count()));
    res->keep_alive(keep_alive);
    res->body() = std::move(body);
    res->prepare_payload();
    send(std::move(res));
  }

  void shutdown() {
    if constexpr (kTls) {
      beast::get_lowest_layer(stream_).expires_after(std::chrono::seconds(5));
      stream_.async_shutdown([self = this->shared_from_this()](beast::error_code) {
        beast::error_code ignored;
        beast::get_lowest_layer(self->stream_)
            .socket()
            .shutdown(asio::ip::tcp::socket::shutdown_both, ignored);
      });
    } else {
      beast::error_code ignored;
      stream_.socket().shutdown(asio::ip::tcp::socket::shutdown_send, ignored);
    }
  }

  // The listener's socket slot, released after the socket is closed: declared first.
  const std::shared_ptr<void> hold_;
  Stream stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  std::shared_ptr<server::SessionHost> hub_;
  std::shared_ptr<Gate> gate_;
  const std::string remote_;
  const bool rate_limited_;
  const Serve serve_;
  const std::string refuse_;
  const std::function<void(asio::ip::tcp::socket&)> reclaim_;
};

}  // namespace

void start_http_session(asio::ip::tcp::socket socket, std::shared_ptr<server::SessionHost> hub,
                        std::shared_ptr<Gate> gate, std::shared_ptr<asio::ssl::context> tls,
                        Serve serve, std::shared_ptr<void> hold, Refusal refusal) {
  beast::error_code ec;
  const auto endpoint = socket.remote_endpoint(ec);
  if (ec) {  // already gone
    if (refusal.reclaim) refusal.reclaim(socket);
    return;
  }
  socket.set_option(asio::ip::tcp::no_delay(true), ec);
  std::string remote = endpoint.address().to_string();
  const bool rate_limited = !gate->allow_connection(remote);
  if (tls) {
    std::make_shared<HttpSession<TlsStream>>(TlsStream(std::move(socket), *tls), std::move(hub),
                                             std::move(gate), std::move(remote), rate_limited,
                                             serve, std::move(hold), std::move(refusal))
        ->run();
  } else {
    std::make_shared<HttpSession<beast::tcp_stream>>(
        beast::tcp_stream(std::move(socket)), std::move(hub), std::move(gate), std::move(remote),
        rate_limited, serve, std::move(hold), std::move(refusal))
        ->run();
  }
}

}  // namespace pa::net
