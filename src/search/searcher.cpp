#include "search/searcher.hpp"

namespace pa::search {

Snippet make_snippet(std::string_view marked) {
  Snippet out;
  std::size_t utf16 = 0;  // length of out.text in UTF-16 code units
  std::size_t mark_start = 0;
  bool in_mark = false;
  bool space_pending = false;
  for (std::size_t i = 0; i < marked.size(); ++i) {
    const auto c = static_cast<unsigned char>(marked[i]);
    if (c == 0x01 || c == 0x02) {
      if (space_pending && !out.text.empty()) {
        out.text += ' ';
        ++utf16;
      }
      space_pending = false;
      if (c == 0x01) {
        mark_start = utf16;
        in_mark = true;
      } else if (in_mark) {
        if (utf16 > mark_start) out.marks.emplace_back(mark_start, utf16);
        in_mark = false;
      }
      continue;
    }
    if (c <= 0x20 || c == 0x7f) {
      space_pending = true;
      continue;
    }
    if (space_pending && !out.text.empty()) {
      out.text += ' ';
      ++utf16;
    }
    space_pending = false;
    out.text += static_cast<char>(c);
    // A lead byte starts a code point: 4-byte sequences are two UTF-16 units.
    if ((c & 0xC0) != 0x80) utf16 += c >= 0xF0 ? 2 : 1;
  }
  return out;
}

std::unique_ptr<IndexFile> Searcher::take_reader(std::string& error) {
  {
    std::lock_guard lock(mutex_);
    if (generation_ != indexer_.generation()) {
      idle_.clear();  // they read a file that was replaced
      generation_ = indexer_.generation();
    }
    if (!idle_.empty()) {
      auto reader = std::move(idle_.back());
      idle_.pop_back();
      return reader;
    }
  }
  return IndexFile::open_reader(indexer_.file(), error);
}

void Searcher::give_back(std::unique_ptr<IndexFile> reader, std::uint64_t generation) {
  std::lock_guard lock(mutex_);
  if (generation == generation_ && idle_.size() < kMaxIdle) idle_.push_back(std::move(reader));
}

SearchPage Searcher::search(const SearchRequest& request) {
  const std::uint64_t generation = indexer_.generation();
  std::string error;
  auto reader = take_reader(error);
  if (!reader) {
    SearchPage page;
    page.error = error;
    return page;
  }
  auto page = reader->search(request);
  if (page.error.empty()) give_back(std::move(reader), generation);
  return page;
}

}  // namespace pa::search
