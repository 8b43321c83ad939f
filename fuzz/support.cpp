#include "support.hpp"

#include <stdlib.h>

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <system_error>
#include <vector>

namespace pa::fuzz {

namespace fs = std::filesystem;

void check(bool ok, const char* what) {
  if (ok) return;
  std::fprintf(stderr, "fuzz check failed: %s\n", what);
  std::abort();
}

bool is_json(std::string_view text) {
  boost::json::parse_options options;
  options.max_depth = 100000;
  boost::system::error_code ec;
  boost::json::parse(text, ec, {}, options);
  return !ec;
}

namespace {

// One log directory per process, started afresh every so many entries so the disk does not fill.
class ScratchLog {
 public:
  ScratchLog() {
    const char* tmp = std::getenv("TMPDIR");
    std::string templ =
        std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") + "/pa-fuzz-history-XXXXXX";
    check(::mkdtemp(templ.data()) != nullptr, "mkdtemp");
    dir_ = templ;
  }
  ~ScratchLog() {
    log_.reset();
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  history::MessageLog& get() {
    if (log_ && log_->last_seq() >= kEntriesPerLog) log_.reset();
    if (!log_) {
      std::error_code ec;
      fs::remove_all(dir_ / "logs", ec);
      history::Options options;
      options.fsync_interval = std::chrono::hours(1);  // no fdatasync in the loop
      std::vector<std::string> warnings;
      log_ = history::MessageLog::open(dir_ / "logs", options, warnings, ec);
      check(log_ != nullptr && !ec, "MessageLog::open");
    }
    return *log_;
  }

 private:
  static constexpr std::uint64_t kEntriesPerLog = 2000;
  fs::path dir_;
  std::unique_ptr<history::MessageLog> log_;
};

}  // namespace

void check_history_round_trip(const std::vector<HistoryMessage>& messages) {
  if (messages.empty()) return;
  static ScratchLog scratch;
  history::MessageLog& log = scratch.get();
  const std::uint64_t first = log.last_seq() + 1;
  for (const auto& m : messages) {
    std::error_code ec;
    const history::AppendResult appended = log.append(m.direction, m.json, ec);
    check(!ec && appended.seq != 0, "MessageLog::append");
  }
  history::Query query;
  query.after_seq = first - 1;
  query.limit = messages.size() + 1;
  std::vector<std::string> warnings;
  const history::Page page = log.read(query, warnings);
  check(warnings.empty(), "warnings reading history back (an entry skipped as corrupt?)");
  check(page.entries.size() == messages.size(), "history entries not all read back");
  for (std::size_t i = 0; i < messages.size(); ++i) {
    check(is_json(page.entries[i]), "history entry is not JSON");
    check(page.entries[i].ends_with(messages[i].json + "}"), "history entry lost its message");
  }
}

}  // namespace pa::fuzz
