#include "devices/pairing.hpp"

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include <algorithm>
#include <stdexcept>

namespace pa::devices {

namespace {

constexpr auto kFailureWindow = std::chrono::minutes(1);
constexpr auto kBlockTime = std::chrono::minutes(1);
// How long a used or expired code is remembered, and how many such at most.
constexpr auto kRememberSpent = std::chrono::hours(1);
constexpr std::size_t kMaxRemembered = 200;
constexpr std::size_t kMaxTrackedAddresses = 10000;

std::string random_code() {
  unsigned char bytes[kPairingCodeLength];
  if (RAND_bytes(bytes, sizeof bytes) != 1) throw std::runtime_error("OpenSSL RAND_bytes failed");
  std::string code;
  // 256 is a multiple of 32: the low five bits of a random byte are uniform.
  for (const unsigned char b : bytes) code.push_back(kPairingAlphabet[b & 31]);
  return code;
}

// Upper case, o→0, i/l→1 (Crockford), spaces and dashes dropped; empty unless exactly
// kPairingCodeLength characters of the alphabet remain.
std::string normalize(std::string_view input) {
  if (input.size() > 4 * kPairingCodeLength) return {};
  std::string out;
  for (char c : input) {
    if (c == '-' || c == ' ') continue;
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
    if (c == 'O') c = '0';
    if (c == 'I' || c == 'L') c = '1';
    if (kPairingAlphabet.find(c) == std::string_view::npos) return {};
    out.push_back(c);
  }
  return out.size() == kPairingCodeLength ? out : std::string();
}

}  // namespace

Pairing::Pairing(PairingOptions options) : options_(options) {}

void Pairing::prune(SystemTime now) {
  std::erase_if(entries_, [&](const Entry& e) { return now - e.expires_at > kRememberSpent; });
  const auto spent = [&](const Entry& e) { return e.used || now >= e.expires_at; };
  while (static_cast<std::size_t>(std::count_if(entries_.begin(), entries_.end(), spent)) >
         kMaxRemembered) {
    entries_.erase(std::find_if(entries_.begin(), entries_.end(), spent));
  }
  if (failures_.size() >= kMaxTrackedAddresses) {
    std::erase_if(failures_, [&](const auto& kv) {
      return now > kv.second.blocked_until && now - kv.second.window_start > kFailureWindow;
    });
  }
}

PairingCode Pairing::create(Role role, std::string name, SystemTime now) {
  std::lock_guard lk(mu_);
  prune(now);
  std::string code;
  do {
    code = random_code();
  } while (std::any_of(entries_.begin(), entries_.end(),
                       [&](const Entry& e) { return e.code == code; }));
  // Past the limit the oldest outstanding code stops working (it reads as expired).
  const auto live = [&](const Entry& e) { return !e.used && now < e.expires_at; };
  while (static_cast<std::size_t>(std::count_if(entries_.begin(), entries_.end(), live)) >=
         options_.max_outstanding) {
    std::find_if(entries_.begin(), entries_.end(), live)->expires_at = now;
  }
  const SystemTime expires_at = now + options_.lifetime;
  entries_.push_back(Entry{code, role, std::move(name), now, expires_at, false});
  return {code, expires_at};
}

std::variant<Redeemed, Refusal> Pairing::redeem(std::string_view code, std::string_view address,
                                                SystemTime now) {
  std::lock_guard lk(mu_);
  prune(now);
  auto failures = failures_.find(std::string(address));
  if (failures != failures_.end() && now < failures->second.blocked_until) {
    const auto left = std::chrono::ceil<std::chrono::seconds>(failures->second.blocked_until - now);
    return Refusal{429, "too_many_attempts", std::max(left, std::chrono::seconds(1))};
  }
  const std::string presented = normalize(code);
  Entry* found = nullptr;
  if (!presented.empty()) {
    // Every entry is compared in full: the time says nothing about which code is how close.
    for (auto& e : entries_) {
      if (CRYPTO_memcmp(e.code.data(), presented.data(), kPairingCodeLength) == 0) found = &e;
    }
  }
  if (found != nullptr) {
    if (found->used) return Refusal{410, "used", {}};
    if (now >= found->expires_at) return Refusal{410, "expired", {}};
    found->used = true;
    return Redeemed{found->role, found->name};
  }
  if (failures == failures_.end()) failures = failures_.emplace(address, Failures{}).first;
  Failures& f = failures->second;
  if (now - f.window_start > kFailureWindow) {
    f.window_start = now;
    f.count = 0;
  }
  if (++f.count >= options_.max_failures) f.blocked_until = now + kBlockTime;
  return Refusal{400, "unknown_code", {}};
}

std::size_t Pairing::outstanding(SystemTime now) const {
  std::lock_guard lk(mu_);
  return static_cast<std::size_t>(
      std::count_if(entries_.begin(), entries_.end(),
                    [&](const Entry& e) { return !e.used && now < e.expires_at; }));
}

}  // namespace pa::devices
