#include "notify/base64url.hpp"

#include "common/base64.hpp"

namespace pa::notify {

std::string base64url_encode(std::string_view bytes) {
  return common::base64_encode(bytes, common::Base64Alphabet::kUrl);
}

std::optional<std::string> base64url_decode(std::string_view text) {
  return common::base64_decode(text, common::Base64Alphabet::kUrl);
}

}  // namespace pa::notify
