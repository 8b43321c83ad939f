// Re-attach time of the whole server (issue 14): N projects each with a live run (the fake CLI
// hanging in a turn), the server SIGKILLed, then started again on the same data dir. Measured
// from the fork of the new server to: its listening line, and the N-th "Run re-attached" log
// line (each run's history and run.json read, its link attached, the spool replayed). Then a
// client checks that all N projects are EXECUTING. docs/benchmarks.md has the results.
//
//   reattach_bench [--runs 10,100] [--repeat 3]
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "support/server_process.hpp"
#include "support/ws_client.hpp"

namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using pa::test::Json;

std::string load_average() {
  std::ifstream in("/proc/loadavg");
  std::string a, b, c;
  in >> a >> b >> c;
  return a + " " + b + " " + c;
}

double ms_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

std::size_t count_lines(const pa::test::ServerProcess& server, const std::string& text) {
  const auto lines = server.log_lines();
  return static_cast<std::size_t>(std::count_if(lines.begin(), lines.end(), [&](const auto& l) {
    return l.find(text) != std::string::npos;
  }));
}

std::unique_ptr<pa::test::WsClient> connect(const pa::test::ServerProcess& server) {
  pa::test::ClientOptions o;
  o.bearer = server.token();
  auto client = std::make_unique<pa::test::WsClient>(server.port(), o);
  if (client->connect() != 101) throw std::runtime_error("cannot connect");
  return client;
}

std::size_t executing_projects(pa::test::WsClient& client) {
  const Json reply = client.request(Json{{"type", "project_list"}});
  std::size_t n = 0;
  const auto* data = reply.if_contains("data");
  if (data == nullptr) return 0;
  for (const auto& p : data->at("projects").as_array()) {
    const auto* state = p.as_object().if_contains("state");
    if (state != nullptr && state->is_string() && state->get_string() == "EXECUTING") ++n;
  }
  return n;
}

bool poll_until(const std::function<bool()>& done, std::chrono::seconds deadline) {
  const auto end = Clock::now() + deadline;
  while (Clock::now() < end) {
    if (done()) return true;
    std::this_thread::sleep_for(1ms);  // a benchmark's poll, not a test's synchronization
  }
  return done();
}

bool run_once(std::size_t runs) {
  pa::test::TempDir projects("pa-reattach-projects");
  pa::test::TempDir data("pa-reattach-data");
  const std::string n = std::to_string(runs + 10);
  std::vector<std::string> args = {"--max-projects", n,     "--execution-max-concurrent", n,
                                   "--log-level",    "info"};
  pa::test::ServerOptions options;
  options.args = args;
  options.data_dir = data.path();
  auto first = std::make_unique<pa::test::ServerProcess>(options);
  first->start();
  {
    auto client = connect(*first);
    for (std::size_t i = 0; i < runs; ++i) {
      const auto dir = projects.path() / ("p" + std::to_string(i));
      std::filesystem::create_directories(dir);
      const Json created =
          client->request(Json{{"type", "project_create"}, {"data", {{"path", dir.string()}}}});
      const std::string id(created.at("project_id").as_string());
      client->request(
          Json{{"type", "execute"}, {"project_id", id}, {"data", {{"prompt", "[[fake:hang]]"}}}});
    }
    if (!poll_until([&] { return executing_projects(*client) == runs; }, 60s)) {
      throw std::runtime_error("not every run started");
    }
  }
  // Let every run's first lines reach history, as they would in a real run that went on a while.
  poll_until([&] { return pa::test::supervisors_of(data.path()).size() == runs; }, 30s);
  first->kill_hard();

  pa::test::ServerOptions again = options;
  pa::test::ServerProcess second(again);
  const auto t0 = Clock::now();
  second.start();
  const double listening_ms = ms_since(t0);
  const bool all = poll_until([&] { return count_lines(second, "Run re-attached") >= runs; }, 60s);
  const double reattached_ms = ms_since(t0);
  auto client = connect(second);
  const std::size_t executing = executing_projects(*client);
  std::cout << "runs=" << runs << " listening_ms=" << listening_ms
            << " all_reattached_ms=" << (all ? reattached_ms : -1.0) << " executing=" << executing
            << "/" << runs << " load=[" << load_average() << "]" << std::endl;
  client.reset();
  pa::test::kill_supervisors_of(data.path());
  second.stop();
  return all && executing == runs;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::size_t> counts = {10, 100};
  int repeat = 1;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--runs") {
      counts.clear();
      std::stringstream list(argv[i + 1]);
      for (std::string item; std::getline(list, item, ',');) {
        if (!item.empty()) counts.push_back(std::stoul(item));
      }
    } else if (flag == "--repeat") {
      repeat = std::stoi(argv[i + 1]);
    } else {
      std::cerr << "usage: reattach_bench [--runs 10,100] [--repeat N]\n";
      return 2;
    }
  }
  std::cout << "reattach: " << std::thread::hardware_concurrency() << " cores" << std::endl;
  bool failed = false;  // a run not re-attached, or not EXECUTING after: exit 1
  try {
    for (int r = 0; r < repeat; ++r) {
      for (const std::size_t runs : counts) {
        if (!run_once(runs)) failed = true;
      }
    }
  } catch (const std::exception& e) {
    std::cerr << "reattach_bench: " << e.what() << "\n";
    return 1;
  }
  return failed ? 1 : 0;
}
