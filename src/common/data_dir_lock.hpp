// One server per data directory: an exclusive flock(2) on <data_dir>/server.lock, held for the
// life of the process. The file holds the holder's pid (for the message a second server prints).
// The descriptor is close-on-exec, so the CLI and its children never hold the lock.
#pragma once

#include <sys/types.h>
#include <filesystem>
#include <optional>
#include <string>

namespace pa::common {

class DataDirLock {
 public:
  // Takes the lock. On failure returns std::nullopt and sets `error` to a message for the
  // operator: another server holds it (naming its pid when known) or the file cannot be used.
  static std::optional<DataDirLock> acquire(const std::filesystem::path& data_dir,
                                            std::string& error);
  DataDirLock(DataDirLock&& other) noexcept;
  DataDirLock& operator=(DataDirLock&& other) noexcept;
  DataDirLock(const DataDirLock&) = delete;
  DataDirLock& operator=(const DataDirLock&) = delete;
  ~DataDirLock();  // closing the descriptor releases the lock (the file stays)

  static std::filesystem::path path_in(const std::filesystem::path& data_dir);

 private:
  explicit DataDirLock(int fd) : fd_(fd) {}
  int fd_ = -1;
};

}  // namespace pa::common
