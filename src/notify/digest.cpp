#include "notify/digest.hpp"

#include <openssl/evp.h>

namespace pa::notify {

std::optional<std::string> hmac_sha256(std::string_view key, std::string_view data) {
  std::string out(32, '\0');
  std::size_t len = 0;
  if (EVP_Q_mac(nullptr, "HMAC", nullptr, "SHA256", nullptr, key.data(), key.size(),
                reinterpret_cast<const unsigned char*>(data.data()), data.size(),
                reinterpret_cast<unsigned char*>(out.data()), out.size(), &len) == nullptr ||
      len != out.size())
    return std::nullopt;
  return out;
}

std::string sha256(std::string_view data) {
  std::string out(32, '\0');
  unsigned int len = 0;
  if (EVP_Digest(data.data(), data.size(), reinterpret_cast<unsigned char*>(out.data()), &len,
                 EVP_sha256(), nullptr) != 1)
    return {};
  return out;
}

}  // namespace pa::notify
