// The Redis protocol (RESP2) through hiredis, with no I/O: commands are formatted with
// redisFormatCommandArgv (binary-safe arguments), replies parsed by a hiredis reader fed with
// the socket's bytes and copied into Reply trees. The reader bounds what a peer can make it hold:
// a reply larger than max_reply_bytes, or an array announcing more elements than that many
// bytes could carry, breaks it (the connection then closes).
#pragma once

#include <hiredis/read.h>

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "redis/redis_client.hpp"

namespace pa::redis {

// The bytes of one command; throws std::bad_alloc when hiredis cannot allocate.
std::string format_command(const std::vector<std::string>& argv);

class ReplyReader {
 public:
  explicit ReplyReader(std::size_t max_reply_bytes);
  ~ReplyReader();
  ReplyReader(const ReplyReader&) = delete;
  ReplyReader& operator=(const ReplyReader&) = delete;

  enum class Status { kReply, kIncomplete, kBroken };

  // Adds bytes read from the socket; then call next() until it stops returning kReply.
  void feed(std::string_view bytes);
  // The next complete reply in `out` (kReply); kIncomplete: wait for more bytes; kBroken: the
  // peer broke the protocol or a limit, error() says how, and the reader stays broken.
  Status next(Reply& out);
  const std::string& error() const { return error_; }

 private:
  static void* create_array(const redisReadTask* task, int elements);
  std::string too_large() const;

  std::size_t max_reply_bytes_;
  redisReader* reader_;
  redisReplyObjectFunctions functions_{};
  void* (*default_create_array_)(const redisReadTask*, int) = nullptr;
  std::size_t in_progress_bytes_ = 0;  // bytes of the reply being received so far
  bool array_refused_ = false;
  std::string error_;
};

}  // namespace pa::redis
