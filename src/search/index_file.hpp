// The search index's SQLite file (<data_dir>/search/index.sqlite3): an FTS5 table over the
// searchable text of history entries, beside the JSONL logs, which stay the source of truth.
//
// Tables: projects (project_id, a small key, and indexed_seq: every entry up to it was looked
// at), docs (one row per entry with text: key, seq, text) and fts (FTS5, external content =
// docs). A doc's id orders entries newest first across projects: the entry's time in
// milliseconds shifted left by 20 bits, plus a counter for entries of the same millisecond; so
// an index rebuilt in any order sorts the same, and "newest first" is a reverse rowid scan.
// One writer connection (the Indexer's thread) and any number of readers (WAL mode).
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "search/sqlite.hpp"

namespace pa::search {

struct IndexedEntry {
  std::string project_id;
  std::uint64_t seq = 0;
  std::int64_t time_ms = 0;  // the entry's timestamp, milliseconds since the epoch
  std::string text;          // searchable_text(); empty: nothing to index (the seq still counts)
};

struct SearchRequest {
  std::string fts_expression;  // build_fts_query() without the project part
  std::optional<std::string> project_id;
  std::size_t limit = 20;
  std::optional<std::int64_t> before;  // a hit's cursor: only older hits
  std::chrono::milliseconds time_limit{5000};
};

struct SearchHit {
  std::string project_id;
  std::uint64_t seq = 0;
  std::int64_t time_ms = 0;
  std::string marked_snippet;  // matches between \x01 and \x02
  std::int64_t cursor = 0;     // the doc id
};

struct SearchPage {
  std::vector<SearchHit> hits;
  bool has_more = false;
  bool timed_out = false;  // the query ran past time_limit
  std::string error;       // the index could not answer (hits empty)
};

class IndexFile {
 public:
  // The writer: opens or creates the file (0600, WAL). A file that is damaged, not SQLite, or
  // of another schema version is deleted and created anew (`recreated` set): it is derived data.
  static std::unique_ptr<IndexFile> open_writer(const std::filesystem::path& file, bool& recreated,
                                                std::string& error);
  // A reader of a file the writer created; nullptr (error set) when there is none yet.
  static std::unique_ptr<IndexFile> open_reader(const std::filesystem::path& file,
                                                std::string& error);

  // project id -> indexed_seq.
  std::optional<std::map<std::string, std::uint64_t>> watermarks(std::string& error);
  bool begin(std::string& error);
  bool commit(std::string& error);
  void rollback();
  // Inside a transaction. add() skips an empty text (only the watermark moves).
  bool add(const IndexedEntry& entry, std::string& error);
  bool set_watermark(const std::string& project_id, std::uint64_t seq, std::string& error);
  bool remove_project(const std::string& project_id, std::string& error);
  // Merges the FTS segments into one (after a full rebuild: faster queries, smaller file).
  bool optimize(std::string& error);

  SearchPage search(const SearchRequest& request);

 private:
  explicit IndexFile(std::unique_ptr<Database> db) : db_(std::move(db)) {}
  std::optional<std::int64_t> project_key(const std::string& project_id, bool create,
                                          std::string& error);
  // A prepared statement lent for one use: reset when the lease ends, since a statement left
  // mid-way keeps its read transaction open, and that stops WAL checkpoints (the -wal file
  // would grow without end).
  struct ResetOnRelease {
    void operator()(Statement* s) const { s->reset(); }
  };
  using Lease = std::unique_ptr<Statement, ResetOnRelease>;
  Lease statement(std::unique_ptr<Statement>& slot, const char* sql, std::string& error);

  std::unique_ptr<Database> db_;
  std::map<std::string, std::int64_t> keys_;  // project id -> key (writer's cache)
  std::unique_ptr<Statement> find_key_, insert_key_, last_id_, insert_doc_, insert_fts_, set_mark_,
      search_, hit_info_;
};

// The doc id of the first entry in `time_ms` (ids of one millisecond follow it).
std::int64_t first_id_of_millisecond(std::int64_t time_ms);
std::int64_t millisecond_of_id(std::int64_t id);

}  // namespace pa::search
