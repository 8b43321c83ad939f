// Checks the argv that build_cli_args produces against the REAL Claude Code CLI's own argument
// parser (the version pinned in tools/claude-cli/package.json, installed by `make deps`).
//
// Without credentials the CLI still parses and validates every argument, then answers the turn
// with a synthetic "Not logged in" result (CLI-BEHAVIOUR.md §1). Argument errors instead exit 1
// within a second with a message on stderr and no result line. So a run that reaches a `result`
// line with a clean stderr proves that the CLI accepted every element of argv.
//
// The child is started with fork/exec and pipes by a helper local to this file. The agent_tests
// binary installs the server's SIGCHLD reaper (child_process_test.cpp), which reaps every child
// it sees; so the CLI is started by an intermediate process that waits for it and reports its
// status through a pipe, and the intermediate itself may be reaped by either side.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/json/parse.hpp>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "agent/run_options.hpp"

namespace pa::agent {
namespace {

namespace fs = std::filesystem;
namespace json = boost::json;
using namespace std::chrono_literals;

// ---- a minimal process runner ----

struct RunResult {
  bool timed_out = false;
  int exit_code = -1;  // -1 when killed by a signal or unknown
  int term_signal = 0;
  std::string out, err;
};

void close_fd(int& fd) {
  if (fd >= 0) ::close(fd);
  fd = -1;
}

bool read_exact(int fd, void* buffer, std::size_t size, std::chrono::milliseconds timeout) {
  auto* p = static_cast<char*>(buffer);
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (size > 0) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return false;
    pollfd pfd{fd, POLLIN, 0};
    const int ready = ::poll(&pfd, 1, static_cast<int>(left.count()));
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) return false;
    const ssize_t n = ::read(fd, p, size);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    p += n;
    size -= static_cast<std::size_t>(n);
  }
  return true;
}

