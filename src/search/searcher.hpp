// Queries of the search index, from any thread but the I/O threads (they read the file). Keeps
// a few reader connections to reuse; they are reopened when the indexer made the file anew.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "search/index_file.hpp"
#include "search/indexer.hpp"

namespace pa::search {

// A snippet as a client shows it: plain text (runs of white space made one space) and where
// the matches are, as [start, end) offsets in UTF-16 code units (JavaScript string indices).
struct Snippet {
  std::string text;
  std::vector<std::pair<std::size_t, std::size_t>> marks;
};
Snippet make_snippet(std::string_view marked);

class Searcher {
 public:
  explicit Searcher(const Indexer& indexer) : indexer_(indexer) {}
  SearchPage search(const SearchRequest& request);

 private:
  std::unique_ptr<IndexFile> take_reader(std::string& error);
  void give_back(std::unique_ptr<IndexFile> reader, std::uint64_t generation);

  const Indexer& indexer_;
  std::mutex mutex_;
  std::vector<std::unique_ptr<IndexFile>> idle_;
  std::uint64_t generation_ = 0;  // of the idle readers
  static constexpr std::size_t kMaxIdle = 4;
};

}  // namespace pa::search
