// One WebSocket connection (plain or TLS), after the HTTP upgrade was authorized.
// Strand-per-connection, one read and one write in flight, a bounded queue of shared immutable
// buffers, and a deferred, idempotent close. Only http_session.cpp includes this file.
//
// Keep-alive: one timer of the session's own, on its strand (Beast's keep-alive pings are off). A
// ping goes out at least every timeouts.ping_interval (on the server_stats beat, see
// common/keepalive_grid.hpp); a ping not answered by a pong within
// timeouts.pong_timeout drops the peer (TCP closed, no close frame: it is presumed gone); a peer
// from which nothing at all arrives (no message, no pong, no ping) for timeouts.idle is closed with
// 1000. The timer handler holds only a weak_ptr, and finish() cancels it: it never keeps a session
// alive.
//
// Backpressure: a project's broadcasts go through a SubscriberCursor per project. While the queue
// has room they are queued as they come; when it is full the connection falls behind on that
// project, declines its live frames, and once the queue is below half its bounds asks the project
// for what it missed, a page at a time (read from history off the I/O threads), until a page
// reaches the live stream again. Memory stays within the queue's bounds whatever the burst, and a
// client that reads slowly is never closed for it. Only one whose writes make no progress at all
// for timeouts.slow_consumer is closed with 1013 (and dropped if even that does not get out
// within as long again). Frames that are not a feed's (replies, server_stats) are queued up to
// twice the bounds; past that the client is sending requests without reading, and is closed.
//
// Corking: while more messages wait behind the one being written, that message's frame is held
// back by CorkStream (below the WebSocket layer) and goes out together with the next ones in one
// socket write (one TLS record per 16 KiB instead of one per message). Frames still leave in
// queue order, each message is still its own WebSocket message, and the last queued message is
// always written through, so nothing stays held.
#pragma once

#include <spdlog/spdlog.h>

#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/defer.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>
#include <chrono>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <variant>
#include <vector>

#include "common/keepalive_grid.hpp"
#include "config/config.hpp"
#include "net/feed_cursors.hpp"
#include "net/outbound_queue.hpp"
#include "ops/metrics.hpp"
#include "server/connection.hpp"
#include "server/session_host.hpp"

namespace pa::net {

namespace beast = boost::beast;
namespace websocket = beast::websocket;
namespace http = beast::http;

// Close codes we send (docs/protocol.md, "Closing").
inline constexpr std::uint16_t kCloseSlowConsumer = 1013;  // "try again later"
inline constexpr std::uint16_t kCloseGoingAway = 1001;
inline constexpr std::uint16_t kCloseNormal = 1000;  // idle timeout

namespace detail {

// A pass-through stream under websocket::stream. cork_next() makes the next write be held back
// (completed at once, bytes kept) instead of sent; the next write that is not held sends what was
// held plus its own bytes in one write of the underlying stream. All writes come from the
// WebSocket stream, which never has two in flight, so held bytes always precede later ones.
template <class Next>
class CorkStream {
 public:
  using executor_type = typename Next::executor_type;
  static constexpr std::size_t kMaxHeld = 64 * 1024;

  explicit CorkStream(Next&& next) : next_(std::move(next)) {}

  executor_type get_executor() noexcept { return next_.get_executor(); }
  Next& next_layer() noexcept { return next_; }
  const Next& next_layer() const noexcept { return next_; }

  void cork_next(bool on) { cork_next_ = on; }

  template <class MutableBufferSequence, class ReadHandler>
  auto async_read_some(const MutableBufferSequence& buffers, ReadHandler&& handler) {
    return next_.async_read_some(buffers, std::forward<ReadHandler>(handler));
  }

  template <class ConstBufferSequence, class WriteHandler>
  auto async_write_some(const ConstBufferSequence& buffers, WriteHandler&& handler) {
    return boost::asio::async_initiate<WriteHandler, void(beast::error_code, std::size_t)>(
        [this](auto h, const ConstBufferSequence& b) { initiate_write(std::move(h), b); }, handler,
        buffers);
  }

