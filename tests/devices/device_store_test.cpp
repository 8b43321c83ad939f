#include "devices/device_store.hpp"

#include <sys/stat.h>

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <fstream>
#include <thread>

#include "common/hex.hpp"
#include "notify/digest.hpp"
#include "projects/project_info.hpp"
#include "support/server_process.hpp"

namespace pa::devices {
namespace {

namespace fs = std::filesystem;
using std::chrono::minutes;
using std::chrono::seconds;

const SystemTime kT0 = SystemTime(std::chrono::milliseconds(1'780'000'000'000));

std::string read_text(const fs::path& p) {
  std::ifstream in(p);
  return {std::istreambuf_iterator<char>(in), {}};
}

void write_text(const fs::path& p, const std::string& text) {
  std::ofstream(p) << text;
}

std::vector<fs::path> aside_files(const fs::path& dir) {
  std::vector<fs::path> out;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().filename().string().rfind("devices.json.bad-", 0) == 0) out.push_back(e.path());
  return out;
}

TEST(DeviceStore, AddGivesAPrefixedRandomTokenThatAuthenticatesThatDeviceOnly) {
  pa::test::TempDir dir;
  DeviceStore store(dir.path());
  const auto phone = store.add("Anna's phone", Role::kApprover, kT0);
  const auto laptop = store.add("laptop", Role::kOperator, kT0);
  ASSERT_FALSE(phone.error);
  ASSERT_FALSE(laptop.error);
  EXPECT_FALSE(phone.full);
  EXPECT_EQ(phone.token.rfind("pad_", 0), 0u);
  EXPECT_EQ(phone.token.size(), 4u + 43u);  // base64url of 32 bytes, unpadded
  EXPECT_NE(phone.token, laptop.token);
  EXPECT_TRUE(projects::looks_like_uuid(phone.device.device_id));
  EXPECT_NE(phone.device.device_id, laptop.device.device_id);
  EXPECT_EQ(phone.device.name, "Anna's phone");
  EXPECT_EQ(phone.device.role, Role::kApprover);
  EXPECT_EQ(phone.device.created_at, kT0);
  EXPECT_FALSE(phone.device.last_seen_at);

  const auto who = store.authenticate(phone.token);
  ASSERT_TRUE(who);
  EXPECT_EQ(who->device_id, phone.device.device_id);
  EXPECT_EQ(who->role, Role::kApprover);
  EXPECT_EQ(store.authenticate(laptop.token)->device_id, laptop.device.device_id);

  std::string altered = phone.token;
  altered.back() = altered.back() == 'A' ? 'B' : 'A';
  for (const std::string& wrong :
       {altered, std::string(), std::string("pad_"), phone.token + "x", phone.token.substr(1),
        common::to_hex(notify::sha256(phone.token))}) {
    EXPECT_FALSE(store.authenticate(wrong)) << wrong;
  }
}

TEST(DeviceStore, TheFileIsPrivateAndHoldsTheTokensHashNeverTheToken) {
  pa::test::TempDir dir;
  DeviceStore store(dir.path());
  const auto added = store.add("phone", Role::kViewer, kT0);
  ASSERT_FALSE(added.error);
  struct stat st {};
  ASSERT_EQ(::stat((dir / "devices.json").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  const std::string text = read_text(dir / "devices.json");
  EXPECT_EQ(text.find(added.token), std::string::npos);
  EXPECT_EQ(text.find(added.token.substr(4)), std::string::npos);
  EXPECT_NE(text.find(common::to_hex(notify::sha256(added.token))), std::string::npos);
  EXPECT_NE(text.find("\"role\":\"viewer\""), std::string::npos);
  EXPECT_NE(text.find("\"last_seen_at\":null"), std::string::npos);
}

TEST(DeviceStore, DeviceJsonIsWhatDeviceListShowsWithoutTheHash) {
  Device d{"0f8fad5b-d9cb-469f-a165-70867728950e", "phone", Role::kOperator, kT0, std::nullopt};
  EXPECT_EQ(boost::json::serialize(device_json(d)),
            R"({"device_id":"0f8fad5b-d9cb-469f-a165-70867728950e","name":"phone",)"
            R"("role":"operator","created_at":"2026-05-28T20:26:40.000Z","last_seen_at":null})");
  d.last_seen_at = kT0 + seconds(90);
  EXPECT_EQ(device_json(d).at("last_seen_at"), "2026-05-28T20:28:10.000Z");
}

TEST(DeviceStore, ADeviceSurvivesARestartWithItsToken) {
  pa::test::TempDir dir;
  AddResult added;
  {
    DeviceStore store(dir.path());
    added = store.add("tablet", Role::kAdmin, kT0);
    ASSERT_FALSE(added.error);
  }
  DeviceStore again(dir.path());
  EXPECT_EQ(again.load(), "");
  const auto who = again.authenticate(added.token);
  ASSERT_TRUE(who);
  EXPECT_EQ(who->device_id, added.device.device_id);
  EXPECT_EQ(who->name, "tablet");
  EXPECT_EQ(who->role, Role::kAdmin);
  EXPECT_EQ(who->created_at, kT0);
  EXPECT_FALSE(who->last_seen_at);
  ASSERT_EQ(again.list().size(), 1u);
}

TEST(DeviceStore, ADataDirWithoutDevicesIsAnEmptyStoreAndStaysUntouched) {
  pa::test::TempDir dir;
  DeviceStore store(dir.path());
  EXPECT_EQ(store.load(), "");
  EXPECT_TRUE(store.list().empty());
  EXPECT_FALSE(store.authenticate("pad_anything"));
  EXPECT_FALSE(fs::exists(dir / "devices.json"));
}

TEST(DeviceStore, RevokedTokenNeverMatchesAgainAndOthersKeepWorking) {
  pa::test::TempDir dir;
  DeviceStore store(dir.path());
  const auto lost = store.add("lost phone", Role::kOperator, kT0);
  const auto kept = store.add("laptop", Role::kOperator, kT0);
  std::error_code ec;
  EXPECT_TRUE(store.revoke(lost.device.device_id, ec));
  EXPECT_FALSE(ec);
  EXPECT_FALSE(store.authenticate(lost.token));
  EXPECT_FALSE(store.find(lost.device.device_id));
  EXPECT_TRUE(store.authenticate(kept.token));
  EXPECT_FALSE(store.revoke(lost.device.device_id, ec));  // once

  DeviceStore again(dir.path());
  ASSERT_EQ(again.load(), "");
  EXPECT_FALSE(again.authenticate(lost.token));
  EXPECT_TRUE(again.authenticate(kept.token));
  ASSERT_EQ(again.list().size(), 1u);
  EXPECT_EQ(again.list()[0].device_id, kept.device.device_id);
}

TEST(DeviceStore, RenameIsValidatedAndSaved) {
  pa::test::TempDir dir;
  DeviceStore store(dir.path());
  const auto added = store.add("old", Role::kViewer, kT0);
  std::error_code ec;
  EXPECT_TRUE(store.rename(added.device.device_id, "new name", ec));
  EXPECT_FALSE(ec);
  EXPECT_EQ(store.find(added.device.device_id)->name, "new name");
  EXPECT_FALSE(store.rename("0f8fad5b-d9cb-469f-a165-70867728950e", "x", ec));
  EXPECT_THROW(store.rename(added.device.device_id, "bad\nname", ec), std::invalid_argument);
  EXPECT_EQ(store.find(added.device.device_id)->name, "new name");

  DeviceStore again(dir.path());
  ASSERT_EQ(again.load(), "");
  EXPECT_EQ(again.authenticate(added.token)->name, "new name");
}

TEST(DeviceStore, NamesAreOneTo64BytesOfTextWithoutControlCharacters) {
  EXPECT_FALSE(device_name_problem("a"));
  EXPECT_FALSE(device_name_problem(std::string(64, 'x')));
  EXPECT_FALSE(device_name_problem("Anna’s Pixel 📱"));
  EXPECT_TRUE(device_name_problem(""));
  EXPECT_TRUE(device_name_problem(std::string(65, 'x')));
  EXPECT_TRUE(device_name_problem("two\nlines"));
  EXPECT_TRUE(device_name_problem("tab\there"));
  EXPECT_TRUE(device_name_problem("del\x7f"));
  EXPECT_TRUE(device_name_problem("nel\xc2\x85"));
  EXPECT_TRUE(device_name_problem("bad \xff utf8"));
  EXPECT_TRUE(device_name_problem(std::string("nul\0x", 5)));

  pa::test::TempDir dir;
  DeviceStore store(dir.path());
  EXPECT_THROW(store.add("", Role::kViewer), std::invalid_argument);
  EXPECT_THROW(store.add(std::string(65, 'x'), Role::kViewer), std::invalid_argument);
  EXPECT_TRUE(store.list().empty());
}

TEST(DeviceStore, TouchKeepsLastSeenInMemoryAndAsksForASaveAtMostOnceAMinute) {
  pa::test::TempDir dir;
  DeviceStore store(dir.path());
  const auto added = store.add("phone", Role::kViewer, kT0);
  const auto& id = added.device.device_id;
  EXPECT_TRUE(store.touch(id, kT0 + seconds(1)));  // never saved: due
  EXPECT_FALSE(store.touch(id, kT0 + seconds(30)));
  EXPECT_EQ(store.find(id)->last_seen_at, kT0 + seconds(30));
  EXPECT_FALSE(store.touch(id, kT0 + seconds(60)));
  EXPECT_TRUE(store.touch(id, kT0 + seconds(61)));
  EXPECT_FALSE(store.touch(id, kT0 + seconds(62)));
  EXPECT_FALSE(store.touch("0f8fad5b-d9cb-469f-a165-70867728950e", kT0));
  // Touching writes nothing by itself; save() does (on shutdown, or when touch asks).
  EXPECT_NE(read_text(dir / "devices.json").find("\"last_seen_at\":null"), std::string::npos);
  ASSERT_FALSE(store.save());

  DeviceStore again(dir.path());
  ASSERT_EQ(again.load(), "");
  EXPECT_EQ(again.find(id)->last_seen_at, kT0 + seconds(62));
  // What was loaded counts as saved.
  EXPECT_FALSE(again.touch(id, kT0 + seconds(90)));
  EXPECT_TRUE(again.touch(id, kT0 + seconds(123)));
}

TEST(DeviceStore, AFileThatCannotBeParsedIsMovedAsideAndTheStoreStartsEmpty) {
  const std::string valid_entry =
      R"({"device_id":"0f8fad5b-d9cb-469f-a165-70867728950e","name":"p","role":"viewer",)"
      R"("token_sha256":")" +
      std::string(64, 'a') + R"(","created_at":"2026-01-01T00:00:00.000Z","last_seen_at":null})";
  ASSERT_EQ(valid_entry.find("\"role\":\"viewer\""), valid_entry.find("\"role\""));
  const auto with = [&](const std::string& from, const std::string& to) {
    std::string e = valid_entry;
    return e.replace(e.find(from), from.size(), to);
  };
  const std::vector<std::string> damaged{
      "{not json",
      "[]",
      R"({"devices":{}})",
      R"({"devices":[)" + with("\"viewer\"", "\"root\"") + "]}",
      R"({"devices":[)" + with(std::string(64, 'a'), std::string(63, 'a')) + "]}",
      R"({"devices":[)" + with(std::string(64, 'a'), std::string(64, 'A')) + "]}",
      R"({"devices":[)" + with("\"p\"", "\"a\\nb\"") + "]}",
      R"({"devices":[)" + with("0f8fad5b", "nope") + "]}",
      R"({"devices":[)" + with("2026-01-01T00:00:00.000Z", "yesterday") + "]}",
      R"({"devices":[)" + with(",\"last_seen_at\":null", "") + "]}",
      R"({"devices":[)" + valid_entry + "," + valid_entry + "]}",  // one id twice
  };
  {
    pa::test::TempDir dir;
    write_text(dir / "devices.json", R"({"devices":[)" + valid_entry + "]}");
    DeviceStore store(dir.path());
    ASSERT_EQ(store.load(), "") << "the valid file itself must load";
    EXPECT_EQ(store.list().size(), 1u);
  }
  for (const auto& text : damaged) {
    pa::test::TempDir dir;
    write_text(dir / "devices.json", text);
    DeviceStore store(dir.path());
    const std::string message = store.load();
    EXPECT_NE(message.find("moved it to"), std::string::npos) << text;
    EXPECT_TRUE(store.list().empty()) << text;
    EXPECT_FALSE(fs::exists(dir / "devices.json")) << text;
    const auto aside = aside_files(dir.path());
    ASSERT_EQ(aside.size(), 1u) << text;
    EXPECT_EQ(read_text(aside[0]), text);
    // And the store works on: a new device is paired into a fresh file.
    const auto added = store.add("again", Role::kViewer, kT0);
    EXPECT_FALSE(added.error);
    EXPECT_TRUE(store.authenticate(added.token));
  }
}

