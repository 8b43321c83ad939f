#include "cluster/stream_reader.hpp"

#include <spdlog/spdlog.h>

#include <boost/asio/post.hpp>

#include "cluster/node_message.hpp"

namespace pa::cluster {

namespace asio = boost::asio;

StreamReader::StreamReader(asio::any_io_executor executor, RedisLink::Factory factory,
                           std::string name, Handler handler, std::chrono::milliseconds block)
    : link_(std::make_shared<RedisLink>(executor, std::move(factory), name)),
      name_(std::move(name)),
      handler_(std::move(handler)),
      block_(block) {}

void StreamReader::start_streams() {
  link_->start([self = shared_from_this()] {
    ++self->generation_;
    self->reading_ = false;
    if (self->on_reconnect_) self->on_reconnect_();
    if (self->group_) {
      self->reading_ = true;  // until the group exists
      self->ensure_group();
    } else {
      self->read();
    }
  });
}

void StreamReader::start_group(Group group) {
  group_ = std::move(group);
  start_streams();
}

void StreamReader::stop() {
  asio::post(link_->strand(), [self = shared_from_this()] { self->stopped_ = true; });
  link_->stop();
}

void StreamReader::add(const std::string& stream, const std::string& from_id) {
  asio::post(link_->strand(), [self = shared_from_this(), stream, from_id] {
    self->streams_.emplace(stream, from_id);
    self->read();
  });
}

void StreamReader::remove(const std::string& stream) {
  asio::post(link_->strand(),
             [self = shared_from_this(), stream] { self->streams_.erase(stream); });
}

void StreamReader::ensure_group() {
  // From "0": after a Redis restart that lost the group, the stream may already hold commands
  // sent since; each command carries its time and stale ones are dropped by the receiver.
  link_->command({"XGROUP", "CREATE", group_->stream, group_->group, "0", "MKSTREAM"},
                 [self = shared_from_this(), generation = generation_](std::error_code ec,
                                                                       redis::Reply reply) {
                   asio::post(
                       self->link_->strand(), [self, generation, ec, reply = std::move(reply)] {
                         if (generation != self->generation_ || self->stopped_) return;
                         if (!ec && reply.is_error() && reply.str.rfind("BUSYGROUP", 0) != 0) {
                           spdlog::error("cluster: cannot create the consumer group on {}: {}",
                                         self->group_->stream, reply.str);
                         }
                         self->reading_ = false;
                         if (!ec) self->read();
                       });
                 });
}

void StreamReader::read() {
  BOOST_ASSERT(link_->strand().running_in_this_thread());
  if (reading_ || stopped_ || !link_->up()) return;
  std::vector<std::string> argv;
  if (group_) {
    argv = {"XREADGROUP",
            "GROUP",
            group_->group,
            group_->consumer,
            "COUNT",
            "256",
            "BLOCK",
            std::to_string(block_.count()),
            "STREAMS",
            group_->stream,
            ">"};
  } else {
    if (streams_.empty()) return;
    argv = {"XREAD", "COUNT", "256", "BLOCK", std::to_string(block_.count()), "STREAMS"};
    for (const auto& [stream, id] : streams_) argv.push_back(stream);
    for (const auto& [stream, id] : streams_) argv.push_back(id);
  }
  reading_ = true;
  link_->command(std::move(argv), [self = shared_from_this(), generation = generation_](
                                      std::error_code ec, redis::Reply reply) {
    asio::post(self->link_->strand(), [self, generation, ec, reply = std::move(reply)]() mutable {
      if (generation != self->generation_) return;
      self->on_reply(ec, std::move(reply));
    });
  });
}

void StreamReader::on_reply(std::error_code ec, redis::Reply reply) {
  reading_ = false;
  if (stopped_ || ec) return;  // a drop: the link reconnects and on_up reads again
  if (reply.is_error()) {
    if (group_ && reply.str.rfind("NOGROUP", 0) == 0) {
      reading_ = true;  // until the group exists again
      ensure_group();
      return;
    }
    spdlog::error("cluster: Redis refused a read ({}): {}", name_, reply.str);
    return;
  }
  for (const auto& entry : stream_entries(reply)) {
    if (!group_) {
      const auto it = streams_.find(entry.stream);
      if (it == streams_.end()) continue;  // removed meanwhile
      it->second = entry.id;
    }
    handler_(entry.stream, entry.id, *entry.fields);
    if (group_)
      link_->command({"XACK", group_->stream, group_->group, entry.id}, [](auto, auto) {});
  }
  read();
}

}  // namespace pa::cluster
