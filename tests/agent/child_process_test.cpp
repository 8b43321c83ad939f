// Tests for the child-process layer, with ordinary system binaries as children (/bin/sh is fine
// as a *test* child; the server itself never runs a shell).
#include "agent/child_process.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <chrono>
#include <climits>
#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <future>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace pa::agent {
namespace {

using namespace std::chrono_literals;

// ---- the reaper: installed once for the whole binary, on an io_context of its own ----

class ReaperEnvironment : public ::testing::Environment {
 public:
  void SetUp() override {
    if (std::getenv("PA_TEST_NO_REAPER") != nullptr) return;  // see NoReaperMode below
    spdlog::default_logger();           // create spdlog's registry before any second thread logs
    io_ = new boost::asio::io_context;  // never destroyed: the reaper's signal_set lives forever
    guard_.emplace(io_->get_executor());
    thread_ = std::thread([io = io_] { io->run(); });
    install_reaper(io_->get_executor());
    instance_ = this;
  }

  // Returns once every handler the reaper's thread is running or has queued has finished. A
  // child's exit reaches its own executor by a post from the reaper's thread, and that post is
  // still unwinding (dropping its copy of the child's strand) after the exit handler ran: a
  // test's io_context must not be destroyed before this returns.
  static void wait_for_reaper_thread() {
    if (instance_ == nullptr) return;
    std::promise<void> done;
    boost::asio::post(*instance_->io_, [&done] { done.set_value(); });
    done.get_future().wait();
  }
  void TearDown() override {
    if (io_ == nullptr) return;
    guard_.reset();
    io_->stop();
    thread_.join();
  }

 private:
  static inline ReaperEnvironment* instance_ = nullptr;
  boost::asio::io_context* io_ = nullptr;
  std::optional<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> guard_;
  std::thread thread_;
};

[[maybe_unused]] const auto* const kReaperEnv =
    ::testing::AddGlobalTestEnvironment(new ReaperEnvironment);

bool no_reaper_mode() {
  return std::getenv("PA_TEST_NO_REAPER") != nullptr;
}

// ---- helpers ----

const std::vector<std::string> kEnv = {"PATH=/usr/bin:/bin", "LC_ALL=C"};

SpawnSpec sh(const std::string& script, std::string cwd = "/") {
  return SpawnSpec{"/bin/sh", {"-c", script}, kEnv, std::move(cwd)};
}

// Waits for a condition on kernel state (a process disappearing) that no event announces.
template <class Pred>
bool eventually(Pred pred, std::chrono::milliseconds timeout = 10s) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(2ms);
  }
  return true;
}

bool proc_exists(pid_t pid) {
  return ::access(("/proc/" + std::to_string(pid)).c_str(), F_OK) == 0;
}

bool process_gone(pid_t pid) {
  return ::kill(pid, 0) == -1 && errno == ESRCH && !proc_exists(pid);
}

