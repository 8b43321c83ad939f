// The supervisor process: see supervisor.hpp. One thread, one io_context.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/streambuf.hpp>
#include <boost/asio/write.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <iostream>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "agent/permissions.hpp"
#include "agent/process_tree.hpp"
#include "agent/run_options.hpp"
#include "agent/supervisor.hpp"
#include "projects/project_info.hpp"
#include "protocol/utf8.hpp"

namespace pa::agent {
namespace {

namespace json = boost::json;
using local = boost::asio::local::stream_protocol;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

constexpr std::size_t kMaxOpBytes = 64 * 1024 * 1024;
constexpr std::size_t kSendChunk = 256 * 1024;

// The supervisor writes its own few diagnostics to supervisor.log (stderr is redirected there).
void note(const std::string& text) {
  const std::string line =
      "pocket-agent-supervisor[" + std::to_string(::getpid()) + "]: " + text + "\n";
  if (::write(2, line.data(), line.size()) < 0) {
    // nowhere else to say it
  }
}

// fdatasync on a thread of its own: it can take tens of ms, and on the supervisor's only thread it
// would stall the pipe and the socket with it (lines reach clients from the page cache; the sync
// is only about a host crash). Requests that come while one runs are folded into the next one.
class BackgroundSync {
 public:
  explicit BackgroundSync(int fd) : fd_(fd) {}
  ~BackgroundSync() {
    {
      std::lock_guard lock(mutex_);
      quit_ = true;
    }
    wake_.notify_one();
    if (thread_.joinable()) thread_.join();
  }
  void request() {
    {
      std::lock_guard lock(mutex_);
      wanted_ = true;
      // Started on first use: after the CLI is spawned, so the fork sees one thread.
      if (!thread_.joinable()) thread_ = std::thread([this] { run(); });
    }
    wake_.notify_one();
  }

 private:
  void run() {
    std::unique_lock lock(mutex_);
    for (;;) {
      wake_.wait(lock, [this] { return wanted_ || quit_; });
      if (quit_) return;
      wanted_ = false;
      lock.unlock();
      if (::fdatasync(fd_) != 0) note("spool fdatasync: " + std::string(std::strerror(errno)));
      lock.lock();
    }
  }

  int fd_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool wanted_ = false;
  bool quit_ = false;
  std::thread thread_;
};

class Supervisor;

// One server connection.
class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(Supervisor& owner, local::socket socket) : owner_(owner), socket_(std::move(socket)) {}
  void start() { read_op(); }
  void pump();
  void close() {
    closed_ = true;
    boost::system::error_code ignored;
    socket_.shutdown(local::socket::shutdown_both, ignored);
    socket_.close(ignored);
  }
  bool attached() const { return attached_; }
  void notice(std::string record);
  // A record just appended to the spool at [start, start + record.size()).
  void appended(std::uint64_t start, const std::string& record);

 private:
  void read_op();
  void on_op(const std::string& line);

  Supervisor& owner_;
  local::socket socket_;
  boost::asio::streambuf in_{kMaxOpBytes};
  bool attached_ = false;
  bool closed_ = false;
  bool writing_ = false;
  std::uint64_t sent_ = 0;           // spool offset sent so far
  std::deque<std::string> notices_;  // sent between records
  std::string out_;
  // Spool bytes [live_from_, live_from_ + live_.size()) kept from appended(): a session that
  // keeps up is fed from memory; one that fell behind reads the file (pread) instead.
  std::string live_;
  std::uint64_t live_from_ = 0;
};

class Supervisor {
 public:
  Supervisor(boost::asio::io_context& io, RunPaths paths, SupervisorSpec spec)
      : io_(io),
        paths_(std::move(paths)),
        spec_(std::move(spec)),
        acceptor_(io),
        wall_timer_(io),
        idle_timer_(io),
        grace_timer_(io),
        sync_timer_(io),
        retry_timer_(io),
        retention_timer_(io),
        signals_(io, SIGTERM, SIGINT, SIGHUP) {}

  // Before the answer to the server: spool, socket, CLI. Returns the error to report.
  std::error_code start(std::string& error);
  pid_t cli_pid() const { return child_ ? child_->pid() : -1; }

