#include "scenarios.hpp"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <charconv>
#include <cmath>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <unordered_map>
#include <vector>

namespace pa::bench {

namespace json = boost::json;
namespace fs = std::filesystem;
using std::chrono::duration;
using std::chrono::duration_cast;
using std::chrono::microseconds;
using std::chrono::seconds;

namespace {

// Message builders. GCC 12 cannot keep a braced initializer list alive across a co_await ("array
// used as initializer"), so coroutines build their requests through these plain functions.
json::object message(std::string_view type) {
  json::object o;
  o["type"] = type;
  return o;
}
json::object message(std::string_view type, const std::string& project) {
  auto o = message(type);
  o["project_id"] = project;
  return o;
}
json::object join_message(const std::string& project) {
  auto o = message("project_join");
  json::object data;
  data["project_id"] = project;
  o["data"] = std::move(data);
  return o;
}
json::object execute_message(const std::string& project, const std::string& prompt) {
  auto o = message("execute", project);
  json::object data;
  data["prompt"] = prompt;
  o["data"] = std::move(data);
  return o;
}
json::object create_message(const std::string& path) {
  auto o = message("project_create");
  json::object data;
  data["path"] = path;
  o["data"] = std::move(data);
  return o;
}
json::object page_message(const std::string& project, std::optional<std::uint64_t> after_seq,
                          std::optional<std::string> since, std::uint64_t limit) {
  auto o = message("get_messages", project);
  json::object data;
  if (after_seq) data["after_seq"] = *after_seq;
  if (since) data["since"] = *since;
  data["limit"] = limit;
  o["data"] = std::move(data);
  return o;
}

// v["a"]["b"]... of a reply (objects only).
const json::value& at(const json::value& v, std::string_view key) {
  return v.as_object().at(key);
}
template <class... Keys>
const json::value& at(const json::value& v, std::string_view key, Keys... rest) {
  return at(at(v, key), rest...);
}

double round3(double v) {
  return std::round(v * 1000.0) / 1000.0;
}

// Starts a coroutine on `ex` (an io_context or a connection's executor) that counts `latch`
// down when it ends, however it ends.
template <class Ex, class F>
void spawn(Ex&& ex, Latch& latch, F&& f) {
  asio::co_spawn(std::forward<Ex>(ex), std::forward<F>(f),
                 [&latch](std::exception_ptr) { latch.count_down(); });
}

// Runs the coroutine f() on the connection's thread and resumes the caller on its own, with
// f's result or exception.
// Pass a named function object, not a temporary (GCC 12, see run_fanout).
template <class F>
auto on(const std::shared_ptr<Ws>& ws, F&& f) {
  return asio::co_spawn(ws->executor(), std::forward<F>(f), asio::use_awaitable);
}

// A connection to `target` that belongs to `io` (connected on io's thread).
asio::awaitable<std::shared_ptr<Ws>> connect(asio::io_context& io, const Target& target) {
  co_return co_await asio::co_spawn(
      io,
      [&io, &target]() -> asio::awaitable<std::shared_ptr<Ws>> {
        std::shared_ptr<Ws> ws = make_ws(io, target);
        co_await ws->connect();
        co_return ws;
      },
      asio::use_awaitable);
}
asio::awaitable<std::shared_ptr<Ws>> connect(asio::io_context& io, const Options& o) {
  co_return co_await connect(io, o.target);
}

// Drops every connection, each on its own thread.
void abort_all(const std::vector<std::shared_ptr<Ws>>& conns) {
  for (const auto& ws : conns) asio::post(ws->executor(), [ws] { ws->abort(); });
}

// A project in a fresh subdirectory of --project-dir; deleted (history included) at the end.
asio::awaitable<std::string> create_project(Ws& ws, const Options& o, const std::string& name) {
  if (o.project_dir.empty()) throw std::runtime_error("this scenario needs --project-dir");
  static int counter = 0;
  const fs::path path =
      fs::path(o.project_dir) /
      ("bench-" + name + "-" + std::to_string(::getpid()) + "-" + std::to_string(++counter));
  fs::create_directories(path);
  auto reply = co_await request(ws, create_message(fs::canonical(path).string()));
  co_return std::string(at(reply, "data", "id").as_string());
}

// Deletes the project (its history too). The driver may have been closed meanwhile: a client
// without a read pending does not answer the server's keep-alive pings, and the server then
// closes it (timeouts.ping_interval + pong_timeout). Then a new connection does it.
asio::awaitable<void> delete_project(Pool& pool, const Options& o, std::shared_ptr<Ws>& ws,
                                     const std::string& id) {
  try {
    co_await request(*ws, message("project_delete", id), false);
    co_return;
  } catch (const std::exception&) {
  }
  ws = co_await connect(pool.main(), o);
  co_await request(*ws, message("project_delete", id), false);
}

// Opens `n` connections to `target`, at most o.concurrency attempts at a time, spread over the
// pool's threads: attempt worker w runs on thread w % threads and its connections belong to it.
struct Opened {
  std::vector<std::shared_ptr<Ws>> conns;
  std::size_t failures = 0;
  std::string first_error;
  double seconds = 0;
};
asio::awaitable<Opened> open_many(Pool& pool, const Options& o, std::size_t n,
                                  const Target& target) {
  Opened out;
  out.conns.resize(n);
  std::atomic<std::size_t> next{0};
  std::mutex failure_mutex;  // failures and first_error; not on the hot path
  const std::size_t workers = std::min(n, o.concurrency);
  Latch latch(pool.main(), workers);
  const auto start = Clock::now();
  for (std::size_t w = 0; w < workers; ++w) {
    asio::io_context* io = &pool.at(w);
    spawn(*io, latch, [&, io]() -> asio::awaitable<void> {
      for (std::size_t i = next++; i < n; i = next++) {
        try {
          out.conns[i] = co_await connect(*io, target);
        } catch (const std::exception& e) {
          std::lock_guard lock(failure_mutex);
          if (out.failures++ == 0) out.first_error = e.what();
        }
      }
    });
  }
  co_await latch.wait();
  out.seconds = seconds_since(start);
  std::erase(out.conns, nullptr);
  co_return out;
}

// Reads (and drops) everything until the connection ends, answering pings meanwhile. On the
// connection's thread; call on the latch's.
void hold(std::shared_ptr<Ws> ws, Latch& latch) {
  latch.add();
  spawn(ws->executor(), latch, [ws]() -> asio::awaitable<void> {
    for (;;) co_await ws->read();
  });
}

asio::awaitable<void> close_all(std::vector<std::shared_ptr<Ws>>& conns, Latch& readers) {
  abort_all(conns);
  co_await readers.wait();
  conns.clear();
  // Let the server notice and free them before the next scenario measures anything.
  co_await sleep_for(std::chrono::milliseconds(500));
}

// The server's RSS and CPU ticks: /proc when --server-pid is given, else `health`.
struct ServerSample {
  std::uint64_t rss = 0;
  std::optional<ProcSample> proc;
  double health_cpu = 0;  // cpu_percent since the previous health request
};
asio::awaitable<ServerSample> sample_server(Ws& control, const Options& o) {
  ServerSample s;
  if (o.server_pid != 0) {
    s.proc = read_proc(o.server_pid);
    if (!s.proc) throw std::runtime_error("cannot read /proc/" + std::to_string(o.server_pid));
    s.rss = s.proc->rss_bytes;
    co_return s;
  }
  auto h = co_await request(control, message("health"));
  const auto& res = at(h, "data", "resources");
  s.rss = static_cast<std::uint64_t>(at(res, "memory_mb").to_number<double>() * 1024 * 1024);
  s.health_cpu = at(res, "cpu_percent").to_number<double>();
  co_return s;
}

// The --watch-pid processes' CPU ticks, by name. Throws when one cannot be read (it is gone, or
// the pid was wrong): a figure silently missing would read as zero.
std::map<std::string, ProcSample> sample_watched(const Options& o) {
  std::map<std::string, ProcSample> out;
  for (const auto& [name, pid] : o.watch_pids) {
    auto sample = read_proc(pid);
    if (!sample)
      throw std::runtime_error("cannot read /proc/" + std::to_string(pid) + " (" + name + ")");
    out.emplace(name, *sample);
  }
  return out;
}
// CPU seconds (utime + stime) of each watched process between two samples.
json::object watched_cpu_seconds(const std::map<std::string, ProcSample>& before,
                                 const std::map<std::string, ProcSample>& after) {
  json::object out;
  for (const auto& [name, a] : before) out[name] = round3(server_cpu_seconds(a, after.at(name)));
  return out;
}

// "#<i> t=<us> ..." inside an agent_message: returns false when the message has no such text.
bool parse_flood_line(std::string_view text, std::uint64_t& index, std::int64_t& emitted_us) {
  constexpr std::string_view kKey = "\"text\":\"#";
  const auto pos = text.find(kKey);
  if (pos == std::string_view::npos) return false;
  const char* p = text.data() + pos + kKey.size();
  const char* end = text.data() + text.size();
  auto r = std::from_chars(p, end, index);
  if (r.ec != std::errc() || end - r.ptr < 4 || std::string_view(r.ptr, 3) != " t=") return false;
  return std::from_chars(r.ptr + 3, end, emitted_us).ec == std::errc();
}

bool is_idle_state(std::string_view text) {
  return text.find("\"state\":\"IDLE\"") != std::string_view::npos;
}

// Waits until the run of `project` is over. `ws` is subscribed (its execute did that) and is
// drained; if the server closes it (a slow consumer, 1013) a new connection polls project_list.
// `ws` belongs to the caller's thread, pool.main().
asio::awaitable<void> wait_idle(Pool& pool, const Options& o, std::shared_ptr<Ws>& ws,
                                const std::string& project) {
  try {
    for (;;) {
      const auto text = co_await ws->read();
      if (peek_head(text).type == "project_state" && is_idle_state(text)) co_return;
    }
  } catch (const std::exception&) {
  }
  ws = co_await connect(pool.main(), o);  // the old one was closed: the caller goes on with this
  for (;;) {
    const auto list = co_await request(*ws, message("project_list"));
    for (const auto& p : at(list, "data", "projects").as_array()) {
      if (p.as_object().at("id").as_string() == project &&
          p.as_object().at("state").as_string() == "IDLE") {
        co_return;
      }
    }
    co_await sleep_for(std::chrono::milliseconds(100));
  }
}

}  // namespace

// --- idle -------------------------------------------------------------------------------------
asio::awaitable<Result> run_idle(Pool& pool, const Options& o) {
  Result r{"idle", {}};
  auto& io = pool.main();
  auto control = co_await connect(io, o);
  co_await sleep_for(std::chrono::milliseconds(500));
  const auto before = co_await sample_server(*control, o);

  const auto cpu_before = o.server_pid != 0 ? read_proc(o.server_pid) : std::nullopt;
  auto opened = co_await open_many(pool, o, o.idle_connections, o.target);
  const auto cpu_after = o.server_pid != 0 ? read_proc(o.server_pid) : std::nullopt;
  // Before any read is pending on another thread.
  const auto resumed = static_cast<std::size_t>(std::count_if(
      opened.conns.begin(), opened.conns.end(), [](const auto& ws) { return ws->resumed(); }));
  Latch readers(io, 0);
  for (auto& ws : opened.conns) hold(ws, readers);
  const std::size_t ok = opened.conns.size();
  r.fields["tls"] = o.target.tls;
  r.fields["connections"] = ok;
  r.fields["connect_failures"] = opened.failures;
  if (o.target.tls) {
    // With --resume, the control connection's session: every connection here should resume it.
    r.fields["resume"] = o.target.resume;
    r.fields["tls_resumed"] = resumed;
  }
  if (!opened.first_error.empty()) r.fields["first_error"] = opened.first_error;
  r.fields["connect_seconds"] = round3(opened.seconds);
  r.fields["connects_per_s"] = round3(static_cast<double>(ok) / opened.seconds);
  if (cpu_before && cpu_after && ok > 0) {
    // Server CPU per accepted connection: what the connect rate would be per server core if
    // the machine were not shared with the load generator (and other jobs).
    r.fields["server_cpu_ms_per_connect"] =
        round3(server_cpu_seconds(*cpu_before, *cpu_after) * 1000.0 / static_cast<double>(ok));
  }

  co_await sleep_for(seconds(2));  // let allocations settle
  const auto after = co_await sample_server(*control, o);
  r.fields["server_rss_before_mib"] = round3(static_cast<double>(before.rss) / 1048576.0);
  r.fields["server_rss_after_mib"] = round3(static_cast<double>(after.rss) / 1048576.0);
  if (ok > 0) {
    const double growth = static_cast<double>(after.rss) - static_cast<double>(before.rss);
    r.fields["rss_per_conn_kib"] = round3(growth / static_cast<double>(ok) / 1024.0);
  }
  r.fields["rss_source"] = o.server_pid != 0 ? "proc" : "health";

  // CPU while every connection sits idle (the control connection too).
  const auto a = co_await sample_server(*control, o);
  co_await sleep_for(duration_cast<Clock::duration>(duration<double>(o.idle_seconds)));
  const auto b = co_await sample_server(*control, o);
  r.fields["idle_seconds"] = o.idle_seconds;
  r.fields["idle_cpu_percent"] =
      o.server_pid != 0 ? cpu_percent(*a.proc, *b.proc) : round3(b.health_cpu);

  co_await close_all(opened.conns, readers);
  co_await control->close();
  // Wait until the server has let them all go (closing thousands of TLS connections takes it a
  // while), so that the next scenario does not measure that.
  auto poll = co_await connect(io, o);
  for (int i = 0; i < 1200; ++i) {
    const auto h = co_await request(*poll, message("health"));
    if (at(h, "data", "connections", "active").to_number<std::uint64_t>() <= 1) break;
    co_await sleep_for(std::chrono::milliseconds(100));
  }
  co_await poll->close();
  co_return r;
}

// --- fanout -----------------------------------------------------------------------------------
namespace {
// One subscriber's counters and latencies, touched only on its connection's thread until its
// reader has ended; merged afterwards.
struct Subscriber {
  std::uint64_t expected = 0;  // next line index
  std::uint64_t received = 0;
  std::uint64_t out_of_order = 0;
  std::uint64_t bytes = 0;
  bool done = false;
  std::string ended;  // why the connection ended early
  Samples latency;
  std::int64_t first_emit = INT64_MAX;
  std::int64_t last_recv = 0;
};
}  // namespace

asio::awaitable<Result> run_fanout(Pool& pool, const Options& o) {
  Result r{"fanout", {}};
  auto& io = pool.main();
  auto driver = co_await connect(io, o);
  const std::string project = co_await create_project(*driver, o, "fanout");

  const Target& subscriber_target = o.subscriber_target ? *o.subscriber_target : o.target;
  auto opened = co_await open_many(pool, o, o.subscribers, subscriber_target);
  if (opened.failures != 0)
    throw std::runtime_error("fanout: connect failed: " + opened.first_error);
  for (auto& ws : opened.conns) {
    // A named lambda: GCC 12 destroys a temporary one (its shared_ptr) twice across co_await.
    auto join = [ws, &project]() -> asio::awaitable<void> {
      co_await request(*ws, join_message(project));
    };
    co_await on(ws, join);
  }

  std::vector<Subscriber> subs(opened.conns.size());
  Latch readers(io, opened.conns.size());
  for (std::size_t i = 0; i < opened.conns.size(); ++i) {
    asio::co_spawn(
        opened.conns[i]->executor(),
        [ws = opened.conns[i], &sub = subs[i]]() -> asio::awaitable<void> {
          for (;;) {
            const auto text = co_await ws->read();
            const auto head = peek_head(text);
            if (head.type == "agent_message") {
              std::uint64_t index = 0;
              std::int64_t emitted = 0;
              if (!parse_flood_line(text, index, emitted)) continue;  // init, result
              const std::int64_t now = now_us_since_epoch();
              sub.latency.add(now - emitted);
              if (index != sub.expected) ++sub.out_of_order;
              sub.expected = index + 1;
              ++sub.received;
              sub.bytes += text.size();
              if (emitted < sub.first_emit) sub.first_emit = emitted;
              if (now > sub.last_recv) sub.last_recv = now;
            } else if (head.type == "project_state" && sub.received > 0 && is_idle_state(text)) {
              sub.done = true;
              co_return;
            } else if (head.type == "error") {
              sub.ended = std::string(text.substr(0, 300));
            }
          }
        },
        [&readers, &sub = subs[i]](std::exception_ptr e) {
          if (e && !sub.done) {
            try {
              std::rethrow_exception(e);
            } catch (const std::exception& ex) {
              sub.ended = ex.what();
            }
          }
          readers.count_down();
        });
  }

  std::string prompt =
      "[[fake:flood lines=" + std::to_string(o.lines) + " bytes=" + std::to_string(o.line_bytes);
  if (o.line_rate > 0) prompt += " rate=" + std::to_string(o.line_rate);
  prompt += "]]";
  const auto cpu_before = o.server_pid != 0 ? read_proc(o.server_pid) : std::nullopt;
  const auto watched_before = sample_watched(o);
  const auto start = Clock::now();
  co_await request(*driver, execute_message(project, prompt));
  // The driver is subscribed by its execute: drain it until the run is over.
  co_await wait_idle(pool, o, driver, project);
  co_await readers.wait();
  const double wall = seconds_since(start);
  const auto cpu_after = o.server_pid != 0 ? read_proc(o.server_pid) : std::nullopt;
  const auto watched_after = sample_watched(o);

  // Every reader has ended (the latch's posts order their writes before this).
  std::uint64_t delivered = 0, bytes = 0, out_of_order = 0, complete = 0;
  std::string ended;
  Samples latency;
  std::int64_t first_emit = INT64_MAX;
  std::int64_t last_recv = 0;
  for (const auto& s : subs) {
    latency.merge(s.latency);
    first_emit = std::min(first_emit, s.first_emit);
    last_recv = std::max(last_recv, s.last_recv);
    delivered += s.received;
    bytes += s.bytes;
    out_of_order += s.out_of_order;
    if (s.done && s.received == o.lines && s.out_of_order == 0) ++complete;
    if (!s.ended.empty() && ended.empty()) ended = s.ended;
  }
  const std::uint64_t expected = static_cast<std::uint64_t>(o.lines) * subs.size();
  const double span =
      last_recv > first_emit ? static_cast<double>(last_recv - first_emit) / 1e6 : 0;
  r.fields["tls"] = o.target.tls;
  r.fields["driver_port"] = o.target.port;
  r.fields["subscriber_port"] = subscriber_target.port;
  r.fields["subscribers"] = subs.size();
  r.fields["lines"] = o.lines;
  r.fields["line_bytes"] = o.line_bytes;
  r.fields["line_rate"] = o.line_rate;
  r.fields["delivered"] = delivered;
  r.fields["lost"] = expected - std::min(expected, delivered);
  r.fields["reordered"] = out_of_order;
  r.fields["complete_subscribers"] = complete;
  r.fields["in_order_and_complete"] = delivered == expected && out_of_order == 0;
  if (!ended.empty()) r.fields["first_problem"] = ended;
  r.fields["span_seconds"] = round3(span);
  r.fields["wall_seconds"] = round3(wall);
  r.fields["deliveries_per_s"] = span > 0 ? std::round(static_cast<double>(delivered) / span) : 0;
  r.fields["mib_per_s"] = span > 0 ? round3(static_cast<double>(bytes) / span / 1048576.0) : 0;
  r.fields["latency"] = latency.summary_ms();
  if (cpu_before && cpu_after && delivered > 0) {
    // Server CPU (all threads, the fake CLI excluded) per delivered message.
    const double cpu = server_cpu_seconds(*cpu_before, *cpu_after);
    r.fields["server_cpu_seconds"] = round3(cpu);
    r.fields["server_cpu_us_per_delivery"] = round3(cpu * 1e6 / static_cast<double>(delivered));
  }
  // From the execute to the last subscriber's IDLE, like server_cpu_seconds.
  if (!o.watch_pids.empty())
    r.fields["cpu_seconds"] = watched_cpu_seconds(watched_before, watched_after);

  if (o.keep_project) {
    r.fields["project_id"] = project;
  } else {
    co_await delete_project(pool, o, driver, project);
  }
  abort_all(opened.conns);
  co_await driver->close();
  co_await sleep_for(std::chrono::milliseconds(300));
  co_return r;
}

// --- rpc --------------------------------------------------------------------------------------
// Open loop, on schedule: request g (0, 1, 2, ... over all connections) is due at
// start + g / rate and goes out on connection g % n, whatever happened to the earlier ones (a
// connection's writer sends while its reader waits for replies, matched by request_id). Its
// round trip is measured from the scheduled time, so a request the generator sent late, or one
// that queued behind a slow reply, shows up as latency (no coordinated omission); how late each
// send left is reported on its own (send_lag, late_sends, late_send_share).
namespace {

// One connection's figures, touched only on its thread until its coroutine has ended.
struct RpcConn {
  std::map<std::string, Samples> rtt;  // by request type
  Samples all;                         // from the scheduled time
  Samples from_send;                   // from the actual send
  Samples send_lag;                    // actual send - scheduled time
  std::size_t sent = 0;
  std::size_t late = 0;
  std::size_t errors = 0;
  std::size_t unanswered = 0;
  std::string first_error;
  Clock::time_point last_reply{};

