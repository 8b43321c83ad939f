// Server side of the supervisor (supervisor.hpp): the spec, starting one, finding it alive, and
// the socket link that reads a run's records and sends it operations.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/write.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value_to.hpp>
#include <cerrno>
#include <cstring>
#include <deque>
#include <mutex>
#include <stdexcept>

#include "agent/process_spawn.hpp"
#include "agent/process_tree.hpp"
#include "agent/supervisor.hpp"

namespace pa::agent {

namespace json = boost::json;
using local = boost::asio::local::stream_protocol;
using namespace std::chrono_literals;

// ---- spec ----

json::object to_json(const SupervisorSpec& spec) {
  json::array args, env;
  for (const auto& a : spec.cli.args) args.emplace_back(a);
  for (const auto& e : spec.cli.env) env.emplace_back(e);
  return json::object{{"binary", spec.cli.binary},
                      {"args", std::move(args)},
                      {"env", std::move(env)},
                      {"cwd", spec.cli.cwd},
                      {"max_line_bytes", spec.max_line_bytes},
                      {"execution_s", spec.execution.count()},
                      {"execution_idle_s", spec.execution_idle.count()},
                      {"kill_grace_s", spec.kill_grace.count()},
                      {"term_grace_s", spec.term_grace.count()},
                      {"fsync_interval_ms", spec.fsync_interval.count()},
                      {"retention_s", spec.retention.count()}};
}

SupervisorSpec supervisor_spec_from_json(const json::value& value) {
  if (!value.is_object()) throw std::runtime_error("the spec is not an object");
  const json::object& o = value.get_object();
  auto str = [&](std::string_view key) {
    const auto* v = o.if_contains(key);
    if (v == nullptr || !v->is_string()) throw std::runtime_error("spec." + std::string(key));
    return std::string(v->get_string());
  };
  auto strings = [&](std::string_view key) {
    const auto* v = o.if_contains(key);
    if (v == nullptr || !v->is_array()) throw std::runtime_error("spec." + std::string(key));
    std::vector<std::string> out;
    for (const auto& item : v->get_array()) {
      if (!item.is_string()) throw std::runtime_error("spec." + std::string(key));
      out.emplace_back(item.get_string());
    }
    return out;
  };
  auto number = [&](std::string_view key) -> std::int64_t {
    const auto* v = o.if_contains(key);
    if (v == nullptr || !(v->is_int64() || v->is_uint64()))
      throw std::runtime_error("spec." + std::string(key));
    return v->is_int64() ? v->get_int64() : static_cast<std::int64_t>(v->get_uint64());
  };
  SupervisorSpec spec;
  spec.cli.binary = str("binary");
  spec.cli.args = strings("args");
  spec.cli.env = strings("env");
  spec.cli.cwd = str("cwd");
  spec.max_line_bytes = static_cast<std::size_t>(number("max_line_bytes"));
  spec.execution = std::chrono::seconds(number("execution_s"));
  spec.execution_idle = std::chrono::seconds(number("execution_idle_s"));
  spec.kill_grace = std::chrono::seconds(number("kill_grace_s"));
  spec.term_grace = std::chrono::seconds(number("term_grace_s"));
  spec.fsync_interval = std::chrono::milliseconds(number("fsync_interval_ms"));
  spec.retention = std::chrono::seconds(number("retention_s"));
  return spec;
}

// ---- launch ----

namespace {
// How long an attach waits for the supervisor's hello line.
constexpr std::chrono::seconds kAttachTimeout{30};

bool write_all(int fd, const std::string& text) {
  std::size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    done += static_cast<std::size_t>(n);
  }
  return true;
}

// One line from a blocking fd, within `timeout`, reading at most `chunk` bytes at a time (1 when
// what follows the line belongs to someone else). A signal does not end it (EINTR is retried).
std::string read_line(int fd, std::chrono::milliseconds timeout, std::size_t chunk = 4096) {
  std::string out;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return out;
    pollfd p{fd, POLLIN, 0};
    const int r = ::poll(&p, 1, static_cast<int>(left.count()));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return out;
    char buf[4096];
    const ssize_t n = ::read(fd, buf, std::min(chunk, sizeof buf));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return out;
    out.append(buf, static_cast<std::size_t>(n));
    if (const auto nl = out.find('\n'); nl != std::string::npos) return out.substr(0, nl);
    if (out.size() > 65536) return out;
  }
}

