#include "scenarios.hpp"

#include <unistd.h>

#include <algorithm>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <charconv>
#include <cmath>
#include <filesystem>
#include <map>
#include <memory>
#include <stdexcept>
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

// Starts a coroutine that counts `latch` down when it ends, however it ends.
template <class F>
void spawn(asio::io_context& io, Latch& latch, F&& f) {
  asio::co_spawn(io, std::forward<F>(f), [&latch](std::exception_ptr) { latch.count_down(); });
}

asio::awaitable<std::shared_ptr<Ws>> connect(asio::io_context& io, const Options& o) {
  std::shared_ptr<Ws> ws = make_ws(io, o.target);
  co_await ws->connect();
  co_return ws;
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
asio::awaitable<void> delete_project(asio::io_context& io, const Options& o,
                                     std::shared_ptr<Ws>& ws, const std::string& id) {
  try {
    co_await request(*ws, message("project_delete", id), false);
    co_return;
  } catch (const std::exception&) {
  }
  ws = co_await connect(io, o);
  co_await request(*ws, message("project_delete", id), false);
}

// Opens `n` connections, at most o.concurrency attempts at a time.
struct Opened {
  std::vector<std::shared_ptr<Ws>> conns;
  std::size_t failures = 0;
  std::string first_error;
  double seconds = 0;
};
asio::awaitable<Opened> open_many(asio::io_context& io, const Options& o, std::size_t n) {
  Opened out;
  out.conns.resize(n);
  std::size_t next = 0;
  Latch latch(io, std::min(n, o.concurrency));
  const auto start = Clock::now();
  for (std::size_t w = 0; w < std::min(n, o.concurrency); ++w) {
    spawn(io, latch, [&]() -> asio::awaitable<void> {
      while (next < n) {
        const std::size_t i = next++;
        try {
          out.conns[i] = co_await connect(io, o);
        } catch (const std::exception& e) {
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

// Reads (and drops) everything until the connection ends, answering pings meanwhile.
void hold(asio::io_context& io, std::shared_ptr<Ws> ws, Latch& latch) {
  latch.add();
  spawn(io, latch, [ws]() -> asio::awaitable<void> {
    for (;;) co_await ws->read();
  });
}

asio::awaitable<void> close_all(asio::io_context& io, std::vector<std::shared_ptr<Ws>>& conns,
                                Latch& readers) {
  for (auto& ws : conns) ws->abort();
  co_await readers.wait();
  conns.clear();
  // Let the server notice and free them before the next scenario measures anything.
  co_await sleep_for(std::chrono::milliseconds(500));
  (void)io;
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
asio::awaitable<void> wait_idle(asio::io_context& io, const Options& o, std::shared_ptr<Ws>& ws,
                                const std::string& project) {
  try {
    for (;;) {
      const auto text = co_await ws->read();
      if (peek_head(text).type == "project_state" && is_idle_state(text)) co_return;
    }
  } catch (const std::exception&) {
  }
  ws = co_await connect(io, o);  // the old one was closed: the caller goes on with this one
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
asio::awaitable<Result> run_idle(asio::io_context& io, const Options& o) {
  Result r{"idle", {}};
  auto control = co_await connect(io, o);
  co_await sleep_for(std::chrono::milliseconds(500));
  const auto before = co_await sample_server(*control, o);

  const auto cpu_before = o.server_pid != 0 ? read_proc(o.server_pid) : std::nullopt;
  auto opened = co_await open_many(io, o, o.idle_connections);
  const auto cpu_after = o.server_pid != 0 ? read_proc(o.server_pid) : std::nullopt;
  Latch readers(io, 0);
  for (auto& ws : opened.conns) hold(io, ws, readers);
  const std::size_t ok = opened.conns.size();
  r.fields["tls"] = o.target.tls;
  r.fields["connections"] = ok;
  r.fields["connect_failures"] = opened.failures;
  if (o.target.tls) {
    // With --resume, the control connection's session: every connection here should resume it.
    r.fields["resume"] = o.target.resume;
    r.fields["tls_resumed"] = static_cast<std::size_t>(std::count_if(
        opened.conns.begin(), opened.conns.end(), [](const auto& ws) { return ws->resumed(); }));
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

  co_await close_all(io, opened.conns, readers);
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
struct Subscriber {
  std::uint64_t expected = 0;  // next line index
  std::uint64_t received = 0;
  std::uint64_t out_of_order = 0;
  std::uint64_t bytes = 0;
  bool done = false;
  std::string ended;  // why the connection ended early
};
}  // namespace

asio::awaitable<Result> run_fanout(asio::io_context& io, const Options& o) {
  Result r{"fanout", {}};
  auto driver = co_await connect(io, o);
  const std::string project = co_await create_project(*driver, o, "fanout");

  auto opened = co_await open_many(io, o, o.subscribers);
  if (opened.failures != 0)
    throw std::runtime_error("fanout: connect failed: " + opened.first_error);
  for (auto& ws : opened.conns) {
    co_await request(*ws, join_message(project));
  }

  std::vector<Subscriber> subs(opened.conns.size());
  Samples latency;
  std::int64_t first_emit = INT64_MAX;
  std::int64_t last_recv = 0;
  Latch readers(io, opened.conns.size());
  for (std::size_t i = 0; i < opened.conns.size(); ++i) {
    asio::co_spawn(
        io,
        [&, ws = opened.conns[i], &sub = subs[i]]() -> asio::awaitable<void> {
          for (;;) {
            const auto text = co_await ws->read();
            const auto head = peek_head(text);
            if (head.type == "agent_message") {
              std::uint64_t index = 0;
              std::int64_t emitted = 0;
              if (!parse_flood_line(text, index, emitted)) continue;  // init, result
              const std::int64_t now = now_us_since_epoch();
              latency.add(now - emitted);
              if (index != sub.expected) ++sub.out_of_order;
              sub.expected = index + 1;
              ++sub.received;
              sub.bytes += text.size();
              if (emitted < first_emit) first_emit = emitted;
              if (now > last_recv) last_recv = now;
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
  const auto start = Clock::now();
  co_await request(*driver, execute_message(project, prompt));
  // The driver is subscribed by its execute: drain it until the run is over.
  co_await wait_idle(io, o, driver, project);
  co_await readers.wait();
  const double wall = seconds_since(start);
  const auto cpu_after = o.server_pid != 0 ? read_proc(o.server_pid) : std::nullopt;

  std::uint64_t delivered = 0, bytes = 0, out_of_order = 0, complete = 0;
  std::string ended;
  for (const auto& s : subs) {
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

  co_await delete_project(io, o, driver, project);
  for (auto& ws : opened.conns) ws->abort();
  co_await driver->close();
  co_await sleep_for(std::chrono::milliseconds(300));
  co_return r;
}

// --- rpc --------------------------------------------------------------------------------------
asio::awaitable<Result> run_rpc(asio::io_context& io, const Options& o) {
  Result r{"rpc", {}};
  auto driver = co_await connect(io, o);
  const std::string project = co_await create_project(*driver, o, "rpc");
  // A little history so that get_messages returns entries.
  co_await request(*driver, execute_message(project, "[[fake:flood lines=50 bytes=200]]"));
  co_await wait_idle(io, o, driver, project);

  auto opened = co_await open_many(io, o, o.rpc_connections);
  if (opened.failures != 0) throw std::runtime_error("rpc: connect failed: " + opened.first_error);
  const std::size_t n = opened.conns.size();
  const auto period =
      duration_cast<Clock::duration>(duration<double>(static_cast<double>(n) / o.rpc_rate));
  const auto start = Clock::now() + std::chrono::milliseconds(100);
  const auto end = start + duration_cast<Clock::duration>(duration<double>(o.rpc_seconds));
  std::map<std::string, Samples> rtt;
  Samples all;
  std::size_t sent = 0, errors = 0, late = 0;
  std::string first_error;
  Latch workers(io, n);
  std::vector<json::object> requests;
  requests.push_back(message("project_list"));
  requests.push_back(message("health"));
  requests.push_back(page_message(project, 10, std::nullopt, 20));
  for (std::size_t i = 0; i < n; ++i) {
    spawn(io, workers, [&, i, ws = opened.conns[i]]() -> asio::awaitable<void> {
      auto next = start + period * i / n;  // spread the connections over one period
      asio::steady_timer timer(io);
      for (std::size_t k = i; next < end; ++k, next += period) {
        timer.expires_at(next);
        co_await timer.async_wait(asio::use_awaitable);
        if (Clock::now() - next > std::chrono::milliseconds(1)) ++late;
        const auto& req = requests[k % requests.size()];
        const auto t0 = Clock::now();
        ++sent;
        try {
          co_await request(*ws, req);
        } catch (const std::exception& e) {
          if (errors++ == 0) first_error = e.what();
          co_return;
        }
        const auto us = duration_cast<microseconds>(Clock::now() - t0).count();
        rtt[std::string(req.at("type").as_string())].add(us);
        all.add(us);
      }
    });
  }
  co_await workers.wait();
  const double secs = std::chrono::duration<double>(Clock::now() - start).count();
  r.fields["tls"] = o.target.tls;
  r.fields["connections"] = n;
  r.fields["target_rate"] = o.rpc_rate;
  r.fields["requests"] = all.count();
  r.fields["errors"] = errors;
  if (!first_error.empty()) r.fields["first_error"] = first_error;
  r.fields["late_sends"] = late;
  r.fields["achieved_rate"] = std::round(static_cast<double>(all.count()) / secs);
  r.fields["rtt"] = all.summary_ms();
  for (auto& [type, samples] : rtt) r.fields["rtt_" + type] = samples.summary_ms();

  for (auto& ws : opened.conns) ws->abort();
  co_await delete_project(io, o, driver, project);
  co_await driver->close();
  co_await sleep_for(std::chrono::milliseconds(300));
  co_return r;
}

// --- history ----------------------------------------------------------------------------------
asio::awaitable<Result> run_history(asio::io_context& io, const Options& o) {
  Result r{"history", {}};
  auto driver = co_await connect(io, o);
  const std::string project = co_await create_project(*driver, o, "history");
  const auto build_start = Clock::now();
  const std::string prompt = "[[fake:flood lines=" + std::to_string(o.history_entries) +
                             " bytes=" + std::to_string(o.history_bytes) + "]]";
  co_await request(*driver, execute_message(project, prompt));
  co_await wait_idle(io, o, driver, project);
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
  co_await delete_project(io, o, driver, project);
  co_await driver->close();
  co_return r;
}

// --- churn ------------------------------------------------------------------------------------
asio::awaitable<Result> run_churn(asio::io_context& io, const Options& o) {
  Result r{"churn", {}};
  auto driver = co_await connect(io, o);
  const std::string project = co_await create_project(*driver, o, "churn");
  const auto start = Clock::now();
  const auto end = start + duration_cast<Clock::duration>(duration<double>(o.churn_seconds));
  std::size_t cycles = 0, failures = 0;
  std::string first_error;
  Samples cycle;
  Latch workers(io, o.churn_workers);
  for (std::size_t w = 0; w < o.churn_workers; ++w) {
    spawn(io, workers, [&]() -> asio::awaitable<void> {
      while (Clock::now() < end) {
        const auto t0 = Clock::now();
        try {
          auto ws = co_await connect(io, o);
          co_await request(*ws, join_message(project));
          co_await request(*ws, message("project_leave", project));
          co_await ws->close();
          ++cycles;
          cycle.add(duration_cast<microseconds>(Clock::now() - t0).count());
        } catch (const std::exception& e) {
          if (failures++ == 0) first_error = e.what();
        }
      }
    });
  }
  co_await workers.wait();
  const double secs = seconds_since(start);
  r.fields["tls"] = o.target.tls;
  r.fields["workers"] = o.churn_workers;
  r.fields["cycles"] = cycles;
  r.fields["failures"] = failures;
  if (!first_error.empty()) r.fields["first_error"] = first_error;
  r.fields["cycles_per_s"] = std::round(static_cast<double>(cycles) / secs);
  r.fields["cycle"] = cycle.summary_ms();
  co_await delete_project(io, o, driver, project);
  co_await driver->close();
  co_await sleep_for(std::chrono::milliseconds(300));
  co_return r;
}

}  // namespace pa::bench
