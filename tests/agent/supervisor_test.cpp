// The spool format and the supervisor process, driven through the server's link with the fake
// CLI: records in order, tags carried out once, stops and timeouts with their records, exit.
#include "agent/supervisor.hpp"

#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/json/parse.hpp>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <thread>

#include "agent/run_options.hpp"

namespace pa::agent {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using ::testing::HasSubstr;

// ---- spool ----

std::vector<std::pair<char, std::string>> split_all(const std::string& bytes, std::size_t chunk,
                                                    std::uint64_t& offset_out,
                                                    std::vector<std::uint64_t>* offsets = nullptr,
                                                    std::size_t max_record = 1 << 20) {
  RecordSplitter splitter(0, max_record);
  std::vector<std::pair<char, std::string>> out;
  for (std::size_t at = 0; at < bytes.size(); at += chunk) {
    const std::size_t n = std::min(chunk, bytes.size() - at);
    splitter.feed(bytes.data() + at, n, [&](const SpoolRecord& r) {
      out.emplace_back(static_cast<char>(r.kind), std::string(r.payload));
      if (offsets) offsets->push_back(r.end_offset);
    });
  }
  offset_out = splitter.offset();
  return out;
}

TEST(Spool, RecordsSplitAtAnyChunkSizeWithExactEndOffsets) {
  const std::string a = encode_record(RecordKind::kLine, R"({"type":"assistant"})");
  const std::string b = encode_record(RecordKind::kInput, R"({"tag":"prompt"})");
  const std::string c = encode_record(RecordKind::kExit, R"({"code":0})");
  const std::string all = a + b + c;
  for (std::size_t chunk : {1u, 2u, 7u, 64u, 4096u}) {
    std::uint64_t offset = 0;
    std::vector<std::uint64_t> ends;
    const auto records = split_all(all, chunk, offset, &ends);
    ASSERT_EQ(records.size(), 3u) << chunk;
    EXPECT_EQ(records[0], std::make_pair('o', std::string(R"({"type":"assistant"})")));
    EXPECT_EQ(records[1].first, 'i');
    EXPECT_EQ(records[2].first, 'x');
    EXPECT_EQ(ends, (std::vector<std::uint64_t>{a.size(), a.size() + b.size(), all.size()}));
    EXPECT_EQ(offset, all.size());
  }
}

TEST(Spool, NoticesTakeNoOffsetAndATornTailWaits) {
  const std::string a = encode_record(RecordKind::kLine, "{}");
  const std::string notice = encode_record(RecordKind::kNotice, R"({"storage":null})");
  std::uint64_t offset = 0;
  std::vector<std::uint64_t> ends;
  const auto records = split_all(a + notice + "otorn-without-newline", 5, offset, &ends);
  ASSERT_EQ(records.size(), 2u);
  EXPECT_EQ(records[1].first, 'N');
  EXPECT_EQ(offset, a.size()) << "a notice is not in the file; the torn tail is not a record";
}

TEST(Spool, AnOverlongRecordIsReportedNotBuffered) {
  const std::string big = encode_record(RecordKind::kLine, std::string(5000, 'x'));
  const std::string next = encode_record(RecordKind::kLine, "{}");
  std::uint64_t offset = 0;
  const auto records = split_all(big + next, 100, offset, nullptr, 1000);
  ASSERT_EQ(records.size(), 2u);
  EXPECT_EQ(records[0].first, 'O');
  EXPECT_THAT(records[0].second, HasSubstr("\"bytes\":5001"));
  EXPECT_EQ(records[1].first, 'o');
  EXPECT_EQ(offset, big.size() + next.size());
}

TEST(Spool, WriterAppendsWholeRecordsAndTheFileReadsBack) {
  const fs::path dir = fs::temp_directory_path() / ("pa-spool-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const std::string path = (dir / "spool").string();
  {
    SpoolWriter w;
    ASSERT_FALSE(w.open(path));
    EXPECT_EQ(w.size(), 0u);
    ASSERT_FALSE(w.append(encode_record(RecordKind::kLine, "one")));
    ASSERT_FALSE(w.append(encode_record(RecordKind::kLine, "two")));
    EXPECT_TRUE(w.dirty());
    ASSERT_FALSE(w.sync());
    EXPECT_FALSE(w.dirty());
  }
  EXPECT_EQ(fs::status(path).permissions() & fs::perms::all,
            fs::perms::owner_read | fs::perms::owner_write);
  std::ofstream(path, std::ios::app) << "othree-torn";  // a crash mid-write
  std::vector<std::string> lines;
  std::error_code ec;
  const auto end = read_spool_file(
      path, 0, 1 << 20, [&](const SpoolRecord& r) { lines.emplace_back(r.payload); }, ec);
  EXPECT_FALSE(ec);
  EXPECT_EQ(lines, (std::vector<std::string>{"one", "two"}));
  EXPECT_EQ(end, 10u);
  // Reopened, the writer starts at the file's size (a supervisor never reopens; a reader may
  // start anywhere): from offset 5 only the second record.
  lines.clear();
  read_spool_file(
      path, 5, 1 << 20, [&](const SpoolRecord& r) { lines.emplace_back(r.payload); }, ec);
  EXPECT_EQ(lines, (std::vector<std::string>{"two"}));
  fs::remove_all(dir);
}

TEST(SupervisorSpec, RoundTripsThroughJson) {
  SupervisorSpec spec;
  spec.cli.binary = "/bin/claude";
  spec.cli.args = {"-p", "--verbose"};
  spec.cli.env = {"PATH=/bin", "HOME=/h"};
  spec.cli.cwd = "/p";
  spec.execution = 7s;
  spec.execution_idle = 3s;
  spec.fsync_interval = 0ms;
  const auto back = supervisor_spec_from_json(boost::json::value(to_json(spec)));
  EXPECT_EQ(back.cli.binary, spec.cli.binary);
  EXPECT_EQ(back.cli.args, spec.cli.args);
  EXPECT_EQ(back.cli.env, spec.cli.env);
  EXPECT_EQ(back.execution, 7s);
  EXPECT_EQ(back.execution_idle, 3s);
  EXPECT_EQ(back.fsync_interval, 0ms);
  EXPECT_THROW(supervisor_spec_from_json(boost::json::parse(R"({"binary":1})")),
               std::runtime_error);
}

// ---- the supervisor process ----

class SupervisorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() /
            ("pa-sup-" + std::to_string(::getpid()) + "-" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(root_);
    fs::create_directories(root_ / "run");
    fs::create_directories(root_ / "project");
    fs::permissions(root_ / "run", fs::perms::owner_all);
    paths_.dir = (root_ / "run").string();
    thread_ = std::thread([this] { io_.run(); });
  }
  void TearDown() override {
    if (link_) link_->detach();
    link_.reset();
    work_.reset();
    io_.stop();
    thread_.join();
    if (launched_.supervisor_pid > 0) ::kill(launched_.supervisor_pid, SIGKILL);
    fs::remove_all(root_);
  }

  SupervisorSpec spec(std::chrono::seconds execution = 0s) {
    SupervisorSpec s;
    s.cli.binary = PA_FAKE_CLAUDE;
    s.cli.args = {"-p", "--input-format=stream-json", "--output-format=stream-json", "--verbose"};
    s.cli.env = {"PATH=/usr/bin:/bin", "FAKE_CLAUDE_STATE_DIR=" + (root_ / "state").string(),
                 "FAKE_CLAUDE_RECORD=" + (root_ / "record.jsonl").string()};
    s.cli.cwd = (root_ / "project").string();
    s.execution = execution;
    s.kill_grace = 1s;
    s.term_grace = 1s;
    s.fsync_interval = 0ms;
    s.retention = 60s;
    return s;
  }

  void launch(const SupervisorSpec& s) {
    const int dir = ::open(s.cli.cwd.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    ASSERT_GE(dir, 0);
    std::error_code ec;
    std::string error;
    launched_ = launch_supervisor(PA_SERVER_BINARY, paths_, s, dir, ec, error);
    ::close(dir);
    ASSERT_FALSE(ec) << error;
    ASSERT_GT(launched_.cli_pid, 0);
    EXPECT_TRUE(supervisor_alive(launched_.supervisor_pid, launched_.supervisor_start));
    EXPECT_EQ(fs::status(paths_.socket()).permissions() & fs::perms::all,
              fs::perms::owner_read | fs::perms::owner_write);
    LinkHandlers handlers;
    handlers.on_record = [this](const SpoolRecord& r) {
      std::lock_guard lk(mu_);
      records_.emplace_back(static_cast<char>(r.kind), std::string(r.payload));
      cv_.notify_all();
      return true;
    };
    handlers.on_disconnect = [this](std::error_code) {
      std::lock_guard lk(mu_);
      disconnected_ = true;
      cv_.notify_all();
    };
    link_ = SupervisorLink::attach(io_.get_executor(), io_.get_executor(), paths_, 0, 1 << 24,
                                   std::move(handlers), ec);
    ASSERT_TRUE(link_) << ec.message();
    EXPECT_EQ(link_->cli_pid(), launched_.cli_pid);
  }

  // Waits until a record of `kind` whose payload contains `text` arrived.
  bool wait_for(char kind, const std::string& text = {}, std::chrono::seconds deadline = 30s) {
    std::unique_lock lk(mu_);
    return cv_.wait_for(lk, deadline, [&] {
      for (const auto& [k, p] : records_) {
        if (k == kind && p.find(text) != std::string::npos) return true;
      }
      return false;
    });
  }
  int count(char kind, const std::string& text = {}) {
    std::lock_guard lk(mu_);
    int n = 0;
    for (const auto& [k, p] : records_) n += k == kind && p.find(text) != std::string::npos;
    return n;
  }

  fs::path root_;
  RunPaths paths_;
  boost::asio::io_context io_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_{
      io_.get_executor()};
  std::thread thread_;
  Launched launched_;
  std::shared_ptr<SupervisorLink> link_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::pair<char, std::string>> records_;
  bool disconnected_ = false;
};

TEST_F(SupervisorTest, RunsATurnAndCarriesEachTagOutOnce) {
  launch(spec());
  const std::string prompt = user_message_line("[[fake:text text=hello]]");
  link_->write(prompt, "prompt");
  link_->write(prompt, "prompt");  // a resend after a restart: not written again
  ASSERT_TRUE(wait_for('o', "\"type\":\"result\""));
  link_->close_stdin();
  ASSERT_TRUE(wait_for('x'));
  EXPECT_EQ(count('i', "\"prompt\""), 1);
  EXPECT_EQ(count('o', "hello"), 2) << "the assistant text and the result";
  link_->done();
  // Done: the supervisor removes its socket and exits, leaving the spool.
  EXPECT_TRUE([&] {
    for (int i = 0; i < 500; ++i) {
      if (!supervisor_alive(launched_.supervisor_pid, launched_.supervisor_start)) return true;
      std::this_thread::sleep_for(10ms);
    }
    return false;
  }());
  EXPECT_FALSE(fs::exists(paths_.socket()));
  EXPECT_TRUE(fs::exists(paths_.spool()));
  std::ifstream record(root_ / "record.jsonl");
  std::string line;
  std::getline(record, line);
  const auto rec = boost::json::parse(line).as_object();
  EXPECT_EQ(rec.at("stdin").as_array().size(), 1u) << line;
}

TEST_F(SupervisorTest, StopInterruptsThenEscalatesAndRecordsWhy) {
  launch(spec());
  link_->write(user_message_line("[[fake:hang ignore-interrupt=1 ignore-sigterm=1]]"), "prompt");
  ASSERT_TRUE(wait_for('o', "\"subtype\":\"init\""));
  link_->stop("kill");
  ASSERT_TRUE(wait_for('s', "\"kill\""));
  ASSERT_TRUE(wait_for('x', "\"signaled\":true"));
  EXPECT_EQ(::kill(launched_.cli_pid, 0), -1) << "the CLI is gone";
}

TEST_F(SupervisorTest, EnforcesTheExecutionTimeoutItself) {
  launch(spec(1s));
  link_->write(user_message_line("[[fake:hang]]"), "prompt");
  ASSERT_TRUE(wait_for('s', "\"timeout\""));
  ASSERT_TRUE(wait_for('x'));
}

TEST_F(SupervisorTest, ReattachingAtAnOffsetReplaysFromThere) {
  launch(spec());
  link_->write(user_message_line("[[fake:drip lines=3 interval_ms=1]]"), "prompt");
  link_->close_stdin();
  ASSERT_TRUE(wait_for('x'));
  std::size_t first_end = 0;
  {
    std::ifstream in(paths_.spool());
    std::string first;
    std::getline(in, first);
    first_end = first.size() + 1;
  }
  const auto all = [&] {
    std::lock_guard lk(mu_);
    return records_;
  }();
  // A second server attaches at the end of the first record: it gets the rest, the same.
  std::mutex mu2;
  std::vector<std::pair<char, std::string>> again;
  LinkHandlers handlers;
  handlers.on_record = [&](const SpoolRecord& r) {
    std::lock_guard lk(mu2);
    again.emplace_back(static_cast<char>(r.kind), std::string(r.payload));
    return true;
  };
  std::error_code ec;
  auto second = SupervisorLink::attach(io_.get_executor(), io_.get_executor(), paths_, first_end,
                                       1 << 24, std::move(handlers), ec);
  ASSERT_TRUE(second) << ec.message();
  for (int i = 0; i < 500; ++i) {
    {
      std::lock_guard lk(mu2);
      if (again.size() + 1 >= all.size()) break;
    }
    std::this_thread::sleep_for(10ms);
  }
  std::lock_guard lk(mu2);
  ASSERT_EQ(again.size() + 1, all.size());
  for (std::size_t i = 0; i < again.size(); ++i) EXPECT_EQ(again[i], all[i + 1]);
  second->detach();
}

// The idle clock restarts with every line: a run that keeps talking for longer than
// execution_idle in all is not stopped; one that falls silent is.
TEST_F(SupervisorTest, IdleTimeoutCountsFromTheLastLine) {
  auto s = spec();
  s.execution_idle = 2s;
  launch(s);
  link_->write(user_message_line("[[fake:drip lines=30 interval_ms=100]]"), "prompt");
  ASSERT_TRUE(wait_for('o', "\"type\":\"result\""));
  EXPECT_EQ(count('s'), 0) << "3 s of output, never 2 s of silence";
  link_->write(user_message_line("[[fake:hang]]"), "follow_up:1");
  ASSERT_TRUE(wait_for('s', "\"idle_timeout\""));
  ASSERT_TRUE(wait_for('x'));
}

// A flood goes out from memory while the reader keeps up and from the file when it falls
// behind (lines are batched per pipe read): the link gets exactly the file's records, in order.
TEST_F(SupervisorTest, AFloodReachesTheLinkWholeAndInTheFilesOrder) {
  launch(spec());
  link_->write(user_message_line("[[fake:flood lines=20000 bytes=300]]"), "prompt");
  link_->close_stdin();
  ASSERT_TRUE(wait_for('x', {}, 120s));
  std::vector<std::pair<char, std::string>> from_file;
  std::error_code ec;
  read_spool_file(
      paths_.spool(), 0, 1 << 24,
      [&](const SpoolRecord& r) {
        from_file.emplace_back(static_cast<char>(r.kind), std::string(r.payload));
      },
      ec);
  ASSERT_FALSE(ec) << ec.message();
  std::lock_guard lk(mu_);
  ASSERT_EQ(records_.size(), from_file.size());
  EXPECT_TRUE(records_ == from_file);
  int floods = 0;
  for (const auto& [kind, payload] : records_) {
    if (kind == 'o' && payload.find("\"#" + std::to_string(floods) + " t=") != std::string::npos) {
      ++floods;
    }
  }
  EXPECT_EQ(floods, 20000) << "every flood line, numbered in order";
}

TEST_F(SupervisorTest, AMissingCliIsReportedWithItsErrno) {
  auto s = spec();
  s.cli.binary = (root_ / "no-such-claude").string();
  const int dir = ::open(s.cli.cwd.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  std::error_code ec;
  std::string error;
  launch_supervisor(PA_SERVER_BINARY, paths_, s, dir, ec, error);
  ::close(dir);
  EXPECT_EQ(ec, std::errc::no_such_file_or_directory) << error;
  EXPECT_THAT(error, HasSubstr("no-such-claude"));
}

}  // namespace
}  // namespace pa::agent
