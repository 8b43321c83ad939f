#include "history/message_log.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <spdlog/spdlog.h>
#include <algorithm>
#include <boost/json/monotonic_resource.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <deque>
#include <limits>
#include <utility>

#include "history/fd_budget.hpp"
#include "protocol/clock.hpp"

namespace pa::history {

namespace fs = std::filesystem;
using protocol::format_file_stamp;
using protocol::format_rfc3339;
using protocol::parse_rfc3339;
using protocol::SystemTime;

std::string_view to_string(Direction d) {
  switch (d) {
    case Direction::kClient:
      return "client";
    case Direction::kClaude:
      return "claude";
    case Direction::kServer:
      return "server";
  }
  return "server";
}

namespace {

// Entries are parsed back with this nesting limit (Boost.JSON's default is 32). Messages are
// stored as they were accepted: a CLI line may nest up to 1024 levels (agent::inspect_cli_line) and
// the entry wraps it in one more.
constexpr std::size_t kMaxEntryDepth = 1025;
constexpr std::uint64_t kSparseEvery = 256;   // lines between sparse index points
constexpr std::size_t kScanKeep = 64 * 1024;  // bytes of a line kept while scanning on open
constexpr std::size_t kReadChunk = 64 * 1024;
constexpr std::size_t kMaxLineWarnings = 10;  // per read(); the rest are summarized
constexpr SystemTime kNoTime = SystemTime::min();

std::error_code errno_code(int err = errno) {
  return {err, std::system_category()};
}

// Owns a file descriptor.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(Fd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  Fd& operator=(Fd&& o) noexcept {
    if (this != &o) {
      reset();
      fd_ = std::exchange(o.fd_, -1);
    }
    return *this;
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() { reset(); }
  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  void reset() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_ = -1;
};

Fd open_fd(const fs::path& path, int flags, std::error_code& ec, mode_t mode = 0) {
  int fd;
  do {
    fd = ::open(path.c_str(), flags | O_CLOEXEC, mode);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0) ec = errno_code();
  return Fd(fd);
}

void write_all(int fd, std::string_view data, std::error_code& ec) {
  while (!data.empty()) {
    const ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      ec = errno_code();
      return;
    }
    if (n == 0) {
      ec = std::make_error_code(std::errc::io_error);
      return;
    }
    data.remove_prefix(static_cast<std::size_t>(n));
  }
}

void sync_data(int fd, std::error_code& ec) {
  int rc;
  do {
    rc = ::fdatasync(fd);
  } while (rc < 0 && errno == EINTR);
  if (rc < 0) ec = errno_code();
}

void sync_directory(const fs::path& dir, std::error_code& ec) {
  Fd fd = open_fd(dir, O_RDONLY | O_DIRECTORY, ec);
  if (!fd.valid()) return;
  int rc;
  do {
    rc = ::fsync(fd.get());
  } while (rc < 0 && errno == EINTR);
  if (rc < 0) ec = errno_code();
}

