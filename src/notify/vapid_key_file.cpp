#include "notify/vapid_key_file.hpp"

#include <stdexcept>

#include "common/atomic_file.hpp"
#include "common/private_file.hpp"
#include "notify/base64url.hpp"

namespace pa::notify {

namespace fs = std::filesystem;

namespace {
constexpr std::size_t kMaxKeyFileBytes = 256;  // 43 characters and a newline in practice
}

fs::path vapid_key_path(const fs::path& data_dir) {
  return data_dir / "vapid_private_key";
}

P256Key load_or_create_vapid_key(const fs::path& data_dir, bool& created) {
  created = false;
  const auto path = vapid_key_path(data_dir);
  std::error_code ec;
  if (fs::exists(path, ec)) {
    std::string text = common::read_private_file(path, kMaxKeyFileBytes);
    while (!text.empty() && (text.back() == '\n' || text.back() == '\r' || text.back() == ' '))
      text.pop_back();
    const auto scalar = text.size() <= kMaxKeyFileBytes ? base64url_decode(text) : std::nullopt;
    auto key = scalar ? P256Key::from_private(*scalar) : std::nullopt;
    if (!key) {
      throw std::runtime_error(
          path.string() +
          " holds no P-256 private key (base64url, 32 bytes). Restore it from a backup, or "
          "delete it to make a new one: every push subscription then has to be made again");
    }
    return *key;
  }
  auto key = P256Key::generate();
  if (!key) throw std::runtime_error("cannot generate the VAPID key: OpenSSL failed");
  if (auto write_ec = common::write_file_atomically(
          path, base64url_encode(key->private_scalar()) + "\n", 0600)) {
    throw std::runtime_error("cannot write " + path.string() + ": " + write_ec.message());
  }
  created = true;
  return *key;
}

}  // namespace pa::notify