  // For sessions. The spool's records are the file's plus those still waiting for the disk.
  std::uint64_t spool_size() const { return spool_.size() + pending_.size(); }
  // Copies up to `want` bytes of the spool from `from` into `out` (the file, then what waits
  // for the disk); returns how many.
  std::size_t read_back(std::uint64_t from, std::size_t want, std::string& out) const;
  bool exited() const { return exit_written_; }
  void on_attach(const std::shared_ptr<Session>& session);
  void on_session_closed(Session* session) {
    if (active_.get() != session) return;
    active_.reset();
    if (exit_written_) arm_retention();
  }
  void op_write(std::string data, const std::string& tag);
  void op_close(const std::string& tag);
  void op_stop(const std::string& reason);
  void op_clocks(bool paused);
  void op_done();

 private:
  void accept();
  void wait_signal();
  void arm_retention();
  void add_record(RecordKind kind, std::string_view payload);
  void flush_pending();
  void notify_storage(const std::error_code* ec);
  void arm_sync();
  void on_line(std::string line);
  void on_too_long(std::size_t bytes, const std::string& head);
  void on_exit(ExitStatus status);
  void arm_wall();
  void arm_idle();
  void touch_idle();  // the CLI said something
  void begin_stop(const std::string& reason);
  void escalate_term();
  void finish();

  boost::asio::io_context& io_;
  RunPaths paths_;
  SupervisorSpec spec_;
  local::acceptor acceptor_;
  boost::asio::steady_timer wall_timer_, idle_timer_, grace_timer_, sync_timer_, retry_timer_,
      retention_timer_;
  boost::asio::signal_set signals_;
  std::shared_ptr<ChildProcess> child_;
  SpoolWriter spool_;
  std::unique_ptr<BackgroundSync> background_sync_;  // after spool_: stopped before it closes
  int read_fd_ = -1;
  // Whole records waiting for the disk, in order. They have their offsets already (the file's
  // size plus what precedes them here) and may have been sent: a failed write is retried until
  // it lands at the same place.
  std::string pending_;
  bool flush_posted_ = false;
  Clock::duration retry_delay_ = 100ms;
  bool storage_failing_ = false;
  std::shared_ptr<Session> active_;
  std::set<std::string> tags_done_;
  bool sync_armed_ = false;

