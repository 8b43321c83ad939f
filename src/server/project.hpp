// A live project: its metadata, subscribers and message history. Every member that is not
// marked thread-safe must run on strand(), which lives on the blocking pool (history appends and
// fsync never run on an I/O thread). Broadcasts leave the strand in seq order, and each
// connection queues them in the order received, so every subscriber sees the same order.
// It is the Feed of its subscribers: one that falls behind is sent what it missed from history
// (request_catch_up, read on the strand, so a page and the live frames after it meet exactly).
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
#include "ops/storage_problems.hpp"
#include "projects/project_info.hpp"
#include "projects/project_store.hpp"
#include "server/connection.hpp"
#include "server/recent_frames.hpp"

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

// What became of a message given to history (publish*, record*, try_*).
struct PublishResult {
  std::uint64_t seq = 0;  // > 0: in history with this seq, and sent (if it is a broadcast)
  // publish/record only: not written yet, kept in the project's retry queue; it is sent with its
  // seq once written, or dropped with a STORAGE_FAILED error when the queue gives up.
  bool deferred = false;
  std::error_code error;  // why it is not written (seq == 0)
  bool ok() const { return seq != 0; }
  explicit operator bool() const { return ok(); }
};

class Project : public Feed, public std::enable_shared_from_this<Project> {
 public:
  Project(projects::ProjectInfo info, PoolStrand strand, std::unique_ptr<history::MessageLog> log,
          const projects::ProjectStore& store, std::chrono::milliseconds fsync_interval,
          ops::Counter& history_bytes, ops::StorageProblems& storage_problems,
          ops::Counter& storage_errors);

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
  // The subscriber set lives here and nowhere else. subscribe() is the one way to join
  // (project_join, execute, project_create, their idempotent resends): it also tells the
  // connection (Connection::feed_joined), which leaves again when it closes. True if newly added.
  bool subscribe(const std::shared_ptr<Connection>& connection);
  // The one way to leave (project_leave; leave() on a connection's close): the connection's
  // cursor on this feed goes too (Connection::end_feed). remove_from_disk() ends them all.
  bool unsubscribe(std::uint64_t connection_id);
  bool subscribed(std::uint64_t connection_id) const {
    return subscribers_.find(connection_id) != subscribers_.end();
  }

  // Feed (thread-safe: runs on the strand). Pages are the broadcasts among the history entries
  // after `after_seq` (catch_up_frames.hpp), within `max_frames` entries and `max_bytes`.
  void request_catch_up(std::shared_ptr<Connection> connection, std::uint64_t after_seq,
                        std::size_t max_frames, std::size_t max_bytes) override;
  // Feed: unsubscribe(connection_id) posted to the strand (thread-safe).
  void leave(std::uint64_t connection_id) override;
  std::size_t subscriber_count() const { return subscribers_.size(); }
  // Whether a subscriber (still open) declared `capability` in its hello and its role may send
  // `message_type` (who answers permission requests: "permissions" and permission_response; a
  // viewer that declares the capability sees the request but cannot answer it).
  bool subscriber_can(std::string_view capability, std::string_view message_type) const;

  // Nothing is ever sent without its seq. When history cannot be written (disk full, read-only,
  // I/O error) the storage problem is reported (report_storage_failure: health, log, metrics,
  // a rate-limited STORAGE_FAILED error to the subscribers), and then:
  //  - publish*, record: the message waits in the project's retry queue, in order (later
  //    publishes queue behind it), retried on the strand with backoff (retry_delay); once written
  //    it is sent with its seq. If the oldest one still cannot be written after kGiveUpAfter (or
  //    the queue is full), the whole queue is dropped: each requester gets STORAGE_FAILED with its
  //    request_id, the subscribers one STORAGE_FAILED with details.dropped. Returns deferred.
  //  - try_*: nothing is sent or kept; the caller still has the message and tries again later
  //    (e.g. after retry_delay(attempt)), so history stays gap-free and in its order. A try_*
  //    first writes what waits in the retry queue; if that fails it fails too.
  // A write that succeeds clears the storage problem.

