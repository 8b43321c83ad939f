// A disk that can be filled: a 4 MiB tmpfs at a fresh directory, for tests of a full disk
// (storage_test, notify_test). Mounting needs root with CAP_SYS_ADMIN; without it path() is
// empty and error() says why (the test skips).
#pragma once

#include <sys/mount.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>

#include "support/server_process.hpp"

namespace pa::test {

class SmallDisk {
 public:
  SmallDisk() {
    const auto at = dir_.path() / "mnt";
    std::filesystem::create_directories(at);
    if (::mount("tmpfs", at.c_str(), "tmpfs", 0, "size=4m,mode=0700") != 0) {
      error_ = std::strerror(errno);
      return;
    }
    path_ = at;
  }
  // Stop what holds files on it first (the server, supervisors): a busy mount is detached.
  ~SmallDisk() {
    if (!path_.empty() && ::umount2(path_.c_str(), 0) != 0) ::umount2(path_.c_str(), MNT_DETACH);
  }
  SmallDisk(const SmallDisk&) = delete;
  SmallDisk& operator=(const SmallDisk&) = delete;

  const std::filesystem::path& path() const { return path_; }
  const std::string& error() const { return error_; }

  // Writes until the file system has no byte left; returns the filler's path (remove it to
  // make room again).
  std::filesystem::path fill() const {
    const auto filler = path_ / "filler";
    FILE* f = std::fopen(filler.c_str(), "wb");
    if (f == nullptr) return filler;
    std::setvbuf(f, nullptr, _IONBF, 0);
    const std::string chunk(64 * 1024, 'x');
    while (std::fwrite(chunk.data(), 1, chunk.size(), f) == chunk.size()) {
    }
    while (std::fwrite("x", 1, 1, f) == 1) {
    }
    std::fclose(f);
    return filler;
  }

 private:
  TempDir dir_{"pa-diskfull"};
  std::filesystem::path path_;
  std::string error_;
};

}  // namespace pa::test