  // The run.
  Clock::time_point wall_deadline_{};
  Clock::duration wall_left_{};
  // The idle clock: one wait in flight at a time, re-checked when it fires, instead of a timer
  // re-armed (and a cancelled wait completed) for every line.
  Clock::time_point last_output_{};
  bool idle_armed_ = false;
  std::uint64_t idle_wait_ = 0;  // which wait is current; older ones were cancelled
  bool paused_ = false;
  bool result_seen_ = false;
  bool interrupt_sent_ = false;
  bool stopping_ = false;
  bool exit_written_ = false;
  bool stdin_closed_ = false;
};

// ---- session ----

void Session::read_op() {
  boost::asio::async_read_until(
      socket_, in_, '\n', [self = shared_from_this()](boost::system::error_code ec, std::size_t n) {
        if (ec) {
          self->closed_ = true;
          self->owner_.on_session_closed(self.get());
          return;
        }
        std::string line(boost::asio::buffers_begin(self->in_.data()),
                         boost::asio::buffers_begin(self->in_.data()) + static_cast<long>(n - 1));
        self->in_.consume(n);
        self->on_op(line);
        if (!self->closed_) self->read_op();
      });
}

void Session::on_op(const std::string& line) {
  boost::system::error_code ec;
  const json::value value = json::parse(line, ec);
  if (ec || !value.is_object()) {
    note("ignoring a malformed op");
    return;
  }
  const json::object& op = value.get_object();
  auto text = [&](std::string_view key) -> std::string {
    const auto* v = op.if_contains(key);
    return v != nullptr && v->is_string() ? std::string(v->get_string()) : std::string();
  };
  const std::string name = text("op");
  if (name == "attach") {
    const auto* offset = op.if_contains("offset");
    sent_ = offset != nullptr && offset->is_uint64() ? offset->get_uint64()
            : offset != nullptr && offset->is_int64()
                ? static_cast<std::uint64_t>(std::max<std::int64_t>(0, offset->get_int64()))
                : 0;
    sent_ = std::min<std::uint64_t>(sent_, owner_.spool_size());
    json::object hello{{"v", kSupervisorProtocol},
                       {"pid", ::getpid()},
                       {"cli_pid", owner_.cli_pid()},
                       {"spool_size", owner_.spool_size()},
                       {"exited", owner_.exited()}};
    notices_.push_front(json::serialize(hello) + "\n");
    attached_ = true;
    owner_.on_attach(shared_from_this());
    pump();
    return;
  }
  if (!attached_) return;
  if (name == "write") {
    owner_.op_write(text("data"), text("tag"));
  } else if (name == "close") {
    owner_.op_close(text("tag"));
  } else if (name == "stop") {
    owner_.op_stop(text("reason"));
  } else if (name == "clocks") {
    const auto* paused = op.if_contains("paused");
    owner_.op_clocks(paused != nullptr && paused->is_bool() && paused->get_bool());
  } else if (name == "done") {
    owner_.op_done();
  }
}

void Session::notice(std::string record) {
  notices_.push_back(std::move(record));
  pump();
}

void Session::appended(std::uint64_t start, const std::string& record) {
  if (!attached_ || closed_) return;
  if (live_.empty() && start == sent_) {
    live_from_ = start;
    live_ = record;
  } else if (!live_.empty() && live_from_ + live_.size() == start && live_.size() < kSendChunk) {
    live_ += record;  // lines that come while a write is in flight go out together
  } else {
    live_.clear();  // too far behind: read_back has it
  }
}

// One write in flight: notices first (they sit between whole records), then spool bytes up to
// the last whole record, from memory when they are the ones just appended, else read back.
void Session::pump() {
  if (closed_ || writing_ || !attached_) return;
  out_.clear();
  if (!notices_.empty()) {
    out_ = std::move(notices_.front());
    notices_.pop_front();
  } else if (!live_.empty() && live_from_ == sent_) {
    out_.swap(live_);
    live_.clear();
    sent_ += out_.size();
  } else if (sent_ < owner_.spool_size()) {
    live_.clear();                                  // what it held is read back below
    const std::uint64_t end = owner_.spool_size();  // always a record boundary
    std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(end - sent_, kSendChunk));
    for (;;) {
      const std::size_t got = owner_.read_back(sent_, want, out_);
      const auto last_nl = out_.rfind('\n');
      if (last_nl != std::string::npos) {
        out_.resize(last_nl + 1);
        break;
      }
      if (got < want || sent_ + want >= end) {
        out_.clear();  // cannot read it now; try again on the next record
        break;
      }
      want = static_cast<std::size_t>(std::min<std::uint64_t>(end - sent_, want * 2));
    }
    sent_ += out_.size();
  }
  if (out_.empty()) return;
  writing_ = true;
  boost::asio::async_write(socket_, boost::asio::buffer(out_),
                           [self = shared_from_this()](boost::system::error_code ec, std::size_t) {
                             self->writing_ = false;
                             if (ec) {
                               self->close();
                               self->owner_.on_session_closed(self.get());
                               return;
                             }
                             self->pump();
                           });
}

// ---- supervisor ----

