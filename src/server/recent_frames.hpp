// The project's newest broadcasts, as the very frames sent live (shared, serialized once), kept
// for subscribers that fell behind: their catch-up pages come from here while it reaches back far
// enough, and from history (read and rebuilt per entry) only beyond it. Bounded in bytes; the
// oldest frames go first. Not thread-safe: the project's strand owns it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <utility>

#include "server/connection.hpp"

namespace pa::server {

class RecentFrames {
 public:
  // `next_seq`: the seq the next broadcast may have (every broadcast from it on is kept).
  RecentFrames(std::size_t max_bytes, std::uint64_t next_seq)
      : max_bytes_(max_bytes), complete_from_(next_seq) {}

  // A broadcast with `seq` (increasing). Seqs that are never broadcast (a client's record) are
  // simply absent.
  void add(std::uint64_t seq, protocol::SharedText text);

  // Whether every broadcast after `after_seq` is here.
  bool covers(std::uint64_t after_seq) const { return after_seq + 1 >= complete_from_; }

  // The frames after `after_seq` (covers() must hold), at most `max_frames` and about `max_bytes`
  // (at least one). `rest_empty`: the page holds everything kept after after_seq.
  struct Slice {
    std::vector<std::pair<std::uint64_t, protocol::SharedText>> frames;
    bool rest_empty = true;
  };
  Slice after(std::uint64_t after_seq, std::size_t max_frames, std::size_t max_bytes) const;

  // Drops everything (no subscriber left); `next_seq` as in the constructor.
  void clear(std::uint64_t next_seq);

  std::size_t bytes() const { return bytes_; }
  std::size_t size() const { return frames_.size(); }

 private:
  std::size_t max_bytes_;
  std::uint64_t complete_from_;  // every broadcast with seq >= this is kept
  std::deque<std::pair<std::uint64_t, protocol::SharedText>> frames_;
  std::size_t bytes_ = 0;
};

}  // namespace pa::server
