// The HTTP side of a connection: TLS handshake (if any), one request head within the handshake
// deadline, then /health, the WebSocket upgrade at /ws, or 404.
#pragma once

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <functional>
#include <memory>
#include <string>

#include "net/gate.hpp"
#include "server/session_host.hpp"

namespace pa::net {

// What a listener serves: everything (the main port) or only GET /metrics (metrics.port).
enum class Serve { kAll, kMetricsOnly };

// A connection the listener accepted with its spare descriptor only to answer it 503: `text` is
// the answer to whatever it asks, and `reclaim` gets its socket (still open, unless a timeout
// closed it) when the session ends, so the listener can take the descriptor back as its spare.
struct Refusal {
  std::string text;
  std::function<void(boost::asio::ip::tcp::socket&)> reclaim;
};

// `hold` is kept until the session ends (its socket is closed or handed to a WebSocket
// session): the listener's socket slot.
void start_http_session(boost::asio::ip::tcp::socket socket,
                        std::shared_ptr<server::SessionHost> hub, std::shared_ptr<Gate> gate,
                        std::shared_ptr<boost::asio::ssl::context> tls, Serve serve = Serve::kAll,
                        std::shared_ptr<void> hold = nullptr, Refusal refusal = {});

}  // namespace pa::net
