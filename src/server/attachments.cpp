#include "server/attachments.hpp"

#include <algorithm>
#include <array>

#include "common/base64.hpp"
#include "common/hex.hpp"
#include "notify/digest.hpp"
#include "protocol/utf8.hpp"

namespace pa::server {

namespace json = boost::json;
using protocol::ErrorCode;

namespace {

constexpr std::array<std::string_view, 4> kImageTypes = {"image/png", "image/jpeg", "image/gif",
                                                         "image/webp"};
// Source code and data files browsers and phones label outside text/*.
constexpr std::array<std::string_view, 14> kTextApplicationTypes = {
    "application/json",         "application/ld+json",    "application/javascript",
    "application/x-javascript", "application/typescript", "application/xml",
    "application/yaml",         "application/x-yaml",     "application/toml",
    "application/x-sh",         "application/x-python",   "application/sql",
    "application/x-httpd-php",  "application/graphql"};

bool is_image_type(std::string_view media_type) {
  return std::find(kImageTypes.begin(), kImageTypes.end(), media_type) != kImageTypes.end();
}

// A subtype token as browsers write it: lower-case letters, digits and . + - _.
bool valid_subtype(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '+' || c == '-' ||
           c == '_';
  });
}

// The image format the bytes' signature shows, or "" when none of the four.
std::string_view image_type_of(std::string_view b) {
  if (b.starts_with("\x89PNG\r\n\x1a\n")) return "image/png";
  if (b.starts_with("\xff\xd8\xff")) return "image/jpeg";
  if (b.starts_with("GIF87a") || b.starts_with("GIF89a")) return "image/gif";
  if (b.size() >= 12 && b.starts_with("RIFF") && b.substr(8, 4) == "WEBP") return "image/webp";
  return {};
}

// Why `bytes` are not what `media_type` says, or "" when they are.
std::string content_mismatch(std::string_view media_type, std::string_view bytes) {
  if (is_image_type(media_type)) {
    const auto actual = image_type_of(bytes);
    if (actual == media_type) return {};
    if (!actual.empty())
      return "the bytes are " + std::string(actual) + ", not " + std::string(media_type);
    return "the bytes are not a " + std::string(media_type.substr(6)) +
           " image (its file signature is missing)";
  }
  if (bytes.find('\0') != std::string_view::npos) {
    return "the bytes contain NUL, so they are not " + std::string(media_type) + " text";
  }
  if (!protocol::is_valid_utf8(bytes)) {
    return "the bytes are not valid UTF-8, so they are not " + std::string(media_type) + " text";
  }
  return {};
}

std::string human_size(std::size_t bytes) {
  if (bytes >= (1u << 20) && bytes % (1u << 20) == 0) return std::to_string(bytes >> 20) + " MiB";
  if (bytes >= (1u << 10) && bytes % (1u << 10) == 0) return std::to_string(bytes >> 10) + " KiB";
  return std::to_string(bytes) + " bytes";
}

}  // namespace

bool Attachment::is_image() const {
  return is_image_type(media_type);
}

json::object Attachment::ref() const {
  return json::object{
      {"name", name}, {"media_type", media_type}, {"bytes", bytes.size()}, {"sha256", sha256}};
}

bool accepted_media_type(std::string_view media_type) {
  if (is_image_type(media_type)) return true;
  if (media_type.starts_with("text/")) return valid_subtype(media_type.substr(5));
  return std::find(kTextApplicationTypes.begin(), kTextApplicationTypes.end(), media_type) !=
         kTextApplicationTypes.end();
}

