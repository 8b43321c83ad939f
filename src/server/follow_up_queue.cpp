#include "server/follow_up_queue.hpp"

#include <spdlog/spdlog.h>

#include <utility>

#include "projects/project_info.hpp"

namespace pa::server {

namespace json = boost::json;

const json::object& FollowUpQueue::push(std::string prompt, json::object by,
                                        std::vector<Attachment> attachments) {
  FollowUp follow_up;
  follow_up.queue_id = projects::random_uuid();
  follow_up.announced = json::object{{"queue_id", follow_up.queue_id},
                                     {"prompt", prompt},
                                     {"position", follow_ups_.size() + 1},
                                     {"by", std::move(by)}};
  if (!attachments.empty()) {
    json::array refs;
    for (const auto& a : attachments) refs.push_back(a.ref());
    follow_up.announced["attachments"] = std::move(refs);
  }
  follow_up.prompt = std::move(prompt);
  follow_up.attachments = std::move(attachments);
  follow_ups_.push_back(std::move(follow_up));
  return follow_ups_.back().announced;
}

std::optional<FollowUpQueue::Next> FollowUpQueue::take_next() {
  if (follow_ups_.empty()) return std::nullopt;
  Next next{std::move(follow_ups_.front()), {}};
  follow_ups_.pop_front();
  next.dequeued = json::object{{"queue_id", next.follow_up.queue_id},
                               {"reason", "started"},
                               {"remaining", follow_ups_.size()}};
  return next;
}

std::vector<json::object> FollowUpQueue::cancel_all(const std::string& message) {
  std::vector<json::object> dequeued;
  while (!follow_ups_.empty()) {
    const std::string queue_id = std::move(follow_ups_.front().queue_id);
    follow_ups_.pop_front();
    dequeued.push_back(json::object{{"queue_id", queue_id},
                                    {"reason", "cancelled"},
                                    {"message", message},
                                    {"remaining", follow_ups_.size()}});
  }
  return dequeued;
}

json::array FollowUpQueue::queued_prompts() const {
  json::array out;
  std::size_t position = 0;
  for (const auto& follow_up : follow_ups_) {
    json::object item = follow_up.announced;
    item["position"] = ++position;
    out.push_back(std::move(item));
  }
  return out;
}

void FollowUpQueue::save(RunState& state) const {
  for (const auto& f : follow_ups_) {
    state.follow_ups.push_back(RunState::FollowUp{f.queue_id, f.prompt, f.announced});
  }
}

void FollowUpQueue::restore(const RunState& state, const AttachmentStore* store) {
  for (const auto& f : state.follow_ups) {
    FollowUp follow_up{f.queue_id, f.prompt, f.announced, {}};
    const auto* refs = f.announced.if_contains("attachments");
    if (refs != nullptr && refs->is_array() && store != nullptr) {
      if (auto loaded = store->load(refs->get_array())) {
        follow_up.attachments = std::move(*loaded);
      } else {
        spdlog::error(
            "queued follow-up {}: its attachments cannot be read back from the data "
            "directory; it goes to the CLI without them",
            f.queue_id);
      }
    }
    follow_ups_.push_back(std::move(follow_up));
  }
}

}  // namespace pa::server
