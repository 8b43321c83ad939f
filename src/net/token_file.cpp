#include "net/token_file.hpp"

#include <fcntl.h>
#include <openssl/rand.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <stdexcept>

#include "common/atomic_file.hpp"

namespace pa::net {

namespace fs = std::filesystem;

fs::path token_path(const fs::path& data_dir) {
  return data_dir / "auth_token";
}

namespace {
// Reads the token file, refusing anything a token file cannot be: not a regular file, or larger
// than kMaxTokenFileBytes (read up to one byte past the bound, so a huge file is never loaded).
std::string read_token_file(const fs::path& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    throw std::runtime_error("cannot read " + path.string() + ": " + std::strerror(errno));
  }
  struct stat st {};
  std::string text;
  std::string problem;
  if (::fstat(fd, &st) != 0) {
    problem = std::strerror(errno);
  } else if (!S_ISREG(st.st_mode)) {
    problem = "it is not a regular file";
  } else {
    if ((st.st_mode & 077) != 0) ::fchmod(fd, 0600);  // a copy restored with loose permissions
    text.resize(kMaxTokenFileBytes + 1);
    std::size_t got = 0;
    while (got < text.size()) {
      const ssize_t n = ::read(fd, text.data() + got, text.size() - got);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        problem = std::strerror(errno);
        break;
      }
      if (n == 0) break;
      got += static_cast<std::size_t>(n);
    }
    text.resize(got);
  }
  ::close(fd);
  if (!problem.empty()) throw std::runtime_error("cannot read " + path.string() + ": " + problem);
  if (text.size() > kMaxTokenFileBytes) {
    throw std::runtime_error(path.string() + " is " + std::to_string(st.st_size) +
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
