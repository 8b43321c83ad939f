// Who may open a WebSocket: bearer token, Origin, per-address connection rate and
// authentication-failure limits. Pure logic, thread-safe; unit-tested in tests/net.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "devices/identity.hpp"

namespace pa::net {

using Clock = std::chrono::steady_clock;

enum class Verdict { kAllow, kUnauthorized, kForbiddenOrigin, kTooManyFailures, kRateLimited };

struct GateOptions {
  bool auth_enabled = true;
  std::string token;
  std::vector<std::string> allowed_origins;  // beside the server's own origin (always allowed)
  bool tls = true;                           // scheme of the server's own origin
  // Wrong or missing tokens per address per minute; past it those get 429 for a minute (the
  // right token always passes).
  std::uint64_t max_failures = 10;
  double connection_rate = 10;  // new connections per second per address; 0 = off
  // Names a Host header may carry (besides IP literals and localhost): the server's own names
  // (server.host, the machine's name, auth.allowed_origins hosts) and server.allowed_hosts.
  // "*.example.com" matches its subdomains; "*" matches any host (the check is off).
  std::vector<std::string> allowed_hosts;
  // A paired device's token -> its identity (devices::DeviceStore::authenticate, constant time);
  // nullopt for any other string. Unset: only the master token is accepted.
  std::function<std::optional<devices::Identity>(std::string_view token)> device_identity;
};

struct UpgradeRequest {
  std::string_view remote_address;
  std::optional<std::string_view> authorization;  // the Authorization header
  std::optional<std::string_view> query_token;    // ?token=
  std::optional<std::string_view> origin;         // the Origin header
  std::string_view host;                          // the Host header
};

// How a wrong token counts towards auth.max_failures.
enum class Counting {
  kEach,  // every one (a WebSocket upgrade, /metrics)
  // Not again when the same address sent the same wrong token within a few seconds: GET /auth/check
  // asks why the upgrade just failed, and one failed attempt must not count twice. (A different
  // wrong token counts, so the check is no way around the limit.)
  kOncePerAttempt,
};

class Gate {
 public:
  explicit Gate(GateOptions options);

  // Called for every new HTTP connection: false when the address opens them too fast.
  bool allow_connection(std::string_view remote_address, Clock::time_point now = Clock::now());
  // The master token (auth.token) or a paired device's token. On kAllow, `who` (when given) is
  // the caller's identity: admin without a device for the master token (and when auth is off).
  Verdict check_upgrade(const UpgradeRequest& request, Clock::time_point now = Clock::now(),
                        Counting counting = Counting::kEach, devices::Identity* who = nullptr);
  // While `remote_address` gets 429 for wrong tokens: how long still (whole seconds, at least 1);
  // else 0.
  std::chrono::seconds blocked_for(std::string_view remote_address,
                                   Clock::time_point now = Clock::now());

  // Constant-time comparison (no early exit on the first differing byte).
  static bool tokens_equal(std::string_view a, std::string_view b);
  bool origin_allowed(std::string_view origin, std::string_view host) const;
  // DNS rebinding: a page from an attacker's name that resolves to this server's address is
  // same-origin to the browser, so the Origin check passes; its Host header still carries the
  // attacker's name. True when `host` (a Host header, port optional) is an IP literal (a rebinding
  // needs a name), localhost or *.localhost, or one of allowed_hosts or the certificate's names.
  bool host_allowed(std::string_view host) const;
  // The DNS names of the TLS certificate (subjectAltName), replaced when it is reloaded.
  void set_certificate_names(std::vector<std::string> names);
  // The host part of a Host header or URL authority, lower case, without port or trailing dot
  // ("[::1]:8443" -> "::1", "Example.COM.:443" -> "example.com"); empty when malformed.
  static std::string host_name_of(std::string_view authority);

 private:
  struct Bucket {
    double tokens = 0;
    Clock::time_point updated;
  };
  using Digest = std::array<unsigned char, 32>;  // SHA-256 of a wrong token (never the token)
  struct Failures {
    std::uint64_t count = 0;
    Clock::time_point window_start;
    Clock::time_point blocked_until;
    Digest last_wrong{};  // the last wrong token counted, and when (Counting::kOncePerAttempt)
    Clock::time_point last_counted;
  };
  void prune(Clock::time_point now);

  const GateOptions options_;
  std::mutex mutex_;
  std::unordered_map<std::string, Bucket> buckets_;
  std::unordered_map<std::string, Failures> failures_;
  Clock::time_point last_prune_;
  mutable std::mutex names_mutex_;
  std::vector<std::string> certificate_names_;
};

}  // namespace pa::net
