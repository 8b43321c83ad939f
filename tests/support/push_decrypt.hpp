// The browser's half of RFC 8291, for tests only: decrypts a Web Push request body with the
// subscription's private key and auth secret. Written from the RFC, independent of
// notify/web_push_crypto.cpp except for the primitives (HMAC, ECDH).
#pragma once

#include <openssl/evp.h>

#include <optional>
#include <string>

#include "notify/digest.hpp"
#include "notify/p256_key.hpp"

namespace pa::notify::test {

inline std::optional<std::string> hkdf_expand1(const std::string& salt, const std::string& ikm,
                                               std::string info, std::size_t n) {
  const auto prk = hmac_sha256(salt, ikm);
  if (!prk) return std::nullopt;
  info.push_back('\x01');
  auto okm = hmac_sha256(*prk, info);
  if (okm) okm->resize(n);
  return okm;
}

inline std::optional<std::string> decrypt_push(const std::string& body, const P256Key& receiver,
                                               const std::string& auth) {
  if (body.size() < 21 + 65 + 17) return std::nullopt;
  const std::string salt = body.substr(0, 16);
  const auto idlen = static_cast<unsigned char>(body[20]);
  const auto sender = P256Key::from_public(body.substr(21, idlen));
  if (!sender) return std::nullopt;
  const auto shared = receiver.derive(*sender);
  if (!shared) return std::nullopt;
  std::string info = "WebPush: info";
  info.push_back('\0');
  info += receiver.public_point() + sender->public_point();
  const auto ikm = hkdf_expand1(auth, *shared, info, 32);
  if (!ikm) return std::nullopt;
  const auto cek = hkdf_expand1(salt, *ikm, std::string("Content-Encoding: aes128gcm\0", 28), 16);
  const auto nonce = hkdf_expand1(salt, *ikm, std::string("Content-Encoding: nonce\0", 24), 12);
  const std::string sealed = body.substr(21 + idlen);
  const std::string ciphertext = sealed.substr(0, sealed.size() - 16);
  std::string tag = sealed.substr(sealed.size() - 16);
  EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
  std::string plain(ciphertext.size(), '\0');
  int len = 0;
  int tail = 0;
  const bool ok =
      cek && nonce &&
      EVP_DecryptInit_ex2(ctx, EVP_aes_128_gcm(),
                          reinterpret_cast<const unsigned char*>(cek->data()),
                          reinterpret_cast<const unsigned char*>(nonce->data()), nullptr) == 1 &&
      EVP_DecryptUpdate(ctx, reinterpret_cast<unsigned char*>(plain.data()), &len,
                        reinterpret_cast<const unsigned char*>(ciphertext.data()),
                        static_cast<int>(ciphertext.size())) == 1 &&
      EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, 16, tag.data()) == 1 &&
      EVP_DecryptFinal_ex(ctx, reinterpret_cast<unsigned char*>(plain.data()) + len, &tail) == 1;
  EVP_CIPHER_CTX_free(ctx);
  if (!ok) return std::nullopt;
  plain.resize(static_cast<std::size_t>(len + tail));
  // Strip the padding: trailing zeros, then the delimiter (2 for the last record).
  while (!plain.empty() && plain.back() == '\0') plain.pop_back();
  if (plain.empty() || plain.back() != '\x02') return std::nullopt;
  plain.pop_back();
  return plain;
}

}  // namespace pa::notify::test