struct Stat {
  char state = '?';
  pid_t ppid = 0, pgid = 0, sid = 0;
};
std::optional<Stat> read_stat(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string s((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  const auto close = s.rfind(')');
  if (close == std::string::npos) return std::nullopt;
  Stat st;
  std::istringstream in(s.substr(close + 2));
  in >> st.state >> st.ppid >> st.pgid >> st.sid;
  return st;
}

std::string describe(pid_t pid) {
  auto st = read_stat(pid);
  if (!st) return "pid " + std::to_string(pid) + " gone";
  return "pid " + std::to_string(pid) + " state " + st->state + " ppid " +
         std::to_string(st->ppid) + " pgid " + std::to_string(st->pgid) + " sid " +
         std::to_string(st->sid) + " (we are " + std::to_string(::getpid()) + ")";
}

std::vector<pid_t> zombie_children() {
  std::vector<pid_t> out;
  for (const auto& e : std::filesystem::directory_iterator("/proc")) {
    const std::string name = e.path().filename();
    if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
    const pid_t pid = std::stoi(name);
    if (auto st = read_stat(pid); st && st->ppid == ::getpid() && st->state == 'Z')
      out.push_back(pid);
  }
  return out;
}

// Everything the handlers saw, in order.
struct Events {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<std::string> items;  // "L:<line>" (long lines as "L:<N bytes>"), "T:<n>", "X"
  std::vector<std::string> lines;
  int exit_calls = 0;
  bool after_exit = false;  // a handler ran after on_exit
  std::promise<ExitStatus> exit_promise;
  std::shared_future<ExitStatus> exit_future = exit_promise.get_future().share();

  bool wait_lines(std::size_t n, std::chrono::milliseconds timeout = 20s) {
    std::unique_lock lk(mu);
    return cv.wait_for(lk, timeout, [&] { return lines.size() >= n; });
  }
  std::optional<ExitStatus> wait_exit(std::chrono::milliseconds timeout = 20s) {
    if (exit_future.wait_for(timeout) != std::future_status::ready) return std::nullopt;
    return exit_future.get();
  }
  std::vector<std::string> snapshot_items() {
    std::lock_guard lk(mu);
    return items;
  }
  std::vector<std::string> snapshot_lines() {
    std::lock_guard lk(mu);
    return lines;
  }
};

ChildHandlers handlers_for(const std::shared_ptr<Events>& ev) {
  ChildHandlers h;
  h.on_stdout_line = [ev](std::string line) {
    std::lock_guard lk(ev->mu);
    if (ev->exit_calls > 0) ev->after_exit = true;
    ev->items.push_back(line.size() > 100 ? "L:<" + std::to_string(line.size()) + " bytes>"
                                          : "L:" + line);
    ev->lines.push_back(std::move(line));
    ev->cv.notify_all();
  };
  h.on_line_too_long = [ev](std::size_t n, std::string) {
    std::lock_guard lk(ev->mu);
    if (ev->exit_calls > 0) ev->after_exit = true;
    ev->items.push_back("T:" + std::to_string(n));
    ev->cv.notify_all();
  };
  h.on_exit = [ev](ExitStatus st) {
    std::lock_guard lk(ev->mu);
    ev->items.push_back("X");
    if (++ev->exit_calls == 1) ev->exit_promise.set_value(st);
    ev->cv.notify_all();
  };
  return h;
}

class ChildProcessTest : public ::testing::Test {
 protected:
  ChildProcessTest() : guard_(io_.get_executor()) {
    for (int i = 0; i < 2; ++i) threads_.emplace_back([this] { io_.run(); });
  }
  ~ChildProcessTest() override {
    // Leave no child behind, and let every pending operation finish before the io_context goes.
    for (auto& [child, ev] : children_) {
      if (!child->exited()) child->kill_tree();
      EXPECT_TRUE(ev->wait_exit(20s).has_value()) << "pid " << child->pid() << " never exited";
    }
    children_.clear();
    ReaperEnvironment::wait_for_reaper_thread();
    guard_.reset();
    for (auto& t : threads_) t.join();
  }

  std::shared_ptr<ChildProcess> spawn(const SpawnSpec& spec, const std::shared_ptr<Events>& ev,
                                      std::size_t max_line = 1 << 20) {
    std::error_code ec;
    auto child = ChildProcess::spawn(io_.get_executor(), io_.get_executor(), spec, max_line,
                                     handlers_for(ev), ec);
    EXPECT_FALSE(ec) << ec.message();
    if (child) children_.emplace_back(child, ev);
    return child;
  }

  // Runs to the end; returns the status (fails the test on a missing exit).
  ExitStatus run(const SpawnSpec& spec, const std::shared_ptr<Events>& ev,
                 std::size_t max_line = 1 << 20) {
    auto child = spawn(spec, ev, max_line);
    if (!child) return ExitStatus{false, -999, 0};
    auto st = ev->wait_exit();
    EXPECT_TRUE(st.has_value()) << "no exit";
    return st.value_or(ExitStatus{false, -998, 0});
  }

  boost::asio::io_context io_;
  std::optional<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> guard_;
  std::vector<std::thread> threads_;
  std::vector<std::pair<std::shared_ptr<ChildProcess>, std::shared_ptr<Events>>> children_;
};

// ---- stdout ----

TEST_F(ChildProcessTest, LinesArriveInOrderThenExit) {
  auto ev = std::make_shared<Events>();
  const auto st = run(sh("i=0; while [ $i -lt 2000 ]; do echo line$i; i=$((i+1)); done"), ev);
  EXPECT_FALSE(st.signaled);
  EXPECT_EQ(st.code, 0);
  const auto items = ev->snapshot_items();
  ASSERT_EQ(items.size(), 2001u);
  for (int i = 0; i < 2000; ++i) ASSERT_EQ(items[i], "L:line" + std::to_string(i));
  EXPECT_EQ(items.back(), "X");
  EXPECT_FALSE(ev->after_exit);
  EXPECT_EQ(ev->exit_calls, 1);
}

// hold_output: stdout is not read while held (the child blocks on its full pipe); a child that
// dies while held still gets its exit reported, with what its pipe held (a supervisor whose
// disk is full must not wait forever for an EOF nobody reads).
TEST_F(ChildProcessTest, HeldOutputStillEndsWhenTheChildDies) {
  auto ev = std::make_shared<Events>();
  auto child = spawn(sh("i=0; while :; do i=$((i+1)); echo line-$i; done"), ev);
  ASSERT_TRUE(child);
  child->hold_output(true);
  ASSERT_TRUE(ev->wait_lines(1));
  // Held: after what was already read, no new line arrives while the child fills its pipe.
  const auto seen = ev->snapshot_lines().size();
  ASSERT_TRUE(eventually([&] {
    const auto st = read_stat(child->pid());
    return st && st->state == 'S';  // blocked in write(2) on the full pipe
  }));
  EXPECT_LE(ev->snapshot_lines().size(), seen + 70000u) << "at most one read's worth more";
  child->signal_group(SIGKILL);
  const auto status = ev->wait_exit(20s);
  ASSERT_TRUE(status.has_value()) << "the exit of a held child was never reported";
  EXPECT_TRUE(status->signaled);
  EXPECT_GT(ev->snapshot_lines().size(), seen) << "the pipe's lines were taken at the end";
}

TEST_F(ChildProcessTest, FourMebibyteLineSplitAcrossManyReads) {
  auto ev = std::make_shared<Events>();
  const auto st = run(sh("head -c 4194304 /dev/zero | tr '\\0' x; echo; echo after"), ev, 8 << 20);
  EXPECT_EQ(st.code, 0);
  const auto lines = ev->snapshot_lines();
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0].size(), 4194304u);
  EXPECT_EQ(lines[0].find_first_not_of('x'), std::string::npos);
  EXPECT_EQ(lines[1], "after");
}

