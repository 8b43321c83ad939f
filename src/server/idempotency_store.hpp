// Idempotency keys: "a resent request is not run twice" (docs/protocol.md, Idempotency keys).
//
// Contract:
// - A record is (scope, result, time). The scope is (message type, project id or "", key): the
//   same key under another type or another project is another request. `result` is a small
//   string the handler needs to answer a duplicate (project_create: the id of the project it
//   made; permission_response: the permission_id; execute: empty).
// - find() reports a record made within the window (24 h by default); older ones do not exist.
// - record() appends one JSON line to `<data_dir>/idempotency.jsonl` with a single write() and
//   fdatasync()s it before returning: a request whose key was recorded (and then carried out)
//   is known after a crash or restart. It blocks on the disk: call it off the I/O threads (on
//   the project's strand, or the hub's create strand). forget() appends a synced tombstone, for
//   a request that was recorded and then refused after all.
// - Only requests that were carried out are recorded; callers record right before the step
//   that carries the request out and forget() it when that step refuses it.
// - Bounded: at most `max_keys` (100 000) live records; recording one more drops the oldest.
//   The file is rewritten atomically (temp file, fsync, rename) with only the live records when
//   it was loaded with dropped lines (expired, forgotten, evicted, corrupt, or a torn last line)
//   and, while running, when it holds at least `compact_min_lines` lines and more than twice
//   as many lines as live records. So it holds at most about 2 × max_keys lines.
// - Check-and-record is atomic only per caller's serialization: the store is thread-safe, but
//   a caller that must not do a request twice checks find() and calls record() on one strand
//   (the project's, or the hub's create strand for project_create).
#pragma once

#include <boost/json/object.hpp>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <unordered_map>
#include <vector>

#include "protocol/envelope.hpp"

namespace pa::server {

struct IdempotencyScope {
  std::string_view type;        // "execute", "permission_response", "project_create"
  std::string_view project_id;  // "" where the request has none (project_create)
  std::string_view key;         // data.idempotency_key
};

// Reads and removes `data.idempotency_key` from a request's data, so the message's own checks
// (which refuse unknown fields) see the rest. The key must be a string of 1-128 printable ASCII
// bytes (0x20-0x7E); anything else is an INVALID_MESSAGE naming data.idempotency_key. Absent or
// null: `key` stays empty.
std::optional<protocol::Error> take_idempotency_key(boost::json::object& data,
                                                    std::optional<std::string>& key);
// STORAGE_FAILED for a request whose key could not be recorded (it was not carried out).
protocol::Error idempotency_storage_error(const std::error_code& ec);

class IdempotencyStore {
 public:
  static constexpr std::size_t kMaxKeyBytes = 128;
  using Clock = std::function<std::chrono::system_clock::time_point()>;

  struct Options {
    std::filesystem::path file;  // <data_dir>/idempotency.jsonl
    std::chrono::milliseconds window = std::chrono::hours(24);
    std::size_t max_keys = 100'000;
    std::size_t compact_min_lines = 1024;
    Clock clock;  // empty = system_clock::now (tests pass their own)
  };

  explicit IdempotencyStore(Options options);
  ~IdempotencyStore();
  IdempotencyStore(const IdempotencyStore&) = delete;
  IdempotencyStore& operator=(const IdempotencyStore&) = delete;

  // Blocking, at start-up: creates or loads the file (what it drops is said in `warnings`).
  // On failure the store stays empty and every record() fails with the same error.
  std::error_code open(std::vector<std::string>& warnings);

  // The result stored for `scope` when it was recorded within the window. Thread-safe; memory
  // only.
  std::optional<std::string> find(const IdempotencyScope& scope) const;
  // Blocking (write + fdatasync). Thread-safe. On error nothing is recorded.
  std::error_code record(const IdempotencyScope& scope, std::string_view result);
  // Blocking (write + fdatasync). Thread-safe. Removes the record, if any.
  std::error_code forget(const IdempotencyScope& scope);

  std::size_t size() const;        // live records
  std::size_t file_lines() const;  // lines in the file (for tests of compaction)

 private:
  struct Entry {
    std::int64_t at_ms = 0;
    std::string result;
  };
  std::int64_t now_ms() const;
  std::error_code append_locked(const std::string& line);
  std::error_code compact_locked();
  void prune_locked(std::int64_t now);
  std::string serialize_locked(const std::string& scope_key, const Entry& entry) const;

  Options options_;
  mutable std::mutex mutex_;
  int fd_ = -1;
  std::error_code open_error_;
  std::unordered_map<std::string, Entry> entries_;          // by scope key
  std::deque<std::pair<std::int64_t, std::string>> order_;  // (at_ms, scope key), as recorded
  std::size_t file_lines_ = 0;
};

}  // namespace pa::server
