#include "net/tls.hpp"

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <filesystem>
#include <stdexcept>

namespace pa::net {

namespace ssl = boost::asio::ssl;

namespace {
std::string openssl_error() {
  const unsigned long code = ERR_get_error();
  if (code == 0) return "unknown OpenSSL error";
  char buf[256];
  ERR_error_string_n(code, buf, sizeof buf);
  ERR_clear_error();
  return buf;
}

bool is_tls13_suite(const std::string& name) {
  return name.rfind("TLS_AES_", 0) == 0 || name.rfind("TLS_CHACHA20_", 0) == 0;
}

void check_file(const std::string& what, const std::string& path, const std::string& key) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) {
    throw std::runtime_error("TLS " + what + " " + path + " does not exist; run `make certs` for " +
                             "a development certificate, or set " + key);
  }
}
// Session resumption: phones reconnect often, and a resumed handshake skips the certificate
// signature. Stateless tickets (TLS 1.3 and 1.2) are encrypted with keys OpenSSL makes per
// process at start-up, so a restart invalidates them (clients then make a full handshake).
void enable_resumption(SSL_CTX* native) {
  SSL_CTX_clear_options(native, SSL_OP_NO_TICKET);
  // One ticket per TLS 1.3 handshake (default 2): a reconnect uses one and gets a fresh one.
  if (SSL_CTX_set_num_tickets(native, 1) != 1) {
    throw std::runtime_error("cannot set the number of TLS session tickets: " + openssl_error());
  }
  // OpenSSL refuses to resume a session whose context differs from the server's (and with client
  // certificates it would fail the handshake without one).
  static constexpr unsigned char kSessionContext[] = "pocket-agent-server";
  if (SSL_CTX_set_session_id_context(native, kSessionContext, sizeof kSessionContext - 1) != 1) {
    throw std::runtime_error("cannot set the TLS session id context: " + openssl_error());
  }
}
}  // namespace

ssl::context make_tls_context(const config::Config::Tls& tls) {
  ssl::context ctx(ssl::context::tls_server);
  ctx.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                  ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1 |
                  ssl::context::no_compression | ssl::context::single_dh_use);
  SSL_CTX* native = ctx.native_handle();
  SSL_CTX_set_options(native, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
  const int min_version = tls.min_version == "1.3" ? TLS1_3_VERSION : TLS1_2_VERSION;
  if (SSL_CTX_set_min_proto_version(native, min_version) != 1) {
    throw std::runtime_error("cannot set TLS minimum version " + tls.min_version + ": " +
                             openssl_error());
  }

  if (!tls.cipher_suites.empty()) {
    std::string list12;
    std::string list13;
    for (const auto& suite : tls.cipher_suites) {
      if (is_tls13_suite(suite)) {
        list13 += (list13.empty() ? "" : ":") + suite;
        continue;
      }
      // IANA names (TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256) map to OpenSSL names.
      std::string name = suite;
      if (suite.rfind("TLS_", 0) == 0) {
        const char* mapped = OPENSSL_cipher_name(suite.c_str());
        if (mapped == nullptr || std::string(mapped) == "(NONE)") {
          throw std::runtime_error("invalid value for tls.cipher_suites: \"" + suite +
                                   "\": not a cipher suite OpenSSL knows");
        }
        name = mapped;
      }
      list12 += (list12.empty() ? "" : ":") + name;
    }
    if (!list12.empty() && SSL_CTX_set_cipher_list(native, list12.c_str()) != 1) {
      throw std::runtime_error("invalid value for tls.cipher_suites: \"" + list12 +
                               "\": " + openssl_error());
    }
    if (!list13.empty() && SSL_CTX_set_ciphersuites(native, list13.c_str()) != 1) {
      throw std::runtime_error("invalid value for tls.cipher_suites: \"" + list13 +
                               "\": " + openssl_error());
    }
  }

  check_file("certificate", tls.cert, "tls.cert / PA_TLS_CERT");
  check_file("key", tls.key, "tls.key / PA_TLS_KEY");
  if (SSL_CTX_use_certificate_chain_file(native, tls.cert.c_str()) != 1) {
    throw std::runtime_error("cannot load TLS certificate " + tls.cert + ": " + openssl_error() +
                             "; run `make certs` or point tls.cert at a PEM certificate");
  }
  if (SSL_CTX_use_PrivateKey_file(native, tls.key.c_str(), SSL_FILETYPE_PEM) != 1) {
    throw std::runtime_error("cannot load TLS key " + tls.key + ": " + openssl_error() +
                             "; run `make certs` or point tls.key at a PEM private key");
  }
  if (SSL_CTX_check_private_key(native) != 1) {
    throw std::runtime_error("TLS key " + tls.key + " does not match certificate " + tls.cert);
  }
  enable_resumption(native);
  // Frees an idle connection's OpenSSL record buffers. Asio's stream sets it on every SSL too;
  // its own buffers (2 x 17 KiB in stream_core, 2 x 17 KiB in the BIO pair) stay allocated.
  SSL_CTX_set_mode(native, SSL_MODE_RELEASE_BUFFERS);
  return ctx;
}

}  // namespace pa::net