TEST_F(ChildProcessTest, TooLongLinesAreReportedAndSkipped) {
  auto ev = std::make_shared<Events>();
  run(sh("echo short;"
         "head -c 100000 /dev/zero | tr '\\0' y; echo;"
         "echo next;"
         "head -c 1000 /dev/zero | tr '\\0' a; echo;"  // exactly the limit: delivered
         "head -c 1001 /dev/zero | tr '\\0' b; echo;"  // one more: too long
         "echo last;"
         "head -c 5000 /dev/zero | tr '\\0' z"),  // too long and unterminated at EOF
      ev, 1000);
  const std::vector<std::string> expected = {"L:short", "T:100000", "L:next", "L:<1000 bytes>",
                                             "T:1001",  "L:last",   "T:5000", "X"};
  EXPECT_EQ(ev->snapshot_items(), expected);
}

TEST_F(ChildProcessTest, FinalUnterminatedLineAndEmptyLines) {
  auto ev = std::make_shared<Events>();
  run(sh("printf '\\n\\na\\nb'"), ev);
  const std::vector<std::string> expected = {"L:", "L:", "L:a", "L:b", "X"};
  EXPECT_EQ(ev->snapshot_items(), expected);
}

TEST_F(ChildProcessTest, FloodFromYesThenKill) {
  auto ev = std::make_shared<Events>();
  auto child = spawn({"/usr/bin/yes", {}, kEnv, "/"}, ev);
  ASSERT_TRUE(child);
  ASSERT_TRUE(ev->wait_lines(100000));
  child->signal_group(SIGKILL);
  auto st = ev->wait_exit();
  ASSERT_TRUE(st);
  EXPECT_TRUE(st->signaled);
  EXPECT_EQ(st->signal, SIGKILL);
  for (const auto& l : ev->snapshot_lines()) ASSERT_EQ(l, "y");
}

