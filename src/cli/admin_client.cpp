#include "cli/admin_client.hpp"

#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <optional>
#include <variant>

#include "cli/exit_codes.hpp"
#include "net/token_file.hpp"
#include "version.hpp"

namespace pa::cli {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
namespace json = boost::json;
using tcp = asio::ip::tcp;

namespace {

// The answers this client reads are small (a device list of at most 200 entries).
constexpr std::size_t kMaxMessageBytes = 4 * 1024 * 1024;
constexpr std::size_t kMaxQuotedBodyBytes = 200;

// Where a server bound to `host` can be reached from this machine: its loopback address when it
// listens on every address (or on localhost), else that very address.
std::string connect_address(const std::string& host) {
  if (host.empty() || host == "localhost") return "127.0.0.1";
  boost::system::error_code ec;
  const auto address = asio::ip::make_address(host, ec);
  if (ec) return host;  // the server refuses such a host too; connect() reports it
  if (address.is_unspecified()) return address.is_v6() ? "::1" : "127.0.0.1";
  return address.to_string();
}

std::string host_and_port(const Endpoint& e) {
  const bool v6 = e.address.find(':') != std::string::npos;
  return (v6 ? "[" + e.address + "]" : e.address) + ":" + std::to_string(e.port);
}

struct X509Free {
  void operator()(X509* cert) const { X509_free(cert); }
};
using X509Ptr = std::unique_ptr<X509, X509Free>;

// The first certificate of the PEM file the server is configured with.
X509Ptr load_pinned_certificate(const std::string& path) {
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> file(std::fopen(path.c_str(), "r"), std::fclose);
  if (!file)
    throw CliError(kExitUsage, "cannot read server.tls.cert " + path +
                                   " (the server's certificate, which this command expects the "
                                   "server to present): pass the same --config or --tls-cert as "
                                   "the server");
  X509Ptr cert(PEM_read_X509(file.get(), nullptr, nullptr, nullptr));
  if (!cert)
    throw CliError(kExitUsage,
                   "server.tls.cert " + path + " holds no PEM certificate: pass the server's own");
  return cert;
}

// The printable start of an HTTP body (a refused upgrade's explanation).
std::string quote_body(const std::string& body) {
  std::string out;
  for (const char c : body.substr(0, kMaxQuotedBodyBytes))
    out += (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) ? ' ' : c;
  while (!out.empty() && out.back() == ' ') out.pop_back();
  return out;
}

std::string string_field(const json::object& o, std::string_view key) {
  const auto* v = o.if_contains(key);
  return v && v->is_string() ? std::string(v->get_string()) : std::string();
}

}  // namespace

Endpoint endpoint_of(const config::Config& config) {
  Endpoint e;
  e.address = connect_address(config.server.host);
  e.port = config.server.port;
  e.tls = config.tls.enabled;
  e.pinned_cert = config.tls.cert;
  e.data_dir = config.data.dir;
  if (e.port == 0)
    throw CliError(kExitUsage,
                   "server.port is 0 (the server picks a free port): pass the port it listens on, "
                   "--port N (its log line \"listening on ...\" names it)");
  if (!config.auth.enabled) return e;
  if (!config.auth.token.empty()) {
    e.token = config.auth.token;
    return e;
  }
  const auto path = net::token_path(config.data.dir);
  std::error_code ec;
  if (!std::filesystem::exists(path, ec))
    throw CliError(kExitNotRunning,
                   "no access token in " + path.string() + ": the server has not run with data " +
                       "directory " + config.data.dir +
                       ". Start it (make run, or pocket-agent-server --data-dir " +
                       config.data.dir + "), or pass the server's --config / --data-dir");
  try {
    bool created = false;
    e.token = net::load_or_create_token(config.data.dir, created);
  } catch (const std::exception& ex) {
    throw CliError(kExitUsage, ex.what());
  }
  return e;
}

struct AdminClient::Impl {
  using PlainWs = websocket::stream<beast::tcp_stream>;
  using TlsWs = websocket::stream<beast::ssl_stream<beast::tcp_stream>>;

  Endpoint endpoint;
  std::chrono::milliseconds step_deadline;
  asio::io_context io{1};
  std::optional<asio::ssl::context> tls_context;
  X509Ptr pinned;
  bool pin_mismatch = false;  // set by the verify callback: another certificate was presented
  std::variant<std::monostate, PlainWs, TlsWs> ws;
  unsigned next_request = 1;

  tcp::socket& socket() {
    return std::visit(
        [](auto& s) -> tcp::socket& {
          if constexpr (std::is_same_v<std::decay_t<decltype(s)>, std::monostate>)
            throw std::logic_error("not connected");
          else
            return beast::get_lowest_layer(s).socket();
        },
        ws);
  }