 private:
  template <class Handler, class ConstBufferSequence>
  void initiate_write(Handler h, const ConstBufferSequence& b) {
    const std::size_t n = boost::asio::buffer_size(b);
    const bool hold = cork_next_ && held_.size() + n <= kMaxHeld;
    cork_next_ = false;
    if (!hold && held_.empty()) {
      next_.async_write_some(b, std::move(h));
      return;
    }
    for (auto it = boost::asio::buffer_sequence_begin(b); it != boost::asio::buffer_sequence_end(b);
         ++it) {
      const boost::asio::const_buffer cb(*it);
      held_.append(static_cast<const char*>(cb.data()), cb.size());
    }
    auto ex = boost::asio::get_associated_executor(h, next_.get_executor());
    if (hold) {
      boost::asio::post(ex, beast::bind_handler(std::move(h), beast::error_code{}, n));
      return;
    }
    boost::asio::async_write(
        next_, boost::asio::buffer(held_),
        boost::asio::bind_executor(
            ex, [this, n, h = std::move(h)](beast::error_code ec, std::size_t) mutable {
              held_.clear();
              std::move(h)(ec, ec ? 0 : n);
            }));
  }

  Next next_;
  bool cork_next_ = false;
  std::string held_;
};

// websocket::stream tears its next layer down through these (found by argument-dependent lookup).
// Held bytes are not sent first: nothing is held when a close frame has been written.
template <class Next>
void teardown(beast::role_type role, CorkStream<Next>& stream, beast::error_code& ec) {
  using websocket::teardown;
  teardown(role, stream.next_layer(), ec);
}

template <class Next, class TeardownHandler>
void async_teardown(beast::role_type role, CorkStream<Next>& stream, TeardownHandler&& handler) {
  using websocket::async_teardown;
  async_teardown(role, stream.next_layer(), std::forward<TeardownHandler>(handler));
}

}  // namespace detail

template <class Stream>
class WsSession : public server::Connection,
                  public std::enable_shared_from_this<WsSession<Stream>> {
 public:
  WsSession(Stream&& stream, std::shared_ptr<server::SessionHost> hub, std::string remote,
            std::string client_name, devices::Identity identity)
      : server::Connection(std::move(client_name), std::move(identity)),
        ws_(std::move(stream)),
        keepalive_timer_(ws_.get_executor()),
        hub_(std::move(hub)),
        id_(hub_->next_connection_id()),
        remote_(std::move(remote)) {}

  ~WsSession() override {
    queue_.clear();
    report_queue_depth();
    hub_->release_connection();
  }

  std::uint64_t id() const override { return id_; }
  const std::string& remote_address() const override { return remote_; }

  void run(http::request<http::string_body> request) {
    const auto& cfg = hub_->config();
    beast::get_lowest_layer(ws_).expires_never();
    // Beast times the opening and the closing handshake; pings, pongs and idleness are ours.
    websocket::stream_base::timeout timeouts{};
    timeouts.handshake_timeout = cfg.timeouts.handshake;
    timeouts.idle_timeout = websocket::stream_base::none();
    timeouts.keep_alive_pings = false;
    ws_.set_option(timeouts);
    ping_interval_ = cfg.timeouts.ping_interval;
    ping_beat_ = common::keepalive::ping_beat(cfg.stats.interval, ping_interval_);
    pong_timeout_ = cfg.timeouts.pong_timeout;
    idle_timeout_ = cfg.timeouts.idle;
    // Runs inside a read on the strand (the read holds a shared_ptr), so `this` is alive.
    ws_.control_callback([this](websocket::frame_type kind, beast::string_view) {
      last_heard_ = Clock::now();
      if (kind == websocket::frame_type::pong) awaiting_pong_ = false;  // the timer re-checks
    });
    ws_.set_option(websocket::stream_base::decorator([](websocket::response_type& res) {
      res.set(http::field::server, "pocket-agent-server");
    }));
    if (cfg.websocket.enable_compression) {
      websocket::permessage_deflate pmd;
      pmd.server_enable = true;
      pmd.compLevel = cfg.websocket.compression_level;
      ws_.set_option(pmd);
    }
    ws_.read_message_max(cfg.limits.message_size);
    ws_.write_buffer_bytes(static_cast<std::size_t>(cfg.websocket.write_buffer));  // >= 8
    queue_ = OutboundQueue(cfg.websocket.message_buffer, cfg.websocket.max_queue_bytes);
    slow_consumer_ = cfg.timeouts.slow_consumer;
    buffer_.reserve(cfg.websocket.read_buffer);
    ws_.async_accept(request,
                     beast::bind_front_handler(&WsSession::on_accept, this->shared_from_this()));
  }

  // Messages wait in an inbox (in call order) and one hop onto the connection's strand moves
  // every message that arrived meanwhile into the queue, instead of one hop per message.
  void send(protocol::SharedText text) override { post_to_inbox(PlainFrame{std::move(text)}); }

  void send_seq(const std::shared_ptr<server::Feed>& feed, std::uint64_t seq,
                protocol::SharedText text, bool reply) override {
    post_to_inbox(FeedFrame{feed, seq, std::move(text), reply});
  }

  void deliver_page(const server::Feed* feed, server::CatchUpPage page) override {
    post_to_inbox(Page{feed, std::move(page)});
  }

  void feed_joined(const std::shared_ptr<server::Feed>& feed) override {
    post_to_inbox(JoinFeed{feed});
  }

  void end_feed(const server::Feed* feed) override { post_to_inbox(EndFeed{feed}); }

  void close_after_queued(std::uint16_t code, std::string reason) override {
    boost::asio::dispatch(ws_.get_executor(), [self = this->shared_from_this(), code,
                                               reason = std::move(reason)]() mutable {
      self->drain_before_close_ = true;
      self->begin_close(code, std::move(reason));
    });
  }

  void close(std::uint16_t code, std::string reason) override {
    boost::asio::dispatch(ws_.get_executor(), [self = this->shared_from_this(), code,
                                               reason = std::move(reason)]() mutable {
      self->begin_close(code, std::move(reason));
    });
  }

 private:
  void on_accept(beast::error_code ec) {
    if (ec) {
      spdlog::debug("websocket handshake with {} failed: {}", remote_, ec.message());
      return;
    }
    open_ = true;
    last_heard_ = Clock::now();
    hub_->on_open(this->shared_from_this());
    next_ping_at_ = last_heard_ + ping_interval_;
    schedule_keepalive();
    do_read();
  }

  // --- keep-alive ------------------------------------------------------------------------------
  using Clock = std::chrono::steady_clock;

  // Runs `fn` on this session if it still exists and the wait was not cancelled.
  template <class Fn>
  auto if_alive(Fn fn) {
    return [weak = this->weak_from_this(), fn](beast::error_code ec) {
      if (ec) return;
      if (auto self = weak.lock()) fn(*self);
    };
  }

  // One timer per connection for every deadline: the next ping, the pong awaited, idleness, and
  // write progress (timeouts.slow_consumer). It waits for the earliest. Deadlines that move later
  // (a pong, a message, a completed write) do not touch it: it re-checks when it fires and then
  // waits for whatever is earliest, so a busy connection costs no timer operation per frame.
  void schedule_keepalive() {
    if (finished_) return;
    auto due = ping_at();
    if (awaiting_pong_) due = std::min(due, pong_deadline_);
    if (idle_timeout_.count() > 0 && !closing_) due = std::min(due, last_heard_ + idle_timeout_);
    if (queue_.writing()) due = std::min(due, last_progress_ + slow_consumer_);
    due = on_keepalive_grid(due);
    if (keepalive_armed_ && keepalive_at_ <= due) return;
    keepalive_armed_ = true;  // (re-arming cancels the earlier wait; its handler does nothing)
    keepalive_at_ = due;
    keepalive_timer_.expires_at(due);
    keepalive_timer_.async_wait(if_alive([](WsSession& s) { s.on_keepalive_timer(); }));
  }

  // The timers of all connections expire together (common/keepalive_grid.hpp): deadlines on a
  // 250 ms grain, pings on the server_stats beat.
  static Clock::time_point on_keepalive_grid(Clock::time_point t) {
    return common::keepalive::round_up(t, common::keepalive::kGrain);
  }
  Clock::time_point ping_at() const {
    return common::keepalive::ping_time(next_ping_at_, ping_beat_);
  }

  void on_keepalive_timer() {
    keepalive_armed_ = false;
    const auto now = Clock::now();
    if (!finished_) check_progress(now);
    if (!finished_) check_pong(now);
    if (!finished_) check_idle(now);
    if (!finished_ && now >= ping_at()) send_ping(now);
    schedule_keepalive();
  }

  // A ping each ping_interval; none after the close frame (Beast's rule).
  void send_ping(Clock::time_point now) {
    next_ping_at_ = now + ping_interval_;
    if (close_sent_ || ping_in_flight_) return;
    ping_in_flight_ = true;
    ws_.async_ping({}, [self = this->shared_from_this()](beast::error_code) {
      self->ping_in_flight_ = false;  // a failed write ends the read too, which finishes
    });
    // The pong deadline runs from the first unanswered ping: later pings do not extend it.
    if (!awaiting_pong_) {
      awaiting_pong_ = true;
      ping_sent_at_ = now;
      pong_deadline_ = now + pong_timeout_;
    }
  }

  void check_pong(Clock::time_point now) {
    if (!awaiting_pong_ || now < pong_deadline_) return;
    // Anything heard since the ping proves the peer alive, as a pong would: a pong queued behind
    // a big reply on a slow link can come late.
    if (last_heard_ >= ping_sent_at_) {
      awaiting_pong_ = false;
      return;
    }
    // While the hub handles this peer's last message nothing is read, so its pong may be
    // waiting unread; while our writes to it make no progress the ping may not even have gone
    // out (timeouts.slow_consumer judges that): give it another period.
    const bool output_blocked = queue_.writing() && last_progress_ <= ping_sent_at_;
    if ((handling_message_ || output_blocked) && !closing_) {
      pong_deadline_ = now + pong_timeout_;
      return;
    }
    drop("no pong within timeouts.pong_timeout");
  }

  void check_idle(Clock::time_point now) {
    if (idle_timeout_.count() == 0 || closing_) return;
    if (handling_message_) last_heard_ = now;  // it just sent a message
    if (now < last_heard_ + idle_timeout_) return;
    spdlog::info("closing connection {} from {}: nothing received for timeouts.idle", id_, remote_);
    begin_close(kCloseNormal, "idle: nothing received for timeouts.idle");
  }

  // The slow-consumer rule: writes that make no progress for timeouts.slow_consumer close the
  // connection with 1013, and a close that cannot get out within as long again drops it.
  void check_progress(Clock::time_point now) {
    if (!queue_.writing() || now < last_progress_ + slow_consumer_) return;
    if (!closing_) {
      close_slow("no write progress for timeouts.slow_consumer");
      last_progress_ = now;  // the close gets as long again to get out
      return;
    }
    drop("the close frame could not be written within timeouts.slow_consumer");
  }

  // Ends the connection without a close frame: the peer is presumed gone.
  void drop(const char* why) {
    if (finished_) return;
    spdlog::info("dropping connection {} from {}: {}", id_, remote_, why);
    drop_reason_ = why;
    beast::error_code ec;
    auto& tcp = beast::get_lowest_layer(ws_);
    tcp.socket().shutdown(boost::asio::ip::tcp::socket::shutdown_both, ec);
    tcp.close();  // pending reads and writes complete with an error
    finish();
  }

  void do_read() {
    handling_message_ = false;
    if (closing_) return;
    last_heard_ = Clock::now();  // time spent handling its message is not the peer's silence
    ws_.async_read(buffer_,
                   beast::bind_front_handler(&WsSession::on_read, this->shared_from_this()));
  }

  void on_read(beast::error_code ec, std::size_t) {
    last_heard_ = Clock::now();
    if (ec) {
      if (ec == websocket::error::message_too_big) {
        spdlog::info("closing connection {} from {}: message larger than limits.message_size", id_,
                     remote_);
      } else if (ec != websocket::error::closed) {
        spdlog::debug("connection {} read ended: {}", id_, ec.message());
      }
      finish();
      return;
    }
    if (!ws_.got_text()) {
      buffer_.consume(buffer_.size());
      hub_->on_binary_message(this->shared_from_this());
      do_read();
      return;
    }
    std::string text = beast::buffers_to_string(buffer_.data());
    buffer_.consume(buffer_.size());
    handling_message_ = true;
    hub_->on_message(this->shared_from_this(), std::move(text), [self = this->shared_from_this()] {
      boost::asio::post(self->ws_.get_executor(), [self] { self->do_read(); });
    });
  }

  // --- the outbound queue ----------------------------------------------------------------------
  struct PlainFrame {
    protocol::SharedText text;
  };
  struct FeedFrame {
    std::shared_ptr<server::Feed> feed;
    std::uint64_t seq = 0;
    protocol::SharedText text;
    bool reply = false;
  };
  struct Page {
    const server::Feed* feed = nullptr;
    server::CatchUpPage page;
  };
  struct JoinFeed {
    std::shared_ptr<server::Feed> feed;
  };
  struct EndFeed {
    const server::Feed* feed = nullptr;
  };
  using InboxItem = std::variant<PlainFrame, FeedFrame, Page, JoinFeed, EndFeed>;

  void post_to_inbox(InboxItem item) {
    {
      std::lock_guard lock(inbox_mutex_);
      inbox_.push_back(std::move(item));
      if (inbox_wake_pending_) return;
      inbox_wake_pending_ = true;
    }
    // defer, not post: called from an I/O thread (a project's broadcast, the stats tick to every
    // connection), the drain is queued on that thread and handed to the others when its handler
    // ends, instead of waking another thread per connection (futex and epoll_ctl per frame).
    boost::asio::defer(ws_.get_executor(),
                       [self = this->shared_from_this()] { self->drain_inbox(); });
  }

  void drain_inbox() {
    std::vector<InboxItem> batch;
    {
      std::lock_guard lock(inbox_mutex_);
      batch.swap(inbox_);
      inbox_wake_pending_ = false;
    }
    for (auto& item : batch) {
      std::visit([this](auto& i) { take(i); }, item);
    }
    ask_for_pages();
  }

  void take(PlainFrame& f) {
    if (closing_ || finished_) return;
    // Twice the feed's bounds: only a client that sends requests without reading gets here.
    if (!queue_.has_room(f.text->size(), 2)) {
      close_slow("outbound queue full of replies");
      return;
    }
    push(std::move(f.text));
  }

  void take(FeedFrame& f) {
    if (closing_ || finished_) return;
    const auto verdict =
        cursors_.on_frame(f.feed, f.seq, queue_.has_room(f.text->size()), f.text, f.reply);
    if (verdict == FeedCursors::Verdict::kQueue) {
      push(std::move(f.text));
    } else if (verdict == FeedCursors::Verdict::kDeclined) {
      hub_->metrics().frames_deferred_to_history.inc();
    }
  }

  void take(Page& p) {
    auto frames = cursors_.on_page(p.feed, std::move(p.page));
    if (closing_ || finished_) return;
    hub_->metrics().catch_up_pages.inc();
    for (auto& text : frames) push(std::move(text));
  }

  void take(JoinFeed& j) {
    if (finished_) {  // joined after the close: nothing will leave it later
      j.feed->leave(id_);
      return;
    }
    cursors_.joined(j.feed);
  }

  void take(EndFeed& e) { cursors_.ended(e.feed); }

  void push(protocol::SharedText text) {
    queue_.push(std::move(text));
    report_queue_depth();
    if (!queue_.writing()) do_write();
  }

  // Asks one project that this connection is behind on for a page, once the queue has drained
  // below half its bounds; one page at a time per connection, the projects in turn.
  void ask_for_pages() {
    if (closing_ || finished_ || !queue_.below_low_water()) return;
    if (auto request = cursors_.next_request()) {
      request->feed->request_catch_up(this->shared_from_this(), request->after_seq,
                                      queue_.free_messages(), queue_.free_bytes());
    }
  }

  void close_slow(const char* why) {
    spdlog::warn("closing slow connection {} from {}: {} ({} messages / {} bytes queued)", id_,
                 remote_, why, queue_.size(), queue_.bytes());
    hub_->metrics().slow_consumer_closes.inc();
    begin_close(
        kCloseSlowConsumer,
        "slow consumer: outbound queue full; reconnect and catch up with get_messages after_seq");
  }

  // Keeps the server-wide queue-depth gauge equal to the sum of every connection's queue.
  void report_queue_depth() {
    const auto depth = static_cast<double>(queue_.size());
    hub_->metrics().queue_depth.add(depth - reported_depth_);
    reported_depth_ = depth;
  }

  void do_write() {
    last_progress_ = Clock::now();  // the slow-consumer clock runs from here
    const auto& text = queue_.start_write();
    schedule_keepalive();
    ws_.text(true);
    // More behind this one: hold its frame back and send it with the next (corking).
    ws_.next_layer().cork_next(queue_.size() > 1);
    ws_.async_write(boost::asio::buffer(*text),
                    beast::bind_front_handler(&WsSession::on_write, this->shared_from_this()));
  }

  void on_write(beast::error_code ec, std::size_t) {
    last_progress_ = Clock::now();
    const std::size_t size = queue_.finish_write();
    if (ec) {
      queue_.clear();
      report_queue_depth();
      finish();
      return;
    }
    report_queue_depth();
    hub_->metrics().messages_sent.inc();
    hub_->metrics().bytes_sent.inc(size);
    if (!queue_.empty() && (!closing_ || drain_before_close_)) {
      do_write();
      ask_for_pages();
      return;
    }
    if (closing_) {
      do_close();
      return;
    }
    ask_for_pages();
  }

  void begin_close(std::uint16_t code, std::string reason) {
    if (closing_ || finished_) return;
    closing_ = true;
    close_reason_ = websocket::close_reason(static_cast<websocket::close_code>(code), reason);
    // A slow consumer keeps only the frame being written; the rest is dropped (clients catch up
    // from history). A shutdown close sends what is queued first.
    if (!drain_before_close_) queue_.drop_waiting();
    report_queue_depth();
    if (!queue_.writing()) {
      if (!queue_.empty()) {
        do_write();
      } else {
        do_close();
      }
    }
  }

  void do_close() {
    if (close_sent_ || !open_) {
      if (!open_) finish();
      return;
    }
    close_sent_ = true;
    ws_.async_close(close_reason_,
                    [self = this->shared_from_this()](beast::error_code) { self->finish(); });
  }

  // The connection is over: leave every project it joined, once.
  void finish() {
    if (finished_) return;
    finished_ = true;
    keepalive_timer_.cancel();
    for (const auto& feed : cursors_.take_all()) feed->leave(id_);
    if (open_) {
      std::string by;
      if (drop_reason_ != nullptr) {
        by = std::string(" by the server: ") + drop_reason_;
      } else if (close_sent_) {
        by = " by the server: " + std::string(close_reason_.reason.c_str());
      }
      spdlog::info("connection {} from {} closed{}", id_, remote_, by);
      hub_->on_close(this->shared_from_this());
    }
  }

  websocket::stream<detail::CorkStream<Stream>> ws_;
  boost::asio::steady_timer keepalive_timer_;
  Clock::time_point keepalive_at_;  // when it fires, while keepalive_armed_
  bool keepalive_armed_ = false;
  std::chrono::seconds slow_consumer_{60};
  Clock::time_point last_progress_;  // the last write completed (or the one in flight started)
  Clock::time_point next_ping_at_;
  Clock::time_point pong_deadline_;  // while awaiting_pong_
  std::chrono::seconds ping_interval_{30};
  Clock::duration ping_beat_{};  // pings go out on this beat (zero: when due)
  std::chrono::seconds pong_timeout_{30};
  std::chrono::seconds idle_timeout_{0};  // 0 = off
  Clock::time_point last_heard_;          // the last frame from the peer
  Clock::time_point ping_sent_at_;        // when the ping now awaiting its pong was queued
  bool ping_in_flight_ = false;
  bool awaiting_pong_ = false;
  bool handling_message_ = false;  // the hub has its message; no read is pending
  const char* drop_reason_ = nullptr;
  beast::flat_buffer buffer_;
  std::shared_ptr<server::SessionHost> hub_;
  const std::uint64_t id_;
  const std::string remote_;
  OutboundQueue queue_{100, 16u << 20};
  FeedCursors cursors_;  // the projects it joined, and where it stands in each
  std::mutex inbox_mutex_;
  std::vector<InboxItem> inbox_;     // guarded by inbox_mutex_
  bool inbox_wake_pending_ = false;  // guarded by inbox_mutex_
  bool open_ = false;
  bool closing_ = false;
  bool close_sent_ = false;
  bool drain_before_close_ = false;
  double reported_depth_ = 0;
  bool finished_ = false;
  websocket::close_reason close_reason_;
};

}  // namespace pa::net
