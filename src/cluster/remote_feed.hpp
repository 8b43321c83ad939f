// A project owned by another node, as this node's clients see it: the Feed they subscribe to.
// The owner's broadcasts arrive from the project's Redis stream (on_event), each with its seq
// and `prev`, the seq of the owner's previous broadcast (0 when the owner does not know it: it
// just started). The mirror hands them to its subscribers in seq order. A `prev` beyond the
// last seq it has means broadcasts went missing (the stream was trimmed, Redis restarted, the
// owner could not write to it): the mirror asks the owner for them from its history (fill),
// holds what arrives meanwhile, and goes on in order: no gap, no duplicate.
//
// Each subscriber's own cursor (SubscriberCursor) still decides what it takes; a subscriber that
// falls behind asks this feed for pages (request_catch_up): from the mirror's own window of
// recent broadcasts when it reaches back far enough (as Project serves its local subscribers),
// else from the owner, which reads its history.
// Every member runs on the mirror's strand (the thread-safe calls post to it).
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/strand.hpp>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "server/connection.hpp"

namespace pa::cluster {

using protocol::SharedText;
using server::Connection;

struct SeqFrame {
  std::uint64_t seq = 0;
  // The seq of the owner's broadcast before this one (0: none); nullopt: the owner does not
  // know (it restarted since), so the mirror checks with the owner's history.
  std::optional<std::uint64_t> prev;
  SharedText text;  // null: a marker that only says the owner's last seq (fills a gap)
};

class RemoteFeed : public server::Feed, public std::enable_shared_from_this<RemoteFeed> {
 public:
  // What the mirror asks of the cluster (which talks to the owner).
  struct Owner {
    // Forward a subscriber's catch-up request to the owner (its answer: deliver_page).
    std::function<void(const std::shared_ptr<Connection>&, std::uint64_t after_seq,
                       std::size_t max_frames, std::size_t max_bytes)>
        catch_up;
    // A local subscriber left (project_leave or its close): the owner drops it too.
    std::function<void(std::uint64_t connection_id)> left;
    // Ask the owner for its broadcasts after `after_seq` (answer: on_fill).
    std::function<void(std::uint64_t after_seq)> fill;
  };

  RemoteFeed(boost::asio::any_io_executor executor, std::string project_id, std::string node,
             Owner owner);

  // Set once, before the mirror is shared (its callbacks may name the mirror itself).
  void set_owner(Owner owner) { owner_ = std::move(owner); }
  const std::string& project_id() const { return project_id_; }
  const std::string& node() const { return node_; }

  // --- thread-safe (posted to the strand) ---
  void on_event(SeqFrame frame);
  // The owner's answer to fill: its broadcasts after the asked seq, and its last seq when read.
  // `more`: the page stopped early; the mirror asks again.
  void on_fill(std::vector<SeqFrame> frames, std::uint64_t last_seq, bool more);
  // The owner subscribed the connection when its last seq was `after_seq` (its project_joined
  // said so): it takes every broadcast after that.
  void subscribe(std::shared_ptr<Connection> connection, std::uint64_t after_seq);
  // The owner dropped the connection (its project_leave, or the project was deleted).
  void drop(std::uint64_t connection_id);
  // A page the owner read for a subscriber (request_catch_up) was given to it: when the page was
  // live, the broadcasts after it that already arrived here go to it again (its cursor drops the
  // ones it has), since they may have come before the page and been declined. The subscriber no
  // longer waits for a page.
  void after_page(std::shared_ptr<Connection> connection, std::uint64_t through_seq, bool live);
  // A message without seq for every subscriber (the owner is unavailable, ...).
  void notice(SharedText text);
  // The owner came back or Redis did: ask for what may have been missed, and again for the
  // pages subscribers wait for (a page lost in Redis would leave its subscriber waiting).
  void resync();

  // Thread-safe reads for the cluster's bookkeeping.
  std::size_t subscriber_count() const;
  std::vector<std::shared_ptr<Connection>> subscribers() const;

  // Feed
  void request_catch_up(std::shared_ptr<Connection> connection, std::uint64_t after_seq,
                        std::size_t max_frames, std::size_t max_bytes) override;
  void leave(std::uint64_t connection_id) override;

 private:
  void take(SeqFrame frame);  // in order, after the gap check
  void deliver(const SeqFrame& frame);
  void start_fill();
  void remember(const SeqFrame& frame);
  // A page from recent_ (the window reaches back to after_seq).
  server::CatchUpPage page_from_window(std::uint64_t after_seq, std::size_t max_frames,
                                       std::size_t max_bytes) const;

  boost::asio::strand<boost::asio::any_io_executor> strand_;
  const std::string project_id_;
  const std::string node_;
  Owner owner_;

  bool known_ = false;  // last_seq_ is the owner's seq the subscribers stand at
  std::uint64_t last_seq_ = 0;
  bool filling_ = false;
  std::deque<SeqFrame> held_;  // arrived while filling, in order
  std::size_t held_bytes_ = 0;
  bool refill_ = false;  // held_ overflowed and was dropped: fill again after this fill
  static constexpr std::size_t kMaxHeldBytes = 16u << 20;
  // The newest broadcasts, for connections that subscribe (the owner's project_joined may come
  // after broadcasts it precedes) and for after_page.
  static constexpr std::size_t kRecentBytes = 16u << 20;
  std::deque<SeqFrame> recent_;
  std::size_t recent_bytes_ = 0;
  // recent_ holds every broadcast after this seq (up to last_seq_): a catch-up after it (or
  // after a later seq) is served from recent_.
  std::uint64_t window_start_ = 0;

  // Subscribers waiting for a page the owner reads (by connection id).
  struct AskedPage {
    std::weak_ptr<Connection> connection;
    std::uint64_t after_seq = 0;
    std::size_t max_frames = 0;
    std::size_t max_bytes = 0;
  };
  std::map<std::uint64_t, AskedPage> asked_;

  mutable std::mutex subscribers_mutex_;  // for the thread-safe reads
  std::map<std::uint64_t, std::weak_ptr<Connection>> subscribers_;
};

}  // namespace pa::cluster
