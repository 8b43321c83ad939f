// Web Push message encryption (RFC 8291, "aes128gcm" content coding of RFC 8188) and VAPID
// (RFC 8292) Authorization headers. Pure functions over byte strings; no I/O.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

#include "notify/p256_key.hpp"

namespace pa::notify {

// A single aes128gcm record of 4096 bytes holds the 86-byte header, the plaintext, its one
// delimiter byte and the 16-byte tag; push services must accept at least that (RFC 8030 §7.2).
inline constexpr std::size_t kRecordSize = 4096;
inline constexpr std::size_t kMaxPushPlaintext = kRecordSize - 86 - 1 - 16;

struct PushEncryption {
  std::string_view plaintext;    // at most kMaxPushPlaintext bytes
  const P256Key* subscriber;     // the subscription's p256dh (public only)
  std::string_view auth_secret;  // the subscription's 16-byte auth secret
  const P256Key* sender;         // a fresh key per message (tests pass RFC 8291's)
  std::string_view salt;         // 16 random bytes per message (tests pass RFC 8291's)
};

// The request body for the push service (Content-Encoding: aes128gcm); nullopt when an input
// has the wrong size or a crypto call fails.
std::optional<std::string> encrypt_push(const PushEncryption& in);

// The same with a fresh sender key and salt.
std::optional<std::string> encrypt_push(std::string_view plaintext, const P256Key& subscriber,
                                        std::string_view auth_secret);

// `vapid t=<JWT>, k=<public key>` for a request to `endpoint_origin` (scheme://host[:port]),
// signed with the server's key; the JWT expires at `expires` (RFC 8292: at most 24 h ahead).
std::optional<std::string> vapid_authorization(const P256Key& server_key,
                                               std::string_view endpoint_origin,
                                               std::string_view subject,
                                               std::chrono::system_clock::time_point expires);

}  // namespace pa::notify
