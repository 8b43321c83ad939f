#include "history/message_log.hpp"

#include <sys/stat.h>

#include <gtest/gtest.h>
#include <algorithm>
#include <boost/json.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <random>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "protocol/clock.hpp"

namespace pa::history {
namespace {

namespace fs = std::filesystem;
namespace json = boost::json;
using protocol::format_file_stamp;
using protocol::format_rfc3339;
using protocol::parse_rfc3339;
using protocol::SystemTime;
using namespace std::chrono_literals;

class TempDir {
 public:
  TempDir() {
    std::random_device rd;
    const auto stamp = std::chrono::steady_clock::now().time_since_epoch().count();
    path_ = fs::temp_directory_path() /
            ("pa_history_test_" + std::to_string(stamp) + "_" + std::to_string(rd()));
    fs::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

std::string read_text(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void write_text(const fs::path& p, const std::string& text) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out << text;
}

void append_text(const fs::path& p, const std::string& text) {
  std::ofstream out(p, std::ios::binary | std::ios::app);
  out << text;
}

std::vector<std::string> split_lines(const std::string& text) {
  std::vector<std::string> lines;
  std::size_t pos = 0;
  while (pos < text.size()) {
    const std::size_t nl = text.find('\n', pos);
    if (nl == std::string::npos) {
      lines.push_back(text.substr(pos));
      break;
    }
    lines.push_back(text.substr(pos, nl - pos));
    pos = nl + 1;
  }
  return lines;
}

// Log files in the directory, sorted by name.
std::vector<fs::path> log_files(const fs::path& dir) {
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(dir)) files.push_back(e.path());
  std::sort(files.begin(), files.end());
  return files;
}

// Log files ordered by the seq on their first line.
std::vector<fs::path> log_files_by_seq(const fs::path& dir) {
  auto files = log_files(dir);
  const auto first_seq = [](const fs::path& p) {
    const auto lines = split_lines(read_text(p));
    if (lines.empty()) return std::uint64_t{0};
    return json::parse(lines[0]).at("seq").to_number<std::uint64_t>();
  };
  std::sort(files.begin(), files.end(),
            [&](const fs::path& a, const fs::path& b) { return first_seq(a) < first_seq(b); });
  return files;
}

std::uint64_t seq_of(const std::string& entry) {
  return json::parse(entry).at("seq").to_number<std::uint64_t>();
}

std::vector<std::uint64_t> seqs(const Page& page) {
  std::vector<std::uint64_t> out;
  for (const auto& e : page.entries) out.push_back(seq_of(e));
  return out;
}

std::vector<std::uint64_t> range(std::uint64_t from, std::uint64_t to) {  // inclusive
  std::vector<std::uint64_t> out;
  for (std::uint64_t i = from; i <= to; ++i) out.push_back(i);
  return out;
}

bool any_contains(const std::vector<std::string>& warnings, const std::string& needle) {
  return std::any_of(warnings.begin(), warnings.end(),
                     [&](const std::string& w) { return w.find(needle) != std::string::npos; });
}

std::string message(int i) {
  return R"({"type":"execute","data":{"n":)" + std::to_string(i) + "}}";
}

class MessageLogTest : public ::testing::Test {
 protected:
  fs::path logs() const { return tmp_.path() / "project" / "logs"; }

  std::unique_ptr<MessageLog> open_log(Options options = {}) {
    warnings_.clear();
    std::error_code ec;
    auto log = MessageLog::open(logs(), options, warnings_, ec);
    EXPECT_FALSE(ec) << ec.message();
    EXPECT_NE(log, nullptr);
    return log;
  }

  AppendResult append(MessageLog& log, int i, Direction d = Direction::kClient) {
    std::error_code ec;
    auto r = log.append(d, message(i), ec);
    EXPECT_FALSE(ec) << ec.message();
    return r;
  }

  Page read(const MessageLog& log, Query q, std::vector<std::string>* warnings = nullptr) {
    std::vector<std::string> local;
    auto page = log.read(q, warnings ? *warnings : local);
    if (!warnings) {
      EXPECT_TRUE(local.empty()) << local.front();
    }
    return page;
  }

  static Query after(std::uint64_t seq, std::size_t limit = 1000) {
    Query q;
    q.after_seq = seq;
    q.limit = limit;
    return q;
  }

  TempDir tmp_;
  std::vector<std::string> warnings_;
};

TEST_F(MessageLogTest, AppendReadRoundTrip) {
  auto log = open_log();
  EXPECT_TRUE(warnings_.empty());
  EXPECT_EQ(log->last_seq(), 0u);
  EXPECT_EQ(log->file_count(), 0u);
  EXPECT_TRUE(read(*log, {}).entries.empty());

  const std::vector<std::pair<Direction, std::string>> input = {
      {Direction::kClient, R"({"type":"execute","data":{"prompt":"hi \"there\"\u00e9"}})"},
      {Direction::kClaude, R"({"type":"message_start","message":{"id":"msg_1"}})"},
      {Direction::kServer, R"([1,2,{"x":null}])"},
  };
  std::vector<AppendResult> results;
  for (const auto& [d, m] : input) {
    std::error_code ec;
    results.push_back(log->append(d, m, ec));
    ASSERT_FALSE(ec) << ec.message();
  }
  EXPECT_EQ(log->last_seq(), 3u);
  EXPECT_EQ(log->file_count(), 1u);