// Connects a blocking AF_UNIX socket, retrying when a signal interrupts the call: for a local
// socket an interrupted connect left nothing half-done (EISCONN means it got through).
std::error_code connect_unix(int fd, const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path)
    return std::make_error_code(std::errc::filename_too_long);
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  for (;;) {
    if (::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0) return {};
    if (errno == EINTR) continue;
    if (errno == EISCONN) return {};
    return {errno, std::generic_category()};
  }
}
}  // namespace

Launched launch_supervisor(const std::string& self_exe, const RunPaths& paths,
                           const SupervisorSpec& spec, int project_dir_fd, std::error_code& ec,
                           std::string& error) {
  Launched out;
  ec.clear();
  SpawnSpec sup;
  sup.binary = self_exe;
  sup.args = {kSuperviseCommand, paths.dir};
  sup.env = {"PATH=/usr/local/bin:/usr/bin:/bin"};
  sup.cwd = paths.dir;
  sup.detached = true;
  sup.inherit_fd = project_dir_fd;
  detail::SpawnedProcess sp;
  // The reaper (if installed) reaps it when it ends while this server runs; nothing to do then.
  ec = detail::spawn_process(
      sup, detail::Stdio::pipe, detail::Stdio::pipe, detail::Stdio::null, [](ExitStatus) {}, sp);
  if (ec) {
    error = "cannot start the run's supervisor (" + self_exe + "): " + ec.message();
    return out;
  }
  out.supervisor_pid = sp.pid;
  detail::ProcInfo info;
  if (detail::read_proc_info(sp.pid, info)) out.supervisor_start = info.start;
  const bool sent = write_all(sp.in.get(), json::serialize(to_json(spec)));
  sp.in.reset();  // EOF: the spec is complete
  const std::string line = sent ? read_line(sp.out.get(), 30s) : std::string();
  boost::system::error_code jec;
  const json::value reply = json::parse(line, jec);
  if (jec || !reply.is_object()) {
    ::kill(sp.pid, SIGKILL);
    if (!sp.reaper_registered) {
      int st;
      while (::waitpid(sp.pid, &st, 0) < 0 && errno == EINTR) {
      }
    }
    ec = std::make_error_code(std::errc::protocol_error);
    error = "the run's supervisor did not answer (see " + paths.log() + ")";
    return out;
  }
  const json::object& r = reply.get_object();
  if (const auto* ok = r.if_contains("ok"); ok == nullptr || !ok->is_bool() || !ok->get_bool()) {
    const auto* err = r.if_contains("errno");
    const auto* text = r.if_contains("error");
    ec = std::error_code(
        err != nullptr && err->is_int64() ? static_cast<int>(err->get_int64()) : EIO,
        std::generic_category());
    error = text != nullptr && text->is_string() ? std::string(text->get_string()) : ec.message();
    if (!sp.reaper_registered) {
      int st;
      while (::waitpid(sp.pid, &st, 0) < 0 && errno == EINTR) {
      }
    }
    return out;
  }
  const auto* cli = r.if_contains("cli_pid");
  out.cli_pid = cli != nullptr && cli->is_int64() ? static_cast<pid_t>(cli->get_int64()) : -1;
  return out;
}

bool supervisor_alive(pid_t pid, unsigned long long start_time) {
  if (pid <= 0) return false;
  detail::ProcInfo info;
  if (!detail::read_proc_info(pid, info)) return false;
  return !info.zombie && info.start == start_time;
}

// ---- link ----

namespace {

using Strand = boost::asio::strand<boost::asio::any_io_executor>;
constexpr std::size_t kReadChunk = 64 * 1024;
// Records handed to the project strand and not applied yet: above this, reading pauses (the
// supervisor's socket fills, and it keeps spooling to disk).
constexpr std::size_t kPauseAbove = 4 * 1024 * 1024;
constexpr std::size_t kResumeAt = 1024 * 1024;

class LinkImpl final : public SupervisorLink {
 public:
  LinkImpl(boost::asio::any_io_executor io, boost::asio::any_io_executor handler_executor,
           std::uint64_t offset, std::size_t max_record, LinkHandlers handlers)
      : strand_(boost::asio::make_strand(io)),
        // The same executor for both (the server passes the project's strand): one strand, and
        // the records of a read are handled in it at once, with no hop to another thread.
        handler_strand_(io == handler_executor ? strand_
                                               : boost::asio::make_strand(handler_executor)),
        socket_(strand_),
        splitter_(offset, max_record),
        handlers_(std::make_shared<LinkHandlers>(std::move(handlers))),
        buf_(kReadChunk) {}

