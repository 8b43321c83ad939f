#include "cluster/body.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/parse_options.hpp>

namespace pa::cluster {

namespace json = boost::json;

std::optional<json::object> parse_body(std::string_view text, std::size_t max_bytes) {
  if (text.size() > max_bytes) return std::nullopt;
  boost::system::error_code ec;
  json::parse_options options;
  options.max_depth = 64;
  auto value = json::parse(text, ec, {}, options);
  if (ec || !value.is_object()) return std::nullopt;
  return std::move(value.as_object());
}

std::optional<std::uint64_t> get_u64(const json::object& body, std::string_view key) {
  const auto* value = body.if_contains(key);
  if (!value) return std::nullopt;
  if (value->is_uint64()) return value->as_uint64();
  if (value->is_int64() && value->as_int64() >= 0)
    return static_cast<std::uint64_t>(value->as_int64());
  return std::nullopt;
}

std::optional<std::string> get_string(const json::object& body, std::string_view key,
                                      std::size_t max_bytes) {
  const auto* value = body.if_contains(key);
  if (!value || !value->is_string() || value->as_string().size() > max_bytes) return std::nullopt;
  return std::string(value->as_string());
}

std::optional<bool> get_bool(const json::object& body, std::string_view key) {
  const auto* value = body.if_contains(key);
  if (!value || !value->is_bool()) return std::nullopt;
  return value->as_bool();
}

std::optional<SeqFrames> seq_frames(const json::value* frames) {
  if (!frames || !frames->is_array()) return std::nullopt;
  SeqFrames list;
  for (const auto& item : frames->as_array()) {
    const auto* pair = item.if_array();
    if (!pair || pair->size() != 2 || !(*pair)[1].is_string()) return std::nullopt;
    const auto& seq = (*pair)[0];
    std::uint64_t value = 0;
    if (seq.is_uint64()) {
      value = seq.as_uint64();
    } else if (seq.is_int64() && seq.as_int64() >= 0) {
      value = static_cast<std::uint64_t>(seq.as_int64());
    } else {
      return std::nullopt;
    }
    const auto& text = (*pair)[1].as_string();
    if (!is_client_frame(text)) return std::nullopt;
    list.emplace_back(value, std::make_shared<const std::string>(text));
  }
  return list;
}

bool is_client_frame(std::string_view text) {
  auto body = parse_body(text);
  if (!body) return false;
  const auto* type = body->if_contains("type");
  return type && type->is_string();
}

}  // namespace pa::cluster
