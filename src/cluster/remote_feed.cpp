#include "cluster/remote_feed.hpp"

#include <spdlog/spdlog.h>

#include <boost/asio/post.hpp>

namespace pa::cluster {

namespace asio = boost::asio;

namespace {
std::size_t size_of(const SeqFrame& frame) {
  return frame.text ? frame.text->size() + 64 : 64;
}
}  // namespace

RemoteFeed::RemoteFeed(asio::any_io_executor executor, std::string project_id, std::string node,
                       Owner owner)
    : strand_(asio::make_strand(executor)),
      project_id_(std::move(project_id)),
      node_(std::move(node)),
      owner_(std::move(owner)) {}

void RemoteFeed::on_event(SeqFrame frame) {
  asio::post(strand_, [self = shared_from_this(), frame = std::move(frame)]() mutable {
    if (!self->known_) {
      // No subscriber yet: kept for the first one, whose join says where it starts.
      if (frame.text) self->remember(frame);
      return;
    }
    self->take(std::move(frame));
  });
}

void RemoteFeed::take(SeqFrame frame) {
  BOOST_ASSERT(strand_.running_in_this_thread());
  if (filling_) {
    held_bytes_ += size_of(frame);
    held_.push_back(std::move(frame));
    if (held_bytes_ > kMaxHeldBytes) {
      // The fill in flight, and the one after it, bring these from history instead.
      held_.clear();
      held_bytes_ = 0;
      refill_ = true;
    }
    return;
  }
  if (frame.seq <= last_seq_) return;  // already delivered (or before the subscribers' start)
  const bool gap = !frame.text || !frame.prev || *frame.prev > last_seq_;
  if (gap) {
    if (frame.text) {
      held_bytes_ += size_of(frame);
      held_.push_back(std::move(frame));
    }
    start_fill();
    return;
  }
  deliver(frame);
}

void RemoteFeed::deliver(const SeqFrame& frame) {
  last_seq_ = frame.seq;
  remember(frame);
  const std::shared_ptr<server::Feed> feed = shared_from_this();
  std::lock_guard lock(subscribers_mutex_);
  for (auto it = subscribers_.begin(); it != subscribers_.end();) {
    if (auto connection = it->second.lock()) {
      connection->send_seq(feed, frame.seq, frame.text, false);
      ++it;
    } else {
      it = subscribers_.erase(it);
    }
  }
}

void RemoteFeed::remember(const SeqFrame& frame) {
  recent_bytes_ += size_of(frame);
  recent_.push_back(frame);
  while (recent_bytes_ > kRecentBytes && recent_.size() > 1) {
    recent_bytes_ -= size_of(recent_.front());
    if (known_) window_start_ = recent_.front().seq;
    recent_.pop_front();
  }
}

void RemoteFeed::start_fill() {
  BOOST_ASSERT(strand_.running_in_this_thread());
  if (filling_) return;
  filling_ = true;
  owner_.fill(last_seq_);
}

void RemoteFeed::on_fill(std::vector<SeqFrame> frames, std::uint64_t last_seq, bool more) {
  asio::post(strand_,
             [self = shared_from_this(), frames = std::move(frames), last_seq, more]() mutable {
               if (!self->filling_) return;  // an answer to a fill that was asked again
               for (auto& frame : frames) {
                 if (frame.seq > self->last_seq_) self->deliver(frame);
               }
               if (more) {
                 self->owner_.fill(self->last_seq_);
                 return;
               }
               // Everything up to the owner's last seq when it read its history is delivered.
               self->last_seq_ = std::max(self->last_seq_, last_seq);
               self->filling_ = false;
               if (self->refill_) {
                 self->refill_ = false;
                 self->start_fill();
                 return;
               }
               auto held = std::move(self->held_);
               self->held_.clear();
               self->held_bytes_ = 0;
               for (auto& frame : held) self->take(std::move(frame));
             });
}

void RemoteFeed::subscribe(std::shared_ptr<Connection> connection, std::uint64_t after_seq) {
  asio::post(strand_,
             [self = shared_from_this(), connection = std::move(connection), after_seq]() mutable {
               {
                 std::lock_guard lock(self->subscribers_mutex_);
                 self->subscribers_[connection->id()] = connection;
               }
               connection->feed_joined(self);
               if (!self->known_) {
                 // The first subscriber: the mirror starts where the owner's join said, and what
                 // already arrived after that goes through the gap check like any broadcast.
                 self->known_ = true;
                 self->last_seq_ = after_seq;
                 self->window_start_ = after_seq;
                 std::deque<SeqFrame> arrived;
                 arrived.swap(self->recent_);
                 self->recent_bytes_ = 0;
                 for (auto& frame : arrived) {
                   if (frame.seq > after_seq) self->take(std::move(frame));
                 }
                 return;
               }
               // Broadcasts after its start that the mirror already delivered (its cursor drops the
               // rest).
               const std::shared_ptr<server::Feed> feed = self;
               for (const auto& frame : self->recent_) {
                 if (frame.seq > after_seq && frame.seq <= self->last_seq_)
                   connection->send_seq(feed, frame.seq, frame.text, false);
               }
               if (after_seq < self->window_start_) {
                 spdlog::warn(
                     "cluster: project {}: a subscriber joined further back than the broadcasts "
                     "kept here; it catches up with get_messages",
                     self->project_id_);
               }
             });
}

void RemoteFeed::drop(std::uint64_t connection_id) {
  asio::post(strand_, [self = shared_from_this(), connection_id] {
    std::shared_ptr<Connection> connection;
    {
      std::lock_guard lock(self->subscribers_mutex_);
      const auto it = self->subscribers_.find(connection_id);
      if (it == self->subscribers_.end()) return;
      connection = it->second.lock();
      self->subscribers_.erase(it);
    }
    self->asked_.erase(connection_id);
    if (connection) connection->end_feed(self.get());
  });
}

void RemoteFeed::after_page(std::shared_ptr<Connection> connection, std::uint64_t through_seq,
                            bool live) {
  asio::post(strand_,
             [self = shared_from_this(), connection = std::move(connection), through_seq, live] {
               self->asked_.erase(connection->id());
               if (!live) return;
               const std::shared_ptr<server::Feed> feed = self;
               for (const auto& frame : self->recent_) {
                 if (frame.seq > through_seq)
                   connection->send_seq(feed, frame.seq, frame.text, false);
               }
             });
}

void RemoteFeed::notice(SharedText text) {
  asio::post(strand_, [self = shared_from_this(), text = std::move(text)] {
    std::lock_guard lock(self->subscribers_mutex_);
    for (const auto& [id, weak] : self->subscribers_) {
      if (auto connection = weak.lock()) connection->send(text);
    }
  });
}

void RemoteFeed::resync() {
  asio::post(strand_, [self = shared_from_this()] {
    for (auto it = self->asked_.begin(); it != self->asked_.end();) {
      if (auto connection = it->second.connection.lock()) {
        self->owner_.catch_up(connection, it->second.after_seq, it->second.max_frames,
                              it->second.max_bytes);
        ++it;
      } else {
        it = self->asked_.erase(it);
      }
    }
    if (!self->known_) return;
    if (self->filling_) {
      self->owner_.fill(self->last_seq_);  // the earlier ask may be lost
      return;
    }
    self->start_fill();
  });
}

std::size_t RemoteFeed::subscriber_count() const {
  std::lock_guard lock(subscribers_mutex_);
  return subscribers_.size();
}

std::vector<std::shared_ptr<Connection>> RemoteFeed::subscribers() const {
  std::vector<std::shared_ptr<Connection>> list;
  std::lock_guard lock(subscribers_mutex_);
  for (const auto& [id, weak] : subscribers_) {
    if (auto connection = weak.lock()) list.push_back(std::move(connection));
  }
  return list;
}

void RemoteFeed::request_catch_up(std::shared_ptr<Connection> connection, std::uint64_t after_seq,
                                  std::size_t max_frames, std::size_t max_bytes) {
  asio::post(strand_, [self = shared_from_this(), connection = std::move(connection), after_seq,
                       max_frames, max_bytes] {
    bool subscribed = false;
    {
      std::lock_guard lock(self->subscribers_mutex_);
      subscribed = self->subscribers_.count(connection->id()) != 0;
    }
    if (!subscribed) {
      connection->end_feed(self.get());
      return;
    }
    if (self->known_ && !self->filling_ && after_seq >= self->window_start_) {
      // On the strand: the broadcasts delivered after this page follow it exactly.
      connection->deliver_page(self.get(),
                               self->page_from_window(after_seq, max_frames, max_bytes));
      return;
    }
    self->asked_[connection->id()] = {connection, after_seq, max_frames, max_bytes};
    self->owner_.catch_up(connection, after_seq, max_frames, max_bytes);
  });
}

server::CatchUpPage RemoteFeed::page_from_window(std::uint64_t after_seq, std::size_t max_frames,
                                                 std::size_t max_bytes) const {
  server::CatchUpPage page;
  page.through_seq = std::max(after_seq, last_seq_);
  page.live = true;
  std::size_t bytes = 0;
  for (const auto& frame : recent_) {
    if (frame.seq <= after_seq || !frame.text) continue;
    if (!page.frames.empty() &&
        (page.frames.size() >= max_frames || bytes + frame.text->size() > max_bytes)) {
      // Full: the page ends before this frame; the subscriber asks again from there.
      page.through_seq = page.frames.back().first;
      page.live = false;
      break;
    }
    bytes += frame.text->size();
    page.frames.emplace_back(frame.seq, frame.text);
  }
  return page;
}

void RemoteFeed::leave(std::uint64_t connection_id) {
  asio::post(strand_, [self = shared_from_this(), connection_id] {
    std::size_t erased = 0;
    {
      std::lock_guard lock(self->subscribers_mutex_);
      erased = self->subscribers_.erase(connection_id);
    }
    self->asked_.erase(connection_id);
    if (erased) self->owner_.left(connection_id);
  });
}

}  // namespace pa::cluster
