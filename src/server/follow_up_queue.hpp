// The follow-up prompts queued on a run (execute with mode "queue" while it is active), in order.
// The run writes them to the CLI's stdin one at a time, each after the previous turn's result;
// this class only keeps them: the limit, the prompt_queued / prompt_dequeued data the run
// publishes, what project_joined lists, and their part of run.json. Not thread-safe: the run
// uses it on its project's strand.
#pragma once

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <cstddef>
#include <deque>
#include <optional>
#include <string>
#include <vector>

#include "server/attachment_store.hpp"
#include "server/run_state.hpp"

namespace pa::server {

class FollowUpQueue {
 public:
  static constexpr std::size_t kMaxFollowUps = 16;

  // What enqueue_follow_up answers (the run adds kStopping: it takes no more follow-ups).
  enum class Enqueue { kQueued, kFull, kStopping };

  struct FollowUp {
    std::string queue_id;
    std::string prompt;
    boost::json::object announced;        // the prompt_queued data (with the attachments' refs)
    std::vector<Attachment> attachments;  // sent to the CLI before the prompt's text
  };

  // The next follow-up, out of the queue, and the prompt_dequeued data that says it started.
  struct Next {
    FollowUp follow_up;
    boost::json::object dequeued;
  };

  bool empty() const { return follow_ups_.empty(); }
  std::size_t size() const { return follow_ups_.size(); }
  bool full() const { return follow_ups_.size() >= kMaxFollowUps; }

  // Adds a prompt at the end (the caller checked full()); `by` is who queued it. Returns its
  // prompt_queued data: queue_id, prompt, position (1-based), by, and attachments (their refs)
  // when it has any.
  const boost::json::object& push(std::string prompt, boost::json::object by,
                                  std::vector<Attachment> attachments = {});
  // Takes the first one out (nullopt when empty).
  std::optional<Next> take_next();
  // Empties the queue: one prompt_dequeued (reason "cancelled", `message`) per follow-up, in
  // queue order, each with how many remain after it.
  std::vector<boost::json::object> cancel_all(const std::string& message);

  // What project_joined lists: each prompt_queued data with its current position.
  boost::json::array queued_prompts() const;

  // run.json: the queue as saved, and back (restore appends to an empty queue). The attachments
  // are saved as the refs in `announced` and read back from `store` (none without one); a file
  // that cannot be read back is left out, with an error in the log.
  void save(RunState& state) const;
  void restore(const RunState& state, const AttachmentStore* store = nullptr);

 private:
  std::deque<FollowUp> follow_ups_;
};

}  // namespace pa::server
