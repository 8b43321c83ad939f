#include "search/indexer.hpp"

#include <spdlog/spdlog.h>

#include <boost/json/parse.hpp>

#include "protocol/clock.hpp"
#include "protocol/json_fields.hpp"
#include "search/entry_text.hpp"

namespace pa::search {

namespace json = boost::json;

namespace {

std::int64_t time_ms_of(std::string_view timestamp) {
  const auto t = protocol::parse_rfc3339(timestamp);
  if (!t) return 0;
  return std::chrono::duration_cast<std::chrono::milliseconds>(t->time_since_epoch()).count();
}

// The searchable text of a stored message; empty for anything unreadable.
std::string text_of(std::string_view direction, std::string_view message_json) {
  if (message_json.empty()) return {};
  boost::system::error_code ec;
  const auto message = json::parse(message_json, ec);
  if (ec || !message.is_object()) return {};
  return searchable_text(direction, message.get_object());
}

}  // namespace

Indexer::Indexer(std::filesystem::path file, EntrySource& source, IndexerOptions options)
    : file_(std::move(file)), source_(source), options_(options) {}

Indexer::~Indexer() {
  stop();
}

void Indexer::start() {
  // Opened here, before the server takes requests, not on the thread: its files (and SQLite's
  // -wal and -shm) are open from the first request on, instead of being taken at some later
  // moment, e.g. while descriptors ran out. A failure is retried by the thread. Catching up is
  // the thread's.
  open_index();
  thread_ = std::thread([this] { run(); });
}

void Indexer::stop() {
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
  // Nobody waits for an index that stopped.
  std::vector<std::pair<std::uint64_t, std::function<void()>>> waiters;
  {
    std::lock_guard lock(mutex_);
    waiters.swap(waiters_);
  }
  for (auto& [ticket, fn] : waiters) fn();
}

void Indexer::appended(std::string_view project_id, std::uint64_t seq, std::string_view timestamp,
                       std::string_view direction, std::string_view message_json) {
  std::unique_lock lock(mutex_);
  if (stop_) return;
  const std::size_t bytes = message_json.size() + project_id.size() + timestamp.size();
  const std::uint64_t ticket = ++enqueued_;
  if (queue_.size() >= options_.queue_items || queue_bytes_ + bytes > options_.queue_bytes) {
    // The writer is behind: this entry is read from the log instead.
    dropped_.emplace(project_id);
  } else {
    queue_.push_back(Item{false, std::string(project_id), seq, std::string(timestamp),
                          std::string(direction), std::string(message_json), ticket});
    queue_bytes_ += bytes;
  }
  lock.unlock();
  wake_.notify_one();
}

void Indexer::removed(std::string_view project_id) {
  std::unique_lock lock(mutex_);
  if (stop_) return;
  // Never dropped: a deleted project's entries must leave the index.
  queue_.push_back(Item{true, std::string(project_id), 0, {}, {}, {}, ++enqueued_});
  lock.unlock();
  wake_.notify_one();
}

bool Indexer::current() const {
  std::lock_guard lock(mutex_);
  return processed_ == enqueued_ && !catching_up_ && !failing_;
}

void Indexer::when_current(std::function<void()> fn) {
  std::unique_lock lock(mutex_);
  const bool now = failing_ || stop_ || (processed_ == enqueued_ && !catching_up_);
  if (!now) {
    waiters_.emplace_back(enqueued_, std::move(fn));
    return;
  }
  lock.unlock();
  fn();
}

void Indexer::notify_waiters() {
  std::vector<std::function<void()>> ready;
  {
    std::lock_guard lock(mutex_);
    catching_up_ = !catch_up_.empty() || !dropped_.empty();
    std::erase_if(waiters_, [&](auto& waiter) {
      if (!failing_ && (waiter.first > processed_ || catching_up_)) return false;
      ready.push_back(std::move(waiter.second));
      return true;
    });
  }
  for (auto& fn : ready) fn();
}

void Indexer::fail(const std::string& what, const std::string& error) {
  if (index_) index_->rollback();
  bool first = false;
  {
    std::lock_guard lock(mutex_);
    first = !failing_;
    failing_ = true;
  }
  // Logged once per failure period; the next success says it recovered.
  if (first)
    spdlog::warn(
        "search index {}: {}: {}; searches may miss entries until it works again (retried "
        "every {} ms, or run `pocket-agent-server reindex`)",
        file_.string(), what, error, options_.retry_after.count());
  index_.reset();
  marks_.clear();
  catch_up_.clear();
}

bool Indexer::open_index() {
  bool recreated = false;
  std::string error;
  index_ = IndexFile::open_writer(file_, recreated, error);
  if (!index_) {
    fail("cannot open", error);
    return false;
  }
  if (recreated) {
    spdlog::warn("search index {} was unusable ({}); made anew, it is rebuilt from the history",
                 file_.string(), error);
    ++generation_;
  }
  if (!reconcile(error)) {
    fail("cannot read", error);
    return false;
  }
  bool recovered = false;
  {
    std::lock_guard lock(mutex_);
    recovered = failing_;
    failing_ = false;
  }
  if (recovered) spdlog::info("search index {} works again; catching up", file_.string());
  return true;
}

bool Indexer::reconcile(std::string& error) {
  auto marks = index_->watermarks(error);
  if (!marks) return false;
  marks_ = std::move(*marks);
  const auto ids = source_.project_ids();
  const std::set<std::string> live(ids.begin(), ids.end());
  for (auto it = marks_.begin(); it != marks_.end();) {
    if (live.contains(it->first)) {
      ++it;
      continue;
    }
    // A project deleted while no server ran (or whose history is gone).
    if (!index_->begin(error) || !index_->remove_project(it->first, error) ||
        !index_->commit(error))
      return false;
    it = marks_.erase(it);
  }
  catch_up_ = live;
  return true;
}

bool Indexer::write_batch(std::deque<Item>& batch, std::string& error) {
  if (!index_->begin(error)) return false;
  std::map<std::string, std::uint64_t> moved;  // watermarks this transaction moves
  std::vector<std::string> removed;
  for (auto& item : batch) {
    if (item.remove) {
      if (!index_->remove_project(item.project_id, error)) return false;
      moved.erase(item.project_id);
      removed.push_back(item.project_id);
      catch_up_.erase(item.project_id);
      continue;
    }
    if (catch_up_.contains(item.project_id)) continue;  // its log is read anyway
    const auto m = moved.find(item.project_id);
    const std::uint64_t mark =
        m != moved.end() ? m->second
                         : (marks_.contains(item.project_id) ? marks_[item.project_id] : 0);
    if (item.seq <= mark) continue;
    if (item.seq > mark + 1) {
      // Entries before it were dropped or never seen: read them (and it) from the log.
      catch_up_.insert(item.project_id);
      continue;
    }
    ++entries_looked_at_;
    const IndexedEntry entry{item.project_id, item.seq, time_ms_of(item.timestamp),
                             text_of(item.direction, item.message_json)};
    if (!index_->add(entry, error)) return false;
    moved[item.project_id] = item.seq;
  }
  for (const auto& [id, seq] : moved)
    if (!index_->set_watermark(id, seq, error)) return false;
  if (!index_->commit(error)) return false;
  for (const auto& id : removed) marks_.erase(id);
  for (const auto& [id, seq] : moved) marks_[id] = seq;
  return true;
}

bool Indexer::catch_up_page(const std::string& project_id, bool& done, std::string& error) {
  done = false;
  std::uint64_t mark = marks_.contains(project_id) ? marks_[project_id] : 0;
  auto page = source_.read_after(project_id, mark, options_.catch_up_page, options_.catch_up_bytes);
  if (!page) {
    done = true;  // deleted meanwhile: its removal is queued
    return true;
  }
  if (page->last_seq < mark) {
    // The index is ahead of the log (a log restored from an older copy): start over.
    if (!index_->begin(error) || !index_->remove_project(project_id, error) ||
        !index_->commit(error))
      return false;
    marks_.erase(project_id);
    return true;
  }
  if (!index_->begin(error)) return false;
  std::uint64_t last = mark;
  for (const auto& text : page->entries) {
    boost::system::error_code ec;
    const auto doc = json::parse(text, ec);
    if (ec || !doc.is_object()) continue;
    const auto& e = doc.get_object();
    const auto* seq_value = e.if_contains("seq");
    if (seq_value == nullptr || !seq_value->is_number()) continue;
    const auto seq = seq_value->to_number<std::uint64_t>(ec);
    if (ec || seq <= last) continue;
    const auto* message = protocol::object_at(e, "message");
    const std::string direction = protocol::string_at(e, "direction");
    ++entries_looked_at_;
    IndexedEntry entry{project_id, seq, time_ms_of(protocol::string_at(e, "timestamp")), {}};
    if (message != nullptr) entry.text = searchable_text(direction, *message);
    if (!index_->add(entry, error)) return false;
    last = seq;
  }
  // Entries the reader skipped (damaged lines) up to the log's end count as looked at.
  if (!page->has_more) last = std::max(last, page->last_seq);
  if (last > mark && !index_->set_watermark(project_id, last, error)) return false;
  if (!index_->commit(error)) return false;
  marks_[project_id] = last;
  done = !page->has_more;
  return true;
}

void Indexer::run() {
  auto retry_at = std::chrono::steady_clock::now() + options_.retry_after;
  notify_waiters();  // nothing to catch up (no projects): current at once
  while (true) {
    std::deque<Item> batch;
    bool failing = false;
    {
      std::unique_lock lock(mutex_);
      const auto has_work = [&] {
        return stop_ || !queue_.empty() || !dropped_.empty() || (!failing_ && !catch_up_.empty());
      };
      if (failing_) {
        wake_.wait_until(lock, retry_at, [&] { return stop_; });
      } else {
        wake_.wait(lock, has_work);
      }
      if (stop_) return;
      while (!queue_.empty() && batch.size() < options_.batch_items) {
        queue_bytes_ -= queue_.front().message_json.size() + queue_.front().project_id.size() +
                        queue_.front().timestamp.size();
        batch.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
      if (!failing_) catch_up_.insert(dropped_.begin(), dropped_.end());
      dropped_.clear();
      failing = failing_;
    }
    const std::uint64_t last_ticket = batch.empty() ? 0 : batch.back().ticket;
    if (failing) {
      // What was queued meanwhile is in the logs: reopening catches every project up.
      batch.clear();
      if (std::chrono::steady_clock::now() >= retry_at) {
        retry_at = std::chrono::steady_clock::now() + options_.retry_after;
        open_index();
      }
    }
    std::string error;
    if (!batch.empty() && !write_batch(batch, error)) fail("cannot write", error);
    if (index_ && !catch_up_.empty()) {
      // One page per turn, so that live entries are not held up behind a long rebuild.
      const std::string id = *catch_up_.begin();
      bool done = false;
      if (!catch_up_page(id, done, error)) {
        fail("cannot write", error);
      } else if (done) {
        catch_up_.erase(id);
      }
    }
    {
      std::lock_guard lock(mutex_);
      if (last_ticket != 0) processed_ = std::max(processed_, last_ticket);
      // Tickets of dropped entries count as processed once their projects are caught up.
      if (queue_.empty() && dropped_.empty() && catch_up_.empty() && !failing_)
        processed_ = enqueued_;
    }
    notify_waiters();
  }
}

std::optional<std::uint64_t> Indexer::rebuild(std::string& error) {
  if (!open_index()) {
    error = "cannot open " + file_.string();
    return std::nullopt;
  }
  while (!catch_up_.empty()) {
    const std::string id = *catch_up_.begin();
    bool done = false;
    if (!catch_up_page(id, done, error)) {
      index_->rollback();
      return std::nullopt;
    }
    if (done) catch_up_.erase(id);
  }
  if (!index_->optimize(error)) return std::nullopt;
  index_.reset();
  return entries_looked_at_;
}

}  // namespace pa::search
