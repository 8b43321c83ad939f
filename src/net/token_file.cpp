#include "net/token_file.hpp"

#include <openssl/rand.h>

#include <array>
#include <stdexcept>

#include "common/atomic_file.hpp"
#include "common/hex.hpp"
#include "common/private_file.hpp"

namespace pa::net {

namespace fs = std::filesystem;

fs::path token_path(const fs::path& data_dir) {
  return data_dir / "auth_token";
}

namespace {
// The token file, refused when larger than kMaxTokenFileBytes (never loaded whole).
std::string read_token_file(const fs::path& path) {
  std::string text = common::read_private_file(path, kMaxTokenFileBytes);
  if (text.size() > kMaxTokenFileBytes) {
    std::error_code ec;
    throw std::runtime_error(path.string() + " is " + std::to_string(fs::file_size(path, ec)) +
                             " bytes; a token file holds one line of at most " +
                             std::to_string(kMaxTokenFileBytes) +
                             " bytes. Put the token alone in it, or delete it to generate one");
  }
  return text;
}
}  // namespace

std::string load_or_create_token(const fs::path& data_dir, bool& created) {
  created = false;
  const auto path = token_path(data_dir);
  std::error_code ec;
  if (fs::exists(path, ec)) {
    std::string token = read_token_file(path);
    while (!token.empty() &&
           (token.back() == '\n' || token.back() == '\r' || token.back() == ' ')) {
      token.pop_back();
    }
    if (token.find_first_of("\r\n") != std::string::npos) {
      throw std::runtime_error(path.string() +
                               " holds more than one line; a token is one line. Put the token "
                               "alone in it, or delete it to generate one");
    }
    if (token.size() < 16) {
      throw std::runtime_error(path.string() +
                               " holds no usable token (at least 16 characters); "
                               "delete it to generate a new one");
    }
    return token;
  }
  std::array<unsigned char, 32> bytes{};
  if (RAND_bytes(bytes.data(), static_cast<int>(bytes.size())) != 1) {
    throw std::runtime_error("cannot generate a token: OpenSSL RAND_bytes failed");
  }
  const std::string token =
      common::to_hex({reinterpret_cast<const char*>(bytes.data()), bytes.size()});
  if (auto write_ec = common::write_file_atomically(path, token + "\n", 0600)) {
    throw std::runtime_error("cannot write " + path.string() + ": " + write_ec.message());
  }
  created = true;
  return token;
}

}  // namespace pa::net