// Reads exactly `len` bytes at `offset`.
bool pread_exact(int fd, std::uint64_t offset, std::size_t len, std::string& out,
                 std::error_code& ec) {
  out.resize(len);
  std::size_t done = 0;
  while (done < len) {
    const ssize_t n = ::pread(fd, out.data() + done, len - done, static_cast<off_t>(offset + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      ec = errno_code();
      return false;
    }
    if (n == 0) {
      ec = std::make_error_code(std::errc::io_error);  // file shrank under us
      return false;
    }
    done += static_cast<std::size_t>(n);
  }
  return true;
}

// Buffered line reader over [start, end) of a file. Lines may be of any length; at most `keep`
// bytes of each line are stored, but the full length is always reported.
class LineReader {
 public:
  struct Line {
    std::uint64_t offset = 0;  // of the first byte
    std::uint64_t length = 0;  // without the '\n'
    bool terminated = false;   // ended with '\n' (false only for a tail at `end`)
  };

  LineReader(int fd, std::uint64_t start, std::uint64_t end)
      : fd_(fd), file_pos_(start), end_pos_(end), buf_(kReadChunk) {}

  // False at the end or on error (ec set).
  bool next(std::string& text, std::size_t keep, Line& line, std::error_code& ec) {
    text.clear();
    line = Line{};
    line.offset = file_pos_ - (end_ - begin_);
    bool any = false;
    for (;;) {
      if (begin_ == end_) {
        if (!refill(ec)) return false;
        if (begin_ == end_) return any;  // end of range: unterminated tail (if any)
      }
      const char* start = buf_.data() + begin_;
      const std::size_t avail = end_ - begin_;
      const void* nl = std::memchr(start, '\n', avail);
      const std::size_t len =
          nl ? static_cast<std::size_t>(static_cast<const char*>(nl) - start) : avail;
      if (text.size() < keep) text.append(start, std::min(len, keep - text.size()));
      line.length += len;
      any = true;
      if (nl) {
        begin_ += len + 1;
        line.terminated = true;
        return true;
      }
      begin_ = end_;
    }
  }

 private:
  bool refill(std::error_code& ec) {
    begin_ = end_ = 0;
    if (file_pos_ >= end_pos_) return true;
    const std::size_t want =
        static_cast<std::size_t>(std::min<std::uint64_t>(buf_.size(), end_pos_ - file_pos_));
    for (;;) {
      const ssize_t n = ::pread(fd_, buf_.data(), want, static_cast<off_t>(file_pos_));
      if (n < 0) {
        if (errno == EINTR) continue;
        ec = errno_code();
        return false;
      }
      end_ = static_cast<std::size_t>(n);
      file_pos_ += end_;
      if (n == 0) end_pos_ = file_pos_;  // shorter than indexed: treat as the end
      return true;
    }
  }

  int fd_;
  std::uint64_t file_pos_;  // file offset just past the buffered bytes
  std::uint64_t end_pos_;
  std::vector<char> buf_;
  std::size_t begin_ = 0;
  std::size_t end_ = 0;
};

// What an entry line says about itself.
struct EntryMeta {
  std::uint64_t seq = 0;
  SystemTime time = kNoTime;
  std::string_view timestamp;  // points into the line (or the parsed value it came from)
};

// Fast path for lines this class wrote: {"seq":N,"timestamp":"...", ... Does not validate the
// rest of the line.
bool parse_header(std::string_view line, EntryMeta& meta) {
  constexpr std::string_view kSeq = "{\"seq\":";
  constexpr std::string_view kTs = ",\"timestamp\":\"";
  if (!line.starts_with(kSeq)) return false;
  const char* const end = line.data() + line.size();
  const char* p = line.data() + kSeq.size();
  const auto [after, err] = std::from_chars(p, end, meta.seq);
  if (err != std::errc{} || after == p) return false;
  std::string_view rest(after, static_cast<std::size_t>(end - after));
  if (!rest.starts_with(kTs)) return false;
  rest.remove_prefix(kTs.size());
  const std::size_t quote = rest.find('"');
  if (quote == std::string_view::npos || quote > 64) return false;
  meta.timestamp = rest.substr(0, quote);
  const auto t = parse_rfc3339(meta.timestamp);
  if (!t) return false;
  meta.time = *t;
  return true;
}

// Full parse. True when the line is a JSON object; `has_meta` tells whether it also carries a
// usable seq and timestamp (filled into meta, timestamp copied into `ts_storage`).
bool parse_full(std::string_view line, EntryMeta& meta, bool& has_meta, std::string& ts_storage) {
  has_meta = false;
  unsigned char stack_buf[4096];
  boost::json::monotonic_resource mr(stack_buf, sizeof stack_buf);
  boost::system::error_code jec;
  boost::json::parse_options options;
  options.max_depth = kMaxEntryDepth;
  const boost::json::value v = boost::json::parse(line, jec, &mr, options);
  if (jec || !v.is_object()) return false;
  const auto& obj = v.get_object();
  const auto* seq = obj.if_contains("seq");
  const auto* ts = obj.if_contains("timestamp");
  if (!seq || !ts || !ts->is_string()) return true;
  if (seq->is_uint64()) {
    meta.seq = seq->get_uint64();
  } else if (seq->is_int64() && seq->get_int64() >= 0) {
    meta.seq = static_cast<std::uint64_t>(seq->get_int64());
  } else {
    return true;
  }
  ts_storage.assign(ts->get_string().data(), ts->get_string().size());
  const auto t = parse_rfc3339(ts_storage);
  if (!t) return true;
  meta.time = *t;
  meta.timestamp = ts_storage;
  has_meta = true;
  return true;
}

bool is_json_object(std::string_view line) {
  EntryMeta meta;
  bool has_meta = false;
  std::string ts;
  return parse_full(line, meta, has_meta, ts);
}

bool is_log_file_name(const std::string& name) {
  return name.size() > 15 && name.starts_with("messages_") && name.ends_with(".jsonl");
}

// An index point at a line boundary: every indexed entry before `offset` has seq <= max_seq and
// time <= max_time. Prefix maxima are monotone in `offset`, so a reader can jump to the last point
// whose maxima cannot satisfy its query (this stays correct even if the clock stepped back).
struct SparsePoint {
  std::uint64_t offset = 0;
  std::uint64_t max_seq = 0;
  SystemTime max_time = kNoTime;
};

struct FileIndex {
  fs::path path;
  std::uint64_t first_seq = 0;
  std::uint64_t last_seq = 0;
  std::string first_timestamp;
  std::string last_timestamp;
  std::uint64_t entries = 0;  // lines with a usable seq and timestamp
  std::uint64_t lines = 0;    // complete lines, corrupt ones included
  std::uint64_t size = 0;     // bytes
  std::uint64_t min_seq = std::numeric_limits<std::uint64_t>::max();
  std::uint64_t max_seq = 0;
  SystemTime max_time = kNoTime;
  std::vector<SparsePoint> sparse;

  void add_line(std::uint64_t offset, std::uint64_t length_with_newline, const EntryMeta* meta) {
    if (lines > 0 && lines % kSparseEvery == 0) sparse.push_back({offset, max_seq, max_time});
    ++lines;
    size = offset + length_with_newline;
    if (!meta) return;
    if (entries == 0) {
      first_seq = meta->seq;
      first_timestamp.assign(meta->timestamp);
    }
    ++entries;
    last_seq = meta->seq;
    last_timestamp.assign(meta->timestamp);
    min_seq = std::min(min_seq, meta->seq);
    max_seq = std::max(max_seq, meta->seq);
    max_time = std::max(max_time, meta->time);
  }
};

// Where a scanned file ends, for the torn-line check.
struct Tail {
  std::uint64_t last_line_offset = 0;  // of the last complete line (valid when lines > 0)
  std::uint64_t last_line_length = 0;  // without '\n'
  bool partial = false;                // bytes after the last '\n'
  std::uint64_t partial_offset = 0;
  std::uint64_t partial_length = 0;
};

bool scan_file(const fs::path& path, FileIndex& index, Tail& tail, std::error_code& ec) {
  index = FileIndex{};
  index.path = path;
  tail = Tail{};
  Fd fd = open_fd(path, O_RDONLY, ec);
  if (!fd.valid()) return false;
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) {
    ec = errno_code();
    return false;
  }
  LineReader reader(fd.get(), 0, static_cast<std::uint64_t>(st.st_size));
  std::string text;
  std::string ts_storage;
  LineReader::Line line;
  while (reader.next(text, kScanKeep, line, ec)) {
    if (!line.terminated) {
      tail.partial = true;
      tail.partial_offset = line.offset;
      tail.partial_length = line.length;
      break;
    }
    EntryMeta meta;
    bool ok = parse_header(text, meta);
    if (!ok && line.length == text.size()) {
      bool has_meta = false;
      ok = parse_full(text, meta, has_meta, ts_storage) && has_meta;
    }
    index.add_line(line.offset, line.length + 1, ok ? &meta : nullptr);
    tail.last_line_offset = line.offset;
    tail.last_line_length = line.length;
  }
  if (ec) return false;
  // A partial tail is not part of the indexed size: reads and appends ignore or replace it.
  if (!tail.partial) index.size = static_cast<std::uint64_t>(st.st_size);
  return true;
}