  // Appends {type, data} to history (direction server), then sends it to every subscriber; the
  // requester (subscribed or not) gets it with its request_id.
  PublishResult publish(std::string_view type, const boost::json::object& data,
                        const Requester* requester = nullptr);
  // The same with several requesters (each gets its own request_id; one copy per connection).
  PublishResult publish(std::string_view type, const boost::json::object& data,
                        const std::vector<Requester>& requesters);
  // Appends a raw JSON message with the given direction, then broadcasts `type` whose data is
  // `data_json` (spliced verbatim). Used for CLI lines.
  PublishResult publish_raw(history::Direction direction, std::string_view history_message_json,
                            std::string_view type, std::string_view data_json);
  // Records a message in history without broadcasting it (e.g. a client's execute).
  PublishResult record(history::Direction direction, std::string_view message_json);

  // The same, all or nothing: written and sent now, or neither (error says why).
  PublishResult try_publish(std::string_view type, const boost::json::object& data,
                            const std::vector<Requester>& requesters = {});
  PublishResult try_publish_raw(history::Direction direction, std::string_view history_message_json,
                                std::string_view type, std::string_view data_json);
  // A run's message with the spool offset it came from written into the same history entry
  // (`trailer`, see AgentRun): the offset and the entry are one fact on disk. All or nothing,
  // like try_*: the run holds its records and tries the same one again.
  PublishResult try_publish_marked(std::string_view type, const boost::json::object& data,
                                   const std::vector<Requester>& requesters,
                                   std::string_view trailer);
  PublishResult try_publish_raw_marked(history::Direction direction,
                                       std::string_view history_message_json, std::string_view type,
                                       std::string_view data_json, std::string_view trailer);
  PublishResult try_record(history::Direction direction, std::string_view message_json);

  // False while the last history write failed or messages wait in the retry queue.
  bool history_writable() const { return !history_failing_ && pending_.empty(); }
  std::size_t deferred_count() const { return pending_.size(); }
  // The backoff between tries: 250 ms doubling per attempt (0-based), at most 5 s.
  static std::chrono::milliseconds retry_delay(unsigned attempt);
  static constexpr std::chrono::seconds kGiveUpAfter{30};
  // How long the oldest held message may wait before the retry queue gives up (kGiveUpAfter;
  // tests shorten it).
  void set_give_up_after(std::chrono::milliseconds after) { give_up_after_ = after; }
  static constexpr std::size_t kMaxDeferred = 10000;
  static constexpr std::size_t kMaxDeferredBytes = 64u << 20;

  // Storage trouble of this project (what: "history", "metadata", "spool", ...; path: the file or
  // directory): registers it in the server's StorageProblems (health turns "degraded"), logs it,
  // counts it in errors_total{code="STORAGE_FAILED"}, and sends an `error` STORAGE_FAILED with
  // details {what, path, error} (not recorded: history may be what fails) to the subscribers and
  // `also`, at most once per path per few seconds. publish/record/try_* call it themselves.
  void report_storage_failure(std::string_view what, const std::string& path,
                              const std::error_code& ec, const std::vector<Requester>& also = {});
  // A write to `path` worked: clears its problem (logged). Cheap when there is none.
  void report_storage_recovered(const std::string& path);
  std::string history_path() const;   // the history directory, as reported
  std::string metadata_path() const;  // project.json

  // Sends an already serialized message to every subscriber but `except`; not recorded.
  void send_to_subscribers(const protocol::SharedText& text, const Connection* except) {
    send_all(text, {except});
  }
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

  // Called on the strand after each entry is appended (the search index's feed). Set before
  // the project is shared.
  using AppendHook =
      std::function<void(std::uint64_t seq, std::string_view timestamp,
                         history::Direction direction, std::string_view message_json)>;
  void set_append_hook(AppendHook hook) { append_hook_ = std::move(hook); }
  // Called on the strand with each broadcast (its seq and frame) after the subscribers got it:
  // the cluster's event stream (ClusterNode::attach). Set before the project is shared.
  using FeedHook = std::function<void(std::uint64_t seq, const protocol::SharedText& frame)>;
  void set_feed_hook(FeedHook hook) { feed_hook_ = std::move(hook); }