RunResult run_process(const std::string& binary, const std::vector<std::string>& args,
                      const std::vector<std::string>& env, const std::string& cwd,
                      const std::string& stdin_data, std::chrono::seconds timeout) {
  RunResult result;
  // Everything the children need is prepared before fork().
  std::vector<char*> argv;
  argv.push_back(const_cast<char*>(binary.c_str()));
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  std::vector<char*> envp;
  for (const auto& e : env) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);

  int in[2], out[2], err[2], status[2];
  if (::pipe2(in, O_CLOEXEC) != 0 || ::pipe2(out, O_CLOEXEC) != 0 || ::pipe2(err, O_CLOEXEC) != 0 ||
      ::pipe2(status, O_CLOEXEC) != 0) {
    ADD_FAILURE() << "pipe2 failed";
    return result;
  }

  // A CLI that exits without reading stdin must not kill the test with SIGPIPE.
  struct sigaction ignore {
  }, old_pipe{};
  ignore.sa_handler = SIG_IGN;
  ::sigaction(SIGPIPE, &ignore, &old_pipe);

  const pid_t intermediate = ::fork();
  if (intermediate == 0) {
    // Intermediate: only async-signal-safe calls from here on.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    ::signal(SIGCHLD, SIG_DFL);
    const pid_t cli = ::fork();
    if (cli == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      ::setpgid(0, 0);
      ::signal(SIGPIPE, SIG_DFL);
      sigset_t none;
      sigemptyset(&none);
      ::sigprocmask(SIG_SETMASK, &none, nullptr);
      ::dup2(in[0], 0);
      ::dup2(out[1], 1);
      ::dup2(err[1], 2);
      if (::chdir(cwd.c_str()) != 0) ::_exit(126);
      ::execve(binary.c_str(), argv.data(), envp.data());
      ::_exit(127);
    }
    for (int fd : {in[0], in[1], out[0], out[1], err[0], err[1], status[0]}) ::close(fd);
    const pid_t reported = cli;
    if (::write(status[1], &reported, sizeof reported) != sizeof reported) ::_exit(1);
    if (cli < 0) ::_exit(1);
    int wstatus = 0;
    while (::waitpid(cli, &wstatus, 0) < 0 && errno == EINTR) {
    }
    if (::write(status[1], &wstatus, sizeof wstatus) != sizeof wstatus) ::_exit(1);
    ::_exit(0);
  }
  close_fd(in[0]);
  close_fd(out[1]);
  close_fd(err[1]);
  close_fd(status[1]);
  if (intermediate < 0) {
    ADD_FAILURE() << "fork failed";
    for (int* fd : {&in[1], &out[0], &err[0], &status[0]}) close_fd(*fd);
    ::sigaction(SIGPIPE, &old_pipe, nullptr);
    return result;
  }

  pid_t cli = -1;
  if (!read_exact(status[0], &cli, sizeof cli, 10s) || cli <= 0) {
    ADD_FAILURE() << "could not start " << binary;
  }

  ::fcntl(in[1], F_SETFL, O_NONBLOCK);
  std::size_t written = 0;
  if (stdin_data.empty()) close_fd(in[1]);
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  auto hard_deadline = deadline + 10s;
  while (out[0] >= 0 || err[0] >= 0) {
    const auto now = std::chrono::steady_clock::now();
    if (!result.timed_out && now >= deadline && cli > 0) {
      result.timed_out = true;
      ::kill(-cli, SIGKILL);
    }
    if (now >= hard_deadline) break;
    std::vector<pollfd> fds;
    for (int fd : {out[0], err[0]}) {
      if (fd >= 0) fds.push_back({fd, POLLIN, 0});
    }
    if (in[1] >= 0) fds.push_back({in[1], POLLOUT, 0});
    const auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(
        (result.timed_out ? hard_deadline : deadline) - now);
    const int ready = ::poll(fds.data(), fds.size(), static_cast<int>(wait.count()) + 1);
    if (ready < 0 && errno != EINTR) break;
    for (const auto& pfd : fds) {
      if (pfd.revents == 0) continue;
      if (pfd.fd == in[1]) {
        const ssize_t n = ::write(in[1], stdin_data.data() + written, stdin_data.size() - written);
        if (n > 0) written += static_cast<std::size_t>(n);
        if (n < 0 && errno != EAGAIN && errno != EINTR) written = stdin_data.size();  // EPIPE
        if (written == stdin_data.size()) close_fd(in[1]);                            // then EOF
        continue;
      }
      char buffer[65536];
      const ssize_t n = ::read(pfd.fd, buffer, sizeof buffer);
      if (n > 0) {
        (pfd.fd == out[0] ? result.out : result.err).append(buffer, static_cast<std::size_t>(n));
      } else if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
        close_fd(pfd.fd == out[0] ? out[0] : err[0]);
      }
    }
  }
  for (int* fd : {&in[1], &out[0], &err[0]}) close_fd(*fd);

  int wstatus = 0;
  if (read_exact(status[0], &wstatus, sizeof wstatus, result.timed_out ? 10s : 30s)) {
    if (WIFEXITED(wstatus)) result.exit_code = WEXITSTATUS(wstatus);
    if (WIFSIGNALED(wstatus)) result.term_signal = WTERMSIG(wstatus);
  } else {
    ADD_FAILURE() << "no exit status from " << binary;
    if (cli > 0) ::kill(-cli, SIGKILL);
  }
  close_fd(status[0]);
  // The intermediate has exited (or is about to); the SIGCHLD reaper may have reaped it already.
  while (::waitpid(intermediate, nullptr, 0) < 0 && errno == EINTR) {
  }
  ::sigaction(SIGPIPE, &old_pipe, nullptr);
  return result;
}

// ---- fixtures ----

std::string cli_path() {
  return std::string(PA_SOURCE_DIR) + "/tools/claude-cli/node_modules/.bin/claude";
}

