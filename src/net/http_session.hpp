// The HTTP side of a connection: TLS handshake (if any), one request head within the handshake
// deadline, then /health, the WebSocket upgrade at /ws, or 404.
#pragma once

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <memory>

#include "net/gate.hpp"
#include "server/hub.hpp"

namespace pa::net {

// What a listener serves: everything (the main port) or only GET /metrics (metrics.port).
enum class Serve { kAll, kMetricsOnly };

void start_http_session(boost::asio::ip::tcp::socket socket, std::shared_ptr<server::Hub> hub,
                        std::shared_ptr<Gate> gate, std::shared_ptr<boost::asio::ssl::context> tls,
                        Serve serve = Serve::kAll);

}  // namespace pa::net
