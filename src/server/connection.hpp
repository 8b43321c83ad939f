// What the server knows of a client connection. Implemented by net::WsSession; a fake in tests.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "devices/identity.hpp"
#include "protocol/envelope.hpp"
#include "server/client_profile.hpp"

namespace pa::server {

class Connection;

// The WebSocket close code of a connection whose device was revoked (reason "revoked").
inline constexpr std::uint16_t kRevokedCloseCode = 4401;

// Broadcasts a connection missed while it was behind, rebuilt from history: the frames with their
// seqs, in order, and how far the page reached. `live`: through_seq was the project's last seq
// when the page was read, so the live frames that follow it continue exactly there.
struct CatchUpPage {
  std::vector<std::pair<std::uint64_t, protocol::SharedText>> frames;
  std::uint64_t through_seq = 0;  // the last seq the page covers (entries not broadcast too)
  bool live = false;
};

// A project's stream of broadcasts as a connection sees it. Implemented by server::Project.
class Feed {
 public:
  virtual ~Feed() = default;
  // Reads the broadcasts after `after_seq` (recent frames or history, off the I/O threads), at most
  // `max_frames` of them and about `max_bytes`, and answers with connection->deliver_page(), or
  // with connection->end_feed() if the connection is no longer subscribed. Thread-safe.
  virtual void request_catch_up(std::shared_ptr<Connection> connection, std::uint64_t after_seq,
                                std::size_t max_frames, std::size_t max_bytes) = 0;
  // Unsubscribes the connection (on the feed's own strand; its cursor goes, as on
  // project_leave). A connection that closes calls it for every feed it joined. Thread-safe.
  virtual void leave(std::uint64_t connection_id) = 0;
};

class Connection {
 public:
  // `client_name`: the name the client gave at connect (`/ws?client_name=`), empty if none.
  // `identity`: whose token opened it (the gate's answer); the master token's by default.
  explicit Connection(std::string client_name = {}, devices::Identity identity = {})
      : profile_(std::move(client_name)), identity_(std::move(identity)) {}
  virtual ~Connection() = default;
  virtual std::uint64_t id() const = 0;
  virtual const std::string& remote_address() const = 0;
  // The client's name (the query's, else its hello's), empty if none. For audit records.
  std::string client_name() const { return profile_.name(); }
  // Its role and device, fixed for the connection's life.
  const devices::Identity& identity() const { return identity_; }
  // Its name and what it declared in hello. Thread-safe.
  ClientProfile& profile() { return profile_; }
  const ClientProfile& profile() const { return profile_; }
  // Queues a text frame that is not part of a feed (a reply, server_stats, a notice). Thread-safe;
  // never blocks. Bounded: a client that lets such frames pile up (requests without reading the
  // replies) is closed as a slow consumer.
  virtual void send(protocol::SharedText text) = 0;
  // A broadcast of `feed` with its seq (in seq order per feed). `reply`: a subscribed requester's
  // own copy, with its request_id. A connection that is behind declines it and later asks the
  // feed for what it missed (SubscriberCursor). Thread-safe; calls keep their order with send().
  virtual void send_seq(const std::shared_ptr<Feed>& feed, std::uint64_t seq,
                        protocol::SharedText text, bool reply) {
    (void)feed;
    (void)seq;
    (void)reply;
    send(std::move(text));
  }
  // The answer to Feed::request_catch_up. Thread-safe; keeps its order with send_seq().
  virtual void deliver_page(const Feed* feed, CatchUpPage page) {
    (void)feed;
    for (auto& frame : page.frames) send(std::move(frame.second));
  }
  // The connection was subscribed to `feed` (Project::subscribe, the one way to join). It keeps
  // the feed until end_feed() and, when it closes, leaves each such feed (Feed::leave): the
  // projects hold the only subscriber sets, and a closed connection is unsubscribed from exactly
  // the projects it joined. A join that arrives after the close is left at once. Thread-safe;
  // keeps its order with end_feed() and send_seq(). A connection that ignores it (a test's fake)
  // is dropped by its projects only when it is destroyed.
  virtual void feed_joined(const std::shared_ptr<Feed>& feed) { (void)feed; }
  // The connection left the feed (or it was deleted): its cursor goes.
  virtual void end_feed(const Feed* feed) { (void)feed; }
  // Closes with a WebSocket close code and reason, after the write in flight. Idempotent.
  virtual void close(std::uint16_t code, std::string reason) = 0;
  // Closes after everything already queued has been written (shutdown). Idempotent.
  virtual void close_after_queued(std::uint16_t code, std::string reason) = 0;

 private:
  ClientProfile profile_;
  const devices::Identity identity_;
};

}  // namespace pa::server
