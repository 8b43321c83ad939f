#include "notify/vapid_key_file.hpp"

#include <sys/stat.h>

#include <gtest/gtest.h>

#include <fstream>

#include "notify/base64url.hpp"
#include "support/server_process.hpp"

namespace pa::notify {
namespace {

mode_t mode_of(const std::filesystem::path& p) {
  struct stat st {};
  EXPECT_EQ(::stat(p.c_str(), &st), 0);
  return st.st_mode & 0777;
}

void write(const std::filesystem::path& p, const std::string& text) {
  std::ofstream(p) << text;
}

TEST(VapidKeyFile, MadeOnceWithMode0600AndTheSameKeyAfterARestart) {
  test::TempDir dir("pa-vapid");
  bool created = false;
  const auto first = load_or_create_vapid_key(dir.path(), created);
  EXPECT_TRUE(created);
  EXPECT_EQ(mode_of(vapid_key_path(dir.path())), 0600u);
  const auto again = load_or_create_vapid_key(dir.path(), created);
  EXPECT_FALSE(created);
  EXPECT_EQ(again.public_point(), first.public_point());
  EXPECT_EQ(again.private_scalar(), first.private_scalar());
}

TEST(VapidKeyFile, LoosePermissionsAreTightened) {
  test::TempDir dir("pa-vapid");
  bool created = false;
  const auto key = load_or_create_vapid_key(dir.path(), created);
  ::chmod(vapid_key_path(dir.path()).c_str(), 0644);
  EXPECT_EQ(load_or_create_vapid_key(dir.path(), created).public_point(), key.public_point());
  EXPECT_EQ(mode_of(vapid_key_path(dir.path())), 0600u);
}

TEST(VapidKeyFile, AFileWithoutAKeyIsRefusedWithWhatToDo) {
  test::TempDir dir("pa-vapid");
  bool created = false;
  for (const std::string& bad : {std::string("not base64!"), base64url_encode(std::string(31, 'k')),
                                 base64url_encode(std::string(32, '\0')), std::string(5000, 'A')}) {
    write(vapid_key_path(dir.path()), bad);
    try {
      load_or_create_vapid_key(dir.path(), created);
      ADD_FAILURE() << "accepted: " << bad.substr(0, 40);
    } catch (const std::runtime_error& e) {
      EXPECT_NE(std::string(e.what()).find("delete it to make a new one"), std::string::npos)
          << e.what();
    }
  }
  EXPECT_FALSE(created);
}

}  // namespace
}  // namespace pa::notify
