// Server logging: formats, file output, level filtering, reopening after logrotate, fatal lines
// on stderr, and reloading while other threads log.
#include "ops/logging.hpp"

#include <gtest/gtest.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <atomic>
#include <boost/json/parse.hpp>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace pa::ops {
namespace {

namespace fs = std::filesystem;

std::vector<std::string> lines_of(const fs::path& file) {
  std::vector<std::string> out;
  std::ifstream in(file);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

config::Config::Logging settings(const std::string& output, const std::string& format = "text",
                                 const std::string& level = "info") {
  config::Config::Logging l;
  l.output = output;
  l.format = format;
  l.level = level;
  return l;
}

class LoggingTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("pa-logging-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override {
    setup_logging(settings("stderr"));  // later tests must not write into a removed directory
    fs::remove_all(dir_);
  }
  fs::path dir_;
};

const std::regex kTextLine(R"((\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z) (\w+) (.*))");

TEST_F(LoggingTest, TextFormatIsTimestampLevelMessageAndFields) {
  const auto file = dir_ / "server.log";
  setup_logging(settings(file.string(), "text"));
  log_event(spdlog::level::info, "Execution completed",
            boost::json::object{{"project_id", "p1"}, {"exit_code", 0}});
  spdlog::warn("plain {}", 42);
  const auto lines = lines_of(file);
  ASSERT_EQ(lines.size(), 2u);
  std::smatch m;
  ASSERT_TRUE(std::regex_match(lines[0], m, kTextLine)) << lines[0];
  EXPECT_EQ(m[2], "info");
  EXPECT_EQ(m[3], R"(Execution completed project_id="p1" exit_code=0)");
  ASSERT_TRUE(std::regex_match(lines[1], m, kTextLine)) << lines[1];
  EXPECT_EQ(m[2], "warn");
  EXPECT_EQ(m[3], "plain 42");
}

TEST_F(LoggingTest, JsonFormatIsOneObjectPerLineWithTheFieldsAsKeys) {
  const auto file = dir_ / "server.log";
  setup_logging(settings(file.string(), "json"));
  log_event(spdlog::level::info, "Execution completed",
            boost::json::object{{"project_id", "p1"}, {"duration_ms", 12}});
  spdlog::error("quote \" and newline \n inside");
  const auto lines = lines_of(file);
  ASSERT_EQ(lines.size(), 2u);
  const auto first = boost::json::parse(lines[0]).as_object();
  EXPECT_EQ(first.at("level").as_string(), "info");
  EXPECT_EQ(first.at("msg").as_string(), "Execution completed");
  EXPECT_EQ(first.at("project_id").as_string(), "p1");
  EXPECT_EQ(first.at("duration_ms").to_number<int>(), 12);
  EXPECT_TRUE(std::regex_match(std::string(first.at("timestamp").as_string()),
                               std::regex(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)")));
  const auto second = boost::json::parse(lines[1]).as_object();
  EXPECT_EQ(second.at("level").as_string(), "error");
  EXPECT_EQ(second.at("msg").as_string(), "quote \" and newline \n inside");
}

TEST_F(LoggingTest, LevelFiltersLowerLevelsAndAReloadChangesIt) {
  const auto file = dir_ / "server.log";
  setup_logging(settings(file.string(), "text", "warn"));
  spdlog::debug("d1");
  spdlog::info("i1");
  spdlog::warn("w1");
  spdlog::error("e1");
  spdlog::critical("f1");
  setup_logging(settings(file.string(), "text", "debug"));
  spdlog::debug("d2");
  setup_logging(settings(file.string(), "text", "fatal"));
  spdlog::error("e3");
  spdlog::critical("f3");
  std::vector<std::string> got;
  for (const auto& line : lines_of(file)) {
    std::smatch m;
    ASSERT_TRUE(std::regex_match(line, m, kTextLine)) << line;
    got.push_back(m[2].str() + " " + m[3].str());
  }
  EXPECT_EQ(got,
            (std::vector<std::string>{"warn w1", "error e1", "fatal f1", "debug d2", "fatal f3"}));
}

TEST_F(LoggingTest, ReopenAfterLogrotateMovedTheFileWritesANewOne) {
  const auto file = dir_ / "server.log";
  const auto rotated = dir_ / "server.log.1";
  setup_logging(settings(file.string()));
  spdlog::info("before rotation");
  fs::rename(file, rotated);
  spdlog::info("still the old file");  // the open descriptor follows the moved file
  EXPECT_FALSE(fs::exists(file));
  reopen_log_file();
  spdlog::info("after reopen");
  const auto old_lines = lines_of(rotated);
  ASSERT_EQ(old_lines.size(), 2u);
  EXPECT_NE(old_lines[0].find("before rotation"), std::string::npos);
  EXPECT_NE(old_lines[1].find("still the old file"), std::string::npos);
  const auto new_lines = lines_of(file);
  ASSERT_EQ(new_lines.size(), 1u);
  EXPECT_NE(new_lines[0].find("after reopen"), std::string::npos);
}

TEST_F(LoggingTest, AnUnopenableFileKeepsTheCurrentOutput) {
  const auto file = dir_ / "server.log";
  setup_logging(settings(file.string()));
  // A directory cannot be opened as the log file (spdlog creates missing parent directories).
  EXPECT_THROW(setup_logging(settings(dir_.string())), std::runtime_error);
  spdlog::info("still here");
  const auto lines = lines_of(file);
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_NE(lines[0].find("still here"), std::string::npos);
}

// Captures what is written to file descriptor 2 while it lives.
class StderrCapture {
 public:
  explicit StderrCapture(const fs::path& file) {
    std::fflush(stderr);
    saved_ = ::dup(2);
    std::FILE* f = std::fopen(file.c_str(), "w");
    ::dup2(::fileno(f), 2);
    std::fclose(f);
  }
  ~StderrCapture() {
    std::fflush(stderr);
    ::dup2(saved_, 2);
    ::close(saved_);
  }

 private:
  int saved_ = -1;
};

TEST_F(LoggingTest, WithAFileOutputFatalLinesAlsoGoToStderr) {
  const auto file = dir_ / "server.log";
  const auto err = dir_ / "stderr.txt";
  {
    StderrCapture capture(err);
    setup_logging(settings(file.string()));
    spdlog::error("an error");
    spdlog::critical("a fatal error");
    log_fatal("fatal through log_fatal");
  }
  const auto in_file = lines_of(file);
  ASSERT_EQ(in_file.size(), 3u);
  const auto on_stderr = lines_of(err);
  ASSERT_EQ(on_stderr.size(), 2u);  // fatal only, once each
  EXPECT_NE(on_stderr[0].find("fatal a fatal error"), std::string::npos) << on_stderr[0];
  EXPECT_NE(on_stderr[1].find("fatal fatal through log_fatal"), std::string::npos) << on_stderr[1];
}

TEST_F(LoggingTest, LogFatalWritesStderrOnceWhenTheLogIsStderr) {
  const auto err = dir_ / "stderr.txt";
  {
    StderrCapture capture(err);
    setup_logging(settings("stderr"));
    log_fatal("cannot listen");
  }
  const auto lines = lines_of(err);
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_NE(lines[0].find("fatal cannot listen"), std::string::npos) << lines[0];
}

// Several threads log while another reloads (alternating files, formats, reopening) many times.
// Every line lands whole in exactly one of the two files: none is lost, torn or doubled. Under
// ThreadSanitizer (make test-race) this also shows the reload does not race with logging.
TEST_F(LoggingTest, ReloadingWhileOtherThreadsLogLosesNoLine) {
  const auto a = dir_ / "a.log";
  const auto b = dir_ / "b.log";
  setup_logging(settings(a.string(), "json"));
  constexpr int kThreads = 4;
  constexpr int kLinesEach = 2000;
  std::atomic<int> running{kThreads};
  std::vector<std::thread> loggers;
  for (int t = 0; t < kThreads; ++t) {
    loggers.emplace_back([t, &running] {
      for (int i = 0; i < kLinesEach; ++i) {
        if (i % 2 == 0) {
          log_event(spdlog::level::info, "event", boost::json::object{{"t", t}, {"i", i}});
        } else {
          spdlog::info("line t={} i={}", t, i);
        }
      }
      --running;
    });
  }
  int reloads = 0;
  while (running > 0 || reloads < 50) {
    const bool to_a = reloads % 2 == 0;
    setup_logging(settings((to_a ? a : b).string(), to_a ? "text" : "json"));
    if (reloads % 3 == 0) reopen_log_file();
    ++reloads;
  }
  for (auto& t : loggers) t.join();
  setup_logging(settings("stderr"));

  int events = 0;
  int plain = 0;
  for (const auto& file : {a, b}) {
    for (const auto& line : lines_of(file)) {
      if (!line.empty() && line.front() == '{') {
        const auto o = boost::json::parse(line).as_object();
        if (o.at("msg").as_string() == "event") {
          ASSERT_TRUE(o.contains("t") && o.contains("i")) << line;
          ++events;
        } else {
          ++plain;
        }
        continue;
      }
      std::smatch m;
      ASSERT_TRUE(std::regex_match(line, m, kTextLine)) << line;
      if (m[3].str().rfind("event t=", 0) == 0) {
        ++events;
      } else {
        ASSERT_EQ(m[3].str().rfind("line t=", 0), 0u) << line;
        ++plain;
      }
    }
  }
  EXPECT_GE(reloads, 50);
  EXPECT_EQ(events, kThreads * kLinesEach / 2);
  EXPECT_EQ(plain, kThreads * kLinesEach / 2);
}

}  // namespace
}  // namespace pa::ops
