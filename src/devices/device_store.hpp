// The paired devices, kept in <data_dir>/devices.json (mode 0600, written crash-safely).
//
// Each device has its own token, made here once and handed to the device at pairing; the file
// keeps only the token's SHA-256 (hex), with the device's id, name, role and created/last-seen
// times. authenticate() hashes the presented token and compares it with every device's hash in
// constant time. revoke() removes the record, so the token never matches again.
//
// add/rename/revoke write the file before they return (rare admin actions) and save() writes it
// on demand: those do file I/O and must run off the I/O threads. authenticate/touch/find/list
// only touch memory. touch() records last-seen in memory and says when a save is due (at most
// once a minute per device); the owner calls save() then and on shutdown.
//
// A data dir without devices.json is an empty store (servers from before devices): the master
// token keeps working. A file that cannot be parsed is moved aside (devices.json.bad-<time>) and
// the store starts empty, so a damaged file never stops the server; those devices pair again.
// Thread-safe.
#pragma once

#include <chrono>
#include <filesystem>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include <boost/json/object.hpp>

#include "devices/roles.hpp"

namespace pa::devices {

using SystemTime = std::chrono::system_clock::time_point;

inline constexpr std::size_t kMaxDeviceNameBytes = 64;
inline constexpr std::size_t kMaxDevices = 200;
// Prefix of every device token: a leak scanner (or a person) can tell what a string is.
inline constexpr std::string_view kTokenPrefix = "pad_";

struct Device {
  std::string device_id;  // a random UUID
  std::string name;
  Role role = Role::kViewer;
  SystemTime created_at;
  std::optional<SystemTime> last_seen_at;  // none until the device first connects
};

// A device as device_list_response lists it: {device_id, name, role, created_at, last_seen_at
// (RFC 3339 or null)}. Never the token's hash.
boost::json::object device_json(const Device& device);

// Why `name` cannot be a device name ("must be 1 to 64 bytes", ...), or nullopt when it can:
// valid UTF-8, 1-64 bytes, no control characters (it ends up in logs and history).
std::optional<std::string> device_name_problem(std::string_view name);

// A device with its token's hash, as cluster mode shares it between nodes (never the token).
struct StoredDevice {
  Device device;
  std::string token_sha256;  // 64 lower-case hex digits
};

struct AddResult {
  std::error_code error;  // the file could not be written: nothing was added, no token exists
  bool full = false;      // kMaxDevices exist already: nothing was added
  Device device;
  std::string token;  // "pad_" + base64url of 32 random bytes; shown once, never stored
};

class DeviceStore {
 public:
  explicit DeviceStore(std::filesystem::path data_dir);

  // Reads the file (start-up). Empty string when it was read or is absent; else what happened
  // to a damaged file (for the log).
  std::string load();

  // A new device with a fresh token. `name` must pass device_name_problem (else
  // std::invalid_argument).
  AddResult add(std::string name, Role role, SystemTime now = std::chrono::system_clock::now());
  // The device whose token this is; nullopt for any other string.
  std::optional<Device> authenticate(std::string_view token) const;
  std::optional<Device> find(std::string_view device_id) const;
  std::vector<Device> list() const;  // in pairing order

  // False when no such device (nothing written). `name` as for add(). A failed write keeps the
  // old name and returns the error in `error`.
  bool rename(std::string_view device_id, std::string name, std::error_code& error);
  // Removes the device: from this call on its token is refused, even when the file write fails
  // (returned in `error`; the next save() retries). False when no such device.
  bool revoke(std::string_view device_id, std::error_code& error);

  // Records that the device connected or sent something at `now`. True when the caller should
  // save() (off the I/O threads): last seen was not saved for a minute.
  bool touch(std::string_view device_id, SystemTime now);

  // Cluster mode (issue 20): every device with its token's hash, to share with the other nodes.
  std::vector<StoredDevice> stored() const;
  // A device another node paired or renamed: added, or its name and role taken (last seen stays
  // this node's). Writes the file when anything changed; a failed write undoes the change.
  // False when nothing changed, the store is full, or `stored` is not a valid device.
  bool adopt(const StoredDevice& stored, std::error_code& error);
  std::error_code save() const;

  const std::filesystem::path& path() const { return path_; }

 private:
  struct Record {
    Device device;
    std::string token_sha256;                   // 64 lower-case hex digits
    std::optional<SystemTime> last_seen_saved;  // what the file has (or is being written)
  };
  // Serializes the records (taken under mu_) and writes the file; the caller holds save_mu_.
  std::error_code write_snapshot() const;

  std::filesystem::path path_;
  mutable std::mutex mu_;
  mutable std::mutex save_mu_;  // held across snapshot and write: the last save writes the latest
  std::vector<Record> records_;
};

}  // namespace pa::devices