std::variant<std::vector<Attachment>, protocol::Error> parse_attachments(
    const json::value& list, const AttachmentLimits& limits) {
  if (!list.is_array()) {
    return protocol::make_error(ErrorCode::kInvalidMessage,
                                "data.attachments must be an array of {name, media_type, data}",
                                json::object{{"field", "data.attachments"}});
  }
  const auto& items = list.get_array();
  if (items.size() > limits.max_count) {
    return protocol::make_error(
        ErrorCode::kInvalidMessage,
        "data.attachments has " + std::to_string(items.size()) + " attachments; at most " +
            std::to_string(limits.max_count) +
            " may go with one prompt (limits.attachments_per_prompt): send the rest with the "
            "next prompt",
        json::object{{"field", "data.attachments"}, {"max", limits.max_count}});
  }
  std::vector<Attachment> out;
  out.reserve(items.size());
  for (std::size_t i = 0; i < items.size(); ++i) {
    const std::string field = "data.attachments[" + std::to_string(i) + "]";
    json::object details{{"field", field}, {"index", i}};
    std::string label = field;
    auto fail = [&](const std::string& subfield, const std::string& what) {
      details["field"] = field + subfield;
      return protocol::make_error(ErrorCode::kInvalidMessage, label + ": " + what, details);
    };
    if (!items[i].is_object()) return fail("", "must be an object {name, media_type, data}");
    const auto& item = items[i].get_object();
    for (const auto& entry : item) {
      const auto key = entry.key();
      if (key != "name" && key != "media_type" && key != "data") {
        return fail("." + std::string(protocol::shorten_utf8(protocol::sanitize_utf8(key), 64)),
                    "unknown field (an attachment has only name, media_type and data)");
      }
    }
    auto string_field = [&](std::string_view key) -> const json::string* {
      const auto* v = item.if_contains(key);
      return v != nullptr && v->is_string() ? &v->get_string() : nullptr;
    };
    const json::string* name = string_field("name");
    if (name == nullptr) return fail(".name", "name must be a string (the file's name)");
    const std::string_view name_view(*name);
    if (name_view.empty()) return fail(".name", "name must not be empty");
    if (name_view.size() > kMaxAttachmentNameBytes) {
      return fail(".name",
                  "name is longer than " + std::to_string(kMaxAttachmentNameBytes) + " bytes");
    }
    if (name_view.find_first_of(std::string_view("/\\\0", 3)) != std::string_view::npos) {
      return fail(".name", "name must be a file name without '/', '\\' or NUL (not a path)");
    }
    if (protocol::has_control_characters(name_view)) {
      return fail(".name", "name must not contain control characters");
    }
    details["name"] = name_view;
    label = field + " (\"" + std::string(name_view) + "\")";

    const json::string* media_type = string_field("media_type");
    if (media_type == nullptr) {
      return fail(".media_type", "media_type must be a string such as \"image/png\"");
    }
    const std::string_view type_view(*media_type);
    if (type_view.size() > kMaxMediaTypeBytes || !accepted_media_type(type_view)) {
      return fail(".media_type",
                  "media_type " + protocol::shorten_utf8(protocol::sanitize_utf8(type_view), 64) +
                      " is not accepted: send image/png, image/jpeg, image/gif, image/webp, "
                      "text/* or a source code type such as application/json");
    }

    const json::string* data = string_field("data");
    if (data == nullptr) return fail(".data", "data must be a string (the file's bytes in base64)");
    if (common::base64_decoded_size_bound(data->size()) > limits.max_bytes + 2) {
      details["max_bytes"] = limits.max_bytes;
      return fail(".data", "is larger than " + human_size(limits.max_bytes) +
                               " (limits.attachment_bytes): send a smaller file");
    }
    auto bytes = common::base64_decode(std::string_view(*data), common::Base64Alphabet::kStandard);
    if (!bytes) {
      return fail(".data",
                  "data is not valid base64 (the standard alphabet A-Z a-z 0-9 + /, padded "
                  "with '=', without line breaks)");
    }
    if (bytes->size() > limits.max_bytes) {
      details["max_bytes"] = limits.max_bytes;
      return fail(".data", "is " + std::to_string(bytes->size()) + " bytes, larger than " +
                               human_size(limits.max_bytes) +
                               " (limits.attachment_bytes): send a smaller file");
    }
    if (bytes->empty()) return fail(".data", "is empty: attach a file with content");
    if (auto why = content_mismatch(type_view, *bytes); !why.empty()) {
      return fail(".media_type",
                  "media_type " + std::string(type_view) + " does not match the content: " + why);
    }
    Attachment a{std::string(name_view), std::string(type_view), std::move(*bytes), {}};
    a.sha256 = common::to_hex(notify::sha256(a.bytes));
    out.push_back(std::move(a));
  }
  return out;
}

json::array user_content_blocks(std::string_view prompt,
                                const std::vector<Attachment>& attachments) {
  json::array blocks;
  for (const auto& a : attachments) {
    if (a.is_image()) {
      blocks.push_back(json::object{
          {"type", "image"},
          {"source", json::object{{"type", "base64"},
                                  {"media_type", a.media_type},
                                  {"data", common::base64_encode(
                                               a.bytes, common::Base64Alphabet::kStandard)}}}});
    } else {
      blocks.push_back(json::object{
          {"type", "text"},
          {"text", "Attached file: " + a.name + " (" + a.media_type + ")\n\n" + a.bytes}});
    }
  }
  blocks.push_back(json::object{{"type", "text"}, {"text", prompt}});
  return blocks;
}

}  // namespace pa::server