// ---- stdin ----

TEST_F(ChildProcessTest, StdinEchoThroughCatThenEofAndExit) {
  auto ev = std::make_shared<Events>();
  auto child = spawn({"/bin/cat", {}, kEnv, "/"}, ev);
  ASSERT_TRUE(child);
  child->write_stdin("hello\n");
  child->write_stdin("wor");
  child->write_stdin("ld\n");
  std::string big;
  for (int i = 0; i < 20000; ++i) big += "payload " + std::to_string(i) + "\n";  // ~300 KB
  child->write_stdin(big);
  child->close_stdin();
  child->write_stdin("dropped after close\n");
  auto st = ev->wait_exit();
  ASSERT_TRUE(st);
  EXPECT_FALSE(st->signaled);
  EXPECT_EQ(st->code, 0);
  const auto lines = ev->snapshot_lines();
  ASSERT_EQ(lines.size(), 20002u);
  EXPECT_EQ(lines[0], "hello");
  EXPECT_EQ(lines[1], "world");
  EXPECT_EQ(lines[2], "payload 0");
  EXPECT_EQ(lines.back(), "payload 19999");
}

TEST_F(ChildProcessTest, WritingToAChildThatDoesNotReadIsDropped) {
  auto ev = std::make_shared<Events>();
  auto child = spawn(sh("exec 0<&-; echo closed; exit 3"), ev);
  ASSERT_TRUE(child);
  ASSERT_TRUE(ev->wait_lines(1));
  child->write_stdin(std::string(1 << 20, 'x'));  // EPIPE: no SIGPIPE, no error
  child->close_stdin();
  auto st = ev->wait_exit();
  ASSERT_TRUE(st);
  EXPECT_EQ(st->code, 3);
  child->write_stdin("after exit");  // still harmless
  child->close_stdin();
}

// ---- exit statuses ----

TEST_F(ChildProcessTest, ExitCodeAndSignalStatuses) {
  {
    auto ev = std::make_shared<Events>();
    const auto st = run(sh("exit 7"), ev);
    EXPECT_FALSE(st.signaled);
    EXPECT_EQ(st.code, 7);
  }
  {
    auto ev = std::make_shared<Events>();
    const auto st = run(sh("kill -TERM $$"), ev);
    EXPECT_TRUE(st.signaled);
    EXPECT_EQ(st.signal, SIGTERM);
  }
  {
    // The test binary ignores SIGPIPE (the layer sets it), yet the child gets the default
    // dispositions and an empty mask.
    auto ev = std::make_shared<Events>();
    run(sh("grep -E '^Sig(Blk|Ign):' /proc/self/status"), ev);
    const auto lines = ev->snapshot_lines();
    ASSERT_EQ(lines.size(), 2u);
    EXPECT_EQ(lines[0], "SigBlk:\t0000000000000000");
    // Only the standard signals (1-31) are checked: glibc reserves 32 and 33 for itself and
    // a parent (e.g. a test runner) may leave them ignored; they cannot be reset.
    ASSERT_EQ(lines[1].rfind("SigIgn:\t", 0), 0u);
    const unsigned long long ignored = std::stoull(lines[1].substr(8), nullptr, 16);
    EXPECT_EQ(ignored & 0x7FFFFFFFull, 0ull) << lines[1];
  }
}