// What a read matches, with `since` parsed.
struct Filter {
  std::optional<std::uint64_t> after_seq;
  std::optional<std::uint64_t> before_seq;
  std::optional<SystemTime> since;

  bool matches(const EntryMeta& meta) const {
    return (!after_seq || meta.seq > *after_seq) && (!before_seq || meta.seq < *before_seq) &&
           (!since || meta.time > *since);
  }
  // False when no entry of `file` can match, judged from its index alone.
  bool may_match(const FileIndex& file) const {
    return file.entries > 0 && (!after_seq || file.max_seq > *after_seq) &&
           (!before_seq || file.min_seq < *before_seq) && (!since || file.max_time > *since);
  }
};

}  // namespace

// The descriptor-related members (fd, dirty, durable_seq, last_sync) are guarded by
// descriptor_mutex(): the budget may close `fd` from another thread (release_descriptor).
struct MessageLog::Impl final : FdBudget::Member {
  fs::path dir;
  Options options;
  FdBudget* budget = nullptr;
  std::vector<FileIndex> files;  // ordered by first seq; the last one is the append target
  std::uint64_t last_seq = 0;
  std::uint64_t durable_seq = 0;  // entries up to this seq are fdatasync'ed
  Fd fd;                          // files.back(), opened for append (lazily; closed by the budget)
  bool current_usable = true;     // false: the next append starts a new file
  bool dirty = false;             // appended data not fdatasync'ed yet
  bool dir_sync_pending = false;  // a created file's directory entry is not synced yet
  std::chrono::steady_clock::time_point last_sync = std::chrono::steady_clock::now();
  std::uint64_t bytes_written = 0;

