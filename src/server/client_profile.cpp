#include "server/client_profile.hpp"

#include <algorithm>

namespace pa::server {

std::string ClientProfile::name() const {
  std::lock_guard lock(mutex_);
  return name_;
}

std::vector<std::string> ClientProfile::capabilities() const {
  std::lock_guard lock(mutex_);
  return capabilities_;
}

bool ClientProfile::declared(std::string_view capability) const {
  std::lock_guard lock(mutex_);
  return std::find(capabilities_.begin(), capabilities_.end(), capability) != capabilities_.end();
}

void ClientProfile::note_other_request() {
  std::lock_guard lock(mutex_);
  other_request_seen_ = true;
}

ClientProfile::HelloOutcome ClientProfile::accept_hello(const std::string& name,
                                                        std::vector<std::string> capabilities) {
  std::lock_guard lock(mutex_);
  if (greeted_) return HelloOutcome::kRepeated;
  if (other_request_seen_) return HelloOutcome::kTooLate;
  greeted_ = true;
  if (name_.empty()) name_ = name;
  capabilities_ = std::move(capabilities);
  return HelloOutcome::kAccepted;
}

}  // namespace pa::server
