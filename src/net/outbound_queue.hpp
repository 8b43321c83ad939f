// A connection's outbound messages: shared immutable buffers in send order, the first one being
// written while `writing`. Bounded by a message count and by the bytes waiting behind the one in
// flight (websocket.message_buffer, websocket.max_queue_bytes). A message always fits when
// nothing waits, however large (limits.message_size, claude.max_line_bytes and the history page
// bound it), so one big message never holds back a client that keeps up.
// Not thread-safe: the connection's strand owns it.
#pragma once

#include <cstddef>
#include <deque>

#include "protocol/envelope.hpp"

namespace pa::net {

class OutboundQueue {
 public:
  OutboundQueue(std::size_t max_messages, std::size_t max_bytes)
      : max_messages_(max_messages), max_bytes_(max_bytes) {}

  std::size_t size() const { return queue_.size(); }
  bool empty() const { return queue_.empty(); }
  std::size_t bytes() const { return bytes_; }
  bool writing() const { return writing_; }
  // Bytes of the messages behind the one being written.
  std::size_t waiting_bytes() const { return bytes_ - (writing_ ? queue_.front()->size() : 0); }

  // Whether a message of `size` fits within `factor` times the bounds.
  bool has_room(std::size_t size, std::size_t factor = 1) const {
    const bool waiting = queue_.size() > (writing_ ? 1u : 0u);
    return queue_.size() < factor * max_messages_ &&
           (!waiting || waiting_bytes() + size <= factor * max_bytes_);
  }
  // At most half the bounds used: room for a page of catch-up.
  bool below_low_water() const {
    return queue_.size() <= max_messages_ / 2 && waiting_bytes() <= max_bytes_ / 2;
  }
  // What a page may hold to fit the bounds (at least one message).
  std::size_t free_messages() const {
    return max_messages_ > queue_.size() ? max_messages_ - queue_.size() : 1;
  }
  std::size_t free_bytes() const {
    return max_bytes_ > waiting_bytes() ? max_bytes_ - waiting_bytes() : 1;
  }

  // Appends without a bound check (the caller checked has_room, or the page was sized to fit).
  void push(protocol::SharedText text) {
    bytes_ += text->size();
    queue_.push_back(std::move(text));
  }
  // The message to write next; marks it in flight.
  const protocol::SharedText& start_write() {
    writing_ = true;
    return queue_.front();
  }
  // The write in flight completed: it leaves the queue. Returns its size.
  std::size_t finish_write() {
    writing_ = false;
    const std::size_t size = queue_.front()->size();
    bytes_ -= size;
    queue_.pop_front();
    return size;
  }
  // Keeps only the message in flight (a slow consumer's close).
  void drop_waiting() {
    while (queue_.size() > (writing_ ? 1u : 0u)) {
      bytes_ -= queue_.back()->size();
      queue_.pop_back();
    }
  }
  void clear() {
    queue_.clear();
    bytes_ = 0;
  }

 private:
  std::size_t max_messages_;
  std::size_t max_bytes_;
  std::deque<protocol::SharedText> queue_;
  std::size_t bytes_ = 0;
  bool writing_ = false;
};

}  // namespace pa::net
