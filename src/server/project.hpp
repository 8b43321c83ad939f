// A live project: its metadata, subscribers and message history. Every member that is not
// marked thread-safe must run on strand(), which lives on the blocking pool (history appends and
// fsync never run on an I/O thread). Broadcasts leave the strand in seq order, and each
// connection queues them in the order received, so every subscriber sees the same order.
#pragma once

#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/json/object.hpp>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "history/message_log.hpp"
#include "ops/metrics.hpp"
#include "projects/project_info.hpp"
#include "projects/project_store.hpp"
#include "server/connection.hpp"

namespace pa::server {

using PoolStrand = boost::asio::strand<boost::asio::thread_pool::executor_type>;

// The connection that asked, so it gets the reply with its request_id.
struct Requester {
  std::shared_ptr<Connection> connection;
  std::optional<std::string> request_id;
};

// A permission request that is no longer pending, kept so a late answer learns what happened.
struct ClosedPermission {
  std::string status;              // "resolved", "expired" or "cancelled"
  boost::json::object resolution;  // the permission_resolved data
};

class Project : public std::enable_shared_from_this<Project> {
 public:
  Project(projects::ProjectInfo info, PoolStrand strand, std::unique_ptr<history::MessageLog> log,
          const projects::ProjectStore& store, std::chrono::milliseconds fsync_interval,
          ops::Counter& history_bytes);

  const std::string& id() const { return id_; }
  const std::string& path() const { return path_; }
  PoolStrand& strand() { return strand_; }

  projects::ProjectInfo snapshot() const;  // thread-safe
  bool executing() const;                  // thread-safe
  bool busy() const;                       // thread-safe: QUEUED or EXECUTING

  // --- strand only ---
  // The run in progress, or the execute waiting in the scheduler's queue.
  std::shared_ptr<class AgentRun> run;

  bool deleted() const { return deleted_; }
  std::uint64_t last_seq() const;
  bool subscribe(const std::shared_ptr<Connection>& connection);  // true if newly added
  bool unsubscribe(std::uint64_t connection_id);
  std::size_t subscriber_count() const { return subscribers_.size(); }

  // Appends {type, data} to history (direction server), then sends it to every subscriber; the
  // requester (subscribed or not) gets it with its request_id. Returns the seq (0 if the append
  // failed; the message is still sent).
  std::uint64_t publish(std::string_view type, const boost::json::object& data,
                        const Requester* requester = nullptr);
  // The same with several requesters (each gets its own request_id; one copy per connection).
  std::uint64_t publish(std::string_view type, const boost::json::object& data,
                        const std::vector<Requester>& requesters);
  // A run's message, with the spool offset it came from written into the same history entry
  // (`trailer`, see AgentRun): the offset and the entry are one fact on disk. When the append
  // fails nothing is sent and 0 is returned: the run holds and tries again.
  std::uint64_t publish_marked(std::string_view type, const boost::json::object& data,
                               const std::vector<Requester>& requesters, std::string_view trailer);
  std::uint64_t publish_raw_marked(history::Direction direction,
                                   std::string_view history_message_json, std::string_view type,
                                   std::string_view data_json, std::string_view trailer);
  // Appends a raw JSON message with the given direction, then broadcasts `type` whose data is
  // `data_json` (spliced verbatim). Used for CLI lines.
  std::uint64_t publish_raw(history::Direction direction, std::string_view history_message_json,
                            std::string_view type, std::string_view data_json);
  // Records a message in history without broadcasting it (e.g. a client's execute).
  std::uint64_t record(history::Direction direction, std::string_view message_json);
  // Sends an already serialized message to every subscriber but `except`; not recorded.
  void send_to_subscribers(const protocol::SharedText& text, const Connection* except) {
    send_all(text, {except});
  }
  // An `error` to every subscriber, not recorded and without a seq: for when history itself
  // cannot be written (STORAGE_FAILED).
  void send_error(const boost::json::object& data);
  // Where history is written, and the last append error (empty after a success).
  std::string history_dir() const;
  std::string last_append_error() const { return last_append_error_; }
  // Sends to one connection only, not recorded.
  void reply(const Requester& requester, std::string_view type, const boost::json::object& data);
  void reply_raw(const Requester& requester, std::string_view type, std::string_view data_json);

  // Updates metadata, persists it (atomic write), and returns the new snapshot.
  projects::ProjectInfo update(const std::function<void(projects::ProjectInfo&)>& change);

  history::Page read_history(const history::Query& query);

  // Permission requests that were answered, expired or cancelled (the newest few hundred).
  void remember_closed_permission(const std::string& permission_id, ClosedPermission closed);
  const ClosedPermission* closed_permission(const std::string& permission_id) const;
  // Marks deleted, drops subscribers, closes the log and removes metadata + history from disk.
  std::error_code remove_from_disk();
  void flush_history();  // fsync now (shutdown)
  // Stores the history's durable seq in the metadata (seq_mark) when it moved past the stored
  // one: when the project is opened, when a log file is closed by rotation, and at shutdown.
  // The files still there cover the rest, so project.json is not rewritten while a run streams.
  void persist_seq_mark();
  std::uint64_t history_bytes_written() const;

 private:
  void send_all(const protocol::SharedText& text, const std::vector<const Connection*>& except);
  std::uint64_t append(history::Direction direction, std::string_view message_json,
                       std::string& timestamp, std::string_view trailer = {});
  void send_published(std::string_view type, std::uint64_t seq, const std::string& timestamp,
                      const std::string& data_json, const std::vector<Requester>& requesters);
  void schedule_sync();

  const std::string id_;
  const std::string path_;
  PoolStrand strand_;
  const projects::ProjectStore& store_;
  std::unique_ptr<history::MessageLog> log_;
  std::map<std::uint64_t, std::weak_ptr<Connection>> subscribers_;
  bool deleted_ = false;
  static constexpr std::size_t kClosedPermissionsKept = 256;
  std::map<std::string, ClosedPermission> closed_permissions_;
  std::deque<std::string> closed_order_;
  boost::asio::steady_timer sync_timer_;
  bool sync_pending_ = false;
  std::chrono::milliseconds fsync_interval_;
  std::uint64_t seq_mark_ = 0;  // info_.seq_mark, readable without the lock
  ops::Counter& history_bytes_;
  std::string last_append_error_;

  mutable std::mutex info_mutex_;
  projects::ProjectInfo info_;
};

}  // namespace pa::server