TEST_F(ChildProcessTest, OwnProcessGroupAndSignalGroup) {
  auto ev = std::make_shared<Events>();
  // The shell waits for a second process of its group: the signal must reach both.
  auto child = spawn(sh("/bin/sleep 1000 & echo $!; wait"), ev);
  ASSERT_TRUE(child);
  EXPECT_EQ(::getpgid(child->pid()), child->pid());
  EXPECT_NE(::getpgid(child->pid()), ::getpgrp());
  EXPECT_FALSE(child->exited());
  ASSERT_TRUE(ev->wait_lines(1));
  const pid_t sleeper = std::stoi(ev->snapshot_lines()[0]);
  EXPECT_EQ(::getpgid(sleeper), child->pid());
  child->signal_group(SIGTERM);
  auto st = ev->wait_exit();
  ASSERT_TRUE(st);
  EXPECT_TRUE(st->signaled);
  EXPECT_EQ(st->signal, SIGTERM);
  EXPECT_TRUE(child->exited());
  EXPECT_TRUE(eventually([&] { return process_gone(sleeper); }));
  child->signal_group(SIGKILL);  // after the end: no effect, no error
}

TEST_F(ChildProcessTest, ManyShortChildrenInParallel) {
  constexpr int kChildren = 50;
  std::vector<std::shared_ptr<Events>> evs;
  for (int i = 0; i < kChildren; ++i) {
    evs.push_back(std::make_shared<Events>());
    const std::string script =
        i % 5 == 0 ? "echo child" + std::to_string(i) + "; kill -KILL $$"
                   : "echo child" + std::to_string(i) + "; exit " + std::to_string(i % 7);
    ASSERT_TRUE(spawn(sh(script), evs.back()));
  }
  for (int i = 0; i < kChildren; ++i) {
    auto st = evs[i]->wait_exit();
    ASSERT_TRUE(st) << i;
    if (i % 5 == 0) {
      EXPECT_TRUE(st->signaled) << i;
      EXPECT_EQ(st->signal, SIGKILL) << i;
    } else {
      EXPECT_FALSE(st->signaled) << i;
      EXPECT_EQ(st->code, i % 7) << i;
    }
    EXPECT_EQ(evs[i]->snapshot_lines(), std::vector<std::string>{"child" + std::to_string(i)});
  }
  EXPECT_TRUE(eventually([] { return zombie_children().empty(); }));
}

// ---- spawn failures ----

TEST_F(ChildProcessTest, MissingOrNonExecutableBinary) {
  struct Case {
    std::string binary;
    std::errc expected;
  };
  const std::vector<Case> cases = {
      {"/nonexistent/dir/claude", std::errc::no_such_file_or_directory},
      {"pa-no-such-binary-anywhere", std::errc::no_such_file_or_directory},
      {"", std::errc::no_such_file_or_directory},
      {"/etc/passwd", std::errc::permission_denied},  // not executable
      {"/tmp", std::errc::permission_denied},         // not a regular file
  };
  for (const auto& c : cases) {
    auto ev = std::make_shared<Events>();
    std::error_code ec;
    auto child =
        ChildProcess::spawn(io_.get_executor(), io_.get_executor(),
                            SpawnSpec{c.binary, {}, kEnv, "/"}, 1024, handlers_for(ev), ec);
    EXPECT_EQ(child, nullptr) << c.binary;
    EXPECT_EQ(ec, c.expected) << c.binary << ": " << ec.message();
  }
  // chdir fails in the child, after fork: reported through the CLOEXEC pipe, child reaped.
  auto ev = std::make_shared<Events>();
  std::error_code ec;
  auto child = ChildProcess::spawn(io_.get_executor(), io_.get_executor(),
                                   SpawnSpec{"/bin/true", {}, kEnv, "/nonexistent/cwd"}, 1024,
                                   handlers_for(ev), ec);
  EXPECT_EQ(child, nullptr);
  EXPECT_EQ(ec, std::errc::no_such_file_or_directory) << ec.message();
  EXPECT_TRUE(eventually([] { return zombie_children().empty(); }));
  EXPECT_EQ(ev->exit_future.wait_for(0s), std::future_status::timeout);  // no on_exit
}

