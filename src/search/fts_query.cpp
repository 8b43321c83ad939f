#include "search/fts_query.hpp"

#include <vector>

namespace pa::search {

namespace {

// White space and every other ASCII control character (a NUL would end FTS5's reading of the
// query inside a quoted string) separate words.
bool is_space(char c) {
  const auto u = static_cast<unsigned char>(c);
  return u <= 0x20 || u == 0x7f;
}

// Bytes the index's tokenizer (unicode61) keeps in words: ASCII letters and digits, and every
// non-ASCII character (most are letters; non-ASCII punctuation alone finds nothing).
std::size_t word_chars(std::string_view term) {
  std::size_t n = 0;
  for (const char c : term) {
    const auto u = static_cast<unsigned char>(c);
    if ((u >= '0' && u <= '9') || (u >= 'a' && u <= 'z') || (u >= 'A' && u <= 'Z') ||
        (u >= 0x80 && (u & 0xC0) != 0x80))
      ++n;
  }
  return n;
}

std::string quoted(std::string_view term) {
  std::string out = "\"";
  for (const char c : term) {
    if (c == '"') out += '"';
    out += c;
  }
  out += '"';
  return out;
}

}  // namespace

FtsQuery build_fts_query(std::string_view text, std::string_view project_token) {
  std::vector<std::string_view> terms;
  std::size_t i = 0;
  while (i < text.size()) {
    while (i < text.size() && is_space(text[i])) ++i;
    const std::size_t start = i;
    while (i < text.size() && !is_space(text[i])) ++i;
    if (i > start) terms.push_back(text.substr(start, i - start));
  }
  if (terms.size() > kMaxQueryTerms)
    return {{}, "data.query has more than " + std::to_string(kMaxQueryTerms) + " words"};
  std::string phrases;
  for (auto term : terms) {
    bool prefix = false;
    while (!term.empty() && term.back() == '*') {
      term.remove_suffix(1);
      prefix = true;
    }
    const std::size_t letters = word_chars(term);
    if (letters == 0) continue;  // only punctuation: nothing the index holds
    if (prefix && letters < kMinPrefixChars)
      return {{},
              "a word ending in * needs at least " + std::to_string(kMinPrefixChars) +
                  " letters or digits before the *"};
    if (!phrases.empty()) phrases += " AND ";
    phrases += quoted(term);
    if (prefix) phrases += '*';
  }
  if (phrases.empty()) return {{}, "data.query has no letters or digits to search for"};
  std::string expression;
  if (!project_token.empty()) expression = "project : " + std::string(project_token) + " AND ";
  expression += "body : (" + phrases + ")";
  return {expression, {}};
}

}  // namespace pa::search
