// A Redis client on the server's io_context: hiredis (libhiredis-dev) formats commands and parses
// RESP replies; the socket is Asio's (TCP, or TLS for rediss://), so there is no extra thread and
// no polling. Commands are pipelined: each gets its reply, in the order sent. A blocking command
// (XREAD BLOCK, XREADGROUP BLOCK) holds its connection until it answers, so the cluster uses one
// connection for ordinary commands and one per blocking reader.
//
// Thread-safety: every member runs on the connection's strand; the public calls may come from
// any thread (they post to the strand). Callbacks run on the strand.
// Lifetime: while connected, the pending read keeps the connection alive; close() ends it.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

namespace boost::asio::ssl {
class context;
}

namespace pa::redis {

// redis://[[user]:password@]host[:port][/db] and rediss://… (TLS). Port 6379 by default.
struct RedisUrl {
  bool tls = false;
  std::string host;
  std::uint16_t port = 6379;
  std::string user;      // empty: AUTH <password> (the default user)
  std::string password;  // empty: no AUTH
  unsigned db = 0;       // SELECT when not 0
  // Parses `text`; on failure returns nullopt and says why in `error` (one line, for the operator).
  static std::optional<RedisUrl> parse(std::string_view text, std::string& error);
  // The URL without its password (for logs).
  std::string redacted() const;
};

// One RESP reply, copied out of hiredis's reply tree.
struct Reply {
  enum class Type { kNil, kStatus, kError, kInteger, kString, kArray };
  Type type = Type::kNil;
  std::string str;  // kStatus, kError, kString
  long long integer = 0;
  std::vector<Reply> elements;  // kArray
  bool is_error() const { return type == Type::kError; }
  bool is_nil() const { return type == Type::kNil; }
};

// Errors of the client itself (the transport), beside a reply of type kError (Redis said no).
enum class ClientError {
  kNotConnected = 1,  // the command was given while the connection is down
  kDisconnected,      // the connection dropped before the reply came
  kProtocol,          // hiredis could not parse what the server sent
  kAuthFailed,        // AUTH or SELECT was refused (the message is in the log)
  kTimeout,           // connect timed out
};
const std::error_category& client_category();
std::error_code make_error_code(ClientError e);

struct ClientOptions {
  std::chrono::milliseconds connect_timeout{5000};
  // TLS (rediss://): the CA file to verify the server with; empty: the system's default paths.
  std::string tls_ca_file;
  // TLS (rediss://): a context made once with make_tls_context (start-up), shared by every
  // connection; when null, each connect() makes one from tls_ca_file (reads the file).
  std::shared_ptr<boost::asio::ssl::context> tls_context;
  // Replies larger than this close the connection as a protocol error (hostile or broken peer).
  std::size_t max_reply_bytes = 64u << 20;
};

// A TLS client context for rediss://: peers are verified against `ca_file` only (a private
// Redis CA), or against the system's trust store when it is empty. Reads the file: call it at
// start-up, off the I/O threads. Throws std::runtime_error when the file cannot be loaded.
std::shared_ptr<boost::asio::ssl::context> make_tls_context(const std::string& ca_file);

class Connection : public std::enable_shared_from_this<Connection> {
 public:
  using Callback = std::function<void(std::error_code, Reply)>;

  // `executor`: where the connection runs (it makes its own strand on it).
  static std::shared_ptr<Connection> create(boost::asio::any_io_executor executor, RedisUrl url,
                                            ClientOptions options = {});
  virtual ~Connection() = default;

  // Resolves, connects (TLS handshake for rediss://), sends AUTH and SELECT when the URL asks,
  // then calls `done` (an error: not connected; try again later). Call once per connection
  // object: after a drop, make a new Connection.
  virtual void connect(std::function<void(std::error_code)> done) = 0;
  // Sends one command (each argument binary-safe) and calls `callback` with its reply, or with
  // an error when the connection is not up or drops before the reply. Replies come in order.
  virtual void command(std::vector<std::string> argv, Callback callback) = 0;
  // Called once when an established connection drops (not after close()); set after the drop,
  // it is called at once (posted), so a handler set in connect's callback never misses one.
  virtual void on_disconnect(std::function<void(std::error_code)> handler) = 0;
  // Closes the socket; pending callbacks get kDisconnected. Idempotent.
  virtual void close() = 0;
  virtual bool connected() const = 0;
};

}  // namespace pa::redis

template <>
struct std::is_error_code_enum<pa::redis::ClientError> : std::true_type {};
