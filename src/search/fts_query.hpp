// A user's search text as an FTS5 query. User text is never passed as FTS5 syntax: each
// whitespace-separated term becomes a quoted string ("" inside doubled), so AND, OR, NOT, NEAR,
// column names, parentheses, ^ and quotes are searched for as words, never interpreted. Terms
// are ANDed (an entry must hold every one); a term ending in * matches words that begin with it.
// Punctuation inside a term splits it into words that must follow each other: "foo-bar" finds
// "foo bar" and "foo.bar" (docs/protocol.md, search_messages).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace pa::search {

inline constexpr std::size_t kMaxQueryBytes = 256;
inline constexpr std::size_t kMaxQueryTerms = 16;
// Characters a prefix term needs before its "*": the index keeps 3-letter prefixes (a shorter
// one would merge most of the index's word lists).
inline constexpr std::size_t kMinPrefixChars = 3;

struct FtsQuery {
  std::string expression;  // for MATCH; empty when `error` is set
  std::string error;       // what is wrong with the text, for an INVALID_MESSAGE
};

// `text` is valid UTF-8 of at most kMaxQueryBytes (the caller checked). `project_token`, when
// not empty, restricts the match to that project's entries (the index's project column).
FtsQuery build_fts_query(std::string_view text, std::string_view project_token = {});

}  // namespace pa::search
