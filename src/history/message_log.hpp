// Per-project message history: append-only JSONL files with rotation, gap-free seq numbers and
// page reads that skip files which cannot hold what was asked.
//
// Layout: <logs_dir>/messages_YYYY-MM-DD_HH-MM-SS[_N].jsonl, one entry per line:
//   {"seq":N,"timestamp":"2024-01-01T12:00:00.123Z","direction":"client|claude|server","message":{...}}
// Not thread-safe: the owning project serializes every call (its strand runs off the I/O threads).
// The one exception is the append file's descriptor, which a shared FdBudget may close from
// another thread when this log is among the least recently used (it is reopened on next use).
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

namespace pa::history {

class FdBudget;

enum class Direction { kClient, kClaude, kServer };
std::string_view to_string(Direction d);

struct Options {
  std::uint64_t rotate_bytes = 104857600;          // start a new file before one would exceed this
  std::uint64_t rotate_count = 10000;              // entries per file
  std::chrono::milliseconds fsync_interval{1000};  // 0 = fdatasync after every append
  // The seq continues above this even if the files hold less (files deleted or archived): the
  // owner keeps durable_seq() somewhere that outlives the files.
  std::uint64_t seq_floor = 0;
  // Where the append file's descriptor is accounted: it is closed when the budget's least
  // recently used and reopened on the next append. nullptr = FdBudget::process().
  FdBudget* fd_budget = nullptr;
};

// Without before_seq a page is the oldest `limit` matches; with it, the newest `limit` matches
// below before_seq (for paging backwards). Filters combine: after_seq + before_seq is a window.
// A page also ends before the entries' total size would pass `max_bytes` (0 = no byte bound),
// but always holds at least one entry when any matches; a page cut short has has_more set.
struct Query {
  std::optional<std::uint64_t> after_seq;   // exclusive
  std::optional<std::uint64_t> before_seq;  // exclusive
  std::optional<std::string> since;         // RFC 3339 timestamp, exclusive
  std::size_t limit = 1000;
  std::uint64_t max_bytes = 0;
};

struct Page {
  std::vector<std::string> entries;  // complete entry objects (JSON text, no newline), oldest first
  // More entries match beyond the page: after its last entry, or (with before_seq) before its
  // first one.
  bool has_more = false;
};

struct AppendResult {
  std::uint64_t seq = 0;
  std::string timestamp;
};

class MessageLog {
 public:
  // Opens (creating the directory if needed) and scans existing files: finds the last seq (at
  // least options.seq_floor), cuts a torn last line off the newest file, and indexes each file's
  // first/last seq and timestamp. When the files hold entries above seq_floor, the newest file
  // is fdatasync'ed so that durable_seq() covers them.
  // Problems that were repaired or skipped are appended to `warnings`. ec set only if unusable.
  static std::unique_ptr<MessageLog> open(const std::filesystem::path& logs_dir, Options options,
                                          std::vector<std::string>& warnings, std::error_code& ec);
  ~MessageLog();
  MessageLog(const MessageLog&) = delete;
  MessageLog& operator=(const MessageLog&) = delete;

  std::uint64_t last_seq() const;

  // Appends one entry with seq = last_seq()+1 and the current time, written whole with a single
  // write(2) (so a crash after return never loses it). `message_json` must be one JSON value.
  // Rotates first when needed. fdatasync happens here only if fsync_interval is 0 or has elapsed.
  // `trailer` (e.g. `,"run":{"id":"…","offset":N}`) is spliced in after "message", so that a fact
  // about the entry is written in the same write(2) as the entry.
  AppendResult append(Direction direction, std::string_view message_json, std::error_code& ec,
                      std::string_view trailer = {});

  // True when appended data has not been fdatasync'ed yet; sync() does it.
  bool needs_sync() const;
  void sync(std::error_code& ec);
  // The highest seq known to be on disk (fdatasync'ed), or options.seq_floor if higher.
  std::uint64_t durable_seq() const;

  Page read(const Query& query, std::vector<std::string>& warnings) const;

  std::uint64_t bytes_written() const;  // since open, for metrics
  std::size_t file_count() const;

 private:
  struct Impl;
  explicit MessageLog(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace pa::history
