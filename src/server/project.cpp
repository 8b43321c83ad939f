#include "server/project.hpp"

#include <algorithm>

#include <spdlog/spdlog.h>

#include <boost/json/serialize.hpp>

#include "protocol/clock.hpp"

namespace pa::server {

namespace json = boost::json;

Project::Project(projects::ProjectInfo info, PoolStrand strand,
                 std::unique_ptr<history::MessageLog> log, const projects::ProjectStore& store,
                 std::chrono::milliseconds fsync_interval, ops::Counter& history_bytes)
    : id_(info.id),
      path_(info.path),
      strand_(std::move(strand)),
      store_(store),
      log_(std::move(log)),
      sync_timer_(strand_),
      fsync_interval_(fsync_interval),
      seq_mark_(info.seq_mark),
      history_bytes_(history_bytes),
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
  return subscribers_.emplace(connection->id(), connection).second;
}

bool Project::unsubscribe(std::uint64_t connection_id) {
  return subscribers_.erase(connection_id) > 0;
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
      it = subscribers_.erase(it);  // closed; its hub cleanup may still be on the way
    }
  }
}

std::uint64_t Project::append(history::Direction direction, std::string_view message_json,
                              std::string& timestamp, std::string_view trailer) {
  if (!log_) {
    timestamp = protocol::now_rfc3339();
    return 0;
  }
  std::error_code ec;
  const auto bytes_before = log_->bytes_written();
  const auto files_before = log_->file_count();
  auto result = log_->append(direction, message_json, ec, trailer);
  history_bytes_.inc(log_->bytes_written() - bytes_before);
  if (ec) {
    if (last_append_error_ != ec.message())
      spdlog::error("history append failed for project {}: {}", id_, ec.message());
    last_append_error_ = ec.message();
    timestamp = protocol::now_rfc3339();
    return 0;
  }
  last_append_error_.clear();
  timestamp = std::move(result.timestamp);
  // A file was closed by rotation (the log fdatasyncs it first): from now on it may be archived
  // or deleted, so the seq mark must cover it. Rare: every log_rotation.size bytes or .count.
  if (log_->file_count() != files_before) persist_seq_mark();
  schedule_sync();
  return result.seq;
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
      if (ec) spdlog::error("history fsync failed for project {}: {}", self->id_, ec.message());
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

std::uint64_t Project::record(history::Direction direction, std::string_view message_json) {
  std::string timestamp;
  return append(direction, message_json, timestamp);
}

std::uint64_t Project::publish(std::string_view type, const json::object& data,
                               const Requester* requester) {
  if (requester == nullptr || !requester->connection) {
    return publish(type, data, std::vector<Requester>{});
  }
  return publish(type, data, std::vector<Requester>{*requester});
}

std::uint64_t Project::publish(std::string_view type, const json::object& data,
                               const std::vector<Requester>& requesters) {
  const std::string data_json = json::serialize(data);
  std::string message =
      "{\"type\":" + json::serialize(json::string_view(type)) + ",\"data\":" + data_json + "}";
  std::string timestamp;
  const std::uint64_t seq = append(history::Direction::kServer, message, timestamp);
  const std::optional<std::uint64_t> seq_field = seq ? std::optional(seq) : std::nullopt;
  auto text = std::make_shared<const std::string>(protocol::serialize(
      protocol::Outgoing{type, id_, std::nullopt, seq_field, timestamp}, data_json));
  std::vector<const Connection*> except;
  for (const auto& requester : requesters) {
    if (!requester.connection) continue;
    if (std::find(except.begin(), except.end(), requester.connection.get()) != except.end()) {
      continue;  // one copy per connection
    }
    except.push_back(requester.connection.get());
    if (requester.request_id) {
      requester.connection->send(std::make_shared<const std::string>(protocol::serialize(
          protocol::Outgoing{type, id_, *requester.request_id, seq_field, timestamp}, data_json)));
    } else {
      requester.connection->send(text);
    }
  }
  send_all(text, except);
  return seq;
}

std::uint64_t Project::publish_marked(std::string_view type, const json::object& data,
                                      const std::vector<Requester>& requesters,
                                      std::string_view trailer) {
  const std::string data_json = json::serialize(data);
  const std::string message =
      "{\"type\":" + json::serialize(json::string_view(type)) + ",\"data\":" + data_json + "}";
  std::string timestamp;
  const std::uint64_t seq = append(history::Direction::kServer, message, timestamp, trailer);
  if (seq != 0) send_published(type, seq, timestamp, data_json, requesters);
  return seq;
}

std::uint64_t Project::publish_raw_marked(history::Direction direction,
                                          std::string_view history_message_json,
                                          std::string_view type, std::string_view data_json,
                                          std::string_view trailer) {
  std::string timestamp;
  const std::uint64_t seq = append(direction, history_message_json, timestamp, trailer);
  if (seq == 0) return 0;
  auto text = std::make_shared<const std::string>(protocol::serialize(
      protocol::Outgoing{type, id_, std::nullopt, std::optional(seq), timestamp}, data_json));
  send_all(text, {});
  return seq;
}

void Project::send_published(std::string_view type, std::uint64_t seq, const std::string& timestamp,
                             const std::string& data_json,
                             const std::vector<Requester>& requesters) {
  const std::optional<std::uint64_t> seq_field = seq ? std::optional(seq) : std::nullopt;
  auto text = std::make_shared<const std::string>(protocol::serialize(
      protocol::Outgoing{type, id_, std::nullopt, seq_field, timestamp}, data_json));
  std::vector<const Connection*> except;
  for (const auto& requester : requesters) {
    if (!requester.connection) continue;
    if (std::find(except.begin(), except.end(), requester.connection.get()) != except.end()) {
      continue;  // one copy per connection
    }
    except.push_back(requester.connection.get());
    if (requester.request_id) {
      requester.connection->send(std::make_shared<const std::string>(protocol::serialize(
          protocol::Outgoing{type, id_, *requester.request_id, seq_field, timestamp}, data_json)));
    } else {
      requester.connection->send(text);
    }
  }
  send_all(text, except);
}

std::uint64_t Project::publish_raw(history::Direction direction,
                                   std::string_view history_message_json, std::string_view type,
                                   std::string_view data_json) {
  std::string timestamp;
  const std::uint64_t seq = append(direction, history_message_json, timestamp);
  auto text = std::make_shared<const std::string>(
      protocol::serialize(protocol::Outgoing{type, id_, std::nullopt,
                                             seq ? std::optional(seq) : std::nullopt, timestamp},
                          data_json));
  send_all(text, {});
  return seq;
}

void Project::send_error(const json::object& data) {
  send_all(std::make_shared<const std::string>(protocol::serialize(
               protocol::Outgoing{"error", id_, std::nullopt, std::nullopt, protocol::now_rfc3339()},
               json::serialize(data))),
           {});
}

std::string Project::history_dir() const { return store_.logs_dir(id_).string(); }

void Project::reply(const Requester& requester, std::string_view type, const json::object& data) {
  reply_raw(requester, type, json::serialize(data));
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
      spdlog::error("cannot save metadata of project {}: {}", id_, ec.message());
    }
  }
  return copy;
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
  subscribers_.clear();
  sync_timer_.cancel();
  log_.reset();
  return store_.remove(id_);
}

void Project::flush_history() {
  if (log_ && log_->needs_sync()) {
    std::error_code ec;
    log_->sync(ec);
    if (ec) spdlog::error("history fsync failed for project {}: {}", id_, ec.message());
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
