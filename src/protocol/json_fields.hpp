// Reading fields of JSON objects that may be missing or of another type (history entries, CLI
// lines): a missing or mistyped field reads as absent, never throws.
#pragma once

#include <boost/json/object.hpp>
#include <string>
#include <string_view>

namespace pa::protocol {

inline const boost::json::object* object_at(const boost::json::object& o, std::string_view key) {
  const auto* v = o.if_contains(key);
  return v != nullptr ? v->if_object() : nullptr;
}

// The string at `key`, or "" when missing or not a string.
inline std::string string_at(const boost::json::object& o, std::string_view key) {
  const auto* v = o.if_contains(key);
  return v != nullptr && v->is_string() ? std::string(v->get_string()) : std::string();
}

}  // namespace pa::protocol
