// Reading the JSON body of a node-to-node message. Signed bodies are still checked field by
// field, like client input: a node with the secret but a bug must not crash another.
#pragma once

#include <boost/json/object.hpp>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace pa::cluster {

// Parses `text` as a JSON object (at most `max_bytes`); nullopt if it is not one.
std::optional<boost::json::object> parse_body(std::string_view text,
                                              std::size_t max_bytes = 64u << 20);
std::optional<std::uint64_t> get_u64(const boost::json::object& body, std::string_view key);
std::optional<std::string> get_string(const boost::json::object& body, std::string_view key,
                                      std::size_t max_bytes);
std::optional<bool> get_bool(const boost::json::object& body, std::string_view key);
// Whether `text` is one JSON object with a string "type" (a frame for clients).
bool is_client_frame(std::string_view text);
// The [[seq, frame], ...] of a fill or a page: nullopt unless every item is a seq (an integer
// >= 0) and a client frame.
using SeqFrames = std::vector<std::pair<std::uint64_t, std::shared_ptr<const std::string>>>;
std::optional<SeqFrames> seq_frames(const boost::json::value* frames);

}  // namespace pa::cluster
