// Who is on a connection: the role it acts with and, for a paired device, which device. The
// master token (auth.token) is admin with no device; a device token carries its device's id and
// the name it had when the connection opened (a rename applies from the next connection).
#pragma once

#include <string>

#include "devices/roles.hpp"

namespace pa::devices {

struct Identity {
  Role role = Role::kAdmin;
  std::string device_id;    // empty: the master token
  std::string device_name;  // empty: the master token

  bool is_device() const { return !device_id.empty(); }
  // For log lines: "device <id> (<name>, <role>)" or "the master token"; never a token.
  std::string describe() const {
    if (!is_device()) return "the master token";
    return "device " + device_id + " (" + device_name + ", " + std::string(role_name(role)) + ")";
  }
};

}  // namespace pa::devices
