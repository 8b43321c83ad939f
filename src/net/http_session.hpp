// The HTTP side of a connection: TLS handshake (if any), one request head within the handshake
// deadline, then /health, the WebSocket upgrade at /ws, or 404.
#pragma once

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <memory>
#include <string>

#include "net/gate.hpp"
#include "server/session_host.hpp"

namespace pa::net {

// What a listener serves: everything (the main port) or only GET /metrics (metrics.port).
enum class Serve { kAll, kMetricsOnly };

// `hold` is kept until the session ends (its socket is closed or handed to a WebSocket session):
// the listener's socket slot, or what lets it accept again. A non-empty `refuse` answers the
// request, whatever it is, with 503 and that text (the listener is out of descriptors).
void start_http_session(boost::asio::ip::tcp::socket socket,
                        std::shared_ptr<server::SessionHost> hub, std::shared_ptr<Gate> gate,
                        std::shared_ptr<boost::asio::ssl::context> tls, Serve serve = Serve::kAll,
                        std::shared_ptr<void> hold = nullptr, std::string refuse = {});

}  // namespace pa::net
