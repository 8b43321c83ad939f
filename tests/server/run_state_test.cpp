// run.json: what a restarted server needs to take a run over survives a round trip, and a
// damaged file is refused with a reason instead of being half-read.
#include "server/run_state.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <boost/json/parse.hpp>
#include <filesystem>
#include <fstream>

namespace pa::server {
namespace {

namespace fs = std::filesystem;

RunState sample() {
  RunState s;
  s.run_id = "0123456789abcdef";
  s.project_id = "p-1";
  s.supervisor_pid = 4242;
  s.supervisor_start = 987654321ULL;
  s.cli_pid = 4243;
  s.started_at = "2026-12-06T10:00:00.000Z";
  s.first_seq = 17;
  s.correlation_id = "req-9";
  s.resumed_session = "11111111-2222-3333-4444-555555555555";
  s.client_permissions = true;
  s.prompt_length = 12;
  s.state_offset = 4096;
  s.stop = "";
  s.result_seen = true;
  s.permissions.push_back({"perm-1", R"({"type":"control_request"})",
                           boost::json::object{{"permission_id", "perm-1"}},
                           "2026-12-06T10:05:00.000Z"});
  s.follow_ups.push_back({"q-1", "second prompt", boost::json::object{{"queue_id", "q-1"}}});
  s.in_flight["follow_up:q-0"] = "{\"type\":\"user\"}\n";
  s.in_flight["close"] = "";
  return s;
}

TEST(RunState, RoundTripsThroughTheFile) {
  const fs::path dir = fs::temp_directory_path() / ("pa-runstate-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const std::string path = (dir / "run.json").string();
  ASSERT_FALSE(save_run_state(path, sample()));
  EXPECT_EQ(fs::status(path).permissions() & fs::perms::all,
            fs::perms::owner_read | fs::perms::owner_write);
  std::string error;
  const auto back = load_run_state(path, error);
  ASSERT_TRUE(back) << error;
  const RunState s = sample();
  EXPECT_EQ(back->run_id, s.run_id);
  EXPECT_EQ(back->supervisor_pid, s.supervisor_pid);
  EXPECT_EQ(back->supervisor_start, s.supervisor_start);
  EXPECT_EQ(back->first_seq, s.first_seq);
  EXPECT_EQ(back->resumed_session, s.resumed_session);
  EXPECT_EQ(back->state_offset, s.state_offset);
  EXPECT_TRUE(back->result_seen);
  ASSERT_EQ(back->permissions.size(), 1u);
  EXPECT_EQ(back->permissions[0].deadline, "2026-12-06T10:05:00.000Z");
  EXPECT_EQ(back->permissions[0].control_line, s.permissions[0].control_line);
  ASSERT_EQ(back->follow_ups.size(), 1u);
  EXPECT_EQ(back->follow_ups[0].prompt, "second prompt");
  EXPECT_EQ(back->in_flight, s.in_flight);
  fs::remove_all(dir);
}

// Who started the run and who asked to stop it survive a restart, so the final IDLE says
// "killed by …" even when another server process ends the run; files written before these
// fields existed still load.
TEST(RunState, WhoStartedAndWhoStoppedAreKept) {
  RunState s = sample();
  const boost::json::object phone{
      {"type", "client"}, {"connection_id", 3}, {"client_name", "Pixel 7"}};
  s.by = phone;
  s.stop_request = boost::json::object{{"how", "kill"}, {"by", phone}};
  const RunState back = run_state_from_json(to_json(s));
  EXPECT_EQ(back.by, s.by);
  EXPECT_EQ(back.stop_request, s.stop_request);

  boost::json::object older = to_json(sample());
  EXPECT_FALSE(older.contains("by"));
  EXPECT_FALSE(older.contains("stop_request"));
  const RunState loaded = run_state_from_json(older);
  EXPECT_TRUE(loaded.by.empty());
  EXPECT_TRUE(loaded.stop_request.empty());

  older["by"] = "not an object";
  EXPECT_THROW(run_state_from_json(older), std::runtime_error);
}

TEST(RunState, ADamagedFileIsRefusedWithAReason) {
  const fs::path dir =
      fs::temp_directory_path() / ("pa-runstate-bad-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const std::string path = (dir / "run.json").string();
  std::string error;
  std::ofstream(path) << R"({"v":1,"run_id":"x")";  // torn
  EXPECT_FALSE(load_run_state(path, error));
  EXPECT_THAT(error, ::testing::HasSubstr("not JSON"));
  std::ofstream(path, std::ios::trunc) << R"({"v":1,"run_id":"x"})";  // fields missing
  EXPECT_FALSE(load_run_state(path, error));
  EXPECT_THAT(error, ::testing::HasSubstr("missing"));
  EXPECT_FALSE(load_run_state((dir / "absent.json").string(), error));
  fs::remove_all(dir);
}

}  // namespace
}  // namespace pa::server