class TempDir {
 public:
  TempDir() {
    std::string pattern = (fs::temp_directory_path() / "pa-realcli-XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = fs::canonical(pattern);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (!line.empty()) lines.push_back(line);
  }
  return lines;
}

class RealCliArgs : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::access(cli_path().c_str(), X_OK) != 0) {
      GTEST_SKIP() << "the real Claude CLI is not installed at " << cli_path()
                   << "; run `make deps` (scripts/install-claude-cli.sh)";
    }
    fs::create_directory(tmp_.path() / "home");
    fs::create_directory(tmp_.path() / "work");
    fs::create_directory(tmp_.path() / "extra");
    config_.home = (tmp_.path() / "home").string();
    // Keep the checks offline-friendly; neither variable changes how arguments are parsed.
    config_.env["CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC"] = "1";
    config_.env["DISABLE_AUTOUPDATER"] = "1";
    // As root the CLI refuses --dangerously-skip-permissions (and bypassPermissions) unless it is
    // told it runs in a sandbox; this test environment is one.
    if (::geteuid() == 0) config_.env["IS_SANDBOX"] = "1";
  }

  // The environment the server would give the CLI, from a server environment that has only a
  // PATH: in particular no ANTHROPIC_API_KEY or other credentials of the machine running tests.
  std::vector<std::string> env() const {
    const char* path = std::getenv("PATH");
    const std::map<std::string, std::string> server_env = {
        {"PATH", path != nullptr ? path : "/usr/local/bin:/usr/bin:/bin"},
        {"LANG", "C.UTF-8"},
        {"PA_AUTH_TOKEN", "must-not-leak"}};
    return build_cli_env(server_env, config_);
  }

  RunResult run(const std::vector<std::string>& args, const std::string& prompt = "hi") {
    return run_process(cli_path(), args, env(), (tmp_.path() / "work").string(),
                       user_message_line(prompt), 60s);
  }

  // The CLI accepted argv: no argument error on stderr, every stdout line a JSON object, and the
  // turn got as far as a result line. Returns the parsed init line.
  json::object expect_accepted(const RunResult& r, const std::vector<std::string>& args) {
    std::string argv;
    for (const auto& a : args) argv += " [" + a + "]";
    SCOPED_TRACE("argv:" + argv + "\nstderr: " + r.err + "\nstdout: " + r.out.substr(0, 2000));
    EXPECT_FALSE(r.timed_out);
    for (const char* bad : {"error: unknown option", "argument", "is invalid", "requires"}) {
      EXPECT_EQ(r.err.find(bad), std::string::npos) << "stderr has \"" << bad << "\"";
    }
    bool saw_result = false;
    json::object init;
    for (const auto& line : lines_of(r.out)) {
      const CliLine l = inspect_cli_line(line);
      EXPECT_TRUE(l.is_json_object) << line;
      if (l.is_result) saw_result = true;
      if (l.type == "system" && l.subtype == "init" && init.empty()) {
        init = json::parse(line).as_object();
      }
    }
    EXPECT_TRUE(saw_result) << "no result line";
    EXPECT_FALSE(init.empty()) << "no init line";
    return init;
  }

  static std::string str(const json::object& o, std::string_view key) {
    const auto* v = o.if_contains(key);
    return v != nullptr && v->is_string() ? std::string(v->get_string()) : "<absent>";
  }

  TempDir tmp_;
  config::Config::Claude config_;
};

// ---- the checks ----

TEST_F(RealCliArgs, InstalledVersionIsThePinnedOne) {
  std::ifstream file(std::string(PA_SOURCE_DIR) + "/tools/claude-cli/package.json");
  std::stringstream text;
  text << file.rdbuf();
  const json::value package = json::parse(text.str());
  const std::string pinned(package.at("dependencies").at("@anthropic-ai/claude-code").as_string());
  const RunResult r = run_process(cli_path(), {"--version"}, env(), tmp_.path().string(), "", 60s);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(r.out.starts_with(pinned + " ")) << "pinned " << pinned << ", got " << r.out;
}

