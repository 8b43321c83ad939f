// Typed, bounded reads of a message's `data` object. The first problem found is kept as an
// INVALID_MESSAGE error whose details.field names the offending field ("data.limit").
#pragma once

#include <boost/json/object.hpp>
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/envelope.hpp"

namespace pa::protocol {

class DataReader {
 public:
  explicit DataReader(const boost::json::object& data, std::string prefix = "data");

  // Each getter returns nullopt when the field is absent (or null) or invalid; check ok().
  std::optional<std::string> string(std::string_view key, bool required, std::size_t max_bytes);
  std::optional<std::uint64_t> uint(std::string_view key, bool required, std::uint64_t min,
                                    std::uint64_t max);
  std::optional<bool> boolean(std::string_view key);
  std::optional<std::vector<std::string>> string_list(std::string_view key, std::size_t max_items,
                                                      std::size_t max_item_bytes);
  const boost::json::object* object(std::string_view key, bool required);

  // Fails on any key not in `allowed`.
  void allow_only(std::initializer_list<std::string_view> allowed);

  bool ok() const { return !error_; }
  const Error& error() const { return *error_; }
  std::string field(std::string_view key) const;

 private:
  void fail(std::string_view key, std::string message);
  const boost::json::value* get(std::string_view key, bool required, std::string_view what);

  const boost::json::object& data_;
  std::string prefix_;
  std::optional<Error> error_;
};

}  // namespace pa::protocol
