#include "net/gate.hpp"

#include <openssl/crypto.h>

#include <algorithm>
#include <cctype>

namespace pa::net {

namespace {
constexpr auto kFailureWindow = std::chrono::minutes(1);
constexpr auto kBlockTime = std::chrono::minutes(1);
constexpr std::size_t kMaxTrackedAddresses = 10000;

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}
}  // namespace

Gate::Gate(GateOptions options) : options_(std::move(options)) {}

bool Gate::tokens_equal(std::string_view a, std::string_view b) {
  if (a.size() != b.size() || a.empty()) return false;
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

bool Gate::origin_allowed(std::string_view origin, std::string_view host) const {
  const std::string o = lower(origin);
  if (options_.allowed_origins.empty()) {
    if (host.empty()) return false;
    return o == (options_.tls ? "https://" : "http://") + lower(host);
  }
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

Verdict Gate::check_upgrade(const UpgradeRequest& request, Clock::time_point now) {
  if (options_.auth_enabled) {
    std::lock_guard lock(mutex_);
    prune(now);
    auto it = failures_.find(std::string(request.remote_address));
    if (it != failures_.end() && now < it->second.blocked_until) return Verdict::kTooManyFailures;
  }
  if (request.origin && !origin_allowed(*request.origin, request.host)) {
    return Verdict::kForbiddenOrigin;
  }
  if (!options_.auth_enabled) return Verdict::kAllow;

  bool ok = false;
  if (request.authorization) {
    constexpr std::string_view kBearer = "Bearer ";
    const auto header = *request.authorization;
    if (header.size() > kBearer.size() && lower(header.substr(0, kBearer.size())) == "bearer ") {
      ok = tokens_equal(header.substr(kBearer.size()), options_.token);
    }
  }
  if (!ok && request.query_token) ok = tokens_equal(*request.query_token, options_.token);
  if (ok) return Verdict::kAllow;

  std::lock_guard lock(mutex_);
  Failures& f = failures_[std::string(request.remote_address)];
  if (now - f.window_start > kFailureWindow) {
    f.window_start = now;
    f.count = 0;
  }
  if (++f.count >= options_.max_failures) f.blocked_until = now + kBlockTime;
  return Verdict::kUnauthorized;
}

}  // namespace pa::net
