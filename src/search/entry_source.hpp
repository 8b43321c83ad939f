// Where the indexer reads history it has not seen (a new or deleted index, entries dropped from
// its queue, a failed write): the server reads through each project's strand, `reindex` reads
// the log files directly.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace pa::search {

struct SourcePage {
  std::vector<std::string> entries;  // whole history entries (JSON text), oldest first
  std::uint64_t last_seq = 0;        // the project's newest seq now
  bool has_more = false;             // entries after the page's last one (cut by limit or bytes)
};

class EntrySource {
 public:
  virtual ~EntrySource() = default;
  // The projects whose history should be searchable (any thread).
  virtual std::vector<std::string> project_ids() = 0;
  // At most `limit` entries with seq > `after_seq`, within about `max_bytes` (at least one);
  // nullopt when the project is gone.
  virtual std::optional<SourcePage> read_after(const std::string& project_id,
                                               std::uint64_t after_seq, std::size_t limit,
                                               std::size_t max_bytes) = 0;
};

}  // namespace pa::search