  // Runs the io_context until the operation started before completes or the step's deadline
  // passes; then the socket is closed, which ends the operation with an error.
  void await(const bool& done, const std::string& step) {
    io.restart();
    io.run_for(step_deadline);
    if (done) return;
    boost::system::error_code ignored;
    socket().close(ignored);
    io.restart();
    io.run();
    throw CliError(kExitFailed, "the server on " + host_and_port(endpoint) + " did not finish " +
                                    step + " within " +
                                    std::to_string(step_deadline.count() / 1000) + " s");
  }

  void make_tls_context() {
    pinned = load_pinned_certificate(endpoint.pinned_cert);
    tls_context.emplace(asio::ssl::context::tls_client);
    tls_context->set_verify_mode(asio::ssl::verify_peer);
    // The server is our own, on this machine: its certificate must be the configured one (often
    // self-signed, so no CA would vouch for it). The issuers above it do not matter.
    tls_context->set_verify_callback([this](bool, asio::ssl::verify_context& context) {
      X509_STORE_CTX* store = context.native_handle();
      if (X509_STORE_CTX_get_error_depth(store) > 0) return true;
      const bool same = X509_cmp(X509_STORE_CTX_get_current_cert(store), pinned.get()) == 0;
      if (!same) pin_mismatch = true;
      return same;
    });
  }

  void connect_tcp(tcp::socket& s) {
    boost::system::error_code address_ec;
    const auto address = asio::ip::make_address(endpoint.address, address_ec);
    if (address_ec)
      throw CliError(kExitUsage, "server.host " + endpoint.address +
                                     " is not an IP address: set it to the address the server "
                                     "listens on");
    bool done = false;
    boost::system::error_code ec;
    s.async_connect(tcp::endpoint(address, endpoint.port), [&](boost::system::error_code e) {
      ec = e;
      done = true;
    });
    await(done, "the connection");
    if (ec == asio::error::connection_refused)
      throw CliError(kExitNotRunning,
                     "the server is not running: nothing listens on " + host_and_port(endpoint) +
                         " (connection refused). Start it with `make run` or "
                         "`pocket-agent-server --config FILE`, and give this command the same "
                         "--config / --port");
    if (ec)
      throw CliError(kExitFailed,
                     "cannot connect to " + host_and_port(endpoint) + ": " + ec.message());
  }

  template <class Stream>
  void upgrade(Stream& s) {
    s.read_message_max(kMaxMessageBytes);
    const std::string token = endpoint.token;
    s.set_option(websocket::stream_base::decorator([token](websocket::request_type& req) {
      req.set(http::field::user_agent, std::string("pocket-agent-server-cli/") + pa::kVersion);
      if (!token.empty()) req.set(http::field::authorization, "Bearer " + token);
    }));
    websocket::response_type response;
    bool done = false;
    boost::system::error_code ec;
    s.async_handshake(response, host_and_port(endpoint), "/ws", [&](boost::system::error_code e) {
      ec = e;
      done = true;
    });
    await(done, "the WebSocket upgrade");
    if (!ec) return;
    const auto status = response.result_int();
    if (status == 401)
      throw CliError(kExitUnauthorized,
                     "the server refused the token (401): it is not the running server's. Give "
                     "this command the server's --config / --data-dir (auth.token, else " +
                         net::token_path(endpoint.data_dir).string() + ")");
    if (status == 429)
      throw CliError(kExitUnauthorized,
                     "the server refuses this address for now after too many failed attempts "
                     "(429): wait a minute and try again");
    if (status != 0)
      throw CliError(kExitFailed, "the server refused the WebSocket upgrade: HTTP " +
                                      std::to_string(status) + " " + quote_body(response.body()));
    throw CliError(kExitFailed, "the WebSocket upgrade with " + host_and_port(endpoint) +
                                    " failed: " + ec.message() +
                                    (endpoint.tls ? ""
                                                  : " (is TLS on at the server? this "
                                                    "command has tls.enabled false)"));
  }

  void connect() {
    if (endpoint.tls) {
      make_tls_context();
      auto& s = ws.emplace<TlsWs>(io, *tls_context);
      connect_tcp(beast::get_lowest_layer(s).socket());
      bool done = false;
      boost::system::error_code ec;
      s.next_layer().async_handshake(asio::ssl::stream_base::client,
                                     [&](boost::system::error_code e) {
                                       ec = e;
                                       done = true;
                                     });
      await(done, "the TLS handshake");
      if (ec && pin_mismatch)
        throw CliError(kExitFailed, "the server on " + host_and_port(endpoint) +
                                        " presents a TLS certificate other than server.tls.cert (" +
                                        endpoint.pinned_cert +
                                        "): another program may listen on that port, or the "
                                        "server runs with another certificate; pass its --config");
      if (ec)
        throw CliError(kExitFailed, "TLS handshake with " + host_and_port(endpoint) +
                                        " failed: " + ec.message() +
                                        " (does the server run with TLS off? then pass --no-tls)");
      upgrade(s);
    } else {
      auto& s = ws.emplace<PlainWs>(io);
      connect_tcp(beast::get_lowest_layer(s).socket());
      upgrade(s);
    }
    json::object hello{{"protocol", 1},
                       {"client_name", "pocket-agent-server CLI"},
                       {"capabilities", json::array()}};
    request("hello", hello, "welcome");
  }