TEST(FindExecutable, PathLookup) {
  EXPECT_EQ(find_executable("sh", {"PATH=/nonexistent:/bin"}), "/bin/sh");
  EXPECT_EQ(find_executable("sh", {"PATH=/nonexistent"}), "");
  EXPECT_EQ(find_executable("passwd", {"PATH=/etc"}), "");  // /etc/passwd: not executable
  EXPECT_EQ(find_executable("sh", {"PATH=::relative:/bin/"}), "/bin/sh");
  EXPECT_EQ(find_executable("/bin/sh", {}), "/bin/sh");
  EXPECT_EQ(find_executable("/etc/passwd", {}), "");
  EXPECT_EQ(find_executable("", {}), "");
  EXPECT_FALSE(find_executable("sh", {"HOME=/"}).empty());  // the server's PATH
}

// ---- stderr, env, cwd ----

TEST_F(ChildProcessTest, StderrTailKeepsTheLastEightKiB) {
  auto ev = std::make_shared<Events>();
  auto child =
      spawn(sh("{ echo first; head -c 20000 /dev/zero | tr '\\0' a; printf END; } >&2"), ev);
  ASSERT_TRUE(child);
  ASSERT_TRUE(ev->wait_exit());
  const std::string tail = child->stderr_tail();  // complete once on_exit ran
  ASSERT_EQ(tail.size(), 8192u);
  EXPECT_EQ(tail.substr(tail.size() - 3), "END");
  EXPECT_EQ(tail.find_first_not_of('a'), tail.size() - 3);
}

TEST_F(ChildProcessTest, EnvironmentIsExactlyWhatWasPassed) {
  auto ev = std::make_shared<Events>();
  const std::vector<std::string> env = {"FOO=bar", "EMPTY=", "SPACED=a b  c", "X=1"};
  run({"/usr/bin/env", {}, env, "/"}, ev);
  EXPECT_EQ(ev->snapshot_lines(), env);

  auto ev2 = std::make_shared<Events>();
  const auto st = run({"/usr/bin/env", {}, {}, "/"}, ev2);
  EXPECT_EQ(st.code, 0);
  EXPECT_TRUE(ev2->snapshot_lines().empty());
}

TEST_F(ChildProcessTest, ArgumentsAreNotInterpreted) {
  auto ev = std::make_shared<Events>();
  run({"printf", {"%s|\\n", "a b", "$HOME", "'q'", ""}, kEnv, "/"}, ev);  // PATH lookup
  const std::vector<std::string> expected = {"a b|", "$HOME|", "'q'|", "|"};
  EXPECT_EQ(ev->snapshot_lines(), expected);
}

TEST_F(ChildProcessTest, WorkingDirectoryIsHonoured) {
  char tmpl[] = "/tmp/pa-agent-cwd-XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  const std::string dir = std::filesystem::canonical(tmpl);
  auto ev = std::make_shared<Events>();
  run({"/bin/pwd", {}, kEnv, dir}, ev);
  EXPECT_EQ(ev->snapshot_lines(), std::vector<std::string>{dir});
  std::filesystem::remove(dir);
}

// ---- process trees ----