  const Page page = read(*log, {});
  ASSERT_EQ(page.entries.size(), 3u);
  EXPECT_FALSE(page.has_more);
  const char* names[] = {"client", "claude", "server"};
  for (std::size_t i = 0; i < 3; ++i) {
    const json::object entry = json::parse(page.entries[i]).as_object();
    EXPECT_EQ(entry.at("seq").to_number<std::uint64_t>(), i + 1);
    EXPECT_EQ(results[i].seq, i + 1);
    EXPECT_EQ(entry.at("timestamp").as_string(), results[i].timestamp);
    EXPECT_TRUE(parse_rfc3339(results[i].timestamp));
    EXPECT_EQ(entry.at("direction").as_string(), names[i]);
    EXPECT_EQ(entry.at("message"), json::parse(input[i].second));
    // The message is stored verbatim, not re-serialized.
    EXPECT_NE(page.entries[i].find(input[i].second), std::string::npos);
    EXPECT_EQ(page.entries[i].find('\n'), std::string::npos);
  }

  // On disk: one file with the documented name, 0600 in a 0700 directory, one line per entry.
  const auto files = log_files(logs());
  ASSERT_EQ(files.size(), 1u);
  EXPECT_TRUE(std::regex_match(files[0].filename().string(),
                               std::regex(R"(messages_\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d\.jsonl)")))
      << files[0];
  EXPECT_EQ(fs::status(files[0]).permissions() & fs::perms::all,
            fs::perms::owner_read | fs::perms::owner_write);
  EXPECT_EQ(fs::status(logs()).permissions() & fs::perms::all, fs::perms::owner_all);
  const std::string text = read_text(files[0]);
  EXPECT_EQ(text, page.entries[0] + "\n" + page.entries[1] + "\n" + page.entries[2] + "\n");
  EXPECT_EQ(log->bytes_written(), text.size());
  EXPECT_EQ(page.entries[0].rfind(R"({"seq":1,"timestamp":")", 0), 0u);
}

TEST_F(MessageLogTest, RejectsEmptyMessageAndFlattensNewlines) {
  auto log = open_log();
  std::error_code ec;
  log->append(Direction::kClient, "  \n", ec);
  EXPECT_EQ(ec, std::errc::invalid_argument);
  EXPECT_EQ(log->last_seq(), 0u);

  const auto r = log->append(Direction::kClient, "{\n  \"a\": \"x\\ny\"\n}", ec);
  ASSERT_FALSE(ec);
  EXPECT_EQ(r.seq, 1u);
  const Page page = read(*log, {});
  ASSERT_EQ(page.entries.size(), 1u);
  EXPECT_EQ(json::parse(page.entries[0]).at("message").at("a").as_string(), "x\ny");
  EXPECT_EQ(split_lines(read_text(log_files(logs())[0])).size(), 1u);
}

// Found by fuzz/fuzz_cli_line: entries were parsed back with Boost.JSON's default depth limit (32),
// so a message nested 32 deep (the CLI's lines may nest up to 1024) was skipped as corrupt on
// reads and cut as torn when it was the last line at open.
TEST_F(MessageLogTest, KeepsDeeplyNestedMessages) {
  const auto nested = [](int depth) {
    return R"({"type":"assistant","x":)" + std::string(depth - 1, '[') +
           std::string(depth - 1, ']') + "}";
  };
  {
    auto log = open_log();
    std::error_code ec;
    log->append(Direction::kClaude, nested(32), ec);
    ASSERT_FALSE(ec);
    log->append(Direction::kClaude, nested(1024), ec);
    ASSERT_FALSE(ec);
    EXPECT_EQ(read(*log, {}).entries.size(), 2u);
  }
  auto log = open_log();
  EXPECT_TRUE(warnings_.empty()) << warnings_.front();
  const Page page = read(*log, {});
  ASSERT_EQ(page.entries.size(), 2u);
  EXPECT_NE(page.entries[1].find(nested(1024)), std::string::npos);
}

// A byte budget cuts pages short (never below one entry) in both directions. Checked against a
// model computed from the whole history: forward pages are the longest run from the cursor that
// fits, backward pages the longest run that ends at the cursor.
TEST_F(MessageLogTest, PagesStayWithinTheByteBudget) {
  Options options;
  options.rotate_count = 3;
  auto log = open_log(options);
  std::mt19937 rng(7);
  for (int i = 1; i <= 40; ++i) {
    // Mostly small entries, some bigger than the whole budget.
    const std::size_t pad =
        i % 9 == 0 ? 3000 : std::uniform_int_distribution<std::size_t>(0, 400)(rng);
    std::error_code ec;
    log->append(Direction::kClaude,
                R"({"type":"assistant","pad":")" + std::string(pad, 'x') + R"("})", ec);
    ASSERT_FALSE(ec);
  }
  const auto all = read(*log, {}).entries;
  ASSERT_EQ(all.size(), 40u);
  constexpr std::uint64_t kBudget = 1500;

  for (std::size_t limit : {std::size_t{1}, std::size_t{4}, std::size_t{1000}}) {
    SCOPED_TRACE("limit " + std::to_string(limit));
    // Forward with after_seq as cursor.
    std::vector<std::uint64_t> seen;
    std::uint64_t cursor = 0;
    for (int guard = 0; guard < 100; ++guard) {
      Query q = after(cursor, limit);
      q.max_bytes = kBudget;
      const Page p = read(*log, q);
      ASSERT_FALSE(p.entries.empty());
      // The model: from the entry after the cursor, take while within limit and budget.
      std::size_t i = cursor;
      std::uint64_t bytes = 0;
      std::vector<std::uint64_t> expected;
      while (i < all.size() && expected.size() < limit &&
             (expected.empty() || bytes + all[i].size() <= kBudget)) {
        bytes += all[i].size();
        expected.push_back(++i);
      }
      EXPECT_EQ(seqs(p), expected);
      EXPECT_EQ(p.has_more, i < all.size());
      for (auto s : seqs(p)) seen.push_back(s);
      if (!p.has_more) break;
      cursor = seqs(p).back();
    }
    EXPECT_EQ(seen, range(1, 40));

    // Backwards with before_seq as cursor.
    seen.clear();
    cursor = 41;
    for (int guard = 0; guard < 100; ++guard) {
      Query q;
      q.before_seq = cursor;
      q.limit = limit;
      q.max_bytes = kBudget;
      const Page p = read(*log, q);
      ASSERT_FALSE(p.entries.empty());
      std::size_t i = cursor - 1;  // entries below the cursor: all[0 .. i)
      std::uint64_t bytes = 0;
      std::vector<std::uint64_t> expected;
      while (i > 0 && expected.size() < limit &&
             (expected.empty() || bytes + all[i - 1].size() <= kBudget)) {
        bytes += all[i - 1].size();
        expected.insert(expected.begin(), i--);
      }
      EXPECT_EQ(seqs(p), expected);
      EXPECT_EQ(p.has_more, i > 0);
      const auto page = seqs(p);
      seen.insert(seen.begin(), page.begin(), page.end());
      if (!p.has_more) break;
      cursor = page.front();
    }
    EXPECT_EQ(seen, range(1, 40));
  }
}

TEST_F(MessageLogTest, SeqContinuesAcrossReopen) {
  {
    auto log = open_log();
    for (int i = 1; i <= 5; ++i) EXPECT_EQ(append(*log, i).seq, static_cast<std::uint64_t>(i));
  }
  {
    auto log = open_log();
    EXPECT_TRUE(warnings_.empty());
    EXPECT_EQ(log->last_seq(), 5u);
    EXPECT_EQ(log->file_count(), 1u);
    const auto size_before = fs::file_size(log_files(logs())[0]);
    EXPECT_EQ(log->bytes_written(), 0u);
    EXPECT_EQ(append(*log, 6).seq, 6u);
    EXPECT_EQ(log->bytes_written(), fs::file_size(log_files(logs())[0]) - size_before);
  }
  // The newest file (by name) is empty, as after a crash right after a rotation: seq comes from
  // the earlier file and the empty file is used for the next entries.
  write_text(logs() / "messages_2999-01-01_00-00-00.jsonl", "");
  {
    auto log = open_log();
    EXPECT_TRUE(warnings_.empty());
    EXPECT_EQ(log->last_seq(), 6u);
    EXPECT_EQ(log->file_count(), 2u);
    EXPECT_EQ(append(*log, 7).seq, 7u);
    EXPECT_EQ(seqs(read(*log, {})), range(1, 7));
    EXPECT_EQ(log->file_count(), 2u);
  }
  EXPECT_EQ(split_lines(read_text(logs() / "messages_2999-01-01_00-00-00.jsonl")).size(), 1u);
}

// The owner's stored mark (seq_floor) keeps seq numbers from restarting when files are gone;
// entries above it on disk are made durable at open, and durable_seq() follows the fsyncs.
TEST_F(MessageLogTest, SeqFloorAndDurableSeq) {
  Options options;
  options.fsync_interval = std::chrono::hours(1);  // no fsync unless asked
  {
    auto log = open_log(options);
    EXPECT_EQ(log->durable_seq(), 0u);
    for (int i = 1; i <= 5; ++i) append(*log, i);
    EXPECT_TRUE(log->needs_sync());
    EXPECT_EQ(log->durable_seq(), 0u) << "nothing was fdatasync'ed yet";
    std::error_code ec;
    log->sync(ec);
    ASSERT_FALSE(ec);
    EXPECT_EQ(log->durable_seq(), 5u);
    append(*log, 6);
    EXPECT_EQ(log->durable_seq(), 5u);
  }
  // Reopened below what the files hold: they win, and are durable after open.
  options.seq_floor = 3;
  {
    auto log = open_log(options);
    EXPECT_EQ(log->last_seq(), 6u);
    EXPECT_EQ(log->durable_seq(), 6u);
  }
  // Every file deleted (archived): the floor keeps seq from starting again at 1.
  for (const auto& f : log_files(logs())) fs::remove(f);
  options.seq_floor = 6;
  {
    auto log = open_log(options);
    EXPECT_TRUE(warnings_.empty());
    EXPECT_EQ(log->last_seq(), 6u);
    EXPECT_EQ(log->durable_seq(), 6u);
    EXPECT_EQ(append(*log, 7).seq, 7u);
    EXPECT_EQ(seqs(read(*log, {})), range(7, 7));
  }
  // A floor above the files (the newest files were deleted, older ones kept).
  options.seq_floor = 100;
  {
    auto log = open_log(options);
    EXPECT_EQ(log->last_seq(), 100u);
    EXPECT_EQ(append(*log, 101).seq, 101u);
    EXPECT_EQ(seqs(read(*log, {})), (std::vector<std::uint64_t>{7, 101}));
  }
}

TEST_F(MessageLogTest, FilesAreOrderedBySeqNotName) {
  Options options;
  options.rotate_count = 2;
  {
    auto log = open_log(options);
    for (int i = 1; i <= 6; ++i) append(*log, i);
  }
  // Rename so that name order is the reverse of seq order (e.g. the clock went backwards).
  const auto files = log_files_by_seq(logs());
  ASSERT_EQ(files.size(), 3u);
  fs::rename(files[0], logs() / "messages_2030-01-01_00-00-00.jsonl");
  fs::rename(files[1], logs() / "messages_2020-01-01_00-00-00.jsonl");
  fs::rename(files[2], logs() / "messages_2010-01-01_00-00-00.jsonl");
  auto log = open_log(options);
  EXPECT_TRUE(warnings_.empty());
  EXPECT_EQ(log->last_seq(), 6u);
  EXPECT_EQ(seqs(read(*log, {})), range(1, 6));
  EXPECT_EQ(seqs(read(*log, after(3))), range(4, 6));
  EXPECT_EQ(append(*log, 7).seq, 7u);
  EXPECT_EQ(seqs(read(*log, after(5))), range(6, 7));
}

TEST_F(MessageLogTest, RotatesByCountWithUniqueNames) {
  Options options;
  options.rotate_count = 3;
  auto log = open_log(options);
  for (int i = 1; i <= 10; ++i) append(*log, i);
  EXPECT_EQ(log->file_count(), 4u);
  const auto files = log_files_by_seq(logs());
  ASSERT_EQ(files.size(), 4u);
  const std::vector<std::size_t> expected_lines = {3, 3, 3, 1};
  std::uint64_t next = 1;
  for (std::size_t i = 0; i < files.size(); ++i) {
    const std::string text = read_text(files[i]);
    ASSERT_FALSE(text.empty());
    EXPECT_EQ(text.back(), '\n');
    const auto lines = split_lines(text);
    EXPECT_EQ(lines.size(), expected_lines[i]) << files[i];
    for (const auto& line : lines) EXPECT_EQ(seq_of(line), next++);
  }
  EXPECT_EQ(seqs(read(*log, {})), range(1, 10));

  // One entry per file, many rotations per second: names get _1, _2, ... and never collide.
  TempDir other;
  std::vector<std::string> warnings;
  std::error_code ec;
  Options one;
  one.rotate_count = 1;
  one.fsync_interval = 1h;
  auto fast = MessageLog::open(other.path() / "logs", one, warnings, ec);
  ASSERT_FALSE(ec);
  for (int i = 1; i <= 20; ++i) {
    fast->append(Direction::kServer, message(i), ec);
    ASSERT_FALSE(ec) << ec.message();
  }
  EXPECT_EQ(fast->file_count(), 20u);
  const auto names = log_files(other.path() / "logs");
  ASSERT_EQ(names.size(), 20u);
  const std::regex pattern(R"(messages_\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d(_\d+)?\.jsonl)");
  std::size_t suffixed = 0;
  for (const auto& p : names) {
    const std::string name = p.filename().string();
    EXPECT_TRUE(std::regex_match(name, pattern)) << name;
    if (std::regex_match(name, std::regex(R"(.*_\d\d-\d\d-\d\d_\d+\.jsonl)"))) ++suffixed;
    EXPECT_EQ(split_lines(read_text(p)).size(), 1u);
  }
  EXPECT_GT(suffixed, 0u);  // 20 files cannot all start in different seconds
  std::vector<std::string> read_warnings;
  EXPECT_EQ(seqs(fast->read({}, read_warnings)), range(1, 20));
}

TEST_F(MessageLogTest, RotatesBySizeWithoutSplittingLines) {
  Options options;
  options.rotate_bytes = 400;
  auto log = open_log(options);
  for (int i = 1; i <= 30; ++i) append(*log, i);
  const auto files = log_files_by_seq(logs());
  EXPECT_EQ(files.size(), log->file_count());
  EXPECT_GT(files.size(), 3u);
  std::uint64_t next = 1;
  std::uint64_t total = 0;
  for (const auto& f : files) {
    const std::string text = read_text(f);
    EXPECT_LE(text.size(), 400u) << f;
    EXPECT_EQ(text.back(), '\n');
    total += text.size();
    for (const auto& line : split_lines(text)) {
      EXPECT_TRUE(json::parse(line).is_object());
      EXPECT_EQ(seq_of(line), next++);
    }
  }
  EXPECT_EQ(next, 31u);
  EXPECT_EQ(log->bytes_written(), total);
  EXPECT_EQ(seqs(read(*log, {})), range(1, 30));

  // Reopen: the size of the current file is known and rotation carries on at the same limit.
  log.reset();
  log = open_log(options);
  for (int i = 31; i <= 40; ++i) append(*log, i);
  for (const auto& f : log_files(logs())) EXPECT_LE(fs::file_size(f), 400u);
  EXPECT_EQ(seqs(read(*log, {})), range(1, 40));
}

TEST_F(MessageLogTest, OversizedLineGoesIntoAFreshFileAlone) {
  Options options;
  options.rotate_bytes = 300;
  auto log = open_log(options);
  append(*log, 1);
  std::error_code ec;
  const std::string big = R"({"blob":")" + std::string(1000, 'x') + R"("})";
  EXPECT_EQ(log->append(Direction::kClaude, big, ec).seq, 2u);
  ASSERT_FALSE(ec);
  append(*log, 3);
  EXPECT_EQ(log->file_count(), 3u);
  const auto files = log_files_by_seq(logs());
  ASSERT_EQ(files.size(), 3u);
  const auto middle = split_lines(read_text(files[1]));
  ASSERT_EQ(middle.size(), 1u);
  EXPECT_EQ(seq_of(middle[0]), 2u);
  EXPECT_EQ(json::parse(middle[0]).at("message"), json::parse(big));
  EXPECT_EQ(split_lines(read_text(files[2])).size(), 1u);
  EXPECT_EQ(seqs(read(*log, {})), range(1, 3));

  // An oversized first entry of a fresh log goes into the (empty) first file.
  TempDir other;
  std::vector<std::string> warnings;
  auto fresh = MessageLog::open(other.path(), options, warnings, ec);
  ASSERT_FALSE(ec);
  fresh->append(Direction::kClaude, big, ec);
  ASSERT_FALSE(ec);
  EXPECT_EQ(fresh->file_count(), 1u);
}

TEST_F(MessageLogTest, ReadsByAfterSeqAcrossFiles) {
  Options options;
  options.rotate_count = 4;
  auto log = open_log(options);
  for (int i = 1; i <= 20; ++i) append(*log, i);
  ASSERT_EQ(log->file_count(), 5u);

  for (bool reopened : {false, true}) {
    SCOPED_TRACE(reopened ? "after reopen" : "as written");
    Page p = read(*log, {});
    EXPECT_EQ(seqs(p), range(1, 20));
    EXPECT_FALSE(p.has_more);

    p = read(*log, after(0, 5));  // from the start
    EXPECT_EQ(seqs(p), range(1, 5));
    EXPECT_TRUE(p.has_more);

    p = read(*log, after(7, 6));  // from the middle of a file, across two files
    EXPECT_EQ(seqs(p), range(8, 13));
    EXPECT_TRUE(p.has_more);

    p = read(*log, after(8, 4));  // exactly a file boundary
    EXPECT_EQ(seqs(p), range(9, 12));
    EXPECT_TRUE(p.has_more);

    p = read(*log, after(16, 4));  // the whole last page
    EXPECT_EQ(seqs(p), range(17, 20));
    EXPECT_FALSE(p.has_more);

    p = read(*log, after(19));
    EXPECT_EQ(seqs(p), std::vector<std::uint64_t>{20});
    EXPECT_FALSE(p.has_more);

    EXPECT_TRUE(read(*log, after(20)).entries.empty());
    EXPECT_TRUE(read(*log, after(100)).entries.empty());

    p = read(*log, after(3, 0));  // limit 0 only tells whether there is more
    EXPECT_TRUE(p.entries.empty());
    EXPECT_TRUE(p.has_more);

    // Paging with the last seq as cursor sees every entry exactly once.
    std::vector<std::uint64_t> all;
    std::uint64_t cursor = 0;
    for (int guard = 0; guard < 100; ++guard) {
      p = read(*log, after(cursor, 3));
      for (auto s : seqs(p)) all.push_back(s);
      if (!p.has_more) break;
      cursor = all.back();
    }
    EXPECT_EQ(all, range(1, 20));

    log.reset();
    log = open_log(options);
    EXPECT_TRUE(warnings_.empty());
  }
}

TEST_F(MessageLogTest, ReadsBackwardsByBeforeSeqAcrossFiles) {
  Options options;
  options.rotate_count = 4;
  auto log = open_log(options);
  for (int i = 1; i <= 20; ++i) append(*log, i);
  ASSERT_EQ(log->file_count(), 5u);
  const auto before = [](std::uint64_t seq, std::size_t limit = 1000) {
    Query q;
    q.before_seq = seq;
    q.limit = limit;
    return q;
  };

  for (bool reopened : {false, true}) {
    SCOPED_TRACE(reopened ? "after reopen" : "as written");
    Page p = read(*log, before(21, 5));  // the newest page, oldest first
    EXPECT_EQ(seqs(p), range(16, 20));
    EXPECT_TRUE(p.has_more);

    p = read(*log, before(14, 6));  // from the middle of a file, across two files
    EXPECT_EQ(seqs(p), range(8, 13));
    EXPECT_TRUE(p.has_more);

    p = read(*log, before(9, 4));  // exactly a file boundary
    EXPECT_EQ(seqs(p), range(5, 8));
    EXPECT_TRUE(p.has_more);

    p = read(*log, before(5, 4));  // the whole first page
    EXPECT_EQ(seqs(p), range(1, 4));
    EXPECT_FALSE(p.has_more);

    EXPECT_TRUE(read(*log, before(1)).entries.empty());
    EXPECT_EQ(seqs(read(*log, before(1000))), range(1, 20));

    p = read(*log, before(3, 0));  // limit 0 only tells whether there is more
    EXPECT_TRUE(p.entries.empty());
    EXPECT_TRUE(p.has_more);

    // A window: after_seq and before_seq together, newest entries of it first.
    Query window = before(15, 3);
    window.after_seq = 6;
    p = read(*log, window);
    EXPECT_EQ(seqs(p), range(12, 14));
    EXPECT_TRUE(p.has_more);
    window.limit = 100;
    p = read(*log, window);
    EXPECT_EQ(seqs(p), range(7, 14));
    EXPECT_FALSE(p.has_more);

    // Paging backwards with the first seq as cursor sees every entry exactly once.
    std::vector<std::uint64_t> all;
    std::uint64_t cursor = 21;
    for (int guard = 0; guard < 100; ++guard) {
      p = read(*log, before(cursor, 3));
      const auto page = seqs(p);
      all.insert(all.begin(), page.begin(), page.end());
      if (!p.has_more) break;
      cursor = page.front();
    }
    EXPECT_EQ(all, range(1, 20));

    log.reset();
    log = open_log(options);
    EXPECT_TRUE(warnings_.empty());
  }
}

TEST_F(MessageLogTest, ReadsBySinceAcrossFiles) {
  Options options;
  options.rotate_count = 3;
  auto log = open_log(options);
  std::vector<AppendResult> appended;
  for (int i = 1; i <= 12; ++i) {
    appended.push_back(append(*log, i));
    if (i % 2 == 0) std::this_thread::sleep_for(3ms);  // several distinct timestamps
  }
  const auto expected_since = [&](SystemTime since, std::optional<std::uint64_t> after_seq) {
    std::vector<std::uint64_t> out;
    for (const auto& a : appended)
      if (*parse_rfc3339(a.timestamp) > since && (!after_seq || a.seq > *after_seq))
        out.push_back(a.seq);
    return out;
  };

  // Before everything, at each entry's timestamp (start/middle/end), after everything.
  Query q;
  q.since = "2000-01-01T00:00:00Z";
  EXPECT_EQ(seqs(read(*log, q)), range(1, 12));
  for (const auto& a : appended) {
    SCOPED_TRACE(a.timestamp);
    q.since = a.timestamp;
    EXPECT_EQ(seqs(read(*log, q)), expected_since(*parse_rfc3339(a.timestamp), std::nullopt));
  }
  q.since = appended.back().timestamp;
  EXPECT_TRUE(read(*log, q).entries.empty());

  // Offsets and missing fractions are parsed as times, not compared as text.
  const SystemTime mid = *parse_rfc3339(appended[5].timestamp);
  const SystemTime mid_second = std::chrono::floor<std::chrono::seconds>(mid);
  const std::string stamp = format_file_stamp(mid_second);  // YYYY-MM-DD_HH-MM-SS
  std::string no_fraction = stamp.substr(0, 10) + "T" + stamp.substr(11) + "Z";
  std::replace(no_fraction.begin() + 11, no_fraction.end(), '-', ':');
  q.since = no_fraction;
  EXPECT_EQ(seqs(read(*log, q)), expected_since(mid_second, std::nullopt));
  const std::string in_utc = format_rfc3339(mid);
  // Same instant written as 02:00 earlier with a -02:00 offset.
  const std::string shifted = format_rfc3339(mid - std::chrono::hours(2));
  q.since = shifted.substr(0, 23) + "-02:00";
  EXPECT_EQ(seqs(read(*log, q)), expected_since(mid, std::nullopt)) << in_utc << " " << *q.since;

  // Limit and has_more, and combined with after_seq.
  q.since = "2000-01-01T00:00:00.5+00:00";
  q.limit = 5;
  Page p = read(*log, q);
  EXPECT_EQ(seqs(p), range(1, 5));
  EXPECT_TRUE(p.has_more);
  q.after_seq = 9;
  q.limit = 2;
  p = read(*log, q);
  EXPECT_EQ(seqs(p), range(10, 11));
  EXPECT_TRUE(p.has_more);
  q.since = appended[3].timestamp;
  q.after_seq = 1;
  q.limit = 100;
  EXPECT_EQ(seqs(read(*log, q)), expected_since(*parse_rfc3339(appended[3].timestamp), 1));

  // An invalid since returns nothing and says why.
  std::vector<std::string> warnings;
  Query bad;
  bad.since = "yesterday";
  p = log->read(bad, warnings);
  EXPECT_TRUE(p.entries.empty());
  EXPECT_FALSE(p.has_more);
  EXPECT_TRUE(any_contains(warnings, "since")) << (warnings.empty() ? "" : warnings[0]);
}

TEST_F(MessageLogTest, CutsTornLastLineOnOpen) {
  {
    auto log = open_log();
    for (int i = 1; i <= 5; ++i) append(*log, i);
  }
  const fs::path file = log_files(logs())[0];
  const std::string good = read_text(file);
  const std::string torn = R"({"seq":6,"timestamp":"2024-01-01T00:00:00.000Z","direction":"cl)";
  append_text(file, torn);
  {
    auto log = open_log();
    ASSERT_EQ(warnings_.size(), 1u);
    EXPECT_TRUE(
        any_contains(warnings_, "cut a torn last line (" + std::to_string(torn.size()) + " bytes)"))
        << warnings_[0];
    EXPECT_TRUE(any_contains(warnings_, file.filename().string()));
    EXPECT_EQ(read_text(file), good);
    EXPECT_EQ(log->last_seq(), 5u);
    EXPECT_EQ(append(*log, 6).seq, 6u);
    EXPECT_EQ(seqs(read(*log, {})), range(1, 6));
  }

