#include "net/gate.hpp"

#include <arpa/inet.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <algorithm>
#include <cctype>

namespace pa::net {

namespace {
constexpr auto kFailureWindow = std::chrono::minutes(1);
constexpr auto kBlockTime = std::chrono::minutes(1);
constexpr std::size_t kMaxTrackedAddresses = 10000;
// A check right after a failed upgrade (Counting::kOncePerAttempt) comes within this.
constexpr auto kSameAttempt = std::chrono::seconds(10);

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

bool is_ip_literal(const std::string& host) {
  unsigned char buf[16];
  return ::inet_pton(AF_INET, host.c_str(), buf) == 1 ||
         ::inet_pton(AF_INET6, host.c_str(), buf) == 1;
}

// "name" matches itself; "*.example.com" matches any name below example.com; "*" matches all.
bool name_matches(const std::string& pattern, const std::string& name) {
  if (pattern == "*") return true;
  if (pattern.starts_with("*.")) {
    const std::string_view suffix = std::string_view(pattern).substr(1);  // ".example.com"
    return name.size() > suffix.size() && name.ends_with(suffix);
  }
  return pattern == name;
}
}  // namespace

Gate::Gate(GateOptions options) : options_(std::move(options)) {}

std::string Gate::host_name_of(std::string_view authority) {
  std::string_view host = authority;
  if (host.starts_with('[')) {
    const auto close = host.find(']');
    if (close == std::string_view::npos) return {};
    const auto rest = host.substr(close + 1);
    if (!rest.empty() && (rest.front() != ':' || rest.size() == 1 ||
                          rest.substr(1).find_first_not_of("0123456789") != std::string_view::npos))
      return {};
    host = host.substr(1, close - 1);
  } else if (const auto colon = host.rfind(':'); colon != std::string_view::npos) {
    const auto port = host.substr(colon + 1);
    if (port.empty() || port.find_first_not_of("0123456789") != std::string_view::npos ||
        host.substr(0, colon).find(':') != std::string_view::npos)
      return {};
    host = host.substr(0, colon);
  }
  std::string out = lower(host);
  if (out.size() > 1 && out.back() == '.') out.pop_back();
  if (out.empty() || out.size() > 253) return {};
  for (unsigned char c : out) {
    if (!(std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == ':' || c == '%')) return {};
  }
  return out;
}

void Gate::set_certificate_names(std::vector<std::string> names) {
  for (auto& n : names) n = lower(n);
  std::lock_guard lock(names_mutex_);
  certificate_names_ = std::move(names);
}

bool Gate::host_allowed(std::string_view host_header) const {
  const std::string host = host_name_of(host_header);
  if (host.empty()) return false;
  if (is_ip_literal(host)) return true;
  if (host == "localhost" || host.ends_with(".localhost")) return true;
  for (const auto& allowed : options_.allowed_hosts) {
    if (name_matches(lower(allowed), host)) return true;
  }
  std::lock_guard lock(names_mutex_);
  return std::any_of(certificate_names_.begin(), certificate_names_.end(),
                     [&](const std::string& name) { return name_matches(name, host); });
}

bool Gate::tokens_equal(std::string_view a, std::string_view b) {
  if (a.size() != b.size() || a.empty()) return false;
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

bool Gate::origin_allowed(std::string_view origin, std::string_view host) const {
  const std::string o = lower(origin);
  // The server's own origin (its console) is always allowed; auth.allowed_origins adds others.
  if (!host.empty() && o == (options_.tls ? "https://" : "http://") + lower(host)) return true;
  return std::any_of(
      options_.allowed_origins.begin(), options_.allowed_origins.end(),
      [&](const std::string& allowed) { return allowed == "*" || lower(allowed) == o; });
}

void Gate::prune(Clock::time_point now) {
  if (now - last_prune_ < std::chrono::seconds(10) &&
      buckets_.size() + failures_.size() < kMaxTrackedAddresses)
    return;
  last_prune_ = now;
  // A bucket that has refilled completely says nothing a fresh one would not; keeping any other
  // (however slow the rate) is what makes the rate hold below one connection per 10 s.
  const double burst = std::max(1.0, options_.connection_rate);
  std::erase_if(buckets_, [&](const auto& kv) {
    const double idle = std::chrono::duration<double>(now - kv.second.updated).count();
    return kv.second.tokens + idle * options_.connection_rate >= burst;
  });
  std::erase_if(failures_, [&](const auto& kv) {
    return now > kv.second.blocked_until && now - kv.second.window_start > kFailureWindow;
  });
}

bool Gate::allow_connection(std::string_view remote_address, Clock::time_point now) {
  if (options_.connection_rate <= 0) return true;
  std::lock_guard lock(mutex_);
  prune(now);
  const double burst = std::max(1.0, options_.connection_rate);
  auto [it, inserted] = buckets_.try_emplace(std::string(remote_address), Bucket{burst, now});
  Bucket& b = it->second;
  if (!inserted) {
    const double elapsed = std::chrono::duration<double>(now - b.updated).count();
    b.tokens = std::min(burst, b.tokens + elapsed * options_.connection_rate);
    b.updated = now;
  }
  if (b.tokens < 1.0) return false;
  b.tokens -= 1.0;
  return true;
}

// The right token always passes, even from an address that sent wrong ones: otherwise anyone on
// the owner's network (or the owner's own client retrying a stale token) could lock the owner
// out. Only wrong and missing tokens count, and past auth.max_failures in a minute they get 429
// instead of 401 for the next minute. (The token is long and random; the per-address
// connection rate still bounds guessing.)
Verdict Gate::check_upgrade(const UpgradeRequest& request, Clock::time_point now, Counting counting,
                            devices::Identity* who) {
  if (request.origin && !origin_allowed(*request.origin, request.host)) {
    return Verdict::kForbiddenOrigin;
  }
  if (who != nullptr) *who = devices::Identity{};  // the master token's: admin, no device
  if (!options_.auth_enabled) return Verdict::kAllow;

  // The header's token first, then the query's; each may be the master token or a device's.
  std::optional<std::string_view> bearer;
  if (request.authorization) {
    constexpr std::string_view kBearer = "Bearer ";
    const auto header = *request.authorization;
    if (header.size() > kBearer.size() && lower(header.substr(0, kBearer.size())) == "bearer ")
      bearer = header.substr(kBearer.size());
  }
  std::string_view presented;  // the last token looked at: what a failure counts
  for (const auto& token : {bearer, request.query_token}) {
    if (!token) continue;
    presented = *token;
    if (tokens_equal(presented, options_.token)) return Verdict::kAllow;
    if (options_.device_identity) {
      if (auto device = options_.device_identity(presented)) {
        if (who != nullptr) *who = std::move(*device);
        return Verdict::kAllow;
      }
    }
  }

  Digest digest{};
  unsigned int digest_size = 0;
  EVP_Digest(presented.data(), presented.size(), digest.data(), &digest_size, EVP_sha256(),
             nullptr);
  std::lock_guard lock(mutex_);
  prune(now);
  Failures& f = failures_[std::string(request.remote_address)];
  if (now < f.blocked_until) return Verdict::kTooManyFailures;
  if (counting == Counting::kOncePerAttempt && f.count > 0 && f.last_wrong == digest &&
      now - f.last_counted < kSameAttempt)
    return Verdict::kUnauthorized;
  if (now - f.window_start > kFailureWindow) {
    f.window_start = now;
    f.count = 0;
  }
  f.last_wrong = digest;
  f.last_counted = now;
  if (++f.count >= options_.max_failures) f.blocked_until = now + kBlockTime;
  return Verdict::kUnauthorized;
}

std::chrono::seconds Gate::blocked_for(std::string_view remote_address, Clock::time_point now) {
  std::lock_guard lock(mutex_);
  const auto it = failures_.find(std::string(remote_address));
  if (it == failures_.end() || now >= it->second.blocked_until) return std::chrono::seconds(0);
  return std::chrono::ceil<std::chrono::seconds>(it->second.blocked_until - now);
}

}  // namespace pa::net
