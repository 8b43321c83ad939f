// Where attachments live (issue 19): each file once, by content, in the data dir, and per
// project the references its history holds. Blocking file work: call it off the I/O threads
// (the blocking pool or a project's strand, which runs on that pool).
//
//   <data_dir>/attachments/blobs/<first 2 hex>/<sha256>   the bytes (0600, written atomically)
//   <data_dir>/attachments/refs/<project_id>/<sha256>     {name, media_type, bytes} (0600)
//
// A blob may be shared by several projects (the same screenshot sent twice): deleting a
// project removes its refs, then each of its blobs that no other project refers to.
#pragma once

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <filesystem>
#include <mutex>
#include <optional>
#include <string>
#include <system_error>
#include <vector>

#include "server/attachments.hpp"

namespace pa::server {

// STORAGE_FAILED for an execute whose attachments could not be stored (nothing was run).
protocol::Error attachment_storage_error(const std::error_code& ec);

class AttachmentStore {
 public:
  explicit AttachmentStore(std::filesystem::path root);  // <data_dir>/attachments

  // Stores each blob not yet there and the project's reference to it. The same file sent again
  // under another name keeps the first name's reference.
  std::error_code add(const std::string& project_id, const std::vector<Attachment>& attachments);

  // The attachment `sha256` as `project_id` refers to it (name and media type from its ref, the
  // bytes checked against the digest). nullopt when the project has no such reference or the
  // blob is gone or damaged; `ec` set when the disk failed.
  std::optional<Attachment> find(const std::string& project_id, const std::string& sha256,
                                 std::error_code& ec) const;

  // Attachments again from history refs ({name, media_type, bytes, sha256}): a queued run after
  // a restart. nullopt when one cannot be read back.
  std::optional<std::vector<Attachment>> load(const boost::json::array& refs) const;

  // After the project is deleted: its refs go, and each blob no other project refers to.
  // Returns how many blobs were removed.
  std::size_t forget_project(const std::string& project_id);

  static bool looks_like_sha256(std::string_view text);

 private:
  std::filesystem::path blob_path(const std::string& sha256) const;
  std::filesystem::path refs_dir(const std::string& project_id) const;
  std::optional<std::string> read_blob(const std::string& sha256, std::error_code& ec) const;

  std::filesystem::path root_;
  std::mutex mutex_;  // add against forget_project: a blob is never removed while linked anew
};

}  // namespace pa::server
