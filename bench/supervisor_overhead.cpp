// What the per-run supervisor adds (issue 14): per-line latency and CPU of the fake CLI's flood
// read DIRECT (agent::ChildProcess, as the server used to), through a bare RELAY process (the
// floor of any process hop) and SUPERVISED (launch_supervisor + SupervisorLink: CLI -> pipe ->
// supervisor -> spool write -> unix socket -> server), and the
// time to re-attach links to N live supervisors and receive each one's backlog.
//
// The benchmark process plays the server. Latency = receive time - the `t=` stamp the fake
// prints into each flood line (both CLOCK_REALTIME). Bounded: every wait has a deadline, every
// process it starts is stopped before it exits. docs/benchmarks.md ("Supervisor overhead").
//
//   supervisor_overhead_bench [--lines N] [--bytes B] [--rate R] [--reattach 10,100]
//                             [--server PATH] [--fake PATH] [--fsync-ms MS] [--skip-flood]
#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "agent/child_process.hpp"
#include "agent/run_options.hpp"
#include "agent/supervisor.hpp"

namespace {

namespace fs = std::filesystem;
namespace agent = pa::agent;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

std::int64_t now_us() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1000000 + ts.tv_nsec / 1000;
}

double cpu_s(const rusage& r) {
  return static_cast<double>(r.ru_utime.tv_sec + r.ru_stime.tv_sec) +
         static_cast<double>(r.ru_utime.tv_usec + r.ru_stime.tv_usec) / 1e6;
}
double self_cpu_s() {
  rusage r{};
  ::getrusage(RUSAGE_SELF, &r);
  return cpu_s(r);
}
// utime + stime of a live process, from /proc/<pid>/stat (clock ticks). -1 when unreadable.
double proc_cpu_s(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string s((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const auto close = s.rfind(')');
  if (close == std::string::npos) return -1;
  std::istringstream rest(s.substr(close + 2));
  std::string field;
  unsigned long long utime = 0;
  unsigned long long stime = 0;
  // Fields after comm start at 3 (state); utime is 14, stime 15.
  for (int i = 3; i <= 15 && rest >> field; ++i) {
    if (i == 14) utime = std::stoull(field);
    if (i == 15) stime = std::stoull(field);
  }
  return static_cast<double>(utime + stime) / static_cast<double>(::sysconf(_SC_CLK_TCK));
}
std::string loadavg() {
  std::ifstream in("/proc/loadavg");
  std::string a, b, c;
  in >> a >> b >> c;
  return a + " " + b + " " + c;
}

// "#<i> t=<µs>" inside a flood line; -1 when the line is not one.
// The result line repeats the last text: not counted.
std::int64_t stamp_of(std::string_view line, int* index = nullptr) {
  if (line.find("\"type\":\"result\"") != std::string_view::npos) return -1;
  const auto hash = line.find("\"#");
  if (hash == std::string_view::npos) return -1;
  if (index != nullptr) *index = std::atoi(std::string(line.substr(hash + 2, 12)).c_str());
  const auto t = line.find(" t=", hash);
  if (t == std::string_view::npos) return -1;
  std::int64_t v = 0;
  for (std::size_t i = t + 3; i < line.size() && line[i] >= '0' && line[i] <= '9'; ++i) {
    v = v * 10 + (line[i] - '0');
  }
  return v;
}

struct Options {
  int lines = 20000;
  int bytes = 300;
  int rate = 5000;
  std::vector<int> reattach{10, 100};
  std::string server = PA_SERVER_BINARY;
  std::string fake = PA_FAKE_CLAUDE;
  int fsync_ms = 1000;  // log_rotation.fsync_interval's default, as the server passes it
  bool flood = true;
  int repeat = 1;
};

struct FloodResult {
  std::vector<std::int64_t> lat_us;
  std::vector<std::pair<std::int64_t, int>> worst;  // (latency, line index) above 1 ms
  double server_cpu_s = 0;
  double supervisor_cpu_s = -1;
  double wall_s = 0;
  bool ok = false;
};

std::int64_t pct(std::vector<std::int64_t>& v, double p) {
  if (v.empty()) return -1;
  std::sort(v.begin(), v.end());
  const auto i = static_cast<std::size_t>(p * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(i, v.size() - 1)];
}

agent::SpawnSpec cli_spec(const Options& o, const fs::path& root) {
  agent::SpawnSpec s;
  s.binary = o.fake;
  s.args = {"-p", "--input-format=stream-json", "--output-format=stream-json", "--verbose"};
  s.env = {"PATH=/usr/bin:/bin", "FAKE_CLAUDE_STATE_DIR=" + (root / "state").string()};
  s.cwd = (root / "project").string();
  return s;
}

std::string flood_prompt(const Options& o, int rate) {
  std::string p =
      "[[fake:flood lines=" + std::to_string(o.lines) + " bytes=" + std::to_string(o.bytes);
  if (rate > 0) p += " rate=" + std::to_string(rate);
  return p + "]]";
}

struct Waiter {
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  void set() {
    std::lock_guard lk(mu);
    done = true;
    cv.notify_all();
  }
  bool wait(std::chrono::seconds d) {
    std::unique_lock lk(mu);
    return cv.wait_for(lk, d, [&] { return done; });
  }
};

FloodResult run_direct(boost::asio::io_context& io, const Options& o, const fs::path& root,
                       int rate) {
  FloodResult r;
  r.lat_us.reserve(static_cast<std::size_t>(o.lines));
  Waiter w;
  agent::ChildHandlers h;
  h.on_stdout_line = [&](std::string line) {
    int idx = 0;
    const auto t = stamp_of(line, &idx);
    if (t > 0) {
      r.lat_us.push_back(now_us() - t);
      if (r.lat_us.back() > 1000) r.worst.emplace_back(r.lat_us.back(), idx);
    }
  };
  h.on_line_too_long = [](std::size_t, std::string) {};
  h.on_exit = [&](agent::ExitStatus) { w.set(); };
  const double cpu0 = self_cpu_s();
  const auto t0 = Clock::now();
  std::error_code ec;
  // As the server did: lines posted from the pipe's strand to another (the project's), not
  // handled inline on the reading strand.
  auto child =
      agent::ChildProcess::spawn(io.get_executor(), boost::asio::make_strand(io.get_executor()),
                                 cli_spec(o, root), 16 << 20, std::move(h), ec);
  if (!child) {
    std::fprintf(stderr, "direct spawn: %s\n", ec.message().c_str());
    return r;
  }
  child->write_stdin(agent::user_message_line(flood_prompt(o, rate)));
  child->close_stdin();
  r.ok = w.wait(120s);
  if (!r.ok) child->kill_tree();
  r.wall_s = std::chrono::duration<double>(Clock::now() - t0).count();
  r.server_cpu_s = self_cpu_s() - cpu0;
  if (!r.ok) w.wait(5s);
  return r;
}

// RELAY: the floor of any extra process between the CLI and the server. A forked process that
// only copies the CLI's stdout pipe to a unix socket with blocking read(2)/write(2) (no spool,
// no parsing); the benchmark reads the socket with Asio and splits lines. The supervisor's
// added latency minus the relay's is what the supervisor's own work costs.
FloodResult run_relay(boost::asio::io_context& io, const Options& o, const fs::path& root,
                      int rate) {
  FloodResult r;
  r.lat_us.reserve(static_cast<std::size_t>(o.lines));
  const agent::SpawnSpec spec = cli_spec(o, root);
  // Everything the children need is built before fork: after it only async-signal-safe calls.
  std::vector<std::string> args{spec.binary};
  args.insert(args.end(), spec.args.begin(), spec.args.end());
  std::vector<char*> argv, envp;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::vector<std::string> env = spec.env;
  for (auto& e : env) envp.push_back(e.data());
  envp.push_back(nullptr);
  const std::string cwd = spec.cwd;
  int sv[2], in[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0 ||
      ::pipe2(in, O_CLOEXEC) != 0) {
    std::perror("relay: socketpair/pipe");
    return r;
  }
  const double cpu0 = self_cpu_s();
  const auto t0 = Clock::now();
  const pid_t relay = ::fork();
  if (relay == 0) {
    ::close(in[1]);  // the CLI must see its stdin end
    ::close(sv[0]);
    int out[2];
    if (::pipe(out) != 0) ::_exit(1);
    const pid_t cli = ::fork();
    if (cli == 0) {
      ::dup2(in[0], 0);
      ::dup2(out[1], 1);
      if (::chdir(cwd.c_str()) != 0) ::_exit(1);
      ::execve(argv[0], argv.data(), envp.data());
      ::_exit(127);
    }
    ::close(out[1]);
    char buf[65536];
    for (;;) {
      const ssize_t n = ::read(out[0], buf, sizeof buf);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      for (ssize_t done = 0; done < n;) {
        const ssize_t w = ::write(sv[1], buf + done, static_cast<std::size_t>(n - done));
        if (w <= 0) ::_exit(1);
        done += w;
      }
    }
    int status = 0;
    ::waitpid(cli, &status, 0);
    ::_exit(0);
  }
  ::close(sv[1]);
  ::close(in[0]);
  const std::string prompt = agent::user_message_line(flood_prompt(o, rate));
  if (::write(in[1], prompt.data(), prompt.size()) < 0) std::perror("relay: prompt");
  ::close(in[1]);

  Waiter w;
  boost::asio::local::stream_protocol::socket socket(io);
  socket.assign(boost::asio::local::stream_protocol(), sv[0]);
  std::string pending;
  std::vector<char> buf(65536);
  std::function<void()> read_more = [&] {
    socket.async_read_some(
        boost::asio::buffer(buf), [&](boost::system::error_code ec, std::size_t n) {
          if (ec) {
            w.set();
            return;
          }
          pending.append(buf.data(), n);
          std::size_t at = 0;
          for (std::size_t nl; (nl = pending.find('\n', at)) != std::string::npos; at = nl + 1) {
            int idx = 0;
            const auto t = stamp_of(std::string_view(pending).substr(at, nl - at), &idx);
            if (t > 0) {
              r.lat_us.push_back(now_us() - t);
              if (r.lat_us.back() > 1000) r.worst.emplace_back(r.lat_us.back(), idx);
            }
          }
          pending.erase(0, at);
          read_more();
        });
  };
  boost::asio::post(io, read_more);
  r.ok = w.wait(120s);
  r.wall_s = std::chrono::duration<double>(Clock::now() - t0).count();
  r.server_cpu_s = self_cpu_s() - cpu0;
  // The socket, the buffers and `w` live on this stack: close on the I/O thread and wait for
  // it (and for a read it cancels) before they go. Returning at once raced the close (SIGSEGV
  // under load).
  Waiter closed;
  boost::asio::post(io, [&] {
    boost::system::error_code ignored;
    socket.close(ignored);
    closed.set();
  });
  closed.wait(30s);
  if (!r.ok) {
    w.wait(30s);             // the cancelled read's handler has run
    ::kill(relay, SIGKILL);  // the process-wide reaper collects it
  }
  return r;
}

struct Supervised {
  agent::RunPaths paths;
  agent::Launched launched;
  std::shared_ptr<agent::SupervisorLink> link;
};

bool launch(const Options& o, const fs::path& root, const fs::path& run_dir, agent::Launched& out) {
  fs::create_directories(run_dir);
  fs::permissions(run_dir, fs::perms::owner_all);
  agent::SupervisorSpec spec;
  spec.cli = cli_spec(o, root);
  spec.fsync_interval = std::chrono::milliseconds(o.fsync_ms);
  spec.kill_grace = 1s;
  spec.term_grace = 1s;
  spec.retention = 60s;
  const int dir = ::open(spec.cli.cwd.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  std::error_code ec;
  std::string error;
  out = agent::launch_supervisor(o.server, agent::RunPaths{run_dir.string()}, spec, dir, ec, error);
  ::close(dir);
  if (ec) std::fprintf(stderr, "launch_supervisor: %s %s\n", ec.message().c_str(), error.c_str());
  return !ec;
}

void wait_gone(const agent::Launched& l, std::chrono::milliseconds d) {
  const auto until = Clock::now() + d;
  while (agent::supervisor_alive(l.supervisor_pid, l.supervisor_start) && Clock::now() < until) {
    std::this_thread::sleep_for(5ms);
  }
  if (agent::supervisor_alive(l.supervisor_pid, l.supervisor_start)) {
    ::kill(l.supervisor_pid, SIGKILL);  // its CLI follows (PDEATHSIG)
  }
}

FloodResult run_supervised(boost::asio::io_context& io, const Options& o, const fs::path& root,
                           int rate, int n) {
  FloodResult r;
  r.lat_us.reserve(static_cast<std::size_t>(o.lines));
  const fs::path run_dir = root / ("run-flood-" + std::to_string(n));
  Waiter w;
  pid_t sup_pid = -1;
  std::atomic<double> sup_cpu{-1};
  agent::LinkHandlers h;
  h.on_record = [&](const agent::SpoolRecord& rec) {
    if (rec.kind == agent::RecordKind::kLine) {
      int idx = 0;
      const auto t = stamp_of(rec.payload, &idx);
      if (t > 0) {
        r.lat_us.push_back(now_us() - t);
        if (r.lat_us.back() > 1000) r.worst.emplace_back(r.lat_us.back(), idx);
      }
    } else if (rec.kind == agent::RecordKind::kExit) {
      sup_cpu = proc_cpu_s(sup_pid);  // before `done` lets it exit
      w.set();
    }
    return true;
  };
  h.on_disconnect = [&](std::error_code) { w.set(); };
  const double cpu0 = self_cpu_s();
  const auto t0 = Clock::now();
  agent::Launched l;
  if (!launch(o, root, run_dir, l)) return r;
  sup_pid = l.supervisor_pid;
  const double sup_cpu0 = proc_cpu_s(sup_pid);
  std::error_code ec;
  auto link = agent::SupervisorLink::attach(io.get_executor(), io.get_executor(),
                                            agent::RunPaths{run_dir.string()}, 0, 16 << 20,
                                            std::move(h), ec);
  if (!link) {
    std::fprintf(stderr, "attach: %s\n", ec.message().c_str());
    ::kill(l.supervisor_pid, SIGKILL);
    return r;
  }
  link->write(agent::user_message_line(flood_prompt(o, rate)), "prompt");
  link->close_stdin();
  r.ok = w.wait(120s);
  r.wall_s = std::chrono::duration<double>(Clock::now() - t0).count();
  r.server_cpu_s = self_cpu_s() - cpu0;
  r.supervisor_cpu_s = sup_cpu.load() >= 0 ? sup_cpu.load() - std::max(0.0, sup_cpu0) : -1;
  link->done();
  wait_gone(l, 5s);
  link->detach();
  fs::remove_all(run_dir);
  return r;
}

void print_flood(const char* mode, int rate, FloodResult& r, int lines, const std::string& load) {
  const auto n = r.lat_us.size();
  const auto p50 = pct(r.lat_us, 0.50);
  const auto p99 = pct(r.lat_us, 0.99);
  const auto max = r.lat_us.empty() ? -1 : r.lat_us.back();
  std::printf(
      "%-10s rate=%-6s lines=%zu/%d ok=%d wall=%.2fs  latency_us p50=%lld p99=%lld max=%lld  "
      "server_cpu=%.3fs (%.2f us/line)",
      mode, rate > 0 ? std::to_string(rate).c_str() : "max", n, lines, r.ok ? 1 : 0, r.wall_s,
      static_cast<long long>(p50), static_cast<long long>(p99), static_cast<long long>(max),
      r.server_cpu_s, n ? r.server_cpu_s * 1e6 / static_cast<double>(n) : 0.0);
  if (r.supervisor_cpu_s >= 0) {
    std::printf("  supervisor_cpu=%.2fs (%.2f us/line)", r.supervisor_cpu_s,
                n ? r.supervisor_cpu_s * 1e6 / static_cast<double>(n) : 0.0);
  }
  std::printf("  load=[%s]\n", load.c_str());
  // Where the worst lines were: line index and, when paced, seconds into the flood.
  std::sort(r.worst.rbegin(), r.worst.rend());
  if (!r.worst.empty()) {
    std::printf("           >1ms: %zu lines; worst:", r.worst.size());
    for (std::size_t i = 0; i < std::min<std::size_t>(6, r.worst.size()); ++i) {
      std::printf(" %lldus@#%d", static_cast<long long>(r.worst[i].first), r.worst[i].second);
      if (rate > 0) std::printf("(%.2fs)", r.worst[i].second / static_cast<double>(rate));
    }
    std::printf("\n");
  }
  std::fflush(stdout);
}

// N live supervisors (a 100-line flood, then a hanging turn), then: attach N links at offset 0,
// one after another as the server's start does, until each delivered its backlog.
void run_reattach(boost::asio::io_context& io, const Options& o, const fs::path& root, int n) {
  struct Run {
    fs::path dir;
    agent::Launched l;
    std::shared_ptr<agent::SupervisorLink> link;
    std::uint64_t target = 0;
    std::atomic<std::uint64_t> at{0};
    std::atomic<int> records{0};
  };
  std::vector<std::unique_ptr<Run>> runs;
  const auto prompt = agent::user_message_line("[[fake:flood lines=100 bytes=300]]") +
                      agent::user_message_line("[[fake:hang]]");
  const auto ts = Clock::now();
  bool ok = true;
  for (int i = 0; i < n && ok; ++i) {
    auto run = std::make_unique<Run>();
    run->dir = root / ("run-re-" + std::to_string(n) + "-" + std::to_string(i));
    ok = launch(o, root, run->dir, run->l);
    if (!ok) break;
    // Send the prompt through a first link, wait for the flood's result, let go of the link.
    Waiter w;
    agent::LinkHandlers h;
    h.on_record = [&w](const agent::SpoolRecord& rec) {
      if (rec.kind == agent::RecordKind::kLine &&
          rec.payload.find("\"type\":\"result\"") != std::string_view::npos) {
        w.set();
      }
      return true;
    };
    h.on_disconnect = [](std::error_code) {};
    std::error_code ec;
    auto link = agent::SupervisorLink::attach(io.get_executor(), io.get_executor(),
                                              agent::RunPaths{run->dir.string()}, 0, 16 << 20,
                                              std::move(h), ec);
    runs.push_back(std::move(run));
    if (!link) {
      ok = false;
      break;
    }
    link->write(prompt, "prompt");
    ok = w.wait(30s);
    link->detach();
  }
  const double setup_s = std::chrono::duration<double>(Clock::now() - ts).count();
  if (ok) {
    std::this_thread::sleep_for(1200ms);  // past the fsync interval: idle supervisors
    const std::string load = loadavg();
    std::mutex mu;
    std::condition_variable cv;
    std::atomic<int> complete{0};
    std::uint64_t backlog_bytes = 0;
    const double cpu0 = self_cpu_s();
    const auto t0 = Clock::now();
    double attach_only_s = 0;
    for (auto& run : runs) {
      Run* rp = run.get();
      agent::LinkHandlers h;
      h.on_record = [rp, &complete, &cv, &mu](const agent::SpoolRecord& rec) {
        rp->records.fetch_add(1);
        rp->at = rec.end_offset;
        if (rec.end_offset == rp->target && rp->target != 0) {
          complete.fetch_add(1);
          std::lock_guard lk(mu);
          cv.notify_all();
        }
        return true;
      };
      h.on_disconnect = [](std::error_code) {};
      std::error_code ec;
      // The runs are idle: the spool size now is where the backlog ends.
      std::error_code sec;
      rp->target = fs::file_size(fs::path(rp->dir) / "spool", sec);
      rp->link = agent::SupervisorLink::attach(io.get_executor(), io.get_executor(),
                                               agent::RunPaths{rp->dir.string()}, 0, 16 << 20,
                                               std::move(h), ec);
      if (!rp->link) {
        std::fprintf(stderr, "re-attach: %s\n", ec.message().c_str());
        ok = false;
        break;
      }
      backlog_bytes += rp->target;
    }
    attach_only_s = std::chrono::duration<double>(Clock::now() - t0).count();
    bool all = false;
    {
      std::unique_lock lk(mu);
      all = cv.wait_for(lk, 30s, [&] { return complete.load() == n; });
    }
    const double total_s = std::chrono::duration<double>(Clock::now() - t0).count();
    const double cpu = self_cpu_s() - cpu0;
    int records = 0;
    for (auto& run : runs) records += run->records.load();
    std::printf(
        "reattach   runs=%d ok=%d  connect+attach all=%.1f ms  all backlogs received=%.1f ms "
        "(%.0f us/run)  backlog=%d records %.1f KiB  server_cpu=%.1f ms  setup=%.1fs  "
        "load=[%s]\n",
        n, ok && all ? 1 : 0, attach_only_s * 1e3, total_s * 1e3, total_s * 1e6 / n, records,
        static_cast<double>(backlog_bytes) / 1024.0, cpu * 1e3, setup_s, load.c_str());
    std::fflush(stdout);
  } else {
    std::printf("reattach   runs=%d setup failed after %zu runs\n", n, runs.size());
  }
  // Stop everything: the supervisors (SIGKILL; their CLIs follow by PDEATHSIG).
  for (auto& run : runs) {
    if (run->link) run->link->detach();
    if (run->l.supervisor_pid > 0) ::kill(run->l.supervisor_pid, SIGKILL);
  }
  for (auto& run : runs) {
    if (run->l.supervisor_pid > 0) wait_gone(run->l, 5s);
    fs::remove_all(run->dir);
  }
}

std::vector<int> parse_list(const std::string& s) {
  std::vector<int> out;
  std::stringstream in(s);
  std::string item;
  while (std::getline(in, item, ',')) {
    if (!item.empty()) out.push_back(std::stoi(item));
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    const auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "%s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--lines")
      o.lines = std::stoi(next());
    else if (a == "--bytes")
      o.bytes = std::stoi(next());
    else if (a == "--rate")
      o.rate = std::stoi(next());
    else if (a == "--reattach")
      o.reattach = parse_list(next());
    else if (a == "--server")
      o.server = next();
    else if (a == "--fake")
      o.fake = next();
    else if (a == "--fsync-ms")
      o.fsync_ms = std::stoi(next());
    else if (a == "--repeat")
      o.repeat = std::stoi(next());
    else if (a == "--skip-flood")
      o.flood = false;
    else {
      std::fprintf(stderr,
                   "usage: %s [--lines N] [--bytes B] [--rate R] [--repeat K] [--reattach 10,100] "
                   "[--server PATH] [--fake PATH] [--fsync-ms MS] [--skip-flood]\n",
                   argv[0]);
      return 2;
    }
  }
  ::signal(SIGPIPE, SIG_IGN);
  rlimit nofile{};
  ::getrlimit(RLIMIT_NOFILE, &nofile);
  nofile.rlim_cur = nofile.rlim_max;
  ::setrlimit(RLIMIT_NOFILE, &nofile);

  const fs::path root = fs::temp_directory_path() / ("pa-supbench-" + std::to_string(::getpid()));
  fs::remove_all(root);
  fs::create_directories(root / "project");
  fs::create_directories(root / "state");

  boost::asio::io_context io;
  auto work = boost::asio::make_work_guard(io);
  std::thread io_thread([&] { io.run(); });
  agent::install_reaper(io.get_executor());

  std::printf("supervisor_overhead: %u cores, lines=%d bytes=%d fsync=%d ms, server=%s\n",
              std::thread::hardware_concurrency(), o.lines, o.bytes, o.fsync_ms, o.server.c_str());
  if (o.flood) {
    int k = 0;
    for (int rate : {o.rate, 0}) {
      for (int rep = 0; rep < o.repeat; ++rep) {
        // Rotate which mode goes first, so that a slow phase of the machine hits all three.
        for (int m = 0; m < 3; ++m) {
          const int mode = (m + rep) % 3;
          const std::string load = loadavg();
          FloodResult r = mode == 0   ? run_direct(io, o, root, rate)
                          : mode == 1 ? run_relay(io, o, root, rate)
                                      : run_supervised(io, o, root, rate, k++);
          print_flood(mode == 0   ? "direct"
                      : mode == 1 ? "relay"
                                  : "supervised",
                      rate, r, o.lines, load);
        }
      }
    }
  }
  for (int n : o.reattach) run_reattach(io, o, root, n);

  work.reset();
  io.stop();
  io_thread.join();
  fs::remove_all(root);
  return 0;
}
