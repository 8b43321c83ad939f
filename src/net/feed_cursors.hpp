// A connection's cursors, one per project it joined (server::SubscriberCursor), and the pages it
// asks for when it is behind: one page in flight per connection, the projects in turn. Pure
// bookkeeping, no I/O: WsSession calls it on its strand and does the sending and asking.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <vector>

#include "server/connection.hpp"
#include "server/subscriber_cursor.hpp"

namespace pa::net {

class FeedCursors {
 public:
  using Verdict = server::SubscriberCursor::Verdict;

  // The connection joined `feed` (its cursor starts at the first frame).
  void joined(const std::shared_ptr<server::Feed>& feed) { state(feed); }

  // A live frame of `feed`: queue it, drop it as a duplicate, or decline it (history has it).
  Verdict on_frame(const std::shared_ptr<server::Feed>& feed, std::uint64_t seq, bool has_room,
                   const protocol::SharedText& text, bool reply) {
    return state(feed).cursor.on_live(seq, has_room, text, reply);
  }

  // The page asked of `feed` arrived: the frames to queue, in order (none for a feed it left).
  std::vector<protocol::SharedText> on_page(const server::Feed* feed, server::CatchUpPage page) {
    const auto it = feeds_.find(feed);
    if (it == feeds_.end()) return {};
    if (it->second.cursor.state() == server::SubscriberCursor::State::kFetching)
      page_in_flight_ = false;
    return it->second.cursor.on_page(std::move(page));
  }

  // The connection left `feed` (or it was deleted): its cursor goes, with any page it awaited.
  void ended(const server::Feed* feed) {
    const auto it = feeds_.find(feed);
    if (it == feeds_.end()) return;
    if (it->second.cursor.state() == server::SubscriberCursor::State::kFetching)
      page_in_flight_ = false;
    feeds_.erase(it);
  }

  // The next page to ask for, once the queue is below its low-water mark: from the feed after
  // the one asked last that is behind. Nothing while a page is in flight. A feed whose project
  // is gone is dropped on the way.
  struct Request {
    std::shared_ptr<server::Feed> feed;
    std::uint64_t after_seq = 0;
  };
  std::optional<Request> next_request() {
    if (page_in_flight_ || feeds_.empty()) return std::nullopt;
    auto it = feeds_.upper_bound(last_paged_);
    for (std::size_t n = feeds_.size(); n > 0 && !feeds_.empty(); --n) {
      if (it == feeds_.end()) it = feeds_.begin();
      if (!it->second.cursor.take_page_request(true)) {
        ++it;
        continue;
      }
      auto feed = it->second.feed.lock();
      if (!feed) {
        it = feeds_.erase(it);
        continue;
      }
      page_in_flight_ = true;
      last_paged_ = it->first;
      return Request{std::move(feed), it->second.cursor.position()};
    }
    return std::nullopt;
  }

  // Every project still joined (to leave them when the connection closes); forgets them all.
  std::vector<std::shared_ptr<server::Feed>> take_all() {
    std::vector<std::shared_ptr<server::Feed>> out;
    for (auto& [key, s] : feeds_)
      if (auto feed = s.feed.lock()) out.push_back(std::move(feed));
    feeds_.clear();
    page_in_flight_ = false;
    return out;
  }

  std::size_t size() const { return feeds_.size(); }
  bool page_in_flight() const { return page_in_flight_; }

 private:
  struct State {
    std::weak_ptr<server::Feed> feed;
    server::SubscriberCursor cursor;
  };
  State& state(const std::shared_ptr<server::Feed>& feed) {
    auto& s = feeds_[feed.get()];
    if (s.feed.expired()) s.feed = feed;
    return s;
  }

  std::map<const server::Feed*, State> feeds_;
  const server::Feed* last_paged_ = nullptr;
  bool page_in_flight_ = false;
};

}  // namespace pa::net
