// Fuzzes what a cluster node does with an entry another party wrote to one of its Redis streams
// (issue 20): the field list (NodeSigner::open: names, sizes, the MAC check), and, as if the MAC
// had been right, the body checks every kind goes through (parse_body, get_*, seq_frames,
// is_client_frame). Whoever can write to Redis controls every byte of these.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "cluster/body.hpp"
#include "cluster/node_message.hpp"
#include "support.hpp"

namespace {

using pa::fuzz::check;
namespace json = boost::json;

const pa::cluster::NodeSigner kSigner(std::string(40, 's'));

// The input as a stream entry's fields: pieces separated by NUL bytes, taken two by two.
pa::redis::Reply fields_of(std::string_view data) {
  pa::redis::Reply fields;
  fields.type = pa::redis::Reply::Type::kArray;
  while (!data.empty()) {
    const auto end = data.find('\0');
    pa::redis::Reply piece;
    piece.type = pa::redis::Reply::Type::kString;
    piece.str = std::string(data.substr(0, end));
    fields.elements.push_back(std::move(piece));
    if (end == std::string_view::npos) break;
    data.remove_prefix(end + 1);
  }
  return fields;
}

void check_body(std::string_view body_text) {
  const auto body = pa::cluster::parse_body(body_text);
  if (!body) return;
  for (const char* key : {"conn", "seq", "prev", "after", "last", "through", "code"}) {
    (void)pa::cluster::get_u64(*body, key);
  }
  for (const char* key : {"rid", "project", "text", "reason", "to", "node"}) {
    const auto value = pa::cluster::get_string(*body, key, 128);
    check(!value || value->size() <= 128, "get_string: the size limit holds");
  }
  (void)pa::cluster::get_bool(*body, "more");
  if (const auto frames = pa::cluster::seq_frames(body->if_contains("frames"))) {
    for (const auto& [seq, text] : *frames) {
      check(text != nullptr && pa::cluster::is_client_frame(*text), "seq_frames: client frames");
      (void)seq;
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* bytes, std::size_t size) {
  const std::string_view data(reinterpret_cast<const char*>(bytes), size);
  const auto fields = fields_of(data);
  std::string why;
  const auto opened = kSigner.open("pa:cmd:b", fields, why);
  // A forged entry never opens: the MAC is over the stream and every field.
  check(!opened || why.empty(), "open: an opened entry has no refusal reason");
  if (!opened) check(!why.empty(), "open: a refusal says why");
  // What a signed entry could hold goes through the same checks as a body.
  check_body(data);
  (void)pa::cluster::stream_entries(fields);
  (void)pa::cluster::last_entry_id(fields);
  return 0;
}
