// A P-256 key (OpenSSL 3 EVP_PKEY) in the raw forms Web Push uses: a 32-byte private scalar and
// a 65-byte uncompressed public point (0x04 || X || Y). Used for the server's VAPID key, the
// ephemeral key of each push message, and a subscription's public key (no private part).
#pragma once

#include <openssl/evp.h>

#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace pa::notify {

class P256Key {
 public:
  static constexpr std::size_t kPrivateBytes = 32;
  static constexpr std::size_t kPublicBytes = 65;

  static std::optional<P256Key> generate();
  // From a private scalar; the public point is computed from it.
  static std::optional<P256Key> from_private(std::string_view scalar);
  // A public key only (a subscription's p256dh); nullopt unless a valid point on the curve.
  static std::optional<P256Key> from_public(std::string_view point);

  const std::string& public_point() const { return public_; }
  bool has_private() const { return has_private_; }
  std::string private_scalar() const;  // empty without a private part

  // ECDH with `peer`: the 32-byte X coordinate of the shared point; nullopt on failure.
  std::optional<std::string> derive(const P256Key& peer) const;
  // ES256 (ECDSA P-256 over SHA-256), the signature in JWS form: r || s, 32 bytes each.
  std::optional<std::string> sign_es256(std::string_view data) const;
  bool verify_es256(std::string_view data, std::string_view signature) const;

 private:
  struct Free {
    void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
  };
  P256Key(EVP_PKEY* key, bool has_private);

  std::shared_ptr<EVP_PKEY> key_;  // immutable once made: copies share it
  std::string public_;
  bool has_private_ = false;
};

}  // namespace pa::notify