// The shape of a Claude Bash tool: it starts its own session, out of the child's group.
TEST_F(ChildProcessTest, KillTreeKillsSetsidGrandchild) {
  if (no_reaper_mode()) GTEST_SKIP();
  auto ev = std::make_shared<Events>();
  auto child = spawn(sh("setsid /bin/sleep 1000 & echo $!; exec /bin/sleep 1000"), ev);
  ASSERT_TRUE(child);
  ASSERT_TRUE(ev->wait_lines(1));
  const pid_t grandchild = std::stoi(ev->snapshot_lines()[0]);
  ASSERT_TRUE(eventually([&] {
    auto st = read_stat(grandchild);
    return st && st->sid == grandchild;  // setsid done: its own session and group
  }));
  EXPECT_NE(read_stat(grandchild)->pgid, child->pid());

  child->kill_tree();
  auto st = ev->wait_exit();
  ASSERT_TRUE(st);
  EXPECT_TRUE(st->signaled);
  EXPECT_EQ(st->signal, SIGKILL);
  EXPECT_TRUE(eventually([&] { return process_gone(grandchild); })) << describe(grandchild);
  EXPECT_TRUE(eventually([&] { return process_gone(child->pid()); }));
}

// The CLI died on its own and left a tool behind: the orphan re-parented to us (subreaper) and
// is found again through what was recorded while the child ran.
TEST_F(ChildProcessTest, KillTreeAfterTheChildExitedFindsItsOrphan) {
  if (no_reaper_mode()) GTEST_SKIP();
  auto ev = std::make_shared<Events>();
  auto child = spawn(sh("setsid /bin/sleep 1000 & echo $!; read x; exit 0"), ev);
  ASSERT_TRUE(child);
  ASSERT_TRUE(ev->wait_lines(1));
  const pid_t orphan = std::stoi(ev->snapshot_lines()[0]);
  child->close_stdin();  // the shell's `read` sees EOF and the shell exits
  auto st = ev->wait_exit();
  ASSERT_TRUE(st);
  EXPECT_EQ(st->code, 0);
  ASSERT_TRUE(eventually([&] {
    auto s = read_stat(orphan);
    return s && s->ppid == ::getpid();
  })) << "orphan did not re-parent to the subreaper";

  child->kill_tree();
  EXPECT_TRUE(eventually([&] { return process_gone(orphan); })) << describe(orphan);
}

// A background process keeps stdout open after the child ended: on_exit still comes (after a
// short grace), with every line the child wrote.
TEST_F(ChildProcessTest, ExitIsReportedWhileADescendantHoldsStdout) {
  if (no_reaper_mode()) GTEST_SKIP();
  auto ev = std::make_shared<Events>();
  auto child = spawn(sh("echo a; /bin/sleep 1000 & echo $!; exit 5"), ev);
  ASSERT_TRUE(child);
  auto st = ev->wait_exit(10s);
  ASSERT_TRUE(st);
  EXPECT_EQ(st->code, 5);
  const auto lines = ev->snapshot_lines();
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0], "a");
  const pid_t background = std::stoi(lines[1]);
  EXPECT_TRUE(proc_exists(background));
  child->kill_tree();  // still in the child's process group
  EXPECT_TRUE(eventually([&] { return process_gone(background); })) << describe(background);
}

// ---- run_capture ----

TEST(RunCapture, CapturesStdoutAndStatus) {
  auto r = run_capture({"/bin/echo", {"hello", "world"}, kEnv, "/"}, 10s);
  EXPECT_FALSE(r.ec) << r.ec.message();
  EXPECT_EQ(r.out, "hello world\n");
  EXPECT_FALSE(r.status.signaled);
  EXPECT_EQ(r.status.code, 0);

  r = run_capture(sh("printf 'x\\ny'; echo ignored >&2; exit 3"), 10s);
  EXPECT_FALSE(r.ec);
  EXPECT_EQ(r.out, "x\ny");
  EXPECT_EQ(r.status.code, 3);
}

// Output past the cap is read and dropped (the child finishes, not blocked on a full pipe).
TEST(RunCapture, KeepsAtMostMaxBytesAndSaysItCutTheRest) {
  auto r = run_capture(sh("head -c 200000 /dev/zero | tr '\\0' a; exit 4"), 10s, 5);
  EXPECT_FALSE(r.ec) << r.ec.message();
  EXPECT_EQ(r.out, "aaaaa");
  EXPECT_TRUE(r.truncated);
  EXPECT_EQ(r.status.code, 4);
  r = run_capture({"/bin/echo", {"hi"}, kEnv, "/"}, 10s, 3);
  EXPECT_EQ(r.out, "hi\n");
  EXPECT_FALSE(r.truncated);
}

