// SHA-256 and HMAC-SHA-256 over byte strings (OpenSSL 3 one-shot calls).
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace pa::notify {

std::optional<std::string> hmac_sha256(std::string_view key, std::string_view data);
std::string sha256(std::string_view data);

}  // namespace pa::notify
