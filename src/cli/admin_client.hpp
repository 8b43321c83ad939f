// A short-lived admin connection from the command line to the running server on this machine:
// the `pair` and `devices` subcommands. It connects over loopback with the master token, pins
// the server's own certificate (server.tls.cert) instead of trusting a CA, says `hello`, and
// sends one request at a time. Every step has a deadline; every failure is a CliError with the
// exit status of cli/exit_codes.hpp and a one-line message that says what to do.
#pragma once

#include <boost/json/object.hpp>
#include <chrono>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>

#include "config/config.hpp"

namespace pa::cli {

class CliError : public std::runtime_error {
 public:
  CliError(int exit_code, const std::string& message)
      : std::runtime_error(message), exit_code_(exit_code) {}
  int exit_code() const { return exit_code_; }

 private:
  int exit_code_;
};

// Where and how to reach the server that `config` describes.
struct Endpoint {
  std::string address;  // an IP address: loopback unless server.host names a specific one
  std::uint16_t port = 0;
  bool tls = true;
  std::string pinned_cert;  // tls: the PEM file whose (first) certificate the server must present
  std::string token;        // empty when auth is off
  std::string data_dir;     // for messages
};

// Throws CliError: port 0 (usage), no token file (the server has not run on this data dir).
Endpoint endpoint_of(const config::Config& config);

class AdminClient {
 public:
  explicit AdminClient(Endpoint endpoint,
                       std::chrono::milliseconds step_deadline = std::chrono::seconds(10));
  ~AdminClient();
  AdminClient(const AdminClient&) = delete;
  AdminClient& operator=(const AdminClient&) = delete;

  // Connects, upgrades (TLS with the pinned certificate), sends hello and waits for welcome.
  void connect();
  // Sends `type` with `data` and a fresh request_id; returns the data of the answer carrying
  // that id, which must be of `answer_type`. An `error` answer throws CliError (FORBIDDEN and
  // DEVICE_NOT_FOUND with their own exit statuses). Messages for other requests are skipped.
  boost::json::object request(std::string_view type, const boost::json::object& data,
                              std::string_view answer_type);
  // A normal close (1000), best effort.
  void close();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace pa::cli
