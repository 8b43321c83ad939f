// Base64url without padding (RFC 4648 §5), the encoding of Web Push keys, salts and JWTs.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace pa::notify {

std::string base64url_encode(std::string_view bytes);

// Accepts unpadded and padded input; nullopt for any character outside the alphabet or a length
// no encoder produces.
std::optional<std::string> base64url_decode(std::string_view text);

}  // namespace pa::notify
