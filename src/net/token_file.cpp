#include "net/token_file.hpp"

#include <openssl/rand.h>
#include <sys/stat.h>

#include <array>
#include <stdexcept>

#include "common/atomic_file.hpp"

namespace pa::net {

namespace fs = std::filesystem;

fs::path token_path(const fs::path& data_dir) {
  return data_dir / "auth_token";
}

std::string load_or_create_token(const fs::path& data_dir, bool& created) {
  created = false;
  const auto path = token_path(data_dir);
  std::error_code ec;
  if (fs::exists(path, ec)) {
    std::string token = common::read_small_file(path, ec);
    if (ec) throw std::runtime_error("cannot read " + path.string() + ": " + ec.message());
    while (!token.empty() &&
           (token.back() == '\n' || token.back() == '\r' || token.back() == ' ')) {
      token.pop_back();
    }
    if (token.size() < 16) {
      throw std::runtime_error(path.string() +
                               " holds no usable token (at least 16 characters); "
                               "delete it to generate a new one");
    }
    struct stat st {};
    if (::stat(path.c_str(), &st) == 0 && (st.st_mode & 077) != 0) {
      ::chmod(path.c_str(), 0600);  // tighten a copy restored with loose permissions
    }
    return token;
  }
  std::array<unsigned char, 32> bytes{};
  if (RAND_bytes(bytes.data(), static_cast<int>(bytes.size())) != 1) {
    throw std::runtime_error("cannot generate a token: OpenSSL RAND_bytes failed");
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string token;
  for (unsigned char b : bytes) {
    token += kHex[b >> 4];
    token += kHex[b & 0x0F];
  }
  if (auto write_ec = common::write_file_atomically(path, token + "\n", 0600)) {
    throw std::runtime_error("cannot write " + path.string() + ": " + write_ec.message());
  }
  created = true;
  return token;
}

}  // namespace pa::net
