// An ntfy server or a webhook receiver for tests: records every request (path, headers, body)
// and answers each with one status (200 unless the test says otherwise). Plain HTTP on
// 127.0.0.1, or HTTPS with the shared test certificate.
#pragma once

#include <atomic>
#include <string>

#include "support/http_double.hpp"
#include "support/recorder.hpp"

namespace pa::test {

class HookDouble {
 public:
  explicit HookDouble(bool tls = false);

  // origin() + path, e.g. url("/pocket-agent") for an ntfy topic.
  std::string url(const std::string& path) const { return http_.origin() + path; }
  void answer_with(unsigned status) { status_ = status; }
  const Recorder<HttpRequest>& requests() const { return requests_; }

 private:
  std::atomic<unsigned> status_{200};
  Recorder<HttpRequest> requests_;
  HttpDouble http_;  // last: its thread stops before the state it reads goes away
};

}  // namespace pa::test