  // Blocking (on the project's strand, which lives on the blocking pool), with every step
  // retried on EINTR and the answer awaited for at most kAttachTimeout.
  std::error_code connect(const RunPaths& paths, std::uint64_t offset) {
    boost::system::error_code ec;
    socket_.open(local(), ec);
    if (ec) return {ec.value(), std::generic_category()};
    const int fd = socket_.native_handle();
    if (auto cec = connect_unix(fd, paths.socket())) return cec;
    const std::string attach =
        json::serialize(json::object{{"op", "attach"}, {"offset", offset}}) + "\n";
    if (!write_all(fd, attach)) return {errno != 0 ? errno : EPIPE, std::generic_category()};
    // The hello line, read byte by byte: what follows belongs to the record stream.
    const std::string hello = read_line(fd, kAttachTimeout, 1);
    if (hello.empty()) return std::make_error_code(std::errc::connection_reset);
    boost::system::error_code jec;
    const json::value value = json::parse(hello, jec);
    if (jec || !value.is_object()) return std::make_error_code(std::errc::protocol_error);
    const json::object& h = value.get_object();
    if (const auto* p = h.if_contains("cli_pid"); p != nullptr && p->is_int64())
      cli_pid_ = static_cast<pid_t>(p->get_int64());
    if (const auto* s = h.if_contains("spool_size"); s != nullptr) {
      if (s->is_uint64()) spool_size_ = s->get_uint64();
      if (s->is_int64()) spool_size_ = static_cast<std::uint64_t>(s->get_int64());
    }
    socket_.non_blocking(true, ec);
    return {};
  }

  void start() {
    boost::asio::post(strand_, [s = self()] { s->read(); });
  }

  pid_t cli_pid() const override { return cli_pid_; }
  std::uint64_t spool_size_at_attach() const override { return spool_size_; }

  void write(std::string data, std::string tag) override {
    json::object op{{"op", "write"}, {"data", std::move(data)}};
    if (!tag.empty()) op["tag"] = std::move(tag);
    send(std::move(op));
  }
  void close_stdin() override { send(json::object{{"op", "close"}, {"tag", "close"}}); }
  void stop(std::string_view reason) override {
    send(json::object{{"op", "stop"}, {"reason", reason}});
  }
  void pause_clocks(bool paused) override {
    send(json::object{{"op", "clocks"}, {"paused", paused}});
  }
  // The last op: the socket closes once it is written (the supervisor then exits).
  void done() override {
    send(json::object{{"op", "done"}});
    boost::asio::post(strand_, [s = self()] {
      s->close_when_written_ = true;
      if (s->out_.empty()) s->close_socket();
    });
  }

  void resume() override {
    boost::asio::post(handler_strand_, [s = self()] {
      {
        std::lock_guard lk(s->mu_);
        s->held_ = false;
      }
      s->deliver();
    });
  }

  void detach() override {
    detached_.store(true);
    boost::asio::post(strand_, [s = self()] { s->close_socket(); });
  }

 private:
  std::shared_ptr<LinkImpl> self() {
    return std::static_pointer_cast<LinkImpl>(shared_from_this());
  }

  void send(json::object op) {
    std::string text = json::serialize(op) + "\n";
    boost::asio::post(strand_, [s = self(), t = std::move(text)]() mutable {
      s->out_.push_back(std::move(t));
      if (s->out_.size() == 1) s->write_next();
    });
  }

  void close_socket() {
    boost::system::error_code ignored;
    socket_.shutdown(local::socket::shutdown_both, ignored);
    socket_.close(ignored);
  }

  void write_next() {
    if (out_.empty()) {
      if (close_when_written_) close_socket();
      return;
    }
    if (!socket_.is_open()) return;
    boost::asio::async_write(socket_, boost::asio::buffer(out_.front()),
                             [s = self()](boost::system::error_code ec, std::size_t) {
                               if (ec) {
                                 s->out_.clear();  // the read side reports the end
                                 return;
                               }
                               s->out_.pop_front();
                               s->write_next();
                             });
  }

