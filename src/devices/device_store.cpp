#include "devices/device_store.hpp"

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include <algorithm>
#include <boost/json.hpp>
#include <stdexcept>
#include <utility>

#include "common/atomic_file.hpp"
#include "common/hex.hpp"
#include "common/private_file.hpp"
#include "notify/base64url.hpp"
#include "notify/digest.hpp"
#include "projects/project_info.hpp"
#include "protocol/clock.hpp"
#include "protocol/utf8.hpp"

namespace pa::devices {

namespace json = boost::json;
namespace fs = std::filesystem;

namespace {

// 200 devices take about 60 KB; anything far larger is not a file this server wrote.
constexpr std::size_t kMaxFileBytes = 1 << 20;
constexpr auto kLastSeenSaveInterval = std::chrono::minutes(1);

// A token is 256 random bits, so a fast unsalted hash is right: nobody can search that space
// from the hash, and slow password hashing (bcrypt, scrypt) only defends guessable secrets while
// it would cost every connection a deliberate delay.
std::string token_hash(std::string_view token) {
  return common::to_hex(notify::sha256(token));
}

std::string new_token() {
  std::string bytes(32, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(bytes.data()), static_cast<int>(bytes.size())) !=
      1) {
    throw std::runtime_error("OpenSSL RAND_bytes failed");
  }
  return std::string(kTokenPrefix) + notify::base64url_encode(bytes);
}

bool is_hex_digest(std::string_view s) {
  return s.size() == 64 && std::all_of(s.begin(), s.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

const json::string* string_at(const json::object& o, std::string_view key) {
  const auto* v = o.if_contains(key);
  return v != nullptr && v->is_string() ? &v->get_string() : nullptr;
}

json::object to_json(const Device& d, const std::string& token_sha256) {
  json::object o = device_json(d);
  o["token_sha256"] = token_sha256;
  return o;
}

// One entry of the file; nullopt when any field is missing or wrong.
std::optional<std::pair<Device, std::string>> from_json(const json::value& v) {
  const auto* o = v.if_object();
  if (o == nullptr) return std::nullopt;
  const auto* id = string_at(*o, "device_id");
  const auto* name = string_at(*o, "name");
  const auto* role = string_at(*o, "role");
  const auto* hash = string_at(*o, "token_sha256");
  const auto* created = string_at(*o, "created_at");
  const auto* seen = o->if_contains("last_seen_at");
  if (id == nullptr || !projects::looks_like_uuid(*id) || name == nullptr ||
      device_name_problem(*name) || role == nullptr || hash == nullptr || !is_hex_digest(*hash) ||
      created == nullptr || seen == nullptr || !(seen->is_null() || seen->is_string())) {
    return std::nullopt;
  }
  Device d;
  const auto parsed_role = parse_role(*role);
  const auto created_at = protocol::parse_rfc3339(*created);
  if (!parsed_role || !created_at) return std::nullopt;
  if (seen->is_string()) {
    d.last_seen_at = protocol::parse_rfc3339(seen->get_string());
    if (!d.last_seen_at) return std::nullopt;
  }
  d.device_id = std::string(*id);
  d.name = std::string(*name);
  d.role = *parsed_role;
  d.created_at = *created_at;
  return std::pair{std::move(d), std::string(*hash)};
}

}  // namespace

json::object device_json(const Device& d) {
  return {{"device_id", d.device_id},
          {"name", d.name},
          {"role", role_name(d.role)},
          {"created_at", protocol::format_rfc3339(d.created_at)},
          {"last_seen_at", d.last_seen_at ? json::value(protocol::format_rfc3339(*d.last_seen_at))
                                          : json::value()}};
}

std::optional<std::string> device_name_problem(std::string_view name) {
  if (name.empty() || name.size() > kMaxDeviceNameBytes) {
    return "must be 1 to " + std::to_string(kMaxDeviceNameBytes) + " bytes";
  }
  if (!protocol::is_valid_utf8(name)) return "must be UTF-8 text";
  if (protocol::has_control_characters(name)) return "must not contain control characters";
  return std::nullopt;
}

DeviceStore::DeviceStore(fs::path data_dir) : path_(std::move(data_dir) / "devices.json") {}

std::string DeviceStore::load() {
  std::error_code ec;
  if (!fs::exists(path_, ec) && !ec) return {};
  std::vector<Record> loaded;
  bool ok = false;
  try {
    const std::string text = common::read_private_file(path_, kMaxFileBytes);
    boost::system::error_code jec;
    const json::value doc = text.size() > kMaxFileBytes ? json::value() : json::parse(text, jec);
    const auto* list = !jec && doc.is_object() ? doc.get_object().if_contains("devices") : nullptr;
    ok = list != nullptr && list->is_array();
    for (std::size_t i = 0; ok && i < list->get_array().size(); ++i) {
      auto entry = from_json(list->get_array()[i]);
      ok = entry && std::none_of(loaded.begin(), loaded.end(), [&](const Record& r) {
             return r.device.device_id == entry->first.device_id;
           });
      if (ok) {
        const auto seen = entry->first.last_seen_at;
        loaded.push_back(Record{std::move(entry->first), std::move(entry->second), seen});
      }
    }
  } catch (const std::exception&) {
    ok = false;  // unreadable or not a regular file: moved aside like a damaged one
  }
  std::lock_guard lk(mu_);
  if (ok) {
    records_ = std::move(loaded);
    return {};
  }
  records_.clear();
  const fs::path aside = path_.string() + ".bad-" + protocol::now_rfc3339();
  fs::rename(path_, aside, ec);
  if (ec) {
    return path_.string() + " could not be read, nor moved aside (" + ec.message() +
           "); started with no paired devices, and the next change overwrites it (the master "
           "token still works; pair them again)";
  }
  return path_.string() + " could not be read; moved it to " + aside.string() +
         " and started with no paired devices (the master token still works; pair them again)";
}

AddResult DeviceStore::add(std::string name, Role role, SystemTime now) {
  if (const auto problem = device_name_problem(name)) {
    throw std::invalid_argument("device name " + *problem);
  }
  std::lock_guard save_lk(save_mu_);
  AddResult result;
  result.token = new_token();
  result.device = Device{projects::random_uuid(), std::move(name), role, now, std::nullopt};
  {
    std::lock_guard lk(mu_);
    if (records_.size() >= kMaxDevices) {
      result.full = true;
      result.token.clear();
      return result;
    }
    records_.push_back(Record{result.device, token_hash(result.token), std::nullopt});
  }
  result.error = write_snapshot();
  if (result.error) {
    // A token the file does not know would stop working at the next restart: hand out none.
    std::lock_guard lk(mu_);
    std::erase_if(records_,
                  [&](const Record& r) { return r.device.device_id == result.device.device_id; });
    result.token.clear();
  }
  return result;
}

// Every device's hash is compared, whatever matched before, each with CRYPTO_memcmp: the time
// taken says nothing about how much of which hash the presented token's hash shares.
std::optional<Device> DeviceStore::authenticate(std::string_view token) const {
  const std::string presented = token_hash(token);
  std::lock_guard lk(mu_);
  const Record* found = nullptr;
  for (const auto& r : records_) {
    const bool equal =
        CRYPTO_memcmp(r.token_sha256.data(), presented.data(), presented.size()) == 0;
    if (equal) found = &r;
  }
  if (found == nullptr) return std::nullopt;
  return found->device;
}

std::optional<Device> DeviceStore::find(std::string_view device_id) const {
  std::lock_guard lk(mu_);
  for (const auto& r : records_) {
    if (r.device.device_id == device_id) return r.device;
  }
  return std::nullopt;
}

std::vector<Device> DeviceStore::list() const {
  std::lock_guard lk(mu_);
  std::vector<Device> out;
  out.reserve(records_.size());
  for (const auto& r : records_) out.push_back(r.device);
  return out;
}

std::vector<StoredDevice> DeviceStore::stored() const {
  std::vector<StoredDevice> out;
  std::lock_guard lk(mu_);
  out.reserve(records_.size());
  for (const auto& r : records_) out.push_back(StoredDevice{r.device, r.token_sha256});
  return out;
}

bool DeviceStore::adopt(const StoredDevice& stored, std::error_code& error) {
  error.clear();
  const auto& hash = stored.token_sha256;
  if (device_name_problem(stored.device.name) || stored.device.device_id.empty() ||
      hash.size() != 64 || hash.find_first_not_of("0123456789abcdef") != std::string::npos)
    return false;
  std::lock_guard save_lk(save_mu_);
  std::vector<Record> before;
  {
    std::lock_guard lk(mu_);
    const auto it = std::find_if(records_.begin(), records_.end(), [&](const Record& r) {
      return r.device.device_id == stored.device.device_id;
    });
    if (it != records_.end() && it->device.name == stored.device.name &&
        it->device.role == stored.device.role && it->token_sha256 == hash)
      return false;
    if (it == records_.end() && records_.size() >= kMaxDevices) return false;
    before = records_;
    if (it == records_.end()) {
      Device device = stored.device;
      device.last_seen_at.reset();
      records_.push_back(Record{std::move(device), hash, std::nullopt});
    } else {
      it->device.name = stored.device.name;
      it->device.role = stored.device.role;
      it->token_sha256 = hash;
    }
  }
  error = write_snapshot();
  if (error) {
    std::lock_guard lk(mu_);
    records_ = std::move(before);
    return false;
  }
  return true;
}

bool DeviceStore::rename(std::string_view device_id, std::string name, std::error_code& error) {
  if (const auto problem = device_name_problem(name)) {
    throw std::invalid_argument("device name " + *problem);
  }
  error.clear();
  std::lock_guard save_lk(save_mu_);
  std::string old_name;
  {
    std::lock_guard lk(mu_);
    const auto it = std::find_if(records_.begin(), records_.end(),
                                 [&](const Record& r) { return r.device.device_id == device_id; });
    if (it == records_.end()) return false;
    old_name = std::exchange(it->device.name, std::move(name));
  }
  error = write_snapshot();
  if (error) {
    // Still there: revoke() waits for save_mu_, which this call holds.
    std::lock_guard lk(mu_);
    for (auto& r : records_) {
      if (r.device.device_id == device_id) r.device.name = old_name;
    }
  }
  return true;
}

bool DeviceStore::revoke(std::string_view device_id, std::error_code& error) {
  error.clear();
  std::lock_guard save_lk(save_mu_);
  {
    std::lock_guard lk(mu_);
    if (std::erase_if(records_, [&](const Record& r) { return r.device.device_id == device_id; }) ==
        0) {
      return false;
    }
  }
  error = write_snapshot();
  return true;
}

bool DeviceStore::touch(std::string_view device_id, SystemTime now) {
  std::lock_guard lk(mu_);
  for (auto& r : records_) {
    if (r.device.device_id != device_id) continue;
    r.device.last_seen_at = now;
    if (r.last_seen_saved && now - *r.last_seen_saved < kLastSeenSaveInterval) return false;
    r.last_seen_saved = now;  // the save the caller is asked for writes it
    return true;
  }
  return false;
}

std::error_code DeviceStore::save() const {
  std::lock_guard save_lk(save_mu_);
  return write_snapshot();
}

std::error_code DeviceStore::write_snapshot() const {
  json::array list;
  {
    std::lock_guard lk(mu_);
    for (const auto& r : records_) list.emplace_back(to_json(r.device, r.token_sha256));
  }
  const json::object doc{{"devices", std::move(list)}};
  return common::write_file_atomically(path_, json::serialize(doc) + "\n", 0600);
}

}  // namespace pa::devices