TEST(DeviceStore, AFailedWriteHandsOutNoTokenAndKeepsTheOldName) {
  pa::test::TempDir dir;
  DeviceStore store(dir.path());
  const auto first = store.add("first", Role::kViewer, kT0);
  ASSERT_FALSE(first.error);
  // A directory where the file goes: the atomic rename over it fails.
  fs::remove(dir / "devices.json");
  fs::create_directory(dir / "devices.json");
  const auto second = store.add("second", Role::kViewer, kT0);
  EXPECT_TRUE(second.error);
  EXPECT_TRUE(second.token.empty());
  EXPECT_EQ(store.list().size(), 1u);
  std::error_code ec;
  EXPECT_TRUE(store.rename(first.device.device_id, "renamed", ec));
  EXPECT_TRUE(ec);
  EXPECT_EQ(store.find(first.device.device_id)->name, "first");
  // Revoking takes effect at once even when the file cannot be written.
  EXPECT_TRUE(store.revoke(first.device.device_id, ec));
  EXPECT_TRUE(ec);
  EXPECT_FALSE(store.authenticate(first.token));
}

TEST(DeviceStore, AtMost200Devices) {
  pa::test::TempDir dir;
  DeviceStore store(dir.path());
  for (std::size_t i = 0; i < kMaxDevices; ++i) {
    ASSERT_FALSE(store.add("d" + std::to_string(i), Role::kViewer, kT0).error);
  }
  const auto over = store.add("one more", Role::kViewer, kT0);
  EXPECT_TRUE(over.full);
  EXPECT_TRUE(over.token.empty());
  EXPECT_EQ(store.list().size(), kMaxDevices);
  DeviceStore again(dir.path());
  EXPECT_EQ(again.load(), "");
  EXPECT_EQ(again.list().size(), kMaxDevices);
}

TEST(DeviceStore, ConcurrentUseKeepsEveryDevice) {
  pa::test::TempDir dir;
  DeviceStore store(dir.path());
  const auto base = store.add("base", Role::kViewer, kT0);
  std::vector<std::thread> threads;
  std::vector<std::string> tokens(4);
  for (std::size_t t = 0; t < tokens.size(); ++t) {
    threads.emplace_back([&, t] {
      tokens[t] = store.add("t" + std::to_string(t), Role::kOperator, kT0).token;
      for (int i = 0; i < 200; ++i) {
        EXPECT_TRUE(store.authenticate(base.token));
        store.touch(base.device.device_id, kT0 + seconds(i));
      }
    });
  }
  for (auto& th : threads) th.join();
  for (const auto& token : tokens) EXPECT_TRUE(store.authenticate(token));
  DeviceStore again(dir.path());
  ASSERT_EQ(again.load(), "");
  EXPECT_EQ(again.list().size(), 5u);
}

}  // namespace
}  // namespace pa::devices
