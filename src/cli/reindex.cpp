#include "cli/reindex.hpp"

#include <chrono>
#include <filesystem>
#include <map>
#include <memory>

#include "cli/exit_codes.hpp"
#include "common/data_dir_lock.hpp"
#include "history/message_log.hpp"
#include "projects/project_store.hpp"
#include "search/indexer.hpp"

namespace pa::cli {

namespace {

// Every project's log, read directly (nothing else uses them: the data directory is locked).
class LogsEntrySource final : public search::EntrySource {
 public:
  void add(std::string id, std::unique_ptr<history::MessageLog> log) {
    logs_.emplace(std::move(id), std::move(log));
  }
  std::vector<std::string> project_ids() override {
    std::vector<std::string> ids;
    for (const auto& [id, log] : logs_) ids.push_back(id);
    return ids;
  }
  std::optional<search::SourcePage> read_after(const std::string& project_id,
                                               std::uint64_t after_seq, std::size_t limit,
                                               std::size_t max_bytes) override {
    const auto it = logs_.find(project_id);
    if (it == logs_.end()) return std::nullopt;
    history::Query query;
    query.after_seq = after_seq;
    query.limit = limit;
    query.max_bytes = max_bytes;
    std::vector<std::string> warnings;
    auto read = it->second->read(query, warnings);
    search::SourcePage page;
    page.entries = std::move(read.entries);
    page.has_more = read.has_more;
    page.last_seq = it->second->last_seq();
    return page;
  }

 private:
  std::map<std::string, std::unique_ptr<history::MessageLog>> logs_;
};

std::uintmax_t size_of(const std::filesystem::path& file) {
  std::error_code ec;
  std::uintmax_t total = 0;
  for (const char* suffix : {"", "-wal"}) {
    const auto n = std::filesystem::file_size(file.string() + suffix, ec);
    if (!ec) total += n;
  }
  return total;
}

}  // namespace

int reindex(const config::Config& config, std::ostream& out, std::ostream& err) {
  const std::filesystem::path data_dir = config.data.dir;
  std::string lock_error;
  const auto lock = common::DataDirLock::acquire(data_dir, lock_error);
  if (!lock) {
    err << "pocket-agent-server reindex: " << lock_error
        << "; stop the server first (it rebuilds a missing index itself at start)\n";
    return kExitFailed;
  }
  const auto started = std::chrono::steady_clock::now();
  projects::ProjectStore store(data_dir);
  std::vector<std::string> warnings;
  const auto infos = store.load_all(warnings);
  LogsEntrySource source;
  for (const auto& info : infos) {
    history::Options options;
    options.seq_floor = info.seq_mark;
    std::error_code ec;
    auto log = history::MessageLog::open(store.logs_dir(info.id), options, warnings, ec);
    if (!log) {
      warnings.push_back("project " + info.id + ": cannot open its history: " + ec.message());
      continue;
    }
    source.add(info.id, std::move(log));
  }
  for (const auto& w : warnings) err << "warning: " << w << "\n";

  const auto file = data_dir / "search" / "index.sqlite3";
  std::error_code ec;
  for (const char* suffix : {"", "-wal", "-shm", "-journal"})
    std::filesystem::remove(file.string() + suffix, ec);
  search::Indexer indexer(file, source);
  std::string error;
  const auto entries = indexer.rebuild(error);
  if (!entries) {
    err << "pocket-agent-server reindex: cannot build " << file.string() << ": " << error << "\n";
    return kExitFailed;
  }
  const auto seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started);
  out << "Indexed " << *entries << " history entries of " << source.project_ids().size()
      << " projects in " << static_cast<long long>(seconds.count() * 1000)
      << " ms: " << file.string() << " (" << size_of(file) / 1024 << " KiB)\n";
  return kExitOk;
}

}  // namespace pa::cli
