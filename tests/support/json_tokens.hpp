// The number tokens of JSON text outside strings, as written: for tests of how numbers are
// spelled (docs/protocol.md, "Numbers"), which a parsed value cannot show.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace pa::test {

inline std::vector<std::string> number_tokens(const std::string& text) {
  std::vector<std::string> out;
  bool in_string = false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    if (c == '"') {
      in_string = true;
    } else if (c == '-' || (c >= '0' && c <= '9')) {
      std::size_t end = i;
      while (end < text.size() &&
             std::string_view("0123456789+-.eE").find(text[end]) != std::string_view::npos) {
        ++end;
      }
      out.push_back(text.substr(i, end - i));
      i = end - 1;
    }
  }
  return out;
}

}  // namespace pa::test
