#include "protocol/data_reader.hpp"

#include <algorithm>

namespace pa::protocol {

namespace json = boost::json;

DataReader::DataReader(const json::object& data, std::string prefix)
    : data_(data), prefix_(std::move(prefix)) {}

std::string DataReader::field(std::string_view key) const {
  return prefix_.empty() ? std::string(key) : prefix_ + "." + std::string(key);
}

void DataReader::fail(std::string_view key, std::string message) {
  if (error_) return;
  json::object details;
  details["field"] = field(key);
  error_ = make_error(ErrorCode::kInvalidMessage, field(key) + " " + message, std::move(details));
}

const json::value* DataReader::get(std::string_view key, bool required, std::string_view what) {
  if (error_) return nullptr;
  const json::value* v = data_.if_contains(key);
  if (v == nullptr || v->is_null()) {
    if (required) fail(key, "is required (" + std::string(what) + ")");
    return nullptr;
  }
  return v;
}

std::optional<std::string> DataReader::string(std::string_view key, bool required,
                                              std::size_t max_bytes) {
  const json::value* v = get(key, required, "a string");
  if (v == nullptr) return std::nullopt;
  if (!v->is_string()) {
    fail(key, "must be a string");
    return std::nullopt;
  }
  if (v->get_string().size() > max_bytes) {
    fail(key, "is too long (at most " + std::to_string(max_bytes) + " bytes)");
    return std::nullopt;
  }
  return std::string(v->get_string());
}

std::optional<std::uint64_t> DataReader::uint(std::string_view key, bool required,
                                              std::uint64_t min, std::uint64_t max) {
  const json::value* v = get(key, required, "a whole number");
  if (v == nullptr) return std::nullopt;
  std::uint64_t value = 0;
  if (v->is_uint64()) {
    value = v->get_uint64();
  } else if (v->is_int64() && v->get_int64() >= 0) {
    value = static_cast<std::uint64_t>(v->get_int64());
  } else {
    fail(key, "must be a whole number from " + std::to_string(min) + " to " + std::to_string(max));
    return std::nullopt;
  }
  if (value < min || value > max) {
    fail(key, "must be from " + std::to_string(min) + " to " + std::to_string(max));
    return std::nullopt;
  }
  return value;
}

std::optional<bool> DataReader::boolean(std::string_view key) {
  const json::value* v = get(key, false, "true or false");
  if (v == nullptr) return std::nullopt;
  if (!v->is_bool()) {
    fail(key, "must be true or false");
    return std::nullopt;
  }
  return v->get_bool();
}

std::optional<std::vector<std::string>> DataReader::string_list(std::string_view key,
                                                                std::size_t max_items,
                                                                std::size_t max_item_bytes) {
  const json::value* v = get(key, false, "a list of strings");
  if (v == nullptr) return std::nullopt;
  if (!v->is_array()) {
    fail(key, "must be a list of strings");
    return std::nullopt;
  }
  const auto& array = v->get_array();
  if (array.size() > max_items) {
    fail(key, "has too many entries (at most " + std::to_string(max_items) + ")");
    return std::nullopt;
  }
  std::vector<std::string> out;
  out.reserve(array.size());
  for (const auto& item : array) {
    if (!item.is_string() || item.get_string().empty() ||
        item.get_string().size() > max_item_bytes) {
      fail(key, "entries must be non-empty strings of at most " + std::to_string(max_item_bytes) +
                    " bytes");
      return std::nullopt;
    }
    out.emplace_back(item.get_string());
  }
  return out;
}

const json::object* DataReader::object(std::string_view key, bool required) {
  const json::value* v = get(key, required, "an object");
  if (v == nullptr) return nullptr;
  if (!v->is_object()) {
    fail(key, "must be an object");
    return nullptr;
  }
  return &v->get_object();
}

void DataReader::allow_only(std::initializer_list<std::string_view> allowed) {
  for (const auto& kv : data_) {
    if (std::find(allowed.begin(), allowed.end(), kv.key()) == allowed.end()) {
      std::string list;
      for (auto a : allowed) list += (list.empty() ? "" : ", ") + std::string(a);
      fail(kv.key(), "is not a known field" + (list.empty() ? std::string(" (none are accepted)")
                                                            : " (allowed: " + list + ")"));
      return;
    }
  }
}

}  // namespace pa::protocol