std::error_code Supervisor::start(std::string& error) {
  if (auto ec = spool_.open(paths_.spool())) {
    error = "cannot open the spool " + paths_.spool() + ": " + ec.message();
    return ec;
  }
  background_sync_ = std::make_unique<BackgroundSync>(spool_.fd());
  read_fd_ = ::open(paths_.spool().c_str(), O_RDONLY | O_CLOEXEC);
  if (read_fd_ < 0) {
    const int err = errno;
    error = "cannot read the spool: " + std::string(std::strerror(err));
    return {err, std::generic_category()};
  }
  boost::system::error_code bec;
  ::unlink(paths_.socket().c_str());
  const mode_t old_mask = ::umask(0177);  // the socket file is 0600 from birth
  acceptor_.open(local::endpoint(paths_.socket()).protocol(), bec);
  if (!bec) acceptor_.bind(local::endpoint(paths_.socket()), bec);
  ::umask(old_mask);
  if (!bec) acceptor_.listen(4, bec);
  if (bec) {
    error = "cannot serve " + paths_.socket() + ": " + bec.message();
    return {bec.value(), std::generic_category()};
  }

  ChildHandlers handlers;
  handlers.on_stdout_line = [this](std::string line) { on_line(std::move(line)); };
  handlers.on_line_too_long = [this](std::size_t bytes, std::string head) {
    on_too_long(bytes, head);
  };
  handlers.on_exit = [this](ExitStatus status) { on_exit(status); };
  SpawnSpec cli = spec_.cli;
  cli.cwd_fd = 3;  // the project directory, opened by the server
  std::error_code ec;
  child_ = ChildProcess::spawn(io_.get_executor(), io_.get_executor(), cli, spec_.max_line_bytes,
                               std::move(handlers), ec);
  ::close(3);
  if (!child_) {
    error = "cannot start " + cli.binary + ": " + ec.message();
    return ec;
  }

  wait_signal();
  if (spec_.execution.count() > 0) {
    wall_deadline_ = Clock::now() + spec_.execution;
    arm_wall();
  }
  last_output_ = Clock::now();
  arm_idle();
  accept();
  return {};
}

// SIGTERM (someone stops the supervisor: a system shutdown, a unit stop) stops the CLI as
// agent_kill would; a second one kills its tree at once.
void Supervisor::wait_signal() {
  signals_.async_wait([this](boost::system::error_code e, int) {
    if (e) return;
    if (!stopping_) {
      begin_stop("terminated");
    } else if (child_ && !exit_written_) {
      child_->kill_tree();
    }
    wait_signal();
  });
}

void Supervisor::accept() {
  acceptor_.async_accept([this](boost::system::error_code ec, local::socket socket) {
    if (ec) {
      if (ec != boost::asio::error::operation_aborted) note("accept: " + ec.message());
      return;
    }
    std::make_shared<Session>(*this, std::move(socket))->start();
    accept();
  });
}

void Supervisor::on_attach(const std::shared_ptr<Session>& session) {
  // The newest server wins: an older connection is one the server no longer reads.
  if (active_ && active_ != session) active_->close();
  active_ = session;
  retention_timer_.cancel();
  if (storage_failing_ && !pending_.empty()) notify_storage(nullptr);
}

// Every event goes through here: to the file, or held in memory while the disk refuses it.
std::size_t Supervisor::read_back(std::uint64_t from, std::size_t want, std::string& out) const {
  out.resize(want);
  std::size_t got = 0;
  const std::uint64_t file_end = spool_.size();
  while (got < want && from + got < file_end) {
    const std::size_t n =
        static_cast<std::size_t>(std::min<std::uint64_t>(want - got, file_end - (from + got)));
    const ssize_t r = ::pread(read_fd_, out.data() + got, n, static_cast<off_t>(from + got));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    got += static_cast<std::size_t>(r);
  }
  if (got < want && from + got >= file_end && from + got - file_end < pending_.size()) {
    const auto at = static_cast<std::size_t>(from + got - file_end);
    const std::size_t n = std::min(want - got, pending_.size() - at);
    std::memcpy(out.data() + got, pending_.data() + at, n);
    got += n;
  }
  out.resize(got);
  return got;
}

// Every event goes through here. It takes its offset at once and goes to the server first and
// to the file right after (the write(2) would otherwise sit in every line's latency), except with
// fsync on every write, and for the exit record: then the disk goes first. The flush is posted:
// the lines of one pipe read arrive in one handler, and all of them go out in one send and one
// write(2). A record sent but not yet written is no loss: if the supervisor dies the CLI dies with
// it, and history, which has the record, is ahead of the spool, not behind.
void Supervisor::add_record(RecordKind kind, std::string_view payload) {
  std::string record = encode_record(kind, payload);
  if (active_) active_->appended(spool_size(), record);
  pending_ += record;
  if (storage_failing_ || flush_posted_) return;
  flush_posted_ = true;
  boost::asio::post(io_, [this] {
    flush_posted_ = false;
    if (!storage_failing_) flush_pending();
  });
}

