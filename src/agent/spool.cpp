#include "agent/spool.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/json/serialize.hpp>
#include <cerrno>
#include <cstring>
#include <vector>

namespace pa::agent {

std::string encode_record(RecordKind kind, std::string_view payload) {
  std::string out;
  out.reserve(payload.size() + 2);
  out.push_back(static_cast<char>(kind));
  out.append(payload);
  out.push_back('\n');
  return out;
}

std::optional<RecordKind> record_kind(std::string_view line) {
  if (line.empty()) return std::nullopt;
  switch (line.front()) {
    case 'o':
      return RecordKind::kLine;
    case 'O':
      return RecordKind::kOversized;
    case 'i':
      return RecordKind::kInput;
    case 's':
      return RecordKind::kStop;
    case 'x':
      return RecordKind::kExit;
    case 'N':
      return RecordKind::kNotice;
    default:
      return std::nullopt;
  }
}

void RecordSplitter::feed(const char* data, std::size_t n,
                          const std::function<void(const SpoolRecord&)>& on_record) {
  while (n > 0) {
    const char* nl = static_cast<const char*>(std::memchr(data, '\n', n));
    const std::size_t seg = nl != nullptr ? static_cast<std::size_t>(nl - data) : n;
    if (skipping_ > 0 || partial_.size() + seg > max_record_) {
      if (skipping_ == 0) skipping_ = partial_.size();
      skipping_ += seg;
      std::string().swap(partial_);
    } else {
      partial_.append(data, seg);
    }
    if (nl == nullptr) return;
    const bool notice = skipping_ == 0 && !partial_.empty() && partial_.front() == 'N';
    if (!notice) offset_ += (skipping_ > 0 ? skipping_ : partial_.size()) + 1;
    if (skipping_ > 0) {
      const std::string made_up =
          R"({"bytes":)" + std::to_string(skipping_) + R"(,"head":"","damaged":true})";
      on_record(SpoolRecord{RecordKind::kOversized, made_up, offset_});
      skipping_ = 0;
    } else {
      const std::string_view line(partial_);
      if (auto kind = record_kind(line)) {
        on_record(SpoolRecord{*kind, line.substr(1), offset_});
      }  // an unknown kind (a newer supervisor's record) is skipped
      partial_.clear();
    }
    data += seg + 1;
    n -= seg + 1;
  }
}

std::uint64_t read_spool_file(const std::string& path, std::uint64_t offset, std::size_t max_record,
                              const std::function<void(const SpoolRecord&)>& on_record,
                              std::error_code& ec) {
  ec.clear();
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    ec = {errno, std::generic_category()};
    return offset;
  }
  RecordSplitter splitter(offset, max_record);
  std::vector<char> buf(256 * 1024);
  std::uint64_t at = offset;
  for (;;) {
    const ssize_t n = ::pread(fd, buf.data(), buf.size(), static_cast<off_t>(at));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      ec = {errno, std::generic_category()};
      break;
    }
    if (n == 0) break;
    at += static_cast<std::uint64_t>(n);
    splitter.feed(buf.data(), static_cast<std::size_t>(n), on_record);
  }
  ::close(fd);
  return splitter.offset();
}

std::error_code SpoolWriter::open(const std::string& path) {
  fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (fd_ < 0) return {errno, std::generic_category()};
  struct stat st {};
  if (::fstat(fd_, &st) != 0) return {errno, std::generic_category()};
  size_ = static_cast<std::uint64_t>(st.st_size);
  return {};
}

SpoolWriter::~SpoolWriter() {
  if (fd_ >= 0) ::close(fd_);
}

std::error_code SpoolWriter::append(const std::string& record) {
  // A torn tail from an earlier failure goes first: with O_APPEND the next record would glue
  // onto it.
  if (torn_) {
    if (::ftruncate(fd_, static_cast<off_t>(size_)) != 0) return {errno, std::generic_category()};
    torn_ = false;
  }
  std::size_t done = 0;
  while (done < record.size()) {
    const ssize_t n = ::write(fd_, record.data() + done, record.size() - done);
    if (n > 0) {
      done += static_cast<std::size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    const std::error_code ec(n < 0 ? errno : ENOSPC, std::generic_category());
    // Never leave half a record: cut the file back to the last whole one (or next time).
    if (done > 0 && ::ftruncate(fd_, static_cast<off_t>(size_)) != 0) torn_ = true;
    return ec;
  }
  size_ += record.size();
  dirty_ = true;
  return {};
}

std::error_code SpoolWriter::sync() {
  if (!dirty_) return {};
  if (::fdatasync(fd_) != 0) return {errno, std::generic_category()};
  dirty_ = false;
  return {};
}

}  // namespace pa::agent
