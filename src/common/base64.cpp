#include "common/base64.hpp"

#include <array>
#include <cstdint>

namespace pa::common {
namespace {

constexpr std::string_view kStandard =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
constexpr std::string_view kUrl =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

constexpr std::array<int8_t, 256> decode_table(std::string_view alphabet) {
  std::array<int8_t, 256> t{};
  for (auto& v : t) v = -1;
  for (std::size_t i = 0; i < alphabet.size(); ++i)
    t[static_cast<unsigned char>(alphabet[i])] = static_cast<int8_t>(i);
  return t;
}

}  // namespace

std::string base64_encode(std::string_view bytes, Base64Alphabet alphabet) {
  const std::string_view chars = alphabet == Base64Alphabet::kStandard ? kStandard : kUrl;
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  std::uint32_t acc = 0;
  int bits = 0;
  for (const unsigned char c : bytes) {
    acc = (acc << 8) | c;
    bits += 8;
    while (bits >= 6) {
      bits -= 6;
      out.push_back(chars[(acc >> bits) & 0x3f]);
    }
  }
  if (bits > 0) out.push_back(chars[(acc << (6 - bits)) & 0x3f]);
  if (alphabet == Base64Alphabet::kStandard) {
    while (out.size() % 4 != 0) out.push_back('=');
  }
  return out;
}

std::optional<std::string> base64_decode(std::string_view text, Base64Alphabet alphabet) {
  static constexpr auto kStandardTable = decode_table(kStandard);
  static constexpr auto kUrlTable = decode_table(kUrl);
  const auto& table = alphabet == Base64Alphabet::kStandard ? kStandardTable : kUrlTable;
  if (alphabet == Base64Alphabet::kStandard && text.size() % 4 != 0) return std::nullopt;
  // Standard: at most two '=', only at the end. URL-safe: trailing '=' are ignored.
  std::size_t padding = 0;
  while (!text.empty() && text.back() == '=' && (alphabet == Base64Alphabet::kUrl || padding < 2)) {
    text.remove_suffix(1);
    ++padding;
  }
  if (text.size() % 4 == 1) return std::nullopt;
  std::string out;
  out.reserve(text.size() * 3 / 4);
  std::uint32_t acc = 0;
  int bits = 0;
  for (const char c : text) {
    const int v = table[static_cast<unsigned char>(c)];
    if (v < 0) return std::nullopt;
    acc = (acc << 6) | static_cast<std::uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xff));
    }
  }
  if ((acc & ((1u << bits) - 1)) != 0) return std::nullopt;  // stray bits: not canonical
  return out;
}

std::size_t base64_decoded_size_bound(std::size_t text_size) {
  return (text_size + 3) / 4 * 3;
}

}  // namespace pa::common