  // A complete line that is not JSON (e.g. a crash left garbage) is also cut.
  const std::string before = read_text(file);
  append_text(file, "{\"seq\":7,\"timestamp\":\"2024-01-01T00:00:00.000Z\",\"mess\n");
  {
    auto log = open_log();
    EXPECT_TRUE(any_contains(warnings_, "cut a torn last line")) << warnings_.size();
    EXPECT_EQ(read_text(file), before);
    EXPECT_EQ(log->last_seq(), 6u);
    EXPECT_EQ(append(*log, 7).seq, 7u);
  }

  // The torn line was the only one in a freshly rotated file: seq comes from the older file.
  const fs::path fresh = logs() / "messages_2999-01-01_00-00-00.jsonl";
  write_text(fresh, "{\"seq\":8,\"times");
  {
    auto log = open_log();
    EXPECT_TRUE(any_contains(warnings_, "cut a torn last line (15 bytes)"));
    EXPECT_EQ(fs::file_size(fresh), 0u);
    EXPECT_EQ(log->last_seq(), 7u);
    EXPECT_EQ(append(*log, 8).seq, 8u);
    EXPECT_EQ(seqs(read(*log, {})), range(1, 8));
  }
  EXPECT_EQ(split_lines(read_text(fresh)).size(), 1u);
  auto log = open_log();
  EXPECT_TRUE(warnings_.empty());
  EXPECT_EQ(log->last_seq(), 8u);
}

TEST_F(MessageLogTest, SkipsCorruptMiddleLines) {
  {
    auto log = open_log();
    for (int i = 1; i <= 5; ++i) append(*log, i);
  }
  const fs::path file = log_files(logs())[0];
  auto lines = split_lines(read_text(file));
  ASSERT_EQ(lines.size(), 5u);
  std::string text;
  for (std::size_t i = 0; i < lines.size(); ++i) {
    text += lines[i] + "\n";
    if (i == 1) text += "this is not json\n";
    if (i == 2) text += "{\"no_seq\":true}\n";
    if (i == 3) text += lines[3].substr(0, lines[3].size() / 2) + "\n";  // header ok, body cut
  }
  write_text(file, text);

  auto log = open_log();
  EXPECT_TRUE(warnings_.empty());  // the last line is fine: nothing to repair
  EXPECT_EQ(log->last_seq(), 5u);
  std::vector<std::string> warnings;
  Page p = log->read({}, warnings);
  EXPECT_EQ(seqs(p), range(1, 5));
  EXPECT_EQ(warnings.size(), 3u);
  EXPECT_TRUE(any_contains(warnings, "corrupt line"));
  for (const auto& e : p.entries) EXPECT_TRUE(json::parse(e).is_object());

  warnings.clear();
  p = log->read(after(3), warnings);
  EXPECT_EQ(seqs(p), range(4, 5));
  EXPECT_EQ(append(*log, 6).seq, 6u);
}

TEST_F(MessageLogTest, ReadsSkipFilesThatCannotMatch) {
  Options options;
  options.rotate_count = 5;
  auto log = open_log(options);
  std::vector<AppendResult> appended;
  for (int i = 1; i <= 20; ++i) {
    appended.push_back(append(*log, i));
    if (i % 5 == 0) std::this_thread::sleep_for(3ms);
  }
  ASSERT_EQ(log->file_count(), 4u);
  const auto files = log_files_by_seq(logs());
  ASSERT_EQ(files.size(), 4u);

  // Replace the two oldest files' contents (same size) with garbage after the index was built.
  for (int i = 0; i < 2; ++i) {
    const auto size = fs::file_size(files[i]);
    write_text(files[i], std::string(size - 1, 'x') + "\n");
  }

  // Recent entries: the old files are never read, so their corruption is not noticed.
  std::vector<std::string> warnings;
  Page p = log->read(after(15), warnings);
  EXPECT_EQ(seqs(p), range(16, 20));
  EXPECT_TRUE(warnings.empty());
  p = log->read(after(10, 3), warnings);
  EXPECT_EQ(seqs(p), range(11, 13));
  EXPECT_TRUE(warnings.empty());

  Query q;
  q.since = appended[11].timestamp;  // entry 12, in the third file
  p = log->read(q, warnings);
  ASSERT_FALSE(p.entries.empty());
  EXPECT_GT(seqs(p).front(), 10u);
  EXPECT_EQ(seqs(p).back(), 20u);
  EXPECT_TRUE(warnings.empty());

  // Reading from the start does open them and reports what it finds.
  p = log->read({}, warnings);
  EXPECT_EQ(seqs(p), range(11, 20));
  EXPECT_EQ(warnings.size(), 2u);
  EXPECT_TRUE(any_contains(warnings, files[0].filename().string()));
}

TEST_F(MessageLogTest, SparseIndexSkipsTheStartOfALargeFile) {
  auto log = open_log();
  std::vector<AppendResult> appended;
  for (int i = 1; i <= 1000; ++i) {
    appended.push_back(append(*log, i));
    // Distinct times, not synchronization: the corrupted early lines (10, 20) are strictly
    // earlier than entry 900, and entries after 900 strictly later. On a fast machine many
    // entries share a millisecond; the index can only skip what is strictly before `since`.
    if (i == 100 || i == 900) std::this_thread::sleep_for(3ms);
  }
  ASSERT_EQ(log->file_count(), 1u);
  const fs::path file = log_files(logs())[0];

  const auto corrupt_line = [&](std::size_t index) {  // same length, still one line
    std::string text = read_text(file);
    std::size_t start = 0;
    for (std::size_t i = 0; i < index; ++i) start = text.find('\n', start) + 1;
    const std::size_t end = text.find('\n', start);
    std::fill(text.begin() + static_cast<std::ptrdiff_t>(start),
              text.begin() + static_cast<std::ptrdiff_t>(end), '#');
    write_text(file, text);
  };

  for (bool reopened : {false, true}) {
    SCOPED_TRACE(reopened ? "index built on open" : "index maintained by append");
    corrupt_line(reopened ? 20 : 10);  // early in the file
    std::vector<std::string> warnings;
    Page p = log->read(after(900, 5), warnings);
    EXPECT_EQ(seqs(p), range(901, 905));
    EXPECT_TRUE(p.has_more);
    EXPECT_TRUE(warnings.empty());

    Query q;
    q.since = appended[899].timestamp;
    q.limit = 2000;
    p = log->read(q, warnings);
    EXPECT_EQ(seqs(p), range(901, 1000));
    EXPECT_TRUE(warnings.empty());

    p = log->read(after(0, 30), warnings);  // reads through the corrupt line
    EXPECT_FALSE(warnings.empty());
    EXPECT_EQ(p.entries.size(), 30u);

    log.reset();
    log = open_log();
    EXPECT_TRUE(warnings_.empty());
    EXPECT_EQ(log->last_seq(), 1000u);
  }
}

TEST_F(MessageLogTest, SyncPolicy) {
  {
    Options options;
    options.fsync_interval = 0ms;
    auto log = open_log(options);
    for (int i = 1; i <= 3; ++i) {
      append(*log, i);
      EXPECT_FALSE(log->needs_sync());
    }
  }
  Options options;
  options.fsync_interval = 1h;
  auto log = open_log(options);
  EXPECT_FALSE(log->needs_sync());
  append(*log, 4);
  EXPECT_TRUE(log->needs_sync());
  std::error_code ec;
  log->sync(ec);
  EXPECT_FALSE(ec);
  EXPECT_FALSE(log->needs_sync());
  append(*log, 5);
  EXPECT_TRUE(log->needs_sync());

  options.fsync_interval = 5ms;
  log.reset();
  log = open_log(options);
  std::this_thread::sleep_for(10ms);
  append(*log, 6);  // the interval has elapsed: synced on append
  EXPECT_FALSE(log->needs_sync());
  EXPECT_EQ(seqs(read(*log, {})), range(1, 6));
}

TEST_F(MessageLogTest, OpenFailsWhenThePathIsAFile) {
  fs::create_directories(logs().parent_path());
  write_text(logs(), "not a directory");
  std::vector<std::string> warnings;
  std::error_code ec;
  auto log = MessageLog::open(logs(), {}, warnings, ec);
  EXPECT_TRUE(ec);
  EXPECT_EQ(log, nullptr);
}

TEST_F(MessageLogTest, CreatesPrivateDirectoryEvenWithTrailingSlash) {
  std::vector<std::string> warnings;
  std::error_code ec;
  auto log = MessageLog::open(logs().string() + "/", {}, warnings, ec);
  ASSERT_FALSE(ec) << ec.message();
  EXPECT_EQ(fs::status(logs()).permissions() & fs::perms::all, fs::perms::owner_all);
  append(*log, 1);
  EXPECT_EQ(log_files(logs()).size(), 1u);
}

}  // namespace
}  // namespace pa::history
