// Where one connection stands in one project's stream of broadcasts (issue 15): a cursor over the
// project's log. While the connection keeps up it takes the live frames (serialized once, shared
// by every subscriber). When its outbound queue is full it declines them and falls behind; then it
// is fed from history in pages, each asked for only when the queue has drained below its
// low-water mark, until a page reaches the project's last seq, where it switches back to live.
//
// The invariant: the frames it lets through have strictly increasing seqs and no seq the project
// broadcast after the cursor was made is skipped. A live frame at or below the cursor is a
// duplicate (history already gave it); above it while behind, history will give it.
//
// A subscribed requester's own copy of a broadcast (the same frame with its request_id) that has
// to be declined is kept and put in place of the history frame with that seq, so a reply is never
// lost to a catch-up and never comes twice.
//
// Pure logic, no I/O and no locking: the connection calls it on its strand.
#pragma once

#include <cstdint>
#include <map>
#include <vector>

#include "server/connection.hpp"

namespace pa::server {

class SubscriberCursor {
 public:
  enum class State {
    kLive,      // takes live frames
    kBehind,    // declined a live frame; waits for room to ask for a page
    kFetching,  // a page was asked for and has not arrived
  };
  enum class Verdict { kQueue, kDuplicate, kDeclined };

  // A cursor made when the connection's first frame of the feed arrives: nothing before it is
  // owed (the connection subscribed just before).
  SubscriberCursor() = default;

  State state() const { return state_; }
  // The last seq queued (or skipped as not for subscribers) for this connection.
  std::uint64_t position() const { return position_; }

  // A live frame with `seq`; `has_room` says whether the outbound queue can take it now.
  // `reply`: the requester's own copy (kept when declined, see above).
  Verdict on_live(std::uint64_t seq, bool has_room, const protocol::SharedText& text = nullptr,
                  bool reply = false);

  // True once when a page should be asked for (behind, and the queue is below its low-water
  // mark): the cursor is then fetching, and the page starts after position().
  bool take_page_request(bool below_low_water);

  // The page asked for arrived: returns its frames to queue, in order (duplicates dropped,
  // kept replies in place of their history frames). A page that does not answer a request (it
  // crossed a reset) is ignored.
  std::vector<protocol::SharedText> on_page(CatchUpPage page);

  std::size_t kept_replies() const { return replies_.size(); }

 private:
  State state_ = State::kLive;
  std::uint64_t position_ = 0;
  bool started_ = false;  // position_ holds a seq
  std::map<std::uint64_t, protocol::SharedText> replies_;
};

}  // namespace pa::server