void Supervisor::flush_pending() {
  const bool disk_first = spec_.fsync_interval.count() == 0 || exit_written_;
  if (!disk_first && active_) active_->pump();
  if (!pending_.empty()) {
    if (auto ec = spool_.append(pending_)) {
      if (!storage_failing_) {
        storage_failing_ = true;
        note("spool write failed: " + ec.message() + "; holding the CLI's output");
        if (child_) child_->hold_output(true);
      }
      notify_storage(&ec);
      retry_timer_.expires_after(retry_delay_);
      retry_delay_ = std::min<Clock::duration>(retry_delay_ * 2, 5s);
      retry_timer_.async_wait([this](boost::system::error_code e) {
        if (!e) flush_pending();
      });
      return;
    }
    pending_.clear();
  }
  if (storage_failing_) {
    storage_failing_ = false;
    retry_delay_ = 100ms;
    note("spool writable again");
    if (child_) child_->hold_output(false);
    notify_storage(nullptr);
  }
  if (disk_first) {
    spool_.sync();
  } else {
    arm_sync();
  }
  if (active_) active_->pump();
}

void Supervisor::notify_storage(const std::error_code* ec) {
  if (!active_) return;
  json::value what = nullptr;
  if (ec != nullptr) {
    what = json::object{{"path", paths_.spool()}, {"error", ec->message()}, {"errno", ec->value()}};
  }
  active_->notice(
      encode_record(RecordKind::kNotice, json::serialize(json::object{{"storage", what}})));
}

void Supervisor::arm_sync() {
  if (sync_armed_) return;
  sync_armed_ = true;
  sync_timer_.expires_after(spec_.fsync_interval);
  sync_timer_.async_wait([this](boost::system::error_code e) {
    sync_armed_ = false;
    if (!e && spool_.take_dirty()) background_sync_->request();
  });
}

// Only `result` matters here, so most lines skip the parse: a line that is a result has the
// string "result" in it, written plainly or with \u escapes.
bool may_be_result(std::string_view line) {
  return line.find("result") != std::string_view::npos ||
         line.find("\\u") != std::string_view::npos;
}

void Supervisor::on_line(std::string line) {
  touch_idle();
  if (may_be_result(line) && inspect_cli_line(line).is_result) result_seen_ = true;
  add_record(RecordKind::kLine, line);
}

void Supervisor::on_too_long(std::size_t bytes, const std::string& head) {
  touch_idle();
  add_record(
      RecordKind::kOversized,
      json::serialize(json::object{{"bytes", bytes}, {"head", protocol::sanitize_utf8(head)}}));
}

// Everything left of the run once the CLI is gone: the supervisor is a child subreaper in a
// session of its own, so whatever the run started is in that session, or was re-parented to the
// supervisor (a tool's background job whose shell exited), or shares a session or group with
// such a process, or descends from one of these. SIGKILL all of it, again until a scan finds
// nothing (a process may fork while it is being killed). Returns how many were signalled.
std::size_t kill_run_leftovers() {
  const pid_t self = ::getpid();
  const pid_t own_sid = ::getsid(0);
  std::size_t signalled = 0;
  for (int round = 0; round < 20; ++round) {
    const auto snapshot = detail::scan_processes();
    std::set<pid_t> doomed, sids, pgids;
    for (const auto& p : snapshot.procs) {
      if (p.pid == self || p.zombie) continue;
      if (p.sid == own_sid || p.ppid == self) {
        doomed.insert(p.pid);
        if (p.sid != own_sid) sids.insert(p.sid);
        pgids.insert(p.pgid);
      }
    }
    // Their sessions and groups, then descendants, until nothing new.
    for (bool grew = true; grew;) {
      grew = false;
      for (const auto& p : snapshot.procs) {
        if (p.pid == self || p.zombie || doomed.count(p.pid)) continue;
        if (sids.count(p.sid) || (pgids.count(p.pgid) && p.pgid != ::getpgid(0)) ||
            doomed.count(p.ppid)) {
          doomed.insert(p.pid);
          grew = true;
        }
      }
    }
    if (doomed.empty()) break;
    for (const pid_t pid : doomed) {
      if (::kill(pid, SIGKILL) == 0) ++signalled;
    }
  }
  return signalled;
}

