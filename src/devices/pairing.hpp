// One-time pairing codes: an admin creates one (`pair` command, device_pair), the new device
// redeems it once (POST /pair) and gets its own token from DeviceStore::add.
//
// A code is 10 characters of Crockford's base32 alphabet (no I, L, O, U: nothing to misread),
// 50 random bits from RAND_bytes, valid 10 minutes. At most 20 are outstanding; creating another
// drops the oldest (which then answers "expired"). redeem() answers:
//   Redeemed{role, name}                 the code was outstanding; from now on it is used
//   Refusal{410, "used"}                 it was redeemed before
//   Refusal{410, "expired"}              its 10 minutes are over
//   Refusal{400, "unknown_code"}         no such code (counts as a wrong code for the address)
//   Refusal{429, "too_many_attempts"}    the address sent max_failures wrong codes within a
//                                        minute: every redeem from it is refused for a minute
//                                        (retry_after says how long still, whole seconds)
// The failure rule mirrors auth.max_failures for tokens (src/net/gate.cpp): the max_failures-th
// wrong code in a minute starts the block. Unlike for a long random token, while blocked even
// the right code is refused without being looked at, so the block bounds guessing a 50-bit code
// by itself; the owner's phone waits a minute at worst, the code lives ten.
// Lower case and the look-alikes o→0, i/l→1 are read as Crockford decoding does. Codes are
// compared in constant time against every outstanding one. Pure logic, thread-safe; the clock is
// passed in (system_clock: expires_at is shown to people and sent as RFC 3339).
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <variant>
#include <vector>

#include "devices/roles.hpp"

namespace pa::devices {

using SystemTime = std::chrono::system_clock::time_point;

inline constexpr std::size_t kPairingCodeLength = 10;
inline constexpr std::string_view kPairingAlphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

struct PairingOptions {
  std::chrono::seconds lifetime = std::chrono::minutes(10);
  std::size_t max_outstanding = 20;
  std::uint64_t max_failures = 10;  // wrong codes per address per minute
};

struct PairingCode {
  std::string code;
  SystemTime expires_at;
};

struct Redeemed {
  Role role;
  std::string name;  // as given to create() (may be empty: the device names itself)
};

struct Refusal {
  int status;                           // 400, 410 or 429
  std::string reason;                   // "unknown_code", "used", "expired", "too_many_attempts"
  std::chrono::seconds retry_after{0};  // 429 only
};

class Pairing {
 public:
  explicit Pairing(PairingOptions options = {});

  // `name`: empty (the device names itself when it redeems) or one that passed
  // device_name_problem (src/devices/device_store.hpp); the caller checks.
  PairingCode create(Role role, std::string name, SystemTime now);
  std::variant<Redeemed, Refusal> redeem(std::string_view code, std::string_view address,
                                         SystemTime now);
  // Codes neither used nor expired.
  std::size_t outstanding(SystemTime now) const;

 private:
  struct Entry {
    std::string code;
    Role role;
    std::string name;
    SystemTime created_at;
    SystemTime expires_at;
    bool used = false;
  };
  struct Failures {
    std::uint64_t count = 0;
    SystemTime window_start;
    SystemTime blocked_until;
  };
  void prune(SystemTime now);

  const PairingOptions options_;
  mutable std::mutex mu_;
  // Outstanding codes and, for an hour past their expiry, used and expired ones (so a late
  // device hears "used"/"expired", not "unknown_code"). Oldest first.
  std::vector<Entry> entries_;
  std::unordered_map<std::string, Failures> failures_;
};

}  // namespace pa::devices
