#include "notify/web_push_crypto.hpp"

#include <openssl/evp.h>
#include <openssl/rand.h>

#include <boost/json.hpp>
#include <memory>

#include "notify/base64url.hpp"
#include "notify/digest.hpp"

namespace pa::notify {
namespace {

constexpr std::size_t kSaltBytes = 16;
constexpr std::size_t kAuthBytes = 16;
constexpr std::size_t kTagBytes = 16;

// HKDF-SHA-256 (RFC 5869) for outputs of at most one hash block, as RFC 8291 uses it.
std::optional<std::string> hkdf(std::string_view salt, std::string_view ikm, std::string info,
                                std::size_t length) {
  const auto prk = hmac_sha256(salt, ikm);
  if (!prk) return std::nullopt;
  info.push_back('\x01');
  auto okm = hmac_sha256(*prk, info);
  if (okm) okm->resize(length);
  return okm;
}

std::optional<std::string> aes128gcm_seal(std::string_view key, std::string_view nonce,
                                          std::string_view plaintext) {
  std::unique_ptr<EVP_CIPHER_CTX, decltype(&EVP_CIPHER_CTX_free)> ctx(EVP_CIPHER_CTX_new(),
                                                                      EVP_CIPHER_CTX_free);
  std::string out(plaintext.size() + kTagBytes, '\0');
  auto* o = reinterpret_cast<unsigned char*>(out.data());
  int len = 0;
  int tail = 0;
  if (!ctx ||
      EVP_EncryptInit_ex2(ctx.get(), EVP_aes_128_gcm(),
                          reinterpret_cast<const unsigned char*>(key.data()),
                          reinterpret_cast<const unsigned char*>(nonce.data()), nullptr) != 1 ||
      EVP_EncryptUpdate(ctx.get(), o, &len,
                        reinterpret_cast<const unsigned char*>(plaintext.data()),
                        static_cast<int>(plaintext.size())) != 1 ||
      EVP_EncryptFinal_ex(ctx.get(), o + len, &tail) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, kTagBytes, o + len + tail) != 1)
    return std::nullopt;
  return out;
}

std::string random_bytes(std::size_t n) {
  std::string out(n, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(out.data()), static_cast<int>(n)) != 1) return {};
  return out;
}

}  // namespace

std::optional<std::string> encrypt_push(const PushEncryption& in) {
  if (in.subscriber == nullptr || in.sender == nullptr || !in.sender->has_private() ||
      in.plaintext.size() > kMaxPushPlaintext || in.auth_secret.size() != kAuthBytes ||
      in.salt.size() != kSaltBytes)
    return std::nullopt;
  const std::string& ua_public = in.subscriber->public_point();
  const std::string& as_public = in.sender->public_point();
  const auto ecdh_secret = in.sender->derive(*in.subscriber);
  if (!ecdh_secret) return std::nullopt;
  // RFC 8291 §3.4: the auth secret and both public keys go into the input keying material.
  std::string key_info = "WebPush: info";
  key_info.push_back('\0');
  key_info += ua_public;
  key_info += as_public;
  const auto ikm = hkdf(in.auth_secret, *ecdh_secret, key_info, 32);
  if (!ikm) return std::nullopt;
  const auto cek = hkdf(in.salt, *ikm, std::string("Content-Encoding: aes128gcm\0", 28), 16);
  const auto nonce = hkdf(in.salt, *ikm, std::string("Content-Encoding: nonce\0", 24), 12);
  if (!cek || !nonce) return std::nullopt;
  std::string padded(in.plaintext);
  padded.push_back('\x02');  // the last (and only) record's delimiter, no padding
  const auto sealed = aes128gcm_seal(*cek, *nonce, padded);
  if (!sealed) return std::nullopt;
  // RFC 8188 header: salt, record size (uint32 BE), key id length, key id (the sender's key).
  std::string body(in.salt);
  for (int shift = 24; shift >= 0; shift -= 8)
    body.push_back(static_cast<char>((kRecordSize >> shift) & 0xff));
  body.push_back(static_cast<char>(as_public.size()));
  body += as_public;
  body += *sealed;
  return body;
}

std::optional<std::string> encrypt_push(std::string_view plaintext, const P256Key& subscriber,
                                        std::string_view auth_secret) {
  const auto sender = P256Key::generate();
  const std::string salt = random_bytes(kSaltBytes);
  if (!sender || salt.empty()) return std::nullopt;
  return encrypt_push({plaintext, &subscriber, auth_secret, &*sender, salt});
}

std::optional<std::string> vapid_authorization(const P256Key& server_key,
                                               std::string_view endpoint_origin,
                                               std::string_view subject,
                                               std::chrono::system_clock::time_point expires) {
  const auto exp =
      std::chrono::duration_cast<std::chrono::seconds>(expires.time_since_epoch()).count();
  const boost::json::object claims{{"aud", endpoint_origin}, {"exp", exp}, {"sub", subject}};
  const std::string signing_input = base64url_encode(R"({"typ":"JWT","alg":"ES256"})") + "." +
                                    base64url_encode(boost::json::serialize(claims));
  const auto signature = server_key.sign_es256(signing_input);
  if (!signature) return std::nullopt;
  return "vapid t=" + signing_input + "." + base64url_encode(*signature) +
         ", k=" + base64url_encode(server_key.public_point());
}

}  // namespace pa::notify