 private:
  // A message for history and (type not empty) for the subscribers and requesters. The views
  // point into the caller's strings; a message that has to wait is copied into a Deferred.
  struct Message {
    history::Direction direction = history::Direction::kServer;
    std::string_view history_json;
    std::string_view type;
    std::string_view data_json;
    const std::vector<Requester>* requesters = nullptr;
    std::string_view trailer;  // spliced into the history entry (a run's spool mark)
  };
  struct Deferred {
    history::Direction direction = history::Direction::kServer;
    std::string history_json;
    std::string type;
    std::string data_json;
    std::vector<Requester> requesters;
    std::chrono::steady_clock::time_point since{};  // first try
    Message view() const { return {direction, history_json, type, data_json, &requesters, {}}; }
    std::size_t bytes() const { return history_json.size() + data_json.size(); }
  };
  // Not part of the feed (no seq): notices, storage errors.
  void send_all(const protocol::SharedText& text, const std::vector<const Connection*>& except);
  // A broadcast with its seq, through each subscriber's cursor.
  void send_feed(std::uint64_t seq, const protocol::SharedText& text,
                 const std::vector<const Connection*>& except);
  std::uint64_t append(history::Direction direction, std::string_view message_json,
                       std::string& timestamp, std::error_code& ec, std::string_view trailer = {});
  // Appends and sends `m`; on failure reports it and sends nothing.
  PublishResult write_and_send(const Message& m);
  PublishResult publish_deferrable(const Message& m);
  PublishResult try_write(const Message& m);
  PublishResult publish_json(std::string_view type, const boost::json::object& data,
                             const std::vector<Requester>& requesters, bool all_or_nothing);
  // Writes the retry queue in order until it is empty (true) or a write fails.
  bool drain_deferred(std::error_code& ec);
  void arm_retry();
  void arm_metadata_retry();
  void give_up(const std::error_code& ec, std::string_view why);
  void schedule_sync();

  const std::string id_;
  const std::string path_;
  PoolStrand strand_;
  const projects::ProjectStore& store_;
  std::unique_ptr<history::MessageLog> log_;
  std::map<std::uint64_t, std::weak_ptr<Connection>> subscribers_;
  // The newest broadcasts while anyone is subscribed, for catch-up pages without a history read.
  static constexpr std::size_t kRecentFrameBytes = 16u << 20;
  RecentFrames recent_;
  bool deleted_ = false;
  static constexpr std::size_t kClosedPermissionsKept = 256;
  std::map<std::string, ClosedPermission> closed_permissions_;
  std::deque<std::string> closed_order_;
  boost::asio::steady_timer sync_timer_;
  bool sync_pending_ = false;
  std::chrono::milliseconds fsync_interval_;
  std::uint64_t seq_mark_ = 0;  // info_.seq_mark, readable without the lock
  ops::Counter& history_bytes_;
  ops::StorageProblems& storage_problems_;
  ops::Counter& storage_errors_;
  bool history_failing_ = false;   // the last history write failed
  bool metadata_failing_ = false;  // the last metadata save failed
  std::error_code last_history_error_;
  std::deque<Deferred> pending_;  // the retry queue, oldest first
  std::size_t pending_bytes_ = 0;
  boost::asio::steady_timer retry_timer_;
  bool retry_armed_ = false;
  unsigned retry_attempt_ = 0;
  std::chrono::milliseconds give_up_after_{kGiveUpAfter};
  // A failed metadata save is tried again (with the metadata as it is then) until it works.
  boost::asio::steady_timer metadata_timer_;
  bool metadata_armed_ = false;
  unsigned metadata_attempt_ = 0;

  AppendHook append_hook_;
  FeedHook feed_hook_;

  mutable std::mutex info_mutex_;
  projects::ProjectInfo info_;
};

}  // namespace pa::server