  void read() {
    if (!socket_.is_open()) return;
    socket_.async_read_some(
        boost::asio::buffer(buf_),
        [s = self()](boost::system::error_code ec, std::size_t n) { s->on_read(ec, n); });
  }

  void on_read(boost::system::error_code ec, std::size_t n) {
    if (n > 0) {
      splitter_.feed(buf_.data(), n, [this](const SpoolRecord& r) {
        if (r.kind == RecordKind::kExit) exit_seen_ = true;
        Owned owned{r.kind, std::string(r.payload), r.end_offset};
        unhandled_.fetch_add(owned.payload.size() + 1);
        std::lock_guard lk(mu_);
        queue_.push_back(std::move(owned));
      });
      // Inline when the handlers share strand_ (we are in it), else posted to theirs.
      boost::asio::dispatch(handler_strand_, [s = self()] { s->deliver(); });
    }
    if (!ec) {
      if (unhandled_.load() > kPauseAbove) {
        paused_.store(true);
        // The handler may have caught up between the check and the flag: then it saw no flag.
        if (!(unhandled_.load() <= kResumeAt && paused_.exchange(false))) return;
      }
      read();
      return;
    }
    // The end: after the exit record that is expected; before it, the supervisor is gone.
    const bool expected = exit_seen_ || detached_.load();
    boost::asio::post(handler_strand_, [s = self(), expected, ec] {
      {
        std::lock_guard lk(s->mu_);
        s->ended_ = true;
        s->end_expected_ = expected;
        s->end_ec_ = std::error_code(ec.value(), std::generic_category());
      }
      s->deliver();
    });
  }

  // handler strand: hands queued records over, one by one, until the handler holds; reports
  // an unexpected end once everything before it was applied.
  void deliver() {
    for (;;) {
      if (detached_.load()) return;
      Owned r;
      {
        std::lock_guard lk(mu_);
        if (held_) return;
        if (queue_.empty()) {
          if (ended_ && !end_reported_) {
            end_reported_ = true;
            if (!end_expected_ && handlers_->on_disconnect) {
              const auto ec = end_ec_;
              mu_.unlock();
              handlers_->on_disconnect(ec);
              mu_.lock();
            }
          }
          return;
        }
        r = queue_.front();
      }
      if (!handlers_->on_record(SpoolRecord{r.kind, r.payload, r.end_offset})) {
        std::lock_guard lk(mu_);
        held_ = true;
        return;
      }
      {
        std::lock_guard lk(mu_);
        queue_.pop_front();
      }
      const std::size_t size = r.payload.size() + 1;
      const std::size_t left = unhandled_.fetch_sub(size) - size;
      if (left <= kResumeAt && paused_.exchange(false)) {
        boost::asio::post(strand_, [s = self()] { s->read(); });
      }
    }
  }

  struct Owned {
    RecordKind kind = RecordKind::kLine;
    std::string payload;
    std::uint64_t end_offset = 0;
  };

  Strand strand_;
  Strand handler_strand_;
  local::socket socket_;
  RecordSplitter splitter_;
  std::shared_ptr<LinkHandlers> handlers_;
  std::vector<char> buf_;
  std::deque<std::string> out_;
  std::atomic<bool> paused_{false};  // reading stopped until records are applied
  bool exit_seen_ = false;           // strand_
  bool close_when_written_ = false;  // strand_: done() was sent
  std::atomic<bool> detached_{false};
  std::atomic<std::size_t> unhandled_{0};
  std::mutex mu_;
  std::deque<Owned> queue_;
  bool held_ = false;  // the handler could not apply the front record
  bool ended_ = false, end_expected_ = false, end_reported_ = false;
  std::error_code end_ec_;
  pid_t cli_pid_ = -1;
  std::uint64_t spool_size_ = 0;
};

}  // namespace

std::shared_ptr<SupervisorLink> SupervisorLink::attach(
    boost::asio::any_io_executor io, boost::asio::any_io_executor handler_executor,
    const RunPaths& paths, std::uint64_t offset, std::size_t max_record, LinkHandlers handlers,
    std::error_code& ec) {
  auto link = std::make_shared<LinkImpl>(std::move(io), std::move(handler_executor), offset,
                                         max_record, std::move(handlers));
  ec = link->connect(paths, offset);
  if (ec) return nullptr;
  link->start();
  return link;
}

}  // namespace pa::agent
