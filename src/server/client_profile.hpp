// What a client said about itself: its name (`/ws?client_name=` at connect, or hello's
// client_name when the query gave none) and the capabilities it declared in its hello. Read
// from any thread (a project's strand asks whether a subscriber answers permission requests);
// written by the connection's own requests, which are handled one at a time.
#pragma once

#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace pa::server {

class ClientProfile {
 public:
  explicit ClientProfile(std::string query_name) : name_(std::move(query_name)) {}

  std::string name() const;
  bool declared(std::string_view capability) const;
  std::vector<std::string> capabilities() const;

  // A request of another type than hello was handled: a hello comes too late from now on.
  void note_other_request();

  enum class HelloOutcome { kAccepted, kRepeated, kTooLate };
  // Takes a valid hello's name and known capabilities, if the connection may still send one:
  // once, before any other request. The query's name wins over `name` (empty: none given).
  HelloOutcome accept_hello(const std::string& name, std::vector<std::string> capabilities);

 private:
  mutable std::mutex mutex_;
  std::string name_;
  std::vector<std::string> capabilities_;
  bool greeted_ = false;
  bool other_request_seen_ = false;
};

}  // namespace pa::server