  void fail(std::string what) {
    if (errors++ == 0) first_error = std::move(what);
  }
};

struct Pending {
  Clock::time_point scheduled;
  Clock::time_point sent;
  std::size_t type;
};

// Requests without their request_id, serialized up to (not including) the closing brace.
struct RpcRequest {
  std::string type;
  std::string head;
};

asio::awaitable<void> rpc_connection(std::shared_ptr<Ws> ws, RpcConn& st,
                                     const std::vector<RpcRequest>& requests, std::size_t index,
                                     std::size_t n, double rate, Clock::time_point start,
                                     Clock::time_point end) {
  auto ex = co_await asio::this_coro::executor;
  std::unordered_map<std::string, Pending> pending;
  bool writer_done = false;
  bool reader_done = false;
  asio::steady_timer wake(ex);  // the writer's schedule, then the drain wait

  asio::co_spawn(
      ex,
      [&]() -> asio::awaitable<void> {
        for (;;) {
          const auto text = co_await ws->read();
          const auto head = peek_head(text);
          if (head.request_id.empty()) continue;  // a broadcast
          const auto it = pending.find(std::string(head.request_id));
          if (it == pending.end()) continue;
          const auto now = Clock::now();
          const Pending p = it->second;
          pending.erase(it);
          st.last_reply = now;
          if (head.type == "error") {
            st.fail("error reply to " + requests[p.type].type + ": " +
                    std::string(text.substr(0, 300)));
          } else {
            const auto us = duration_cast<microseconds>(now - p.scheduled).count();
            st.all.add(us);
            st.rtt[requests[p.type].type].add(us);
            st.from_send.add(duration_cast<microseconds>(now - p.sent).count());
          }
          if (writer_done && pending.empty()) wake.cancel();
        }
      },
      [&](std::exception_ptr e) {
        // Aborted by us at the end, or the connection failed (then the writer fails too).
        if (e && !writer_done) {
          try {
            std::rethrow_exception(e);
          } catch (const std::exception& err) {
            st.fail(std::string("connection ended: ") + err.what());
          }
        }
        reader_done = true;
        wake.cancel();
      });

  const auto period = duration<double>(1.0 / rate);
  for (std::size_t g = index;; g += n) {
    const auto scheduled = start + duration_cast<Clock::duration>(period * static_cast<double>(g));
    if (scheduled >= end || reader_done) break;
    wake.expires_at(scheduled);
    auto [ec] = co_await wake.async_wait(asio::as_tuple(asio::use_awaitable));
    (void)ec;
    if (reader_done) break;
    const auto now = Clock::now();
    const auto lag = now - scheduled;
    st.send_lag.add(duration_cast<microseconds>(lag).count());
    if (lag > kLateSendThreshold) ++st.late;
    const std::size_t type = g % requests.size();
    std::string id = "q" + std::to_string(g);
    std::string text = requests[type].head + ",\"request_id\":\"" + id + "\"}";
    pending.emplace(std::move(id), Pending{scheduled, now, type});
    ++st.sent;
    try {
      co_await ws->write(std::move(text));
    } catch (const std::exception& e) {
      st.fail(std::string("write: ") + e.what());
      break;
    }
  }
  writer_done = true;

  // The replies still on their way, then stop the reader.
  const auto deadline = Clock::now() + kRpcDrainTimeout;
  while (!reader_done && !pending.empty() && Clock::now() < deadline) {
    wake.expires_at(deadline);
    auto [ec] = co_await wake.async_wait(asio::as_tuple(asio::use_awaitable));
    (void)ec;
  }
  st.unanswered = pending.size();
  ws->abort();
  while (!reader_done) {
    wake.expires_at(Clock::time_point::max());
    auto [ec] = co_await wake.async_wait(asio::as_tuple(asio::use_awaitable));
    (void)ec;
  }
}

}  // namespace

asio::awaitable<Result> run_rpc(Pool& pool, const Options& o) {
  Result r{"rpc", {}};
  auto& io = pool.main();
  auto driver = co_await connect(io, o);
  const std::string project = co_await create_project(*driver, o, "rpc");
  // A little history so that get_messages returns entries.
  co_await request(*driver, execute_message(project, "[[fake:flood lines=50 bytes=200]]"));
  co_await wait_idle(pool, o, driver, project);

  auto opened = co_await open_many(pool, o, o.rpc_connections, o.target);
  if (opened.failures != 0) throw std::runtime_error("rpc: connect failed: " + opened.first_error);
  const std::size_t n = opened.conns.size();
  std::vector<json::object> kinds;  // no braced list across co_await (GCC 12, see message())
  kinds.push_back(message("project_list"));
  kinds.push_back(message("health"));
  kinds.push_back(page_message(project, 10, std::nullopt, 20));
  std::vector<RpcRequest> requests;
  for (const auto& req : kinds) {
    auto text = json::serialize(req);
    text.pop_back();  // '}': the request_id goes there
    requests.push_back({std::string(req.at("type").as_string()), std::move(text)});
  }
  std::vector<RpcConn> conns(n);
  // Time to start n coroutines on their threads before the first send is due.
  const auto start = Clock::now() + std::chrono::milliseconds(200);
  const auto end = start + duration_cast<Clock::duration>(duration<double>(o.rpc_seconds));
  Latch workers(io, n);
  const auto cpu_before = o.server_pid != 0 ? read_proc(o.server_pid) : std::nullopt;
  for (std::size_t i = 0; i < n; ++i) {
    spawn(opened.conns[i]->executor(), workers,
          [ws = opened.conns[i], &st = conns[i], &requests, i, n, rate = o.rpc_rate, start,
           end]() -> asio::awaitable<void> {
            co_await rpc_connection(ws, st, requests, i, n, rate, start, end);
          });
  }
  co_await workers.wait();
  const auto cpu_after = o.server_pid != 0 ? read_proc(o.server_pid) : std::nullopt;

  // Every connection's coroutine has ended: merge.
  std::map<std::string, Samples> rtt;
  Samples all, from_send, send_lag;
  std::size_t sent = 0, late = 0, errors = 0, unanswered = 0;
  std::string first_error;
  Clock::time_point last_reply = start;
  for (auto& c : conns) {
    for (auto& [type, samples] : c.rtt) rtt[type].merge(samples);
    all.merge(c.all);
    from_send.merge(c.from_send);
    send_lag.merge(c.send_lag);
    sent += c.sent;
    late += c.late;
    errors += c.errors;
    unanswered += c.unanswered;
    if (first_error.empty()) first_error = c.first_error;
    last_reply = std::max(last_reply, c.last_reply);
  }
  const double secs = std::chrono::duration<double>(last_reply - start).count();
  r.fields["tls"] = o.target.tls;
  r.fields["connections"] = n;
  r.fields["target_rate"] = o.rpc_rate;
  r.fields["sent"] = sent;
  r.fields["requests"] = all.count();
  r.fields["errors"] = errors;
  r.fields["unanswered"] = unanswered;
  if (!first_error.empty()) r.fields["first_error"] = first_error;
  r.fields["late_sends"] = late;
  r.fields["late_send_threshold_ms"] =
      std::chrono::duration<double, std::milli>(kLateSendThreshold).count();
  r.fields["late_send_share"] =
      sent > 0 ? std::round(static_cast<double>(late) / static_cast<double>(sent) * 1e4) / 1e4 : 0;
  r.fields["send_lag"] = send_lag.summary_ms();
  r.fields["achieved_rate"] = secs > 0 ? std::round(static_cast<double>(all.count()) / secs) : 0;
  r.fields["rtt"] = all.summary_ms();  // from the scheduled send time
  r.fields["rtt_from_send"] = from_send.summary_ms();
  for (auto& [type, samples] : rtt) r.fields["rtt_" + type] = samples.summary_ms();
  if (cpu_before && cpu_after) {
    // Over the whole run (sends and the drain): near 200 on two cores means the server was
    // saturated and its queueing, not the generator, is the round trip.
    r.fields["server_cpu_percent"] = cpu_percent(*cpu_before, *cpu_after);
  }

  abort_all(opened.conns);
  co_await delete_project(pool, o, driver, project);
  co_await driver->close();
  co_await sleep_for(std::chrono::milliseconds(300));
  co_return r;
}

// --- history ----------------------------------------------------------------------------------
asio::awaitable<Result> run_history(Pool& pool, const Options& o) {
  Result r{"history", {}};
  auto driver = co_await connect(pool.main(), o);
  const std::string project = co_await create_project(*driver, o, "history");
  const auto build_start = Clock::now();
  const std::string prompt = "[[fake:flood lines=" + std::to_string(o.history_entries) +
                             " bytes=" + std::to_string(o.history_bytes) + "]]";
  co_await request(*driver, execute_message(project, prompt));
  co_await wait_idle(pool, o, driver, project);
  const double build_secs = seconds_since(build_start);

  auto page = [&](std::optional<std::uint64_t> after, std::optional<std::string> since,
                  std::uint64_t limit) -> asio::awaitable<json::value> {
    co_return co_await request(*driver, page_message(project, after, std::move(since), limit));
  };
  const auto probe = co_await page(std::nullopt, std::nullopt, 1);
  const std::uint64_t last = at(probe, "data", "last_seq").to_number<std::uint64_t>();
  r.fields["tls"] = o.target.tls;
  r.fields["entries"] = last;
  r.fields["build_seconds"] = round3(build_secs);
  r.fields["build_entries_per_s"] = std::round(static_cast<double>(last) / build_secs);

  const std::uint64_t page_size = 1000;
  const std::array<std::pair<const char*, std::uint64_t>, 3> points = {
      std::pair{"start", std::uint64_t{0}}, std::pair{"middle", last / 2},
      std::pair{"end", last > page_size ? last - page_size : 0}};
  for (const auto& [name, after] : points) {
    // The timestamp of the entry at that point, for the `since` variant.
    const auto at_entry = co_await page(after, std::nullopt, 1);
    const std::string since(
        at(at_entry, "data", "messages").as_array().at(0).as_object().at("timestamp").as_string());
    Samples by_seq, by_since;
    std::size_t returned = 0;
    for (std::size_t k = 0; k < o.history_repeats; ++k) {
      auto t0 = Clock::now();
      auto reply = co_await page(after, std::nullopt, page_size);
      by_seq.add(duration_cast<microseconds>(Clock::now() - t0).count());
      returned = at(reply, "data", "messages").as_array().size();
      t0 = Clock::now();
      co_await page(std::nullopt, since, page_size);
      by_since.add(duration_cast<microseconds>(Clock::now() - t0).count());
    }
    r.fields[std::string("after_seq_") + name] = by_seq.summary_ms();
    r.fields[std::string("since_") + name] = by_since.summary_ms();
    r.fields[std::string("page_entries_") + name] = returned;
  }
  co_await delete_project(pool, o, driver, project);
  co_await driver->close();
  co_return r;
}

// --- churn ------------------------------------------------------------------------------------
namespace {
// One churn worker's figures, touched only on its thread until it has ended.
struct ChurnWorker {
  std::size_t cycles = 0;
  std::size_t failures = 0;
  std::string first_error;
  Samples cycle;
};
}  // namespace

asio::awaitable<Result> run_churn(Pool& pool, const Options& o) {
  Result r{"churn", {}};
  auto driver = co_await connect(pool.main(), o);
  const std::string project = co_await create_project(*driver, o, "churn");
  const auto start = Clock::now();
  const auto end = start + duration_cast<Clock::duration>(duration<double>(o.churn_seconds));
  std::vector<ChurnWorker> workers(o.churn_workers);
  Latch done(pool.main(), o.churn_workers);
  for (std::size_t w = 0; w < o.churn_workers; ++w) {
    // Worker w runs on thread w % threads, and so do the connections it opens.
    asio::io_context* io = &pool.at(w);
    spawn(*io, done, [&, io, &me = workers[w]]() -> asio::awaitable<void> {
      while (Clock::now() < end) {
        const auto t0 = Clock::now();
        try {
          auto ws = co_await connect(*io, o);
          co_await request(*ws, join_message(project));
          co_await request(*ws, message("project_leave", project));
          co_await ws->close();
          ++me.cycles;
          me.cycle.add(duration_cast<microseconds>(Clock::now() - t0).count());
        } catch (const std::exception& e) {
          if (me.failures++ == 0) me.first_error = e.what();
        }
      }
    });
  }
  co_await done.wait();
  const double secs = seconds_since(start);
  std::size_t cycles = 0, failures = 0;
  std::string first_error;
  Samples cycle;
  for (const auto& w : workers) {
    cycles += w.cycles;
    failures += w.failures;
    if (first_error.empty()) first_error = w.first_error;
    cycle.merge(w.cycle);
  }
  r.fields["tls"] = o.target.tls;
  r.fields["workers"] = o.churn_workers;
  r.fields["cycles"] = cycles;
  r.fields["failures"] = failures;
  if (!first_error.empty()) r.fields["first_error"] = first_error;
  r.fields["cycles_per_s"] = std::round(static_cast<double>(cycles) / secs);
  r.fields["cycle"] = cycle.summary_ms();
  co_await delete_project(pool, o, driver, project);
  co_await driver->close();
  co_await sleep_for(std::chrono::milliseconds(300));
  co_return r;
}

}  // namespace pa::bench
