// Lower-case hex of bytes (tokens, digests, signatures).
#pragma once

#include <string>
#include <string_view>

namespace pa::common {

std::string to_hex(std::string_view bytes);

}  // namespace pa::common