void Supervisor::on_exit(ExitStatus status) {
  wall_timer_.cancel();
  idle_timer_.cancel();
  grace_timer_.cancel();
  // Nothing the run started outlives it: tools that left the CLI's group included, and
  // background jobs whose shell already exited (re-parented here, never seen by a scan).
  child_->kill_tree();
  if (const std::size_t n = kill_run_leftovers(); n > 0) {
    note("killed " + std::to_string(n) + " process(es) the run left behind");
  }
  json::object exit{{"signaled", status.signaled},
                    {"code", status.code},
                    {"signal", status.signal},
                    {"stderr", protocol::sanitize_utf8(child_->stderr_tail())}};
  exit_written_ = true;
  add_record(RecordKind::kExit, json::serialize(exit));
  if (!active_) arm_retention();
}

// With no server to take the exit record, wait `retention` for one, then go (the spool stays).
void Supervisor::arm_retention() {
  retention_timer_.expires_after(spec_.retention);
  retention_timer_.async_wait([this](boost::system::error_code e) {
    if (!e && !active_) finish();
  });
}

void Supervisor::op_write(std::string data, const std::string& tag) {
  if (!tag.empty()) {
    if (!tags_done_.insert(tag).second) return;  // sent before this server restart
    if (tag.rfind("follow_up:", 0) == 0) result_seen_ = false;
    if (tag.rfind("interrupt:", 0) == 0) interrupt_sent_ = true;
  }
  if (exit_written_ || stdin_closed_) return;
  child_->write_stdin(std::move(data));
  if (!tag.empty()) add_record(RecordKind::kInput, json::serialize(json::object{{"tag", tag}}));
}

void Supervisor::op_close(const std::string& tag) {
  const std::string t = tag.empty() ? "close" : tag;
  if (!tags_done_.insert(t).second) return;
  if (exit_written_) return;
  stdin_closed_ = true;
  child_->close_stdin();
  add_record(RecordKind::kInput, json::serialize(json::object{{"tag", t}}));
}

void Supervisor::op_stop(const std::string& reason) {
  if (reason == "force") {
    if (!stopping_) begin_stop("force");
    if (child_) child_->kill_tree();
    return;
  }
  begin_stop(reason == "shutdown" ? "shutdown" : "kill");
}

void Supervisor::op_clocks(bool paused) {
  if (paused == paused_ || stopping_ || exit_written_) return;
  paused_ = paused;
  if (paused) {
    idle_timer_.cancel();
    if (spec_.execution.count() > 0) {
      wall_left_ = wall_deadline_ - Clock::now();
      wall_timer_.cancel();
    }
  } else {
    if (spec_.execution.count() > 0) {
      wall_deadline_ = Clock::now() + wall_left_;
      arm_wall();
    }
    last_output_ = Clock::now();  // a pause restarts the idle clock
    arm_idle();
  }
}

void Supervisor::op_done() {
  if (exit_written_) finish();
}

void Supervisor::arm_wall() {
  if (paused_ || stopping_ || exit_written_) return;
  wall_timer_.expires_at(wall_deadline_);
  wall_timer_.async_wait([this](boost::system::error_code e) {
    if (!e && !paused_ && Clock::now() >= wall_deadline_) begin_stop("timeout");
  });
}

void Supervisor::touch_idle() {
  last_output_ = Clock::now();
  if (!idle_armed_) arm_idle();
}

void Supervisor::arm_idle() {
  if (spec_.execution_idle.count() <= 0 || paused_ || stopping_ || exit_written_) return;
  idle_armed_ = true;
  idle_timer_.expires_at(last_output_ + spec_.execution_idle);
  idle_timer_.async_wait([this, wait = ++idle_wait_](boost::system::error_code e) {
    if (wait != idle_wait_) return;  // a newer wait owns the timer
    idle_armed_ = false;
    if (e || paused_) return;
    if (Clock::now() - last_output_ < spec_.execution_idle) {
      arm_idle();  // output came since this wait began
      return;
    }
    // Silent because the spool cannot be written (the CLI's output is held): that is the
    // reason to give, not the CLI's idleness.
    begin_stop(storage_failing_ ? "storage" : "idle_timeout");
  });
}

