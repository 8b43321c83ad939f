#include "server/subscriber_cursor.hpp"

#include <utility>

namespace pa::server {

SubscriberCursor::Verdict SubscriberCursor::on_live(std::uint64_t seq, bool has_room,
                                                    const protocol::SharedText& text, bool reply) {
  if (started_ && seq <= position_) return Verdict::kDuplicate;
  if (!started_) {
    started_ = true;
    position_ = seq - 1;  // the first frame seen: nothing before it is owed
  }
  if (state_ == State::kLive && has_room) {
    position_ = seq;
    return Verdict::kQueue;
  }
  if (state_ == State::kLive) state_ = State::kBehind;
  if (reply && text) replies_[seq] = text;
  return Verdict::kDeclined;
}

bool SubscriberCursor::take_page_request(bool below_low_water) {
  if (state_ != State::kBehind || !below_low_water) return false;
  state_ = State::kFetching;
  return true;
}

std::vector<protocol::SharedText> SubscriberCursor::on_page(CatchUpPage page) {
  std::vector<protocol::SharedText> out;
  if (state_ != State::kFetching) return out;
  out.reserve(page.frames.size());
  for (auto& [seq, text] : page.frames) {
    if (seq <= position_ || seq > page.through_seq) continue;
    if (auto kept = replies_.find(seq); kept != replies_.end()) {
      out.push_back(std::move(kept->second));
    } else {
      out.push_back(std::move(text));
    }
    position_ = seq;
  }
  if (page.through_seq > position_) position_ = page.through_seq;
  replies_.erase(replies_.begin(), replies_.upper_bound(position_));
  state_ = page.live ? State::kLive : State::kBehind;
  return out;
}

}  // namespace pa::server
