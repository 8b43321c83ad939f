#include "projects/path_policy.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <vector>

#include "projects/path_rules.hpp"
#include "support/server_process.hpp"

namespace pa::projects {
namespace {

namespace fs = std::filesystem;
using test::TempDir;

std::string canon(const fs::path& p) {
  return fs::canonical(p).string();
}

PathPolicy policy_with(std::vector<std::string> roots, std::vector<std::string> private_dirs = {},
                       std::string home = "/home/someone") {
  PathPolicy::Settings settings;
  settings.allowed_roots = std::move(roots);
  settings.private_dirs = std::move(private_dirs);
  settings.home = std::move(home);
  return PathPolicy::make(settings);
}

TEST(PathPolicy, BuiltInDenyListRefusesSystemDirectoriesAndWhatTheyContain) {
  const auto policy = policy_with({});
  for (const char* denied :
       {"/",        "/etc",     "/etc/ssl",  "/proc",     "/proc/self",     "/sys/kernel",
        "/dev",     "/dev/shm", "/boot",     "/usr",      "/usr/local/src", "/bin",
        "/sbin",    "/lib",     "/lib64",    "/libx32/x", "/var",           "/var/lib/pocket-agent",
        "/var/tmp", "/root",    "/root/work"}) {
    const auto reason = policy.refusal(denied);
    ASSERT_TRUE(reason.has_value()) << denied;
    EXPECT_FALSE(reason->empty()) << denied;
  }
  EXPECT_NE(policy.refusal("/etc/ssl")->find("/etc"), std::string::npos) << *policy.refusal("/etc");
  EXPECT_NE(policy.refusal("/")->find("root directory"), std::string::npos);
  // Component-wise: a sibling whose name only starts like a denied directory is fine.
  for (const char* allowed : {"/tmp", "/tmp/work", "/home/someone/src", "/srv/app", "/etcetera",
                              "/variable", "/usrx", "/rooted", "/opt/lib"}) {
    EXPECT_FALSE(policy.refusal(allowed).has_value())
        << allowed << ": " << *policy.refusal(allowed);
  }
}

TEST(PathPolicy, RootIsAllowedWhenItIsTheServerUsersHome) {
  const auto as_root = policy_with({}, {}, "/root");
  EXPECT_FALSE(as_root.refusal("/root").has_value());
  EXPECT_FALSE(as_root.refusal("/root/project").has_value());
  EXPECT_TRUE(as_root.refusal("/etc").has_value()) << "only /root is exempted";
  const auto other = policy_with({}, {}, "/home/pa");
  EXPECT_TRUE(other.refusal("/root/project").has_value());
}

TEST(PathPolicy, PrivateDirectoriesAreRefusedInsideAndAround) {
  TempDir tmp("pa-policy");
  const fs::path data = tmp.path() / "srv" / "data";
  const fs::path certs = tmp.path() / "srv" / "certs";
  fs::create_directories(data);
  fs::create_directories(certs);
  fs::create_directories(tmp.path() / "srv" / "work");
  const auto policy = policy_with({}, {data.string(), certs.string()});
  const std::string srv = canon(tmp.path() / "srv");

  const auto inside = policy.refusal(canon(data) + "/projects");
  ASSERT_TRUE(inside.has_value());
  EXPECT_NE(inside->find("inside the server's private directory"), std::string::npos) << *inside;
  const auto around = policy.refusal(srv);
  ASSERT_TRUE(around.has_value()) << "a project containing the data directory could read the token";
  EXPECT_NE(around->find("contains the server's private directory"), std::string::npos) << *around;
  EXPECT_TRUE(policy.refusal(canon(certs)).has_value());
  EXPECT_FALSE(policy.refusal(srv + "/work").has_value());
}

TEST(PathPolicy, PrivateDirectoryGivenRelativeOrMissingIsStillProtected) {
  TempDir tmp("pa-policy");
  const fs::path missing = tmp.path() / "not-yet";
  const auto policy = policy_with({}, {missing.string()});
  EXPECT_TRUE(policy.refusal(canon(tmp.path()) + "/not-yet/x").has_value());
}

TEST(PathPolicy, AllowedRootsConfineProjects) {
  TempDir tmp("pa-policy");
  fs::create_directories(tmp.path() / "allowed" / "a");
  fs::create_directories(tmp.path() / "elsewhere");
  const auto policy = policy_with({(tmp.path() / "allowed").string()});
  const std::string base = canon(tmp.path());
  EXPECT_FALSE(policy.refusal(base + "/allowed").has_value());
  EXPECT_FALSE(policy.refusal(base + "/allowed/a").has_value());
  const auto outside = policy.refusal(base + "/elsewhere");
  ASSERT_TRUE(outside.has_value());
  EXPECT_NE(outside->find("outside projects.allowed_roots"), std::string::npos) << *outside;
  EXPECT_NE(outside->find(base + "/allowed"), std::string::npos) << *outside;
  EXPECT_TRUE(policy.refusal(base + "/allowedx").has_value()) << "component-wise comparison";
  ASSERT_EQ(policy.allowed_roots().size(), 1u);
  EXPECT_EQ(policy.allowed_roots()[0], base + "/allowed");
}

TEST(PathPolicy, AllowedRootInsideASystemDirectoryIsAnExplicitException) {
  // /var/tmp exists on every Debian system; a root below /var opens only itself, not /var.
  const auto policy = policy_with({"/var/tmp"});
  EXPECT_FALSE(policy.refusal("/var/tmp").has_value());
  EXPECT_FALSE(policy.refusal("/var/tmp/project").has_value());
  EXPECT_TRUE(policy.refusal("/var/lib").has_value());
  EXPECT_TRUE(policy.refusal("/var").has_value());
  // "/" as an allowed root does not lift the deny list.
  const auto everything = policy_with({"/"});
  EXPECT_TRUE(everything.refusal("/etc").has_value());
  EXPECT_TRUE(everything.refusal("/").has_value());
  EXPECT_FALSE(everything.refusal("/tmp").has_value());
}

TEST(PathPolicy, MissingAllowedRootIsAStartupError) {
  try {
    (void)policy_with({"/nonexistent/pa-root"});
    FAIL() << "expected an exception";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("projects.allowed_roots"), std::string::npos) << e.what();
  }
  EXPECT_THROW((void)policy_with({"relative/dir"}), std::runtime_error);
}

TEST(OpenDirectoryNoSymlinks, OpensARealDirectoryAndRefusesSymlinksAndFiles) {
  TempDir tmp("pa-open");
  const fs::path real = tmp.path() / "real" / "deep";
  fs::create_directories(real);
  std::ofstream(tmp.path() / "file") << "x";
  fs::create_directory_symlink(tmp.path() / "real", tmp.path() / "link");

  std::error_code ec;
  const int fd = open_directory_no_symlinks(canon(real), ec);
  ASSERT_GE(fd, 0) << ec.message();
  struct stat by_fd {};
  struct stat by_path {};
  ASSERT_EQ(::fstat(fd, &by_fd), 0);
  ASSERT_EQ(::stat(real.c_str(), &by_path), 0);
  EXPECT_EQ(by_fd.st_ino, by_path.st_ino);
  ::close(fd);

  const std::string base = canon(tmp.path());
  EXPECT_LT(open_directory_no_symlinks(base + "/link/deep", ec), 0);
  EXPECT_TRUE(ec == std::errc::not_a_directory || ec == std::errc::too_many_symbolic_link_levels)
      << ec.message();
  EXPECT_LT(open_directory_no_symlinks(base + "/link", ec), 0);
  EXPECT_LT(open_directory_no_symlinks(base + "/file", ec), 0);
  EXPECT_EQ(ec, std::errc::not_a_directory);
  EXPECT_LT(open_directory_no_symlinks(base + "/missing", ec), 0);
  EXPECT_EQ(ec, std::errc::no_such_file_or_directory);
  EXPECT_LT(open_directory_no_symlinks(base + "/real/../real", ec), 0);
  EXPECT_LT(open_directory_no_symlinks("relative", ec), 0);
}

// Out of descriptors is the server's limit, not the path's fault: callers can tell (and report
// INTERNAL_ERROR saying so) instead of answering INVALID_PATH.
TEST(OpenDirectoryNoSymlinks, OutOfDescriptorsIsDistinguishableAndReportedAsInternal) {
  rlimit saved{};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &saved), 0);
  rlimit low = saved;
  low.rlim_cur = 64;
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &low), 0);
  std::vector<int> fillers;  // every descriptor below the limit
  const int null_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  ASSERT_GE(null_fd, 0);
  fillers.push_back(null_fd);
  for (int fd; (fd = ::dup(null_fd)) >= 0;) fillers.push_back(fd);
  std::error_code ec;
  const int fd = open_directory_no_symlinks("/tmp", ec);
  for (int f : fillers) ::close(f);
  ::setrlimit(RLIMIT_NOFILE, &saved);
  ASSERT_LT(fd, 0);
  EXPECT_TRUE(out_of_descriptors(ec)) << ec.message();
  const auto error = descriptor_exhaustion("opening the project directory", ec);
  EXPECT_EQ(error.code, protocol::ErrorCode::kInternalError);
  EXPECT_NE(error.message.find("ran out of file descriptors"), std::string::npos);
  EXPECT_NE(error.message.find("ulimit -n"), std::string::npos);
  EXPECT_EQ(error.details.at("reason").as_string(), "EMFILE");
  EXPECT_TRUE(out_of_descriptors(std::make_error_code(std::errc::too_many_files_open_in_system)));
  EXPECT_FALSE(out_of_descriptors(std::make_error_code(std::errc::not_a_directory)));
}

}  // namespace
}  // namespace pa::projects