TEST_F(RealCliArgs, EveryOptionTogetherIsAccepted) {
  const fs::path mcp = tmp_.path() / "mcp.json";
  std::ofstream(mcp) << R"({"mcpServers":{}})";
  fs::create_directory_symlink(tmp_.path() / "extra", tmp_.path() / "extra-link");

  const json::object options =
      json::parse(R"j({"model":"claude-sonnet-4-5-20250929","fallback_model":"claude-haiku-4-5",
          "permission_mode":"acceptEdits","dangerously_skip_permissions":true,
          "allowed_tools":["Read","Bash(git status:*)","Edit(/src/**)"],
          "disallowed_tools":["WebFetch","Bash(curl:*)"],
          "append_system_prompt":"Answer briefly.\n--verbose is not a flag here.",
          "strict_mcp_config":true,"mcp_config":{"mcpServers":{}},"permission_prompt":"client",
          "add_dirs":[")j" +
                  (tmp_.path() / "extra-link").string() + R"(",")" +
                  (tmp_.path() / "home").string() + R"("]})")
          .as_object();
  auto parsed =
      parse_run_options(&options, Policy{.allow_dangerous = true, .max_prompt_bytes = 1 << 20});
  ASSERT_TRUE(std::holds_alternative<RunOptions>(parsed))
      << std::get<protocol::Error>(parsed).message;
  const RunOptions& o = std::get<RunOptions>(parsed);
  const auto args = build_cli_args(o, config_, std::nullopt, mcp.string());
  // Every mapping is present (this is the "all options" run).
  for (const char* prefix :
       {"--model=", "--fallback-model=", "--permission-mode=", "--dangerously-skip-permissions",
        "--allowedTools=", "--disallowedTools=", "--mcp-config=", "--strict-mcp-config",
        "--append-system-prompt=", "--add-dir=", "--permission-prompt-tool=stdio"}) {
    EXPECT_TRUE(std::any_of(args.begin(), args.end(), [&](const std::string& a) {
      return a.starts_with(prefix);
    })) << prefix;
  }

  const RunResult r = run(args);
  const json::object init = expect_accepted(r, args);
  // The values reached the CLI as values.
  EXPECT_EQ(str(init, "model"), "claude-sonnet-4-5-20250929");
  EXPECT_EQ(str(init, "permissionMode"), "bypassPermissions");  // --dangerously-skip-permissions
  ASSERT_TRUE(init.contains("tools"));
  for (const auto& tool : init.at("tools").as_array()) {
    EXPECT_NE(tool, "WebFetch") << "--disallowedTools was not applied";
  }
  ASSERT_TRUE(init.contains("mcp_servers"));
  EXPECT_TRUE(init.at("mcp_servers").as_array().empty());
}

// One test per mode, so each run has its own time budget.
class RealCliPermissionMode : public RealCliArgs,
                              public ::testing::WithParamInterface<const char*> {};

TEST_P(RealCliPermissionMode, IsAccepted) {
  const std::string mode = GetParam();
  RunOptions o;
  o.permission_mode = mode;
  const auto args = build_cli_args(o, config_, std::nullopt, std::nullopt);
  const json::object init = expect_accepted(run(args), args);
  if (mode == "auto") {
    // 2.1.197 without an account accepts "auto" and reports it as "default".
    EXPECT_TRUE(str(init, "permissionMode") == "auto" || str(init, "permissionMode") == "default")
        << str(init, "permissionMode");
  } else {
    EXPECT_EQ(str(init, "permissionMode"), mode);
  }
}

INSTANTIATE_TEST_SUITE_P(AllModes, RealCliPermissionMode,
                         ::testing::Values("acceptEdits", "auto", "bypassPermissions", "default",
                                           "dontAsk", "plan"),
                         [](const ::testing::TestParamInfo<const char*>& param) {
                           return std::string(param.param);
                         });