  // Cuts a torn last line off `files[i]` (the newest file with content) and rescans it.
  void repair_tail(std::size_t i, const Tail& tail, std::vector<std::string>& warnings,
                   std::error_code& ec);
  void start_new_file(SystemTime now, std::error_code& ec);
  // Makes what was written durable (fdatasync) and closes the append file; the budget's call.
  void release_descriptor() override {
    if (!fd.valid()) return;
    if (dirty) {
      std::error_code ec;
      sync_data(fd.get(), ec);
      if (!ec) {
        dirty = false;
        durable_seq = last_seq;
        last_sync = std::chrono::steady_clock::now();
      } else {
        spdlog::warn("history {}: fdatasync before closing failed ({}); retried on the next sync",
                     dir.string(), ec.message());
      }
    }
    fd.reset();
  }
  // MessageLog::sync with descriptor_mutex() held.
  void sync_locked(std::error_code& ec);
  // Tells the budget whether the append file is open now (after it may have been (re)opened or
  // closed). With descriptor_mutex() held.
  void account_descriptor() {
    if (fd.valid()) {
      budget->opened(*this);
    } else {
      budget->closed(*this);
    }
  }
  // Calls `take(entry)` for each matching entry of `file` in file order until it returns false;
  // false when it did.
  template <class Take>
  bool read_file(const FileIndex& file, const Filter& filter, std::size_t& corrupt_lines,
                 std::vector<std::string>& warnings, Take&& take) const;
};

void MessageLog::Impl::repair_tail(std::size_t i, const Tail& tail,
                                   std::vector<std::string>& warnings, std::error_code& ec) {
  FileIndex& file = files[i];
  std::uint64_t cut_at = 0;
  std::uint64_t cut_bytes = 0;
  if (tail.partial) {
    cut_at = tail.partial_offset;
    cut_bytes = tail.partial_length;
  } else if (file.lines > 0) {
    Fd rfd = open_fd(file.path, O_RDONLY, ec);
    if (!rfd.valid()) return;
    std::string last;
    if (!pread_exact(rfd.get(), tail.last_line_offset,
                     static_cast<std::size_t>(tail.last_line_length), last, ec))
      return;
    if (is_json_object(last)) return;
    cut_at = tail.last_line_offset;
    cut_bytes = tail.last_line_length + 1;
  } else {
    return;
  }
  std::error_code wec;
  Fd wfd = open_fd(file.path, O_WRONLY, wec);
  if (wfd.valid() && ::ftruncate(wfd.get(), static_cast<off_t>(cut_at)) != 0) wec = errno_code();
  if (!wec) sync_data(wfd.get(), wec);
  if (wec) {
    // Appending after the torn bytes would glue them onto a good entry: start a new file instead.
    current_usable = false;
    warnings.push_back("history " + file.path.string() + ": could not cut a torn last line (" +
                       std::to_string(cut_bytes) + " bytes): " + wec.message());
    return;
  }
  warnings.push_back("history " + file.path.string() + ": cut a torn last line (" +
                     std::to_string(cut_bytes) + " bytes)");
  Tail unused;
  const fs::path path = file.path;  // scan_file resets `file`
  scan_file(path, file, unused, ec);
}