  void write(const std::string& text) {
    bool done = false;
    boost::system::error_code ec;
    std::visit(
        [&](auto& s) {
          if constexpr (!std::is_same_v<std::decay_t<decltype(s)>, std::monostate>) {
            s.text(true);
            s.async_write(asio::buffer(text), [&](boost::system::error_code e, std::size_t) {
              ec = e;
              done = true;
            });
          }
        },
        ws);
    await(done, "reading the request");
    if (ec) throw CliError(kExitFailed, "cannot send to the server: " + ec.message());
  }

  std::string read(const std::string& step) {
    beast::flat_buffer buffer;
    bool done = false;
    boost::system::error_code ec;
    websocket::close_reason closed;
    std::visit(
        [&](auto& s) {
          if constexpr (!std::is_same_v<std::decay_t<decltype(s)>, std::monostate>) {
            s.async_read(buffer, [&](boost::system::error_code e, std::size_t) {
              ec = e;
              done = true;
            });
          }
        },
        ws);
    await(done, step);
    if (ec == websocket::error::closed) {
      std::visit(
          [&](auto& s) {
            if constexpr (!std::is_same_v<std::decay_t<decltype(s)>, std::monostate>)
              closed = s.reason();
          },
          ws);
      throw CliError(kExitFailed,
                     "the server closed the connection (" + std::to_string(closed.code) + " " +
                         quote_body(std::string(closed.reason.data(), closed.reason.size())) + ")");
    }
    if (ec) throw CliError(kExitFailed, "lost the connection to the server: " + ec.message());
    return beast::buffers_to_string(buffer.data());
  }

  json::object request(std::string_view type, const json::object& data,
                       std::string_view answer_type) {
    const std::string id = "cli" + std::to_string(next_request++);
    json::object message{{"type", type}, {"request_id", id}};
    if (!data.empty()) message["data"] = data;
    write(json::serialize(message));
    const std::string step = "the answer to " + std::string(type);
    // Broadcasts (server_stats, ...) may come first: skip them, within an overall deadline.
    const auto until = std::chrono::steady_clock::now() + step_deadline;
    while (std::chrono::steady_clock::now() < until) {
      const std::string text = read(step);
      boost::system::error_code parse_ec;
      const json::value value = json::parse(text, parse_ec);
      if (parse_ec || !value.is_object())
        throw CliError(kExitFailed, "the server sent a message that is not a JSON object");
      const json::object& answer = value.get_object();
      if (string_field(answer, "request_id") != id) continue;
      static const json::object kNoData;
      const auto* answer_data = answer.if_contains("data");
      const json::object& fields =
          answer_data && answer_data->is_object() ? answer_data->get_object() : kNoData;
      const std::string answer_kind = string_field(answer, "type");
      if (answer_kind == "error") {
        const std::string code = string_field(fields, "code");
        const int status = code == "FORBIDDEN"          ? kExitForbidden
                           : code == "DEVICE_NOT_FOUND" ? kExitNotFound
                                                        : kExitFailed;
        throw CliError(status, "the server refused " + std::string(type) + ": " + quote_body(code) +
                                   ": " + quote_body(string_field(fields, "message")));
      }
      if (answer_kind != answer_type)
        throw CliError(kExitFailed, "the server answered " + std::string(type) + " with " +
                                        quote_body(answer_kind) + ", not " +
                                        std::string(answer_type));
      return fields;
    }
    throw CliError(kExitFailed, "the server did not answer " + std::string(type) + " within " +
                                    std::to_string(step_deadline.count() / 1000) + " s");
  }

  void close() {
    bool done = false;
    std::visit(
        [&](auto& s) {
          if constexpr (!std::is_same_v<std::decay_t<decltype(s)>, std::monostate>) {
            if (!s.is_open()) {
              done = true;
              return;
            }
            s.async_close(websocket::close_code::normal,
                          [&](boost::system::error_code) { done = true; });
          }
        },
        ws);
    if (done) return;
    try {
      await(done, "the close");
    } catch (const CliError&) {
      // The answer is in hand; a server slow to close does not make the command fail.
    }
  }
};

AdminClient::AdminClient(Endpoint endpoint, std::chrono::milliseconds step_deadline)
    : impl_(std::make_unique<Impl>()) {
  impl_->endpoint = std::move(endpoint);
  impl_->step_deadline = step_deadline;
}

AdminClient::~AdminClient() = default;

void AdminClient::connect() {
  impl_->connect();
}

json::object AdminClient::request(std::string_view type, const json::object& data,
                                  std::string_view answer_type) {
  return impl_->request(type, data, answer_type);
}

void AdminClient::close() {
  impl_->close();
}

}  // namespace pa::cli
