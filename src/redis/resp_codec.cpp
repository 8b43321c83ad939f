#include "redis/resp_codec.hpp"

#include <hiredis/hiredis.h>

#include <new>

namespace pa::redis {

namespace {

// The smallest reply element on the wire is 4 bytes (":0\r\n", "*0\r\n"): an array announcing
// more elements than max_reply_bytes / 4 cannot fit, and hiredis would allocate its element
// table up front (calloc of 8 bytes a slot, up to 16 GiB for 2^31).
constexpr std::size_t kSmallestElementBytes = 4;

Reply copy_reply(const redisReply& in) {
  Reply out;
  switch (in.type) {
    case REDIS_REPLY_STATUS:
      out.type = Reply::Type::kStatus;
      out.str.assign(in.str, in.len);
      break;
    case REDIS_REPLY_ERROR:
      out.type = Reply::Type::kError;
      out.str.assign(in.str, in.len);
      break;
    case REDIS_REPLY_STRING:
      out.type = Reply::Type::kString;
      out.str.assign(in.str, in.len);
      break;
    case REDIS_REPLY_INTEGER:
      out.type = Reply::Type::kInteger;
      out.integer = in.integer;
      break;
    case REDIS_REPLY_ARRAY:
      out.type = Reply::Type::kArray;
      out.elements.reserve(in.elements);
      for (std::size_t i = 0; i < in.elements; ++i)
        out.elements.push_back(copy_reply(*in.element[i]));
      break;
    default:  // REDIS_REPLY_NIL
      out.type = Reply::Type::kNil;
      break;
  }
  return out;
}

}  // namespace

std::string format_command(const std::vector<std::string>& argv) {
  std::vector<const char*> args;
  std::vector<std::size_t> lengths;
  args.reserve(argv.size());
  lengths.reserve(argv.size());
  for (const auto& arg : argv) {
    args.push_back(arg.data());
    lengths.push_back(arg.size());
  }
  char* formatted = nullptr;
  const int length = redisFormatCommandArgv(&formatted, static_cast<int>(argv.size()), args.data(),
                                            lengths.data());
  if (length < 0 || formatted == nullptr) throw std::bad_alloc();
  std::string out(formatted, static_cast<std::size_t>(length));
  redisFreeCommand(formatted);
  return out;
}

ReplyReader::ReplyReader(std::size_t max_reply_bytes)
    : max_reply_bytes_(max_reply_bytes), reader_(redisReaderCreate()) {
  if (reader_ == nullptr) throw std::bad_alloc();
  // hiredis's default reply functions, with array creation checked first.
  functions_ = *reader_->fn;
  default_create_array_ = functions_.createArray;
  functions_.createArray = &ReplyReader::create_array;
  reader_->fn = &functions_;
  reader_->privdata = this;
}

ReplyReader::~ReplyReader() {
  redisReaderFree(reader_);
}

std::string ReplyReader::too_large() const {
  return "a reply exceeds max_reply_bytes (" + std::to_string(max_reply_bytes_) + " bytes)";
}

void* ReplyReader::create_array(const redisReadTask* task, int elements) {
  auto* self = static_cast<ReplyReader*>(task->privdata);
  if (static_cast<std::size_t>(elements) > self->max_reply_bytes_ / kSmallestElementBytes) {
    self->array_refused_ = true;
    return nullptr;  // hiredis stops with an error
  }
  return self->default_create_array_(task, elements);
}

void ReplyReader::feed(std::string_view bytes) {
  in_progress_bytes_ += bytes.size();
  if (error_.empty() && redisReaderFeed(reader_, bytes.data(), bytes.size()) != REDIS_OK)
    error_ = "cannot buffer the reply (out of memory)";
}

ReplyReader::Status ReplyReader::next(Reply& out) {
  if (!error_.empty()) return Status::kBroken;
  void* raw = nullptr;
  if (redisReaderGetReply(reader_, &raw) != REDIS_OK) {
    error_ = array_refused_ ? "an array reply announces more elements than max_reply_bytes holds"
                            : std::string("unparsable reply: ") + reader_->errstr;
    return Status::kBroken;
  }
  if (raw == nullptr) {
    if (in_progress_bytes_ > max_reply_bytes_) {
      error_ = too_large();
      return Status::kBroken;
    }
    return Status::kIncomplete;
  }
  auto* reply = static_cast<redisReply*>(raw);
  // What is left in the buffer belongs to the replies after this one.
  const std::size_t rest = reader_->len - reader_->pos;
  const std::size_t reply_bytes = in_progress_bytes_ - rest;
  in_progress_bytes_ = rest;
  if (reply_bytes > max_reply_bytes_) {  // it came whole within one read
    freeReplyObject(reply);
    error_ = too_large();
    return Status::kBroken;
  }
  try {
    out = copy_reply(*reply);
  } catch (...) {
    freeReplyObject(reply);
    throw;
  }
  freeReplyObject(reply);
  return Status::kReply;
}

}  // namespace pa::redis