void MessageLog::Impl::start_new_file(SystemTime now, std::error_code& ec) {
  if (fd.valid() && dirty) {
    sync_data(fd.get(), ec);  // the old file is complete: make it durable before moving on
    if (ec) return;
    dirty = false;
    durable_seq = last_seq;
    last_sync = std::chrono::steady_clock::now();
  }
  fd.reset();
  const std::string stamp = format_file_stamp(now);
  for (int n = 0; n < 100000; ++n) {
    std::string name = "messages_" + stamp;
    if (n > 0) name += "_" + std::to_string(n);
    name += ".jsonl";
    fs::path path = dir / name;
    std::error_code oec;
    Fd created = open_fd(path, O_WRONLY | O_APPEND | O_CREAT | O_EXCL, oec, 0600);
    if (!created.valid()) {
      if (oec == std::errc::file_exists) continue;
      ec = oec;
      return;
    }
    fd = std::move(created);
    FileIndex index;
    index.path = std::move(path);
    files.push_back(std::move(index));
    current_usable = true;
    dir_sync_pending = true;
    sync_directory(dir, ec);
    if (!ec) dir_sync_pending = false;
    return;
  }
  ec = std::make_error_code(std::errc::file_exists);
}

std::unique_ptr<MessageLog> MessageLog::open(const fs::path& logs_dir, Options options,
                                             std::vector<std::string>& warnings,
                                             std::error_code& ec) {
  ec.clear();
  auto impl = std::make_unique<Impl>();
  // "logs/" names the same directory as "logs".
  const fs::path dir = logs_dir.has_filename() ? logs_dir : logs_dir.parent_path();
  impl->dir = dir;
  impl->options = options;
  impl->budget = options.fd_budget != nullptr ? options.fd_budget : &FdBudget::process();

  // Directory: parents with default permissions, the log directory itself 0700.
  if (dir.has_parent_path()) {
    fs::create_directories(dir.parent_path(), ec);
    if (ec) return nullptr;
  }
  if (::mkdir(dir.c_str(), 0700) == 0) {
    if (dir.has_parent_path()) {
      std::error_code sec;  // best effort: the directory holds nothing yet
      sync_directory(dir.parent_path(), sec);
    }
  } else if (errno != EEXIST) {
    ec = errno_code();
    return nullptr;
  }
  if (!fs::is_directory(dir, ec)) {
    if (!ec) ec = std::make_error_code(std::errc::not_a_directory);
    return nullptr;
  }

  std::vector<fs::path> paths;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    std::error_code tec;
    if (is_log_file_name(name) && it->is_regular_file(tec)) paths.push_back(it->path());
  }
  if (ec) return nullptr;

  std::vector<Tail> tails;
  for (const auto& path : paths) {
    FileIndex index;
    Tail tail;
    // An unreadable file might hold the newest seq: refuse rather than risk reusing numbers.
    if (!scan_file(path, index, tail, ec)) return nullptr;
    impl->files.push_back(std::move(index));
    tails.push_back(tail);
  }

  // Files with entries by first seq; files without any (fresh after a rotation, or torn) last.
  std::vector<std::size_t> order(impl->files.size());
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
    const FileIndex& fa = impl->files[a];
    const FileIndex& fb = impl->files[b];
    if ((fa.entries == 0) != (fb.entries == 0)) return fb.entries == 0;
    if (fa.entries > 0 && fa.first_seq != fb.first_seq) return fa.first_seq < fb.first_seq;
    return fa.path.filename() < fb.path.filename();
  });
  {
    std::vector<FileIndex> sorted;
    std::vector<Tail> sorted_tails;
    for (std::size_t i : order) {
      sorted.push_back(std::move(impl->files[i]));
      sorted_tails.push_back(tails[i]);
    }
    impl->files = std::move(sorted);
    tails = std::move(sorted_tails);
  }

  // Only the newest file with content can end in a torn write: cut it. Elsewhere a tail without
  // a newline is left alone (reads never look past the last complete line).
  std::size_t newest = impl->files.size();
  for (std::size_t i = impl->files.size(); i-- > 0;) {
    if (impl->files[i].size == 0 && !tails[i].partial) continue;
    newest = i;
    impl->repair_tail(i, tails[i], warnings, ec);
    if (ec) return nullptr;
    break;
  }
  for (std::size_t i = 0; i < impl->files.size(); ++i) {
    if (i != newest && tails[i].partial)
      warnings.push_back("history " + impl->files[i].path.string() + ": ignoring " +
                         std::to_string(tails[i].partial_length) +
                         " bytes after the last complete line");
  }

  for (std::size_t i = 0; i < impl->files.size(); ++i) {
    const FileIndex& f = impl->files[i];
    impl->last_seq = std::max(impl->last_seq, f.max_seq);
    if (i > 0 && f.entries > 0 && impl->files[i - 1].entries > 0 &&
        f.first_seq <= impl->files[i - 1].max_seq)
      warnings.push_back("history " + f.path.string() + ": seq range overlaps " +
                         impl->files[i - 1].path.filename().string());
  }
  // Entries above the floor were written by an earlier run that may have ended before their
  // fdatasync (killed): make them durable now, so the owner can raise its floor to them. Older
  // files were synced when the next one was started.
  impl->durable_seq = options.seq_floor;
  if (impl->last_seq > options.seq_floor) {
    for (std::size_t i = impl->files.size(); i-- > 0;) {
      if (impl->files[i].entries == 0) continue;
      std::error_code sec;
      Fd sfd = open_fd(impl->files[i].path, O_RDONLY, sec);
      if (sfd.valid()) sync_data(sfd.get(), sec);
      if (!sec) {
        impl->durable_seq = impl->last_seq;
      } else {
        warnings.push_back("history " + impl->files[i].path.string() +
                           ": cannot fdatasync: " + sec.message());
      }
      break;
    }
  } else if (options.seq_floor > impl->last_seq) {
    if (impl->last_seq > 0 || !impl->files.empty())
      spdlog::debug("history {}: files end at seq {}, continuing above the stored {}", dir.string(),
                    impl->last_seq, options.seq_floor);
    impl->last_seq = options.seq_floor;
  }
  spdlog::debug("history {}: {} files, last seq {}", dir.string(), impl->files.size(),
                impl->last_seq);
  return std::unique_ptr<MessageLog>(new MessageLog(std::move(impl)));
}