// Interrupt request first (the CLI ends its turn and answers), then SIGTERM to the group after
// kill_grace, then SIGKILL to the whole tree after term_grace.
void Supervisor::begin_stop(const std::string& reason) {
  if (stopping_ || exit_written_) return;
  stopping_ = true;
  wall_timer_.cancel();
  idle_timer_.cancel();
  add_record(RecordKind::kStop, json::serialize(json::object{{"reason", reason}}));
  if (reason == "force") return;  // the caller kills the tree at once
  if (!result_seen_ && !interrupt_sent_ && !stdin_closed_) {
    interrupt_sent_ = true;
    child_->write_stdin(interrupt_request_line("pa-interrupt-" + projects::random_uuid()));
  }
  grace_timer_.expires_after(spec_.kill_grace);
  grace_timer_.async_wait([this](boost::system::error_code e) {
    if (!e) escalate_term();
  });
}

void Supervisor::escalate_term() {
  if (exit_written_) return;
  note("CLI still running after the interrupt; SIGTERM to its group");
  add_record(RecordKind::kStop, R"({"step":"sigterm"})");
  stdin_closed_ = true;
  child_->close_stdin();
  child_->signal_group(SIGTERM);
  grace_timer_.expires_after(spec_.term_grace);
  grace_timer_.async_wait([this](boost::system::error_code e) {
    if (e || exit_written_) return;
    note("CLI ignored SIGTERM; killing its process tree");
    add_record(RecordKind::kStop, R"({"step":"sigkill"})");
    child_->kill_tree();
  });
}

void Supervisor::finish() {
  if (!pending_.empty() && !spool_.append(pending_)) pending_.clear();
  spool_.sync();
  boost::system::error_code ignored;
  acceptor_.close(ignored);
  ::unlink(paths_.socket().c_str());
  if (active_) active_->close();
  io_.stop();
}

std::string read_all(int fd) {
  std::string out;
  char buf[65536];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    out.append(buf, static_cast<std::size_t>(n));
    if (out.size() > kMaxOpBytes) break;
  }
  return out;
}

void answer(const json::object& reply) {
  const std::string text = json::serialize(reply) + "\n";
  std::size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = ::write(1, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    done += static_cast<std::size_t>(n);
  }
}

}  // namespace

int supervisor_main(int argc, char** argv) {
  if (argc != 3) {
    std::cerr << "usage: " << argv[0] << ' ' << kSuperviseCommand << " <run_dir>\n";
    return 2;
  }
  ::signal(SIGPIPE, SIG_IGN);
  RunPaths paths{argv[2]};
  // Diagnostics go to the run's log, whatever the server did with its stderr.
  const int log_fd = ::open(paths.log().c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (log_fd >= 0) {
    ::dup2(log_fd, 2);
    ::close(log_fd);
  }
  // What the building blocks log goes to the run's log too; stdout is the answer to the server.
  spdlog::set_default_logger(spdlog::stderr_logger_st("supervisor"));
  spdlog::set_level(spdlog::level::warn);
  SupervisorSpec spec;
  try {
    boost::system::error_code ec;
    const json::value value = json::parse(read_all(0), ec);
    if (ec) throw std::runtime_error("the spec is not JSON: " + ec.message());
    spec = supervisor_spec_from_json(value);
  } catch (const std::exception& e) {
    answer(json::object{{"ok", false}, {"errno", EINVAL}, {"error", e.what()}});
    return 2;
  }
  const int devnull = ::open("/dev/null", O_RDWR | O_CLOEXEC);

  boost::asio::io_context io(1);
  install_reaper(io.get_executor());
  Supervisor supervisor(io, paths, std::move(spec));
  std::string error;
  if (auto ec = supervisor.start(error)) {
    note(error);
    answer(json::object{{"ok", false}, {"errno", ec.value()}, {"error", error}});
    return 1;
  }
  answer(json::object{{"ok", true}, {"cli_pid", supervisor.cli_pid()}});
  // The server may go away at any time: stdin/stdout are its pipes.
  if (devnull >= 0) {
    ::dup2(devnull, 0);
    ::dup2(devnull, 1);
    ::close(devnull);
  }
  io.run();
  return 0;
}

}  // namespace pa::agent
