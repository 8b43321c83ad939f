// Reads Redis streams without end on a connection of its own (XREAD BLOCK holds a connection):
// either a changing set of streams, each from the last entry id it saw (XREAD), or one stream
// through a consumer group (XREADGROUP ... >, created when missing). After a drop it reconnects
// (RedisLink) and resumes from the last ids, so a Redis restart loses no entry that Redis kept.
// Entries are handed to `handler` on the reader's strand, in stream order.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "cluster/redis_link.hpp"

namespace pa::cluster {

class StreamReader : public std::enable_shared_from_this<StreamReader> {
 public:
  using Handler = std::function<void(const std::string& stream, const std::string& id,
                                     const redis::Reply& fields)>;
  struct Group {
    std::string stream;
    std::string group;
    std::string consumer;
  };

  // `block`: how long one XREAD may wait (a stop() or a change of streams waits at most this).
  StreamReader(boost::asio::any_io_executor executor, RedisLink::Factory factory, std::string name,
               Handler handler, std::chrono::milliseconds block = std::chrono::seconds(2));

  void start_streams();           // XREAD over the streams add()ed
  void start_group(Group group);  // XREADGROUP on one stream; entries are XACKed once handled
  void stop();
  // Reads `stream` from after `from_id` ("0" = from the start). Thread-safe; a read in flight
  // picks it up when it returns (write to a stream already read to return at once).
  void add(const std::string& stream, const std::string& from_id);
  void remove(const std::string& stream);
  // Called on the strand after every (re)connect, before reading.
  void on_reconnect(std::function<void()> callback) { on_reconnect_ = std::move(callback); }

 private:
  void read();
  void on_reply(std::error_code ec, redis::Reply reply);
  void ensure_group();

  std::shared_ptr<RedisLink> link_;
  const std::string name_;
  Handler handler_;
  const std::chrono::milliseconds block_;
  std::optional<Group> group_;
  std::map<std::string, std::string> streams_;  // stream -> last id seen
  std::function<void()> on_reconnect_;
  bool reading_ = false;
  bool stopped_ = false;
  std::uint64_t generation_ = 0;  // bumps on each reconnect: a stale reply is ignored
};

}  // namespace pa::cluster