TEST(RunCapture, KillsTheGroupOnTimeout) {
  const auto start = std::chrono::steady_clock::now();
  auto r = run_capture(sh("echo started; /bin/sleep 1000; echo never"), 300ms);
  EXPECT_EQ(r.ec, std::errc::timed_out);
  EXPECT_TRUE(r.status.signaled);
  EXPECT_EQ(r.status.signal, SIGKILL);
  EXPECT_EQ(r.out, "started\n");
  EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);
  EXPECT_TRUE(eventually([] { return zombie_children().empty(); }));
}

TEST(RunCapture, SpawnFailure) {
  auto r = run_capture({"/nonexistent/claude", {"--version"}, kEnv, "/"}, 1s);
  EXPECT_EQ(r.ec, std::errc::no_such_file_or_directory);
  EXPECT_TRUE(r.out.empty());
}

TEST(RunCapture, ReturnsAtExitEvenIfADescendantHoldsStdout) {
  const auto start = std::chrono::steady_clock::now();
  auto r = run_capture(sh("echo hi; /bin/sleep 1000 & echo $!"), 20s);
  EXPECT_FALSE(r.ec) << r.ec.message();
  EXPECT_EQ(r.status.code, 0);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 10s);
  std::istringstream in(r.out);
  std::string first;
  pid_t background = 0;
  in >> first >> background;
  EXPECT_EQ(first, "hi");
  ASSERT_GT(background, 0);
  ::kill(background, SIGKILL);
  if (no_reaper_mode()) {  // not our child: the shell's orphan went to init
    EXPECT_TRUE(eventually([&] { return ::kill(background, 0) == -1; }));
  } else {
    EXPECT_TRUE(eventually([&] { return process_gone(background); }));
  }
}

// ---- without install_reaper: the same binary, rerun with the reaper disabled ----

TEST(NoReaperMode, ChildrenAreWaitedForDirectly) {
  if (!no_reaper_mode()) {
    // Outer run: start this binary again in no-reaper mode, through run_capture.
    const std::string self = std::filesystem::read_symlink("/proc/self/exe");
    auto r = run_capture({self,
                          {"--gtest_filter=NoReaperMode.*:RunCapture.*:ChildProcessTest.Exit*:"
                           "ChildProcessTest.Missing*:ChildProcessTest.Lines*"},
                          {"PATH=/usr/bin:/bin", "PA_TEST_NO_REAPER=1"},
                          "/"},
                         100s);
    EXPECT_FALSE(r.ec) << r.ec.message();
    EXPECT_EQ(r.status.code, 0) << r.out;
    EXPECT_NE(r.out.find("[  PASSED  ]"), std::string::npos) << r.out;
    EXPECT_EQ(r.out.find("[  FAILED  ]"), std::string::npos) << r.out;
    return;
  }
  // Inner run: no subreaper, no SIGCHLD handler; nothing must be left unreaped.
  boost::asio::io_context io;
  auto ev = std::make_shared<Events>();
  std::error_code ec;
  auto child = ChildProcess::spawn(io.get_executor(), io.get_executor(), sh("echo x; exit 4"), 1024,
                                   handlers_for(ev), ec);
  ASSERT_FALSE(ec);
  io.run();  // returns once the child was polled to its end
  auto st = ev->wait_exit(0s);
  ASSERT_TRUE(st);
  EXPECT_EQ(st->code, 4);
  EXPECT_EQ(ev->snapshot_lines(), std::vector<std::string>{"x"});
  int status;
  EXPECT_EQ(::waitpid(-1, &status, WNOHANG), -1);  // ECHILD: nothing left to reap
}

}  // namespace
}  // namespace pa::agent
