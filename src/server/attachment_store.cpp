#include "server/attachment_store.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include "common/atomic_file.hpp"
#include "common/hex.hpp"
#include "notify/digest.hpp"

namespace pa::server {

namespace fs = std::filesystem;
namespace json = boost::json;
using protocol::ErrorCode;

namespace {

// Parents as they are, the directory itself owner-only.
std::error_code make_private_dir(const fs::path& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return ec;
  fs::permissions(dir, fs::perms::owner_all, fs::perm_options::replace, ec);
  return ec;
}

}  // namespace

protocol::Error attachment_storage_error(const std::error_code& ec) {
  return protocol::make_error(
      ErrorCode::kStorageFailed,
      "Could not store the attachments in the data directory (" + ec.message() +
          "), so the execute was not carried out; check the data directory's free space and "
          "permissions, then send it again",
      json::object{{"what", "attachments"}, {"error", ec.message()}});
}

AttachmentStore::AttachmentStore(fs::path root) : root_(std::move(root)) {}

bool AttachmentStore::looks_like_sha256(std::string_view text) {
  return text.size() == 64 && std::all_of(text.begin(), text.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

fs::path AttachmentStore::blob_path(const std::string& sha256) const {
  return root_ / "blobs" / sha256.substr(0, 2) / sha256;
}

fs::path AttachmentStore::refs_dir(const std::string& project_id) const {
  return root_ / "refs" / project_id;
}

std::error_code AttachmentStore::add(const std::string& project_id,
                                     const std::vector<Attachment>& attachments) {
  std::lock_guard lock(mutex_);
  for (const auto& a : attachments) {
    const fs::path blob = blob_path(a.sha256);
    std::error_code ec;
    // Content-addressed: a blob of the right size is this content (it was checked when written).
    if (fs::file_size(blob, ec) != a.bytes.size() || ec) {
      if (auto e = make_private_dir(blob.parent_path())) return e;
      if (auto e = common::write_file_atomically(blob, a.bytes, 0600)) return e;
    }
    const fs::path dir = refs_dir(project_id);
    const fs::path ref = dir / a.sha256;
    if (fs::exists(ref, ec)) continue;
    if (auto e = make_private_dir(dir)) return e;
    json::object meta{{"name", a.name}, {"media_type", a.media_type}, {"bytes", a.bytes.size()}};
    if (auto e = common::write_file_atomically(ref, json::serialize(meta), 0600)) return e;
  }
  return {};
}

std::optional<std::string> AttachmentStore::read_blob(const std::string& sha256,
                                                      std::error_code& ec) const {
  std::string bytes = common::read_small_file(blob_path(sha256), ec);
  if (ec == std::errc::no_such_file_or_directory) {
    ec.clear();
    return std::nullopt;
  }
  if (ec) return std::nullopt;
  if (common::to_hex(notify::sha256(bytes)) != sha256) {
    spdlog::error("attachment blob {} does not match its digest (damaged); not served", sha256);
    return std::nullopt;
  }
  return bytes;
}

std::optional<Attachment> AttachmentStore::find(const std::string& project_id,
                                                const std::string& sha256,
                                                std::error_code& ec) const {
  ec.clear();
  if (!looks_like_sha256(sha256)) return std::nullopt;
  const std::string text = common::read_small_file(refs_dir(project_id) / sha256, ec);
  if (ec == std::errc::no_such_file_or_directory) {
    ec.clear();
    return std::nullopt;
  }
  if (ec) return std::nullopt;
  boost::system::error_code parse_ec;
  const json::value meta = json::parse(text, parse_ec);
  if (parse_ec || !meta.is_object()) return std::nullopt;
  const auto* name = meta.as_object().if_contains("name");
  const auto* type = meta.as_object().if_contains("media_type");
  if (name == nullptr || !name->is_string() || type == nullptr || !type->is_string())
    return std::nullopt;
  auto bytes = read_blob(sha256, ec);
  if (!bytes) return std::nullopt;
  return Attachment{std::string(name->get_string()), std::string(type->get_string()),
                    std::move(*bytes), sha256};
}

std::optional<std::vector<Attachment>> AttachmentStore::load(const json::array& refs) const {
  std::vector<Attachment> out;
  for (const auto& ref : refs) {
    if (!ref.is_object()) return std::nullopt;
    const auto& o = ref.get_object();
    const auto* name = o.if_contains("name");
    const auto* type = o.if_contains("media_type");
    const auto* sha = o.if_contains("sha256");
    if (name == nullptr || !name->is_string() || type == nullptr || !type->is_string() ||
        sha == nullptr || !sha->is_string() || !looks_like_sha256(sha->get_string()))
      return std::nullopt;
    std::error_code ec;
    auto bytes = read_blob(std::string(sha->get_string()), ec);
    if (!bytes) return std::nullopt;
    out.push_back(Attachment{std::string(name->get_string()), std::string(type->get_string()),
                             std::move(*bytes), std::string(sha->get_string())});
  }
  return out;
}

std::size_t AttachmentStore::forget_project(const std::string& project_id) {
  std::lock_guard lock(mutex_);
  std::error_code ec;
  const fs::path dir = refs_dir(project_id);
  std::vector<std::string> shas;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (looks_like_sha256(name)) shas.push_back(name);
  }
  fs::remove_all(dir, ec);
  if (ec)
    spdlog::warn("attachments of project {}: cannot remove {}: {}", project_id, dir.string(),
                 ec.message());
  std::size_t removed = 0;
  for (const auto& sha : shas) {
    bool shared = false;
    for (fs::directory_iterator it(root_ / "refs", ec), end; !ec && it != end; it.increment(ec)) {
      std::error_code exists_ec;
      if (fs::exists(it->path() / sha, exists_ec)) {
        shared = true;
        break;
      }
    }
    if (shared || ec) continue;  // kept when in doubt
    if (fs::remove(blob_path(sha), ec)) ++removed;
  }
  return removed;
}

}  // namespace pa::server
