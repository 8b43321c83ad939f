// Base64 (RFC 4648 §4, the standard alphabet with '+' '/' and '=' padding) and its URL-safe
// variant (§5), over byte strings.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace pa::common {

enum class Base64Alphabet { kStandard, kUrl };

// kStandard output is padded with '='; kUrl output is not.
std::string base64_encode(std::string_view bytes, Base64Alphabet alphabet);

// nullopt for any character outside the alphabet (whitespace included), a length no encoder
// produces, or stray bits after the last byte. kStandard requires the '=' padding (the length is
// a multiple of 4); kUrl accepts it padded or not.
std::optional<std::string> base64_decode(std::string_view text, Base64Alphabet alphabet);

// The decoded size of `text` (valid or not) as its length implies: lets a caller refuse a too
// large value before decoding it.
std::size_t base64_decoded_size_bound(std::size_t text_size);

}  // namespace pa::common