MessageLog::MessageLog(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

MessageLog::~MessageLog() {
  if (!impl_) return;
  impl_->budget->closed(*impl_);
  // Waits for the budget if it is closing the file right now.
  std::lock_guard lock(impl_->descriptor_mutex());
  if (impl_->fd.valid() && impl_->dirty) {
    std::error_code ec;
    sync_data(impl_->fd.get(), ec);
  }
}

std::uint64_t MessageLog::last_seq() const {
  return impl_->last_seq;
}

AppendResult MessageLog::append(Direction direction, std::string_view message_json,
                                std::error_code& ec, std::string_view trailer) {
  ec.clear();
  Impl& s = *impl_;
  if (message_json.find_first_not_of(" \t\r\n") == std::string_view::npos) {
    ec = std::make_error_code(std::errc::invalid_argument);
    return {};
  }

  const SystemTime now = std::chrono::system_clock::now();
  AppendResult result;
  result.seq = s.last_seq + 1;
  result.timestamp = format_rfc3339(now);

  char seq_buf[24];
  const auto seq_end = std::to_chars(seq_buf, seq_buf + sizeof seq_buf, result.seq).ptr;
  const std::string_view dir_text = to_string(direction);
  std::string line;
  line.reserve(64 + message_json.size());
  line += "{\"seq\":";
  line.append(seq_buf, seq_end);
  line += ",\"timestamp\":\"";
  line += result.timestamp;
  line += "\",\"direction\":\"";
  line += dir_text;
  line += "\",\"message\":";
  const std::size_t message_at = line.size();
  line += message_json;
  // A raw newline can only be whitespace between JSON tokens (strings must escape it): blank it so
  // a pretty-printed message cannot break the one-entry-per-line format.
  if (message_json.find('\n') != std::string_view::npos)
    std::replace(line.begin() + static_cast<std::ptrdiff_t>(message_at), line.end(), '\n', ' ');
  line += trailer;
  line += "}\n";

  const auto must_rotate = [&](const FileIndex& f) {
    if (f.size == 0) return false;  // never leave a file empty: an oversized line goes in alone
    return f.entries >= s.options.rotate_count || f.size + line.size() > s.options.rotate_bytes;
  };
  std::lock_guard lock(s.descriptor_mutex());
  const bool was_open = s.fd.valid();
  // Whatever happens below, the budget learns whether the file is open now; a file that was
  // (re)opened may push the least recently used other logs' files out.
  struct Account {
    Impl& s;
    bool was_open;
    ~Account() {
      if (!was_open || !s.fd.valid()) {
        s.account_descriptor();
      } else {
        s.budget->used(s);
      }
    }
  } account{s, was_open};

  if (s.files.empty() || !s.current_usable || must_rotate(s.files.back())) {
    s.start_new_file(now, ec);
    if (ec) return {};
  } else if (!s.fd.valid()) {
    std::error_code oec;
    s.fd = open_fd(s.files.back().path, O_WRONLY | O_APPEND, oec);
    if (!s.fd.valid()) {
      // Out of descriptors: a new file could not be opened either, and must not be tried (the
      // current one is fine). Anything else (gone, unwritable): carry on in a new file.
      if (oec == std::errc::too_many_files_open ||
          oec == std::errc::too_many_files_open_in_system) {
        ec = oec;
        return {};
      }
      spdlog::debug("history {}: cannot append ({}), starting a new file",
                    s.files.back().path.string(), oec.message());
      s.start_new_file(now, ec);
      if (ec) return {};
    }
  }
  if (s.dir_sync_pending) {
    sync_directory(s.dir, ec);
    if (ec) return {};
    s.dir_sync_pending = false;
  }

  FileIndex& file = s.files.back();
  write_all(s.fd.get(), line, ec);
  if (ec) {
    // Take back a partial line so the next entry does not get glued onto it; the seq is not used.
    if (::ftruncate(s.fd.get(), static_cast<off_t>(file.size)) != 0) {
      s.current_usable = false;
      s.fd.reset();
    }
    return {};
  }

  EntryMeta meta;
  meta.seq = result.seq;
  // The time as written (millisecond precision), as an index built when the file is opened
  // sees it: with the clock's own precision, entries of the same millisecond would look later
  // than a `since` naming that millisecond, and the sparse index could not skip them.
  meta.time = std::chrono::time_point_cast<std::chrono::milliseconds>(now);
  meta.timestamp = result.timestamp;
  file.add_line(file.size, line.size(), &meta);
  s.last_seq = result.seq;
  s.bytes_written += line.size();
  s.dirty = true;

  // The entry is written; ec from here on means it is not known to be durable yet.
  const auto steady_now = std::chrono::steady_clock::now();
  if (s.options.fsync_interval.count() <= 0 || steady_now - s.last_sync >= s.options.fsync_interval)
    s.sync_locked(ec);
  return result;
}

bool MessageLog::needs_sync() const {
  std::lock_guard lock(impl_->descriptor_mutex());
  return impl_->dirty;
}

void MessageLog::sync(std::error_code& ec) {
  std::lock_guard lock(impl_->descriptor_mutex());
  impl_->sync_locked(ec);
}

void MessageLog::Impl::sync_locked(std::error_code& ec) {
  ec.clear();
  Impl& s = *this;
  if (!s.dirty) return;
  if (s.fd.valid()) {
    sync_data(s.fd.get(), ec);
  } else if (!s.files.empty()) {
    // Closed by the budget after a failed fdatasync: sync the file through a new descriptor.
    Fd once = open_fd(s.files.back().path, O_WRONLY, ec);
    if (once.valid()) sync_data(once.get(), ec);
  }
  if (ec) return;
  s.dirty = false;
  s.durable_seq = s.last_seq;
  s.last_sync = std::chrono::steady_clock::now();
}

std::uint64_t MessageLog::durable_seq() const {
  std::lock_guard lock(impl_->descriptor_mutex());
  return impl_->durable_seq;
}

template <class Take>
bool MessageLog::Impl::read_file(const FileIndex& file, const Filter& filter,
                                 std::size_t& corrupt_lines, std::vector<std::string>& warnings,
                                 Take&& take) const {
  // Jump to the last sparse point before which nothing can match.
  const auto& after_seq = filter.after_seq;
  const auto& since = filter.since;
  const auto first_maybe =
      std::partition_point(file.sparse.begin(), file.sparse.end(), [&](const SparsePoint& p) {
        return (after_seq || since) && (!after_seq || p.max_seq <= *after_seq) &&
               (!since || p.max_time <= *since);
      });
  const std::uint64_t start =
      first_maybe == file.sparse.begin() ? 0 : std::prev(first_maybe)->offset;

  std::error_code ec;
  Fd in = open_fd(file.path, O_RDONLY, ec);
  if (!in.valid()) {
    warnings.push_back("history " + file.path.string() + ": cannot read: " + ec.message());
    return true;
  }
  LineReader reader(in.get(), start, file.size);
  std::string text;
  std::string ts_storage;
  LineReader::Line line;
  const auto corrupt = [&](const LineReader::Line& at) {
    if (++corrupt_lines <= kMaxLineWarnings)
      warnings.push_back("history " + file.path.string() + ": skipped a corrupt line at byte " +
                         std::to_string(at.offset));
  };
  while (reader.next(text, std::numeric_limits<std::size_t>::max(), line, ec)) {
    EntryMeta meta;
    bool validated = false;
    if (!parse_header(text, meta)) {
      bool has_meta = false;
      if (!parse_full(text, meta, has_meta, ts_storage) || !has_meta) {
        corrupt(line);
        continue;
      }
      validated = true;
    }
    if (!filter.matches(meta)) continue;
    if (!validated && !is_json_object(text)) {
      corrupt(line);
      continue;
    }
    if (!take(text)) return false;
  }
  if (ec) warnings.push_back("history " + file.path.string() + ": read failed: " + ec.message());
  return true;
}

Page MessageLog::read(const Query& query, std::vector<std::string>& warnings) const {
  const Impl& s = *impl_;
  Page page;
  Filter filter{query.after_seq, query.before_seq, std::nullopt};
  if (query.since) {
    filter.since = parse_rfc3339(*query.since);
    if (!filter.since) {
      warnings.push_back("history: ignoring a read with an invalid since timestamp \"" +
                         *query.since + "\"");
      return page;
    }
  }
  std::size_t corrupt_lines = 0;
  const auto over_budget = [&](std::uint64_t bytes) {
    return query.max_bytes != 0 && bytes > query.max_bytes;
  };
  if (!query.before_seq) {
    // Oldest first: stop at the first match beyond the page.
    std::uint64_t bytes = 0;
    for (const FileIndex& file : s.files) {
      if (!filter.may_match(file)) continue;  // skipped without touching it
      const bool go_on = s.read_file(file, filter, corrupt_lines, warnings, [&](std::string& e) {
        if (page.entries.size() == query.limit ||
            (!page.entries.empty() && over_budget(bytes + e.size()))) {
          page.has_more = true;
          return false;
        }
        bytes += e.size();
        page.entries.push_back(std::move(e));
        return true;
      });
      if (!go_on) break;
    }
  } else {
    // Newest first by file: keep each file's last matches, one more than still needed, so that
    // an extra one means older entries exist. The page is the newest run of entries within the
    // byte budget; anything older than one entry beyond it is dropped as soon as it is known.
    std::deque<std::string> newest;
    std::uint64_t newest_bytes = 0;
    // True once the oldest entry kept cannot be on the page: it only says that more exist.
    const auto full = [&] {
      return newest.size() > query.limit || (newest.size() > 1 && over_budget(newest_bytes));
    };
    for (auto it = s.files.rbegin(); it != s.files.rend() && !full(); ++it) {
      if (!filter.may_match(*it)) continue;
      const std::size_t want = query.limit + 1 - newest.size();
      std::deque<std::string> from_file;
      std::uint64_t file_bytes = 0;
      s.read_file(*it, filter, corrupt_lines, warnings, [&](std::string& e) {
        file_bytes += e.size();
        from_file.push_back(std::move(e));
        // Once the entry after the front cannot be on the page either (the run from it to the
        // newest entry holds two or more entries and passes the budget), that entry is enough
        // to say that more exist: drop the front.
        while (from_file.size() > want ||
               (from_file.size() + newest.size() > 2 &&
                over_budget(file_bytes - from_file.front().size() + newest_bytes))) {
          file_bytes -= from_file.front().size();
          from_file.pop_front();
        }
        return true;
      });
      newest_bytes += file_bytes;
      newest.insert(newest.begin(), std::make_move_iterator(from_file.begin()),
                    std::make_move_iterator(from_file.end()));
    }
    while (newest.size() > query.limit || (newest.size() > 1 && over_budget(newest_bytes))) {
      page.has_more = true;
      newest_bytes -= newest.front().size();
      newest.pop_front();
    }
    page.entries.assign(std::make_move_iterator(newest.begin()),
                        std::make_move_iterator(newest.end()));
  }
  if (corrupt_lines > kMaxLineWarnings)
    warnings.push_back("history " + s.dir.string() + ": skipped " +
                       std::to_string(corrupt_lines - kMaxLineWarnings) + " more corrupt lines");
  return page;
}

std::uint64_t MessageLog::bytes_written() const {
  return impl_->bytes_written;
}

std::size_t MessageLog::file_count() const {
  return impl_->files.size();
}

}  // namespace pa::history
