// The server's TLS context from configuration. Throws std::runtime_error with a one-line,
// actionable message (start-up only).
#pragma once

#include <boost/asio/ssl/context.hpp>

#include "config/config.hpp"

namespace pa::net {

boost::asio::ssl::context make_tls_context(const config::Config::Tls& tls);

}  // namespace pa::net
