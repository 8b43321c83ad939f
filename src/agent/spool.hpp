// A run's spool: the durable record of everything a run did, written by its supervisor and read
// by the server (live through the supervisor's socket, or from the file when the supervisor is
// gone). One record per line, its first byte saying what it is:
//
//   o<line>          a line the CLI printed on stdout, as printed (no '\n' inside)
//   O{"bytes":N,"head":"..."}   a stdout line longer than claude.max_line_bytes, dropped
//   i{"tag":"..."}   a tagged write to the CLI's stdin was accepted (follow-up, answer, close…)
//   s{"reason":"..."}  the supervisor began stopping the CLI (kill, shutdown, force, timeout,
//                    idle_timeout, terminated, storage: held by a full disk for execution_idle)
//   s{"step":"sigterm"|"sigkill"}  the CLI did not end in time: the next step of the stop
//   x{"signaled":b,"code":n,"signal":n,"stderr":"..."}  the CLI ended; always the last record
//
// On the socket the supervisor may also send notices between records, which are not in the
// file and take no offset:
//   N{"storage":{"path":"...","error":"..."}}  the spool cannot be written (held, retrying)
//   N{"storage":null}                          it can again
//
// A record's offset is the byte offset of its end in the file (the start of the next one), so
// "applied up to offset N" names a prefix of the spool exactly. Records are written whole, those
// that come together in one write(2); a write cut short by a full disk is truncated away before
// the next try, so the file is always whole records plus, at worst, a torn tail that readers
// ignore. The supervisor may send a record to the server just before its write(2) (not with an
// fsync per write, not the exit record); a failed write is retried at the same offset.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>

namespace pa::agent {

enum class RecordKind : char {
  kLine = 'o',
  kOversized = 'O',
  kInput = 'i',
  kStop = 's',
  kExit = 'x',
  kNotice = 'N',  // socket only, never in the file
};

struct SpoolRecord {
  RecordKind kind = RecordKind::kLine;
  std::string_view payload;  // after the kind byte, without the '\n'
  std::uint64_t end_offset = 0;
};

// Encodes one record, '\n' included.
std::string encode_record(RecordKind kind, std::string_view payload);
// Splits a record line (without '\n'); nullopt when the kind byte is unknown.
std::optional<RecordKind> record_kind(std::string_view line);

// Splits a byte stream that starts at `offset` into records. Incomplete tails wait for more.
// A record longer than max_record is reported through on_record with kind kOversized made up
// from its size (a damaged or hostile spool cannot make the reader buffer without bound).
class RecordSplitter {
 public:
  RecordSplitter(std::uint64_t offset, std::size_t max_record)
      : offset_(offset), max_record_(max_record) {}
  // Calls on_record for every complete record in data (plus what was buffered).
  void feed(const char* data, std::size_t n,
            const std::function<void(const SpoolRecord&)>& on_record);
  std::uint64_t offset() const { return offset_; }  // end of the last record delivered
  std::size_t buffered() const { return partial_.size(); }

 private:
  std::uint64_t offset_;
  std::size_t max_record_;
  std::string partial_;
  std::uint64_t skipping_ = 0;  // bytes of an over-long record being skipped
};

// Reads the records of a spool file from `offset` to the last complete one (blocking; off the
// I/O threads). Returns the offset after the last record read.
std::uint64_t read_spool_file(const std::string& path, std::uint64_t offset, std::size_t max_record,
                              const std::function<void(const SpoolRecord&)>& on_record,
                              std::error_code& ec);

// The writer side (the supervisor). Not thread-safe.
class SpoolWriter {
 public:
  // Opens (creates, 0600) the file for appending; its current size is the first offset.
  std::error_code open(const std::string& path);
  ~SpoolWriter();
  // Writes whole records (one, or several back to back) whole or not at all: a short write is
  // truncated away. On failure the caller keeps the records and tries again later.
  std::error_code append(const std::string& records);
  std::error_code sync();  // fdatasync if anything was written since the last sync
  // For a sync done elsewhere (another thread, on fd()): true when something was written since
  // the last sync, and from now on counts as synced.
  bool take_dirty() { return std::exchange(dirty_, false); }
  bool dirty() const { return dirty_; }
  std::uint64_t size() const { return size_; }
  int fd() const { return fd_; }

 private:
  int fd_ = -1;
  std::uint64_t size_ = 0;
  bool dirty_ = false;
  bool torn_ = false;  // a failed append left bytes past size_
};

}  // namespace pa::agent
