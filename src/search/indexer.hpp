// Keeps the search index (index_file.hpp) up to date with the history logs, off the I/O path.
//
// Appends are handed over through a bounded queue (appended(): a copy and a lock, nothing else)
// to one writer thread, which writes them in batched transactions. The index never holds up or
// loses an append: when the queue is full the entry is dropped and its project caught up from
// the log later; when a write fails it is rolled back, logged, the index marked stale, and tried
// again later by catching every project up from its log. Per project the index records the
// last seq it has looked at (its watermark); catching up reads the log after it. That is also
// how a missing, damaged or outdated index is rebuilt at start.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "search/entry_source.hpp"
#include "search/index_file.hpp"

namespace pa::search {

struct IndexerOptions {
  std::size_t queue_items = 20000;              // entries waiting for the writer at most
  std::size_t queue_bytes = 8u << 20;           // and their bytes (more is read from the logs)
  std::size_t batch_items = 1000;               // entries per transaction
  std::size_t catch_up_page = 2000;             // entries read from a log at once
  std::size_t catch_up_bytes = 4u << 20;        // and their bytes at most (one entry at least)
  std::chrono::milliseconds retry_after{5000};  // after a failure
};

class Indexer {
 public:
  Indexer(std::filesystem::path file, EntrySource& source, IndexerOptions options = {});
  ~Indexer();
  Indexer(const Indexer&) = delete;
  Indexer& operator=(const Indexer&) = delete;

  // Opens the index (recreating a damaged one) on the caller's thread, then starts the writer
  // thread, which catches up every project of the source (and retries an index that could not be
  // opened). stop() ends it; what is still queued is caught up next time.
  void start();
  void stop();

  // An entry was appended to a project's history (any thread; cheap). Only client and claude
  // entries carry text worth reading: for others pass an empty message_json.
  void appended(std::string_view project_id, std::uint64_t seq, std::string_view timestamp,
                std::string_view direction, std::string_view message_json);
  // The project was deleted: its entries leave the index (after what was queued before).
  void removed(std::string_view project_id);

  // Calls `fn` once the index holds every entry appended before this call and no project is
  // being caught up, or at once when the index is failing. From the writer thread or the
  // caller's: `fn` must be quick (post the real work). Callers add their own time limit.
  void when_current(std::function<void()> fn);
  bool current() const;
  // Bumped whenever the writer creates the file anew (readers then reopen it).
  std::uint64_t generation() const { return generation_.load(); }
  const std::filesystem::path& file() const { return file_; }

  // Without a thread (reindex): builds the index from the source, optimizes it, and returns
  // the number of entries looked at, or nullopt with `error` set.
  std::optional<std::uint64_t> rebuild(std::string& error);

 private:
  struct Item {
    bool remove = false;
    std::string project_id;
    std::uint64_t seq = 0;
    std::string timestamp;
    std::string direction;
    std::string message_json;
    std::uint64_t ticket = 0;
  };

  void run();
  bool open_index();
  void fail(const std::string& what, const std::string& error);
  // Lists the source's projects for catching up; drops the index's other projects.
  bool reconcile(std::string& error);
  bool write_batch(std::deque<Item>& batch, std::string& error);
  // One page of one project's catch-up; `done` when the project reached its log's end.
  bool catch_up_page(const std::string& project_id, bool& done, std::string& error);
  void notify_waiters();

  const std::filesystem::path file_;
  EntrySource& source_;
  const IndexerOptions options_;
  std::unique_ptr<IndexFile> index_;            // writer thread only
  std::map<std::string, std::uint64_t> marks_;  // committed watermarks (writer thread)
  std::set<std::string> catch_up_;              // projects to read from their logs (writer thread)
  std::uint64_t entries_looked_at_ = 0;

  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<Item> queue_;
  std::size_t queue_bytes_ = 0;
  std::set<std::string> dropped_;  // projects whose entries the full queue dropped
  std::uint64_t enqueued_ = 0;     // tickets handed out
  std::uint64_t processed_ = 0;    // every ticket up to this was handled
  bool catching_up_ = true;        // catch_up_ not empty (or the first reconcile not done)
  bool failing_ = false;
  bool stop_ = false;
  std::vector<std::pair<std::uint64_t, std::function<void()>>> waiters_;
  std::atomic<std::uint64_t> generation_{0};
  std::thread thread_;
};

}  // namespace pa::search
