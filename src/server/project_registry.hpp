// The server's live projects by id, and the paths of projects being created (they count toward
// limits.max_projects and the nesting rule until they are in, or given up). Thread-safe; its
// mutex is private and held only for the map itself, never while a project does anything.
//
// Bookkeeping only: opening a project's history is the hub's (Hub::open_project), and a
// project's subscribers are the project's own (Project::subscribe).
#pragma once

#include <cstddef>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace pa::server {

class Project;

class ProjectRegistry {
 public:
  // What reserve_path() found.
  struct Reservation {
    enum class Outcome {
      kReserved,  // the path is pending: finish with add_reserved() or release_path()
      kLimit,     // max_projects projects exist or are being created
      kNests,     // the path is, is inside or contains another project's (or a pending one's)
    };
    Outcome outcome = Outcome::kReserved;
    std::string other_path;  // kNests: the path it nests with
    std::string other_id;    // kNests: that project's id; empty when it is still pending
  };

  std::shared_ptr<Project> find(const std::string& id) const;
  // Every project, at this moment (in id order).
  std::vector<std::shared_ptr<Project>> all() const;
  std::size_t size() const;

  // A project loaded at start-up (no limit or nesting checks: those only warn then). False if
  // the id is taken.
  bool add(std::shared_ptr<Project> project);

  // project_create: checks the limit and the nesting rule against the projects and the pending
  // paths, and on success makes `path` pending. A project whose path is unknown (metadata
  // rebuilt without one) nests with nothing.
  Reservation reserve_path(const std::string& path, std::size_t max_projects);
  // The creation of a reserved path failed: it is no longer pending.
  void release_path(const std::string& path);
  // The reserved path's project is made: no longer pending, and registered under its id.
  void add_reserved(const std::string& path, std::shared_ptr<Project> project);

  // project_delete: the project is no longer found (true if it was there).
  bool remove(const std::string& id);

 private:
  mutable std::mutex mutex_;
  std::map<std::string, std::shared_ptr<Project>> projects_;
  std::vector<std::string> pending_paths_;
};

}  // namespace pa::server
