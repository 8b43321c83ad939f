// The server's VAPID key (RFC 8292): one P-256 key pair per data dir, made on first use and kept
// in <data_dir>/vapid_private_key (mode 0600: the base64url private scalar on one line). Push
// services tie a subscription to this key, so losing the file ends every subscription.
#pragma once

#include <filesystem>

#include "notify/p256_key.hpp"

namespace pa::notify {

std::filesystem::path vapid_key_path(const std::filesystem::path& data_dir);

// Loads the key, or makes and saves one (crash-safe) when the file does not exist. Throws
// std::runtime_error with what to do when the file cannot be read or written or holds no key
// (start-up only).
P256Key load_or_create_vapid_key(const std::filesystem::path& data_dir, bool& created);

}  // namespace pa::notify