TEST_F(RealCliArgs, ConfigDefaultsAreAccepted) {
  // Config defaults as shipped: default_model and allowed_tools.
  const auto args = build_cli_args(RunOptions{}, config_, std::nullopt, std::nullopt);
  const json::object init = expect_accepted(run(args), args);
  EXPECT_EQ(str(init, "model"), config_.default_model);
}

TEST_F(RealCliArgs, FlagLookingValuesAndPromptStayValues) {
  fs::create_directory(tmp_.path() / "--help");
  const json::object options =
      json::parse(
          R"j({"append_system_prompt":"--help -p --dangerously-skip-permissions",
          "allowed_tools":["Bash(--help)"],"add_dirs":[")j" +
          (tmp_.path() / "--help").string() + R"("]})")
          .as_object();
  auto parsed =
      parse_run_options(&options, Policy{.allow_dangerous = false, .max_prompt_bytes = 1 << 20});
  ASSERT_TRUE(std::holds_alternative<RunOptions>(parsed))
      << std::get<protocol::Error>(parsed).message;
  // parse_run_options refuses a model that starts with '-'; set one directly to show that the
  // `--flag=value` form alone already keeps it a value.
  std::get<RunOptions>(parsed).model = "--version";
  const auto args =
      build_cli_args(std::get<RunOptions>(parsed), config_, std::string("--help"), std::nullopt);
  const RunResult r = run(args, "--dangerously-skip-permissions --version --help");
  // --resume=--help is a (bogus) session id, not a request for help: the CLI says so.
  EXPECT_NE(r.err.find("--resume requires a valid session ID"), std::string::npos) << r.err;
  EXPECT_EQ(r.out.find("Usage: claude [options]"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("(Claude Code)"), std::string::npos) << r.out;

  // The same without the resume: a normal turn in which the model is literally "--version".
  const auto no_resume =
      build_cli_args(std::get<RunOptions>(parsed), config_, std::nullopt, std::nullopt);
  const RunResult r2 = run(no_resume, "--dangerously-skip-permissions --version --help");
  const json::object init = expect_accepted(r2, no_resume);
  EXPECT_EQ(str(init, "model"), "--version");
  EXPECT_EQ(str(init, "permissionMode"), "default");
  EXPECT_EQ(r2.out.find("Usage: claude [options]"), std::string::npos);
}

TEST_F(RealCliArgs, BadPermissionModeIsRejectedByTheParser) {
  RunOptions o;
  o.permission_mode = "bogus";  // parse_run_options would refuse it; the CLI must too
  const auto args = build_cli_args(o, config_, std::nullopt, std::nullopt);
  const RunResult r = run(args);
  EXPECT_FALSE(r.timed_out);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("argument 'bogus' is invalid"), std::string::npos) << r.err;
  for (const auto& line : lines_of(r.out)) EXPECT_FALSE(inspect_cli_line(line).is_result) << line;
}

TEST_F(RealCliArgs, ResumeOfAnUnknownSessionIsItsOwnError) {
  const std::string id = "11111111-2222-4333-8444-555555555555";
  const auto args = build_cli_args(RunOptions{}, config_, id, std::nullopt);
  ASSERT_EQ(args.back(), "--resume=" + id);
  const RunResult r = run(args);
  EXPECT_FALSE(r.timed_out);
  EXPECT_NE(r.err.find("No conversation found with session ID: " + id), std::string::npos) << r.err;
  bool saw_result = false;
  for (const auto& line : lines_of(r.out)) {
    const CliLine l = inspect_cli_line(line);
    EXPECT_TRUE(l.is_json_object) << line;
    if (!l.is_result) continue;
    saw_result = true;
    EXPECT_TRUE(l.is_error);
    EXPECT_EQ(l.subtype, "error_during_execution");
    ASSERT_FALSE(l.errors.empty());
    EXPECT_NE(l.errors[0].find("No conversation found"), std::string::npos);
  }
  EXPECT_TRUE(saw_result) << r.out;
}

}  // namespace
}  // namespace pa::agent
