#include "search/entry_text.hpp"

#include <boost/json/array.hpp>

#include "protocol/json_fields.hpp"
#include "protocol/utf8.hpp"

namespace pa::search {

namespace json = boost::json;

namespace {

class TextBuilder {
 public:
  bool full() const { return out_.size() >= kMaxEntryTextBytes; }
  void add(std::string_view text) {
    if (text.empty() || full()) return;
    if (!out_.empty()) out_ += '\n';
    // A few bytes beyond the cap, so that finish() can cut at a code point.
    out_.append(text.substr(0, kMaxEntryTextBytes + 4 - out_.size()));
  }
  // Every string in a tool's input, depth first (commands, paths, patterns, file contents).
  void add_strings(const json::value& v, int depth = 0) {
    if (full() || depth > 16) return;
    if (v.is_string()) {
      add(v.get_string());
    } else if (v.is_array()) {
      for (const auto& item : v.get_array()) add_strings(item, depth + 1);
    } else if (v.is_object()) {
      for (const auto& [key, item] : v.get_object()) add_strings(item, depth + 1);
    }
  }
  std::string finish() {
    // Cut at a code point (sanitize drops a torn last sequence's bytes into U+FFFD otherwise).
    if (out_.size() > kMaxEntryTextBytes) {
      std::size_t cut = kMaxEntryTextBytes;
      while (cut > 0 && (static_cast<unsigned char>(out_[cut]) & 0xC0) == 0x80) --cut;
      out_.resize(cut);
    }
    std::string text = protocol::sanitize_utf8(out_);
    for (char& c : text)
      if (c == '\x01' || c == '\x02') c = ' ';
    return text;
  }

 private:
  std::string out_;
};

const json::array* content_of(const json::object& line) {
  const auto* inner = protocol::object_at(line, "message");
  if (inner == nullptr) return nullptr;
  const auto* content = inner->if_contains("content");
  return content != nullptr && content->is_array() ? &content->get_array() : nullptr;
}

void add_assistant(const json::object& line, TextBuilder& out) {
  const auto* content = content_of(line);
  if (content == nullptr) return;
  for (const auto& block : *content) {
    if (!block.is_object()) continue;
    const auto& b = block.get_object();
    const std::string type = protocol::string_at(b, "type");
    if (type == "text") {
      out.add(protocol::string_at(b, "text"));
    } else if (type == "tool_use") {
      out.add(protocol::string_at(b, "name"));
      if (const auto* input = b.if_contains("input")) out.add_strings(*input);
    }
  }
}

void add_tool_results(const json::object& line, TextBuilder& out) {
  const auto* content = content_of(line);
  if (content == nullptr) return;
  for (const auto& block : *content) {
    if (!block.is_object()) continue;
    const auto& b = block.get_object();
    if (protocol::string_at(b, "type") != "tool_result") continue;
    const auto* result = b.if_contains("content");
    if (result == nullptr) continue;
    if (result->is_string()) {
      out.add(result->get_string());
    } else if (result->is_array()) {
      for (const auto& part : result->get_array()) {
        if (part.is_object() && protocol::string_at(part.get_object(), "type") == "text")
          out.add(protocol::string_at(part.get_object(), "text"));
      }
    }
  }
}

}  // namespace

std::string searchable_text(std::string_view direction, const json::object& message) {
  TextBuilder out;
  const std::string type = protocol::string_at(message, "type");
  if (direction == "client" && type == "execute") {
    if (const auto* data = protocol::object_at(message, "data"))
      out.add(protocol::string_at(*data, "prompt"));
  } else if (direction == "claude" && type == "assistant") {
    add_assistant(message, out);
  } else if (direction == "claude" && type == "user") {
    add_tool_results(message, out);
  }
  return out.finish();
}

}  // namespace pa::search
