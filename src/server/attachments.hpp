// execute.data.attachments (issue 19): files sent with a prompt. Every byte is the client's, so
// each attachment is checked before anything is stored or sent to the CLI:
// - `data` is strict base64 (standard alphabet, '=' padded, no whitespace), decoded at most
//   limits.attachment_bytes;
// - `media_type` is one the CLI can take and agrees with the bytes: images (png, jpeg, gif, webp)
//   by their signature, text (text/*, JSON, source code types) when the bytes are UTF-8 without
//   NUL. The type a client claims is never trusted alone;
// - `name` is shown to people and the model, never used as a path: 1..255 bytes, no '/', '\',
//   NUL or control characters.
// To the CLI an image becomes an image content block and a text file a text block headed by its
// name, both before the prompt's text block (agent::user_message_line).
#pragma once

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <cstddef>
#include <string>
#include <variant>
#include <vector>

#include "protocol/envelope.hpp"

namespace pa::server {

struct Attachment {
  std::string name;
  std::string media_type;
  std::string bytes;   // decoded
  std::string sha256;  // lower-case hex of `bytes`

  bool is_image() const;
  // What history keeps instead of the data: {name, media_type, bytes, sha256}.
  boost::json::object ref() const;
};

struct AttachmentLimits {
  std::size_t max_bytes = 0;  // limits.attachment_bytes
  std::size_t max_count = 0;  // limits.attachments_per_prompt
};

inline constexpr std::size_t kMaxAttachmentNameBytes = 255;
inline constexpr std::size_t kMaxMediaTypeBytes = 127;

// Validates `data.attachments` (a JSON array). The first bad one gives INVALID_MESSAGE whose
// message names it ("data.attachments[2] (\"notes.txt\")") and says what is wrong, with details
// {field, index, name?}.
std::variant<std::vector<Attachment>, protocol::Error> parse_attachments(
    const boost::json::value& list, const AttachmentLimits& limits);

// True when `media_type` is accepted (before looking at the bytes).
bool accepted_media_type(std::string_view media_type);

// The content blocks of the CLI user message: one per attachment (images as base64 image
// blocks, text files as text blocks "Attached file: <name> (<media_type>)" + newline + text),
// then the prompt as a text block.
boost::json::array user_content_blocks(std::string_view prompt,
                                       const std::vector<Attachment>& attachments);

}  // namespace pa::server
