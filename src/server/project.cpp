#include "server/project.hpp"

#include <algorithm>
#include <utility>

#include <spdlog/spdlog.h>

#include <boost/json/serialize.hpp>

#include "devices/roles.hpp"
#include "ops/logging.hpp"
#include "protocol/clock.hpp"
#include "protocol/error_codes.hpp"
#include "protocol/json_text.hpp"
#include "server/catch_up_frames.hpp"

namespace pa::server {

namespace json = boost::json;

Project::Project(projects::ProjectInfo info, PoolStrand strand,
                 std::unique_ptr<history::MessageLog> log, const projects::ProjectStore& store,
                 std::chrono::milliseconds fsync_interval, ops::Counter& history_bytes,
                 ops::StorageProblems& storage_problems, ops::Counter& storage_errors)
    : id_(info.id),
      path_(info.path),
      strand_(std::move(strand)),
      store_(store),
      log_(std::move(log)),
      recent_(kRecentFrameBytes, (log_ ? log_->last_seq() : 0) + 1),
      sync_timer_(strand_),
      fsync_interval_(fsync_interval),
      seq_mark_(info.seq_mark),
      history_bytes_(history_bytes),
      storage_problems_(storage_problems),
      storage_errors_(storage_errors),
      retry_timer_(strand_),
      metadata_timer_(strand_),
      info_(std::move(info)) {}

projects::ProjectInfo Project::snapshot() const {
  std::lock_guard lock(info_mutex_);
  return info_;
}

bool Project::executing() const {
  std::lock_guard lock(info_mutex_);
  return info_.state == projects::State::kExecuting;
}

bool Project::busy() const {
  std::lock_guard lock(info_mutex_);
  return info_.state != projects::State::kIdle;
}

std::uint64_t Project::last_seq() const {
  return log_ ? log_->last_seq() : 0;
}

bool Project::subscribe(const std::shared_ptr<Connection>& connection) {
  // The first subscriber: recent broadcasts are kept from now on (none were while nobody was).
  if (subscribers_.empty()) recent_.clear(last_seq() + 1);
  if (!subscribers_.emplace(connection->id(), connection).second) return false;
  connection->feed_joined(shared_from_this());
  return true;
}

bool Project::subscriber_can(std::string_view capability, std::string_view message_type) const {
  for (const auto& [id, weak] : subscribers_) {
    const auto connection = weak.lock();
    if (connection && connection->profile().declared(capability) &&
        devices::allows(connection->identity().role, message_type)) {
      return true;
    }
  }
  return false;
}

bool Project::unsubscribe(std::uint64_t connection_id) {
  const auto it = subscribers_.find(connection_id);
  if (it == subscribers_.end()) return false;
  if (auto connection = it->second.lock()) connection->end_feed(this);
  subscribers_.erase(it);
  if (subscribers_.empty()) recent_.clear(last_seq() + 1);  // nobody can fall behind
  return true;
}

void Project::leave(std::uint64_t connection_id) {
  boost::asio::post(
      strand_, [self = shared_from_this(), connection_id] { self->unsubscribe(connection_id); });
}

void Project::request_catch_up(std::shared_ptr<Connection> connection, std::uint64_t after_seq,
                               std::size_t max_frames, std::size_t max_bytes) {
  boost::asio::post(strand_, [self = shared_from_this(), connection = std::move(connection),
                              after_seq, max_frames, max_bytes] {
    // Left (or the project was deleted) since it asked: nothing more is owed.
    if (self->deleted_ || !self->subscribed(connection->id())) {
      connection->end_feed(self.get());
      return;
    }
    CatchUpPage out;
    out.through_seq = after_seq;
    // Recent enough: the frames sent live, shared with every other subscriber catching up.
    if (self->recent_.covers(after_seq)) {
      auto slice = self->recent_.after(after_seq, std::max<std::size_t>(1, max_frames),
                                       std::max<std::size_t>(1, max_bytes));
      if (!slice.frames.empty()) out.through_seq = slice.frames.back().first;
      if (slice.rest_empty) {
        out.live = true;
        out.through_seq = std::max(out.through_seq, self->last_seq());
      }
      out.frames = std::move(slice.frames);
      connection->deliver_page(self.get(), std::move(out));
      return;
    }
    history::Query query;
    query.after_seq = after_seq;
    query.limit = std::max<std::size_t>(1, max_frames);
    query.max_bytes = std::max<std::size_t>(1, max_bytes);
    const auto page = self->read_history(query);
    for (const auto& entry : page.entries) {
      auto rebuilt = frame_from_history_entry(entry, self->id_);
      if (rebuilt.seq == 0) continue;  // unreadable: read_history already warned
      out.through_seq = std::max(out.through_seq, rebuilt.seq);
      if (rebuilt.frame) {
        out.frames.emplace_back(rebuilt.seq,
                                std::make_shared<const std::string>(std::move(*rebuilt.frame)));
      }
    }
    // On the strand nothing is appended meanwhile: without more, the page reaches the last seq
    // and the live frames sent after this one continue right after it.
    if (!page.has_more) {
      out.live = true;
      out.through_seq = std::max(out.through_seq, self->last_seq());
    }
    connection->deliver_page(self.get(), std::move(out));
  });
}

void Project::send_feed(std::uint64_t seq, const protocol::SharedText& text,
                        const std::vector<const Connection*>& except) {
  const std::shared_ptr<Feed> feed = shared_from_this();
  for (auto it = subscribers_.begin(); it != subscribers_.end();) {
    if (auto connection = it->second.lock()) {
      if (std::find(except.begin(), except.end(), connection.get()) == except.end()) {
        connection->send_seq(feed, seq, text, false);
      }
      ++it;
    } else {
      it = subscribers_.erase(it);  // closed; its leave() may still be on the way
    }
  }
  if (feed_hook_) feed_hook_(seq, text);
}

void Project::send_all(const protocol::SharedText& text,
                       const std::vector<const Connection*>& except) {
  for (auto it = subscribers_.begin(); it != subscribers_.end();) {
    if (auto connection = it->second.lock()) {
      if (std::find(except.begin(), except.end(), connection.get()) == except.end()) {
        connection->send(text);
      }
      ++it;
    } else {
      it = subscribers_.erase(it);  // closed; its leave() may still be on the way
    }
  }
}

std::uint64_t Project::append(history::Direction direction, std::string_view message_json,
                              std::string& timestamp, std::error_code& ec,
                              std::string_view trailer) {
  ec.clear();
  if (!log_) {
    ec = std::make_error_code(std::errc::bad_file_descriptor);  // deleted: no history any more
    return 0;
  }
  const auto bytes_before = log_->bytes_written();
  const auto files_before = log_->file_count();
  auto result = log_->append(direction, message_json, ec, trailer);
  history_bytes_.inc(log_->bytes_written() - bytes_before);
  if (result.seq == 0) {
    if (!ec) ec = std::make_error_code(std::errc::io_error);
    history_failing_ = true;
    last_history_error_ = ec;
    return 0;  // the caller reports it (with its requesters)
  }
  if (ec) {
    // Written (a later read finds it), but its fdatasync failed: durable only when the next one
    // works. The entry keeps its seq and is sent; the problem is reported.
    history_failing_ = true;
    last_history_error_ = ec;
    report_storage_failure("history", history_path(), ec);
    ec.clear();
  } else if (history_failing_) {
    history_failing_ = false;
    report_storage_recovered(history_path());
  }
  if (append_hook_) append_hook_(result.seq, result.timestamp, direction, message_json);
  timestamp = std::move(result.timestamp);
  // A file was closed by rotation (the log fdatasyncs it first): from now on it may be archived
  // or deleted, so the seq mark must cover it. Rare: every log_rotation.size bytes or .count.
  if (log_->file_count() != files_before) persist_seq_mark();
  schedule_sync();
  return result.seq;
}

std::string Project::history_path() const {
  return store_.logs_dir(id_).string();
}

std::string Project::metadata_path() const {
  return (store_.project_dir(id_) / "project.json").string();
}

std::chrono::milliseconds Project::retry_delay(unsigned attempt) {
  constexpr std::chrono::milliseconds kFirst{250};
  constexpr std::chrono::milliseconds kMax{5000};
  if (attempt >= 5) return kMax;
  return std::min(kMax, kFirst * (1 << attempt));
}

void Project::report_storage_failure(std::string_view what, const std::string& path,
                                     const std::error_code& ec,
                                     const std::vector<Requester>& also) {
  storage_errors_.inc();
  const std::string error = ec.message();
  const auto raised = storage_problems_.raise(std::string(what), path, error, id_);
  if (raised.first) {
    ops::log_event(
        spdlog::level::err, "Storage failed",
        json::object{{"project_id", id_}, {"what", what}, {"path", path}, {"error", error}});
  }
  if (!raised.notify) return;
  if (!raised.first) {
    ops::log_event(
        spdlog::level::warn, "Storage still failing",
        json::object{{"project_id", id_}, {"what", what}, {"path", path}, {"error", error}});
  }
  std::string message =
      "The " + std::string(what) + " of project " + id_ + " cannot be written (" + error + ")";
  message += what == "history" ? "; new messages are held and retried, nothing is lost yet"
                               : "; the server keeps retrying";
  auto text = std::make_shared<const std::string>(protocol::serialize_error(
      protocol::make_error(protocol::ErrorCode::kStorageFailed, std::move(message),
                           json::object{{"what", what}, {"path", path}, {"error", error}}),
      id_, std::nullopt));
  std::vector<const Connection*> sent;
  for (const auto& requester : also) {
    if (!requester.connection ||
        std::find(sent.begin(), sent.end(), requester.connection.get()) != sent.end())
      continue;
    sent.push_back(requester.connection.get());
    requester.connection->send(text);
  }
  send_all(text, sent);
}

void Project::report_storage_recovered(const std::string& path) {
  if (!storage_problems_.clear(path)) return;
  ops::log_event(spdlog::level::info, "Storage works again",
                 json::object{{"project_id", id_}, {"path", path}});
}

void Project::schedule_sync() {
  if (sync_pending_ || !log_ || !log_->needs_sync()) return;
  sync_pending_ = true;
  sync_timer_.expires_after(fsync_interval_);
  sync_timer_.async_wait([self = shared_from_this()](const boost::system::error_code&) {
    self->sync_pending_ = false;
    if (self->log_ && self->log_->needs_sync()) {
      std::error_code ec;
      self->log_->sync(ec);
      if (ec) {
        self->history_failing_ = true;
        self->report_storage_failure("history", self->history_path(), ec);
      }
    }
  });
}

void Project::persist_seq_mark() {
  if (!log_ || deleted_) return;
  const std::uint64_t durable = log_->durable_seq();
  if (durable <= seq_mark_) return;
  update([durable](projects::ProjectInfo& p) { p.seq_mark = durable; });
  seq_mark_ = durable;
}

PublishResult Project::publish_json(std::string_view type, const json::object& data,
                                    const std::vector<Requester>& requesters, bool all_or_nothing) {
  const std::string data_json = protocol::to_json_text(data);
  const std::string message =
      "{\"type\":" + json::serialize(json::string_view(type)) + ",\"data\":" + data_json + "}";
  const Message m{history::Direction::kServer, message, type, data_json, &requesters, {}};
  return all_or_nothing ? try_write(m) : publish_deferrable(m);
}

PublishResult Project::write_and_send(const Message& m) {
  PublishResult result;
  std::string timestamp;
  static const std::vector<Requester> kNone;
  const auto& requesters = m.requesters != nullptr ? *m.requesters : kNone;
  result.seq = append(m.direction, m.history_json, timestamp, result.error, m.trailer);
  if (result.seq == 0) {
    if (!deleted_) report_storage_failure("history", history_path(), result.error, requesters);
    return result;
  }
  if (m.type.empty()) return result;  // recorded only
  const std::optional<std::uint64_t> seq_field = result.seq;
  auto text = std::make_shared<const std::string>(protocol::serialize(
      protocol::Outgoing{m.type, id_, std::nullopt, seq_field, timestamp}, m.data_json));
  std::vector<const Connection*> except;
  for (const auto& requester : requesters) {
    if (!requester.connection) continue;
    if (std::find(except.begin(), except.end(), requester.connection.get()) != except.end()) {
      continue;  // one copy per connection
    }
    except.push_back(requester.connection.get());
    auto own = text;
    if (requester.request_id) {
      own = std::make_shared<const std::string>(protocol::serialize(
          protocol::Outgoing{m.type, id_, *requester.request_id, seq_field, timestamp},
          m.data_json));
    }
    // A subscriber's reply is part of its feed (it must not overtake what it missed); a
    // requester that is not subscribed just gets its reply.
    if (subscribed(requester.connection->id())) {
      requester.connection->send_seq(shared_from_this(), result.seq, std::move(own),
                                     requester.request_id.has_value());
    } else {
      requester.connection->send(std::move(own));
    }
  }
  if (!subscribers_.empty()) recent_.add(result.seq, text);
  send_feed(result.seq, text, except);
  return result;
}

bool Project::drain_deferred(std::error_code& ec) {
  ec.clear();
  while (!pending_.empty()) {
    const auto written = write_and_send(pending_.front().view());
    if (!written) {
      ec = written.error;
      return false;
    }
    pending_bytes_ -= pending_.front().bytes();
    pending_.pop_front();
  }
  retry_attempt_ = 0;
  return true;
}

PublishResult Project::publish_deferrable(const Message& m) {
  if (deleted_)
    return PublishResult{0, false, std::make_error_code(std::errc::bad_file_descriptor)};
  if (pending_.empty()) {
    auto written = write_and_send(m);
    if (written) return written;
    last_history_error_ = written.error;
  }
  // Wait behind what waits already (the order of history is the order of publishing).
  Deferred d;
  d.direction = m.direction;
  d.history_json = std::string(m.history_json);
  d.type = std::string(m.type);
  d.data_json = std::string(m.data_json);
  if (m.requesters != nullptr) {
    for (const auto& r : *m.requesters) {
      if (r.connection) d.requesters.push_back(r);
    }
  }
  d.since = std::chrono::steady_clock::now();
  if (pending_.size() >= kMaxDeferred || pending_bytes_ + d.bytes() > kMaxDeferredBytes) {
    give_up(last_history_error_, "the retry queue is full");
  }
  pending_bytes_ += d.bytes();
  pending_.push_back(std::move(d));
  arm_retry();
  return PublishResult{0, true, last_history_error_};
}

void Project::arm_retry() {
  if (retry_armed_ || pending_.empty()) return;
  retry_armed_ = true;
  retry_timer_.expires_after(retry_delay(retry_attempt_));
  retry_timer_.async_wait([self = shared_from_this()](const boost::system::error_code& e) {
    self->retry_armed_ = false;
    if (e || self->deleted_ || self->pending_.empty()) return;
    ++self->retry_attempt_;
    std::error_code ec;
    if (self->drain_deferred(ec)) return;
    self->last_history_error_ = ec;
    const auto waited = std::chrono::steady_clock::now() - self->pending_.front().since;
    if (waited >= self->give_up_after_) {
      self->give_up(ec, "it could not be written for " +
                            std::to_string(self->give_up_after_.count()) + " ms");
      return;
    }
    self->arm_retry();
  });
}

void Project::give_up(const std::error_code& ec, std::string_view why) {
  if (pending_.empty()) return;
  const std::size_t dropped = pending_.size();
  const std::string error = ec ? ec.message() : std::string("unknown error");
  const std::string path = history_path();
  const std::string message = "The history of project " + id_ + " cannot be written (" + error +
                              "); " + std::to_string(dropped) +
                              " message(s) waiting for it were dropped: " + std::string(why);
  ops::log_event(spdlog::level::err, "History messages dropped",
                 json::object{{"project_id", id_},
                              {"path", path},
                              {"error", error},
                              {"dropped", dropped},
                              {"reason", why}});
  const auto details =
      json::object{{"what", "history"}, {"path", path}, {"error", error}, {"dropped", dropped}};
  std::vector<const Connection*> told;
  for (const auto& m : pending_) {
    for (const auto& requester : m.requesters) {
      if (!requester.connection || !requester.request_id) continue;
      storage_errors_.inc();
      requester.connection->send(std::make_shared<const std::string>(protocol::serialize_error(
          protocol::make_error(protocol::ErrorCode::kStorageFailed, message, details), id_,
          *requester.request_id)));
      told.push_back(requester.connection.get());
    }
  }
  storage_errors_.inc();
  send_all(std::make_shared<const std::string>(protocol::serialize_error(
               protocol::make_error(protocol::ErrorCode::kStorageFailed, message, details), id_,
               std::nullopt)),
           told);
  pending_.clear();
  pending_bytes_ = 0;
  retry_attempt_ = 0;
  // A retry timer still armed finds the queue empty (or what was queued since) when it fires.
}

PublishResult Project::try_write(const Message& m) {
  if (deleted_)
    return PublishResult{0, false, std::make_error_code(std::errc::bad_file_descriptor)};
  std::error_code ec;
  if (!drain_deferred(ec)) return PublishResult{0, false, ec};
  return write_and_send(m);
}

PublishResult Project::record(history::Direction direction, std::string_view message_json) {
  return publish_deferrable(Message{direction, message_json, {}, {}, nullptr, {}});
}

PublishResult Project::try_record(history::Direction direction, std::string_view message_json) {
  return try_write(Message{direction, message_json, {}, {}, nullptr, {}});
}

PublishResult Project::publish(std::string_view type, const json::object& data,
                               const Requester* requester) {
  if (requester == nullptr || !requester->connection) {
    return publish_json(type, data, {}, false);
  }
  return publish_json(type, data, std::vector<Requester>{*requester}, false);
}

PublishResult Project::publish(std::string_view type, const json::object& data,
                               const std::vector<Requester>& requesters) {
  return publish_json(type, data, requesters, false);
}

PublishResult Project::try_publish(std::string_view type, const json::object& data,
                                   const std::vector<Requester>& requesters) {
  return publish_json(type, data, requesters, true);
}

PublishResult Project::publish_raw(history::Direction direction,
                                   std::string_view history_message_json, std::string_view type,
                                   std::string_view data_json) {
  return publish_deferrable(Message{direction, history_message_json, type, data_json, nullptr, {}});
}

PublishResult Project::try_publish_raw(history::Direction direction,
                                       std::string_view history_message_json, std::string_view type,
                                       std::string_view data_json) {
  return try_write(Message{direction, history_message_json, type, data_json, nullptr, {}});
}

PublishResult Project::try_publish_marked(std::string_view type, const json::object& data,
                                          const std::vector<Requester>& requesters,
                                          std::string_view trailer) {
  const std::string data_json = protocol::to_json_text(data);
  const std::string message =
      "{\"type\":" + json::serialize(json::string_view(type)) + ",\"data\":" + data_json + "}";
  return try_write(
      Message{history::Direction::kServer, message, type, data_json, &requesters, trailer});
}

PublishResult Project::try_publish_raw_marked(history::Direction direction,
                                              std::string_view history_message_json,
                                              std::string_view type, std::string_view data_json,
                                              std::string_view trailer) {
  return try_write(Message{direction, history_message_json, type, data_json, nullptr, trailer});
}

void Project::reply(const Requester& requester, std::string_view type, const json::object& data) {
  reply_raw(requester, type, protocol::to_json_text(data));
}

void Project::reply_raw(const Requester& requester, std::string_view type,
                        std::string_view data_json) {
  if (!requester.connection) return;
  std::optional<std::string_view> request_id;
  if (requester.request_id) request_id = *requester.request_id;
  requester.connection->send(std::make_shared<const std::string>(
      protocol::serialize(protocol::Outgoing{type, id_, request_id, std::nullopt, {}}, data_json)));
}

projects::ProjectInfo Project::update(const std::function<void(projects::ProjectInfo&)>& change) {
  projects::ProjectInfo copy;
  {
    std::lock_guard lock(info_mutex_);
    change(info_);
    copy = info_;
  }
  if (!deleted_) {
    if (auto ec = store_.save(copy)) {
      // The state in memory (what clients see) is right; the file catches up at the next save.
      metadata_failing_ = true;
      report_storage_failure("metadata", metadata_path(), ec);
      arm_metadata_retry();
    } else if (metadata_failing_) {
      metadata_failing_ = false;
      metadata_attempt_ = 0;
      report_storage_recovered(metadata_path());
    }
  }
  return copy;
}

void Project::arm_metadata_retry() {
  if (metadata_armed_ || deleted_) return;
  metadata_armed_ = true;
  metadata_timer_.expires_after(retry_delay(metadata_attempt_++));
  metadata_timer_.async_wait([self = shared_from_this()](const boost::system::error_code& e) {
    self->metadata_armed_ = false;
    if (e || self->deleted_ || !self->metadata_failing_) return;
    if (auto ec = self->store_.save(self->snapshot())) {
      self->report_storage_failure("metadata", self->metadata_path(), ec);
      self->arm_metadata_retry();
      return;
    }
    self->metadata_failing_ = false;
    self->metadata_attempt_ = 0;
    self->report_storage_recovered(self->metadata_path());
  });
}

history::Page Project::read_history(const history::Query& query) {
  if (!log_) return {};
  std::vector<std::string> warnings;
  auto page = log_->read(query, warnings);
  for (const auto& w : warnings) spdlog::warn("project {}: {}", id_, w);
  return page;
}

std::error_code Project::remove_from_disk() {
  deleted_ = true;
  for (auto& [id, weak] : subscribers_)
    if (auto connection = weak.lock()) connection->end_feed(this);
  subscribers_.clear();
  recent_.clear(last_seq() + 1);
  sync_timer_.cancel();
  retry_timer_.cancel();
  metadata_timer_.cancel();
  pending_.clear();
  pending_bytes_ = 0;
  storage_problems_.clear_project(id_);
  log_.reset();
  return store_.remove(id_);
}

void Project::flush_history() {
  std::error_code ec;
  if (!pending_.empty() && !drain_deferred(ec)) {
    ops::log_event(spdlog::level::err, "History messages lost at shutdown",
                   json::object{{"project_id", id_},
                                {"path", history_path()},
                                {"error", ec.message()},
                                {"dropped", pending_.size()}});
    pending_.clear();
    pending_bytes_ = 0;
  }
  retry_timer_.cancel();
  metadata_timer_.cancel();
  if (log_ && log_->needs_sync()) {
    log_->sync(ec);
    if (ec) report_storage_failure("history", history_path(), ec);
  }
  persist_seq_mark();
}

std::uint64_t Project::history_bytes_written() const {
  return log_ ? log_->bytes_written() : 0;
}

}  // namespace pa::server

namespace pa::server {

void Project::remember_closed_permission(const std::string& permission_id,
                                         ClosedPermission closed) {
  if (closed_permissions_.emplace(permission_id, std::move(closed)).second) {
    closed_order_.push_back(permission_id);
  }
  while (closed_order_.size() > kClosedPermissionsKept) {
    closed_permissions_.erase(closed_order_.front());
    closed_order_.pop_front();
  }
}

const ClosedPermission* Project::closed_permission(const std::string& permission_id) const {
  auto it = closed_permissions_.find(permission_id);
  return it == closed_permissions_.end() ? nullptr : &it->second;
}

}  // namespace pa::server
