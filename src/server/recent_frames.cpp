#include "server/recent_frames.hpp"

#include <algorithm>

namespace pa::server {

void RecentFrames::add(std::uint64_t seq, protocol::SharedText text) {
  bytes_ += text->size();
  frames_.emplace_back(seq, std::move(text));
  while (bytes_ > max_bytes_ && !frames_.empty()) {
    bytes_ -= frames_.front().second->size();
    complete_from_ = frames_.front().first + 1;
    frames_.pop_front();
  }
}

RecentFrames::Slice RecentFrames::after(std::uint64_t after_seq, std::size_t max_frames,
                                        std::size_t max_bytes) const {
  Slice out;
  auto it = std::upper_bound(frames_.begin(), frames_.end(), after_seq,
                             [](std::uint64_t seq, const auto& f) { return seq < f.first; });
  std::size_t bytes = 0;
  for (; it != frames_.end(); ++it) {
    const std::size_t size = it->second->size();
    if (!out.frames.empty() && (out.frames.size() >= max_frames || bytes + size > max_bytes)) {
      out.rest_empty = false;
      break;
    }
    bytes += size;
    out.frames.push_back(*it);
  }
  return out;
}

void RecentFrames::clear(std::uint64_t next_seq) {
  frames_.clear();
  bytes_ = 0;
  complete_from_ = next_seq;
}

}  // namespace pa::server
