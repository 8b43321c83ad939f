#include "projects/project_info.hpp"

#include <openssl/rand.h>

#include <array>
#include <stdexcept>

namespace pa::projects {

std::string_view to_string(State state) {
  switch (state) {
    case State::kIdle:
      return "IDLE";
    case State::kQueued:
      return "QUEUED";
    case State::kExecuting:
      return "EXECUTING";
  }
  return "IDLE";
}

boost::json::object to_json(const ProjectInfo& info) {
  boost::json::object o;
  o["id"] = info.id;
  o["path"] = info.path;
  o["state"] = to_string(info.state);
  if (info.session_id) {
    o["session_id"] = *info.session_id;
  } else {
    o["session_id"] = nullptr;
  }
  o["created_at"] = info.created_at;
  o["last_active"] = info.last_active;
  if (info.state == State::kQueued) o["queue_position"] = info.queue_position;
  o["totals"] = spend::to_json(info.spend.totals);
  o["today"] = spend::to_json(spend::today(info.spend, std::chrono::system_clock::now()));
  const spend::Totals* session =
      info.session_id ? spend::session_totals(info.spend, *info.session_id) : nullptr;
  o["session_totals"] = session != nullptr ? boost::json::value(spend::to_json(*session))
                                           : boost::json::value(nullptr);
  return o;
}

std::string random_uuid() {
  std::array<unsigned char, 16> b{};
  if (RAND_bytes(b.data(), static_cast<int>(b.size())) != 1) {
    throw std::runtime_error("OpenSSL RAND_bytes failed");
  }
  b[6] = static_cast<unsigned char>((b[6] & 0x0F) | 0x40);  // version 4
  b[8] = static_cast<unsigned char>((b[8] & 0x3F) | 0x80);  // variant 10
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(36);
  for (std::size_t i = 0; i < b.size(); ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) out += '-';
    out += kHex[b[i] >> 4];
    out += kHex[b[i] & 0x0F];
  }
  return out;
}

bool looks_like_uuid(std::string_view s) {
  if (s.size() != 36) return false;
  for (std::size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (c != '-') return false;
    } else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'))) {
      return false;
    }
  }
  return true;
}

}  // namespace pa::projects
