// A process-wide budget of history files kept open, least recently used first out.
//
// Each project's history keeps its append file open between appends; with thousands of projects
// that is thousands of descriptors held for nothing. A Member (a MessageLog) registers with the
// budget while it holds a descriptor; when more than `limit` members hold one, the budget closes
// the least recently used ones (Member::release_descriptor, with the member's mutex held). A
// member whose mutex is busy (it is appending right now) is skipped, so the count can pass the
// limit by at most the number of members in use at that instant (the blocking pool's threads).
// The member reopens its file on its next use.
//
// Thread-safe. Lock order: a member's mutex, then the budget's; the budget only try_locks a
// member's mutex, so the two never wait on each other.
#pragma once

#include <cstddef>
#include <list>
#include <mutex>

namespace pa::history {

class FdBudget {
 public:
  // Default limit of the process-wide budget: 64 history files open at once.
  static constexpr std::size_t kDefaultLimit = 64;

  class Member {
   public:
    Member() = default;
    Member(const Member&) = delete;
    Member& operator=(const Member&) = delete;
    // Guards the member's descriptor: held by the member while it uses it, and by the budget
    // while it closes it.
    std::mutex& descriptor_mutex() { return mutex_; }

   protected:
    virtual ~Member() = default;
    // Close the descriptor (making what was written durable first). Called by the budget with
    // descriptor_mutex() held, on whatever thread opened another file.
    virtual void release_descriptor() = 0;

   private:
    friend class FdBudget;
    std::mutex mutex_;
    bool listed_ = false;  // guarded by the budget's mutex
    std::list<Member*>::iterator position_;
  };

  explicit FdBudget(std::size_t limit = kDefaultLimit) : limit_(limit == 0 ? 1 : limit) {}
  FdBudget(const FdBudget&) = delete;
  FdBudget& operator=(const FdBudget&) = delete;

  // The budget every MessageLog uses unless its Options name another.
  static FdBudget& process();

  // `m` holds a descriptor and was just used (call with m's mutex held). Closes the least
  // recently used others while over the limit.
  void opened(Member& m);
  // `m` was used again: it becomes the most recently used (m's mutex held). No-op if not listed.
  void used(Member& m);
  // `m` closed its descriptor itself, or is going away (m's mutex held or not: no deadlock).
  void closed(Member& m);

  std::size_t limit() const { return limit_; }
  std::size_t open_count() const;
  std::size_t evictions() const;

 private:
  const std::size_t limit_;
  mutable std::mutex mutex_;
  std::list<Member*> lru_;  // front = most recently used
  std::size_t evictions_ = 0;
};

}  // namespace pa::history
