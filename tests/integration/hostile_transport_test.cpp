// Hostile input below the message level (issue 5): malformed HTTP requests and upgrades,
// slowloris and half-open connections, malformed WebSocket frames, and TLS probes with
// `openssl s_client` (old protocol versions, renegotiation, compression). Each gets its documented
// HTTP status or close, and the server keeps serving other clients.
#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <future>
#include <regex>

#include "integration/fixture.hpp"
#include "integration/raw_client.hpp"

extern char** environ;

namespace pa::test {
namespace {

class HostileTransportTest : public ServerTest {
 protected:
  void SetUp() override { start_transport_server({}); }

  void start_transport_server(std::vector<std::string> args, bool tls = true) {
    ServerOptions options;
    options.tls = tls;
    options.args = {"--limits-connection-rate", "0", "--max-connections", "3",
                    "--timeouts-handshake",     "1s"};
    options.args.insert(options.args.end(), args.begin(), args.end());
    start_server(options);
  }

  // Sends `request` on a fresh connection and returns everything the server sent before it
  // closed the connection (the test fails if it does not close it).
  std::string exchange(const std::string& request) {
    RawClient raw(server_->port(), server_->tls());
    EXPECT_TRUE(raw.connect());
    EXPECT_TRUE(raw.send(request));
    auto got = raw.read_until_closed(15s);
    EXPECT_TRUE(got.closed) << "the server kept the connection open after "
                            << request.substr(0, 80);
    return got.bytes;
  }

  // Waits until the server counts no WebSocket connection but the returned probe's (every other
  // one was released); nullptr if that does not happen by the deadline.
  std::unique_ptr<WsClient> wait_until_alone(std::chrono::milliseconds deadline = 20s) {
    const auto until = std::chrono::steady_clock::now() + deadline;
    while (std::chrono::steady_clock::now() < until) {
      ClientOptions o;
      o.tls = server_->tls();
      o.bearer = server_->token();
      auto probe = std::make_unique<WsClient>(server_->port(), o);
      if (probe->connect() == 101) {
        const auto health = probe->request(Json{{"type", "health"}});
        if (data(health).at("connections").at("active").to_number<std::uint64_t>() == 1) {
          return probe;
        }
      }
      probe.reset();
      // Releases are logged: wait for the next log line rather than spinning.
      const auto seen = server_->log_lines().size();
      server_->wait_for_log(
          [&, n = std::size_t{0}](const std::string&) mutable { return ++n > seen; }, 500ms);
    }
    return nullptr;
  }

  // Every connection slot (limits.max_connections = 3) can still be used.
  void expect_all_slots_free() {
    std::vector<std::unique_ptr<WsClient>> clients;
    clients.push_back(wait_until_alone());
    ASSERT_TRUE(clients.back()) << "connections were not released";
    for (int i = 1; i < 3; ++i) {
      clients.push_back(connect());
      ASSERT_TRUE(clients.back()->is_open()) << "slot " << i << " is leaked";
    }
    for (auto& c : clients) {
      EXPECT_EQ(str(c->request(Json{{"type", "project_list"}}), "type"), "project_list_response");
    }
  }
};

// `count` short header fields ("X-F<i>: v"), well within the 8 KiB head limit.
std::string many_fields(int count) {
  std::string fields;
  for (int i = 0; i < count; ++i) fields += "X-F" + std::to_string(i) + ": v\r\n";
  return fields;
}

TEST_F(HostileTransportTest, MalformedHttpRequestsGetAnAnswerOrAClose) {
  const auto port = server_->port();
  const std::string token = server_->token();
  const std::string host = "Host: localhost:" + std::to_string(port) + "\r\n";
  struct Case {
    std::string name;
    std::string request;
    int status;
  };
  const std::vector<Case> cases = {
      {"not HTTP at all", "HELLO SERVER\r\n\r\n", 400},
      {"binary junk", std::string("\x16\x03\x01\x00\x05hello\0\0\0\r\n\r\n", 17), 400},
      {"NUL in a header value",
       "GET /health HTTP/1.1\r\n" + host + std::string("X-A: a\0b\r\n\r\n", 12), 400},
      {"space in the method", "G ET /health HTTP/1.1\r\n" + host + "\r\n", 400},
      {"unknown HTTP version", "GET /health HTTP/9.9\r\n" + host + "\r\n", 400},
      {"header without a colon", "GET /health HTTP/1.1\r\n" + host + "NoColonHere\r\n\r\n", 400},
      {"two different Content-Lengths",
       "GET /health HTTP/1.1\r\n" + host + "Content-Length: 1\r\nContent-Length: 2\r\n\r\nab", 400},
      {"Content-Length that overflows",
       "GET /health HTTP/1.1\r\n" + host + "Content-Length: 99999999999999999999999\r\n\r\n", 400},
      {"bad chunk size",
       "GET /health HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\n\r\nzz\r\n", 400},
      {"upgrade without Sec-WebSocket-Key", upgrade_request(port, token, "", /*key=*/""), 400},
      {"upgrade with an overlong Sec-WebSocket-Key",
       upgrade_request(port, token, "", std::string(25, 'A')), 400},
      {"upgrade without Sec-WebSocket-Version",
       upgrade_request(port, token, "", "dGhlIHNhbXBsZSBub25jZQ==", /*version=*/""), 400},
      {"upgrade to WebSocket version 8",
       upgrade_request(port, token, "", "dGhlIHNhbXBsZSBub25jZQ==", "8"), 426},
      {"upgrade without a token", upgrade_request(port, ""), 401},
      {"control characters in a header", upgrade_request(port, token + "\x01\x7f"), 400},
      {"upgrade by POST",
       "POST /ws HTTP/1.1\r\n" + host +
           "Upgrade: websocket\r\nConnection: Upgrade, close\r\nSec-WebSocket-Key: "
           "dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nAuthorization: Bearer " +
           token + "\r\n\r\n",
       404},
      {"upgrade over HTTP/1.0",
       "GET /ws HTTP/1.0\r\n" + host +
           "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: "
           "dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nAuthorization: Bearer " +
           token + "\r\n\r\n",
       404},
      {"upgrade to another path",
       [&] {
         auto r = upgrade_request(port, token);
         return r.replace(0, 7, "GET /ws/../ws");
       }(),
       404},
      {"absolute-form target",
       "GET http://localhost/ws HTTP/1.1\r\n" + host + "Connection: close\r\n\r\n", 400},
      {"malformed percent-encoding",
       "GET /ws?token=%zz HTTP/1.1\r\n" + host + "Connection: close\r\n\r\n", 400},
      {"request head larger than 8 KiB",
       "GET /health HTTP/1.1\r\n" + host + "X-Big: " + std::string(9000, 'b') + "\r\n\r\n", 431},
      {"request line larger than 8 KiB",
       "GET /health?" + std::string(9000, 'q') + " HTTP/1.1\r\n" + host + "\r\n", 431},
      {"upgrade with a 1 MiB body", upgrade_request(port, token, "Content-Length: 1048576\r\n"),
       431},
      {"101 header fields within 8 KiB", upgrade_request(port, token, many_fields(101)), 431},
      {"exactly 100 header fields are fine",
       "GET /health HTTP/1.1\r\n" + host + many_fields(98) + "Connection: close\r\n\r\n", 200},
  };
  for (const auto& c : cases) {
    const auto response = exchange(c.request);
    EXPECT_EQ(http_status(response), c.status) << c.name << "\n" << response.substr(0, 300);
    if (c.status == 401) {
      EXPECT_NE(response.find("WWW-Authenticate: Bearer"), std::string::npos);
    }
  }
  // Nothing leaked a connection slot, and everyone else is served.
  expect_all_slots_free();
  EXPECT_EQ(http_get(server_->port(), true, "/health").status, 200);
}

TEST_F(HostileTransportTest, SlowAndHalfOpenHandshakesAreDropped) {
  auto bystander = connect();
  // A TCP connection that never starts TLS.
  {
    RawClient raw(server_->port(), true);
    ASSERT_TRUE(raw.connect(/*tcp_only=*/true));
    EXPECT_TRUE(raw.read_until_closed(15s).closed);
  }
  // Half a ClientHello, then silence.
  {
    RawClient raw(server_->port(), true);
    ASSERT_TRUE(raw.connect(/*tcp_only=*/true));
    ASSERT_TRUE(raw.send(std::string("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 11)));
    EXPECT_TRUE(raw.read_until_closed(15s).closed);
  }
  // TLS done, half a request head, then silence.
  {
    RawClient raw(server_->port(), true);
    ASSERT_TRUE(raw.connect());
    ASSERT_TRUE(raw.send("GET /ws HTTP/1.1\r\nHost: localhost\r\nUpgrade: websock"));
    const auto got = raw.read_until_closed(15s);
    EXPECT_TRUE(got.closed);
    EXPECT_TRUE(got.bytes.empty()) << got.bytes;
  }
  // TLS done, then the client half-closes its side without sending a request.
  {
    RawClient raw(server_->port(), true);
    ASSERT_TRUE(raw.connect());
    raw.shutdown_write();
    EXPECT_TRUE(raw.read_until_closed(15s).closed);
  }
  // Many stalled connections at once do not keep others out.
  {
    std::vector<std::unique_ptr<RawClient>> stalled;
    for (int i = 0; i < 20; ++i) {
      stalled.push_back(std::make_unique<RawClient>(server_->port(), true));
      ASSERT_TRUE(stalled.back()->connect(/*tcp_only=*/true));
    }
    EXPECT_EQ(str(bystander->request(Json{{"type", "health"}}), "type"), "health_status");
    auto late = connect();
    EXPECT_TRUE(late->is_open());
    for (auto& s : stalled) EXPECT_TRUE(s->read_until_closed(15s).closed);
  }
  EXPECT_EQ(str(bystander->request(Json{{"type", "project_list"}}), "type"),
            "project_list_response");
  bystander.reset();
  expect_all_slots_free();
}

TEST_F(HostileTransportTest, SlowlorisTricklingAHeadIsDroppedAtTheDeadline) {
  // Plain TCP, so that the client can pace its bytes with read deadlines (timeouts.handshake
  // covers the request head the same way with and without TLS).
  start_transport_server({}, /*tls=*/false);
  RawClient raw(server_->port(), false);
  ASSERT_TRUE(raw.connect());
  ASSERT_TRUE(raw.send("GET /health HTTP/1.1\r\nHost: localhost\r\nX-Slow: "));
  // One byte every 100 ms for up to a minute; the 1 s deadline must end it long before.
  bool closed = false;
  int sent = 0;
  for (; sent < 600 && !closed; ++sent) {
    if (!raw.send("a")) {
      closed = true;
      break;
    }
    const auto got = raw.read_until_closed(100ms);
    EXPECT_TRUE(got.bytes.empty()) << got.bytes;
    closed = got.closed;
  }
  EXPECT_TRUE(closed) << "still connected after " << sent << " bytes";
  EXPECT_LT(sent, 600);
  EXPECT_EQ(http_get(server_->port(), false, "/health").status, 200);
}

TEST_F(HostileTransportTest, HalfOpenWebSocketsAreReleased) {
  // A client that sends nothing is closed after timeouts.idle (1000, before any ping); one that
  // never answers pings is dropped after timeouts.pong_timeout.
  start_transport_server({"--timeouts-idle", "2s"});
  {
    auto raw = raw_websocket(*server_);
    const auto got = raw->read_until_closed(30s);
    EXPECT_TRUE(got.closed) << "a silent client was never dropped";
    EXPECT_EQ(close_code_of(got.bytes), 1000);
  }
  EXPECT_TRUE(wait_until_alone());
  start_transport_server({"--ping-interval", "1s", "--pong-timeout", "1s"});
  {
    auto raw = raw_websocket(*server_);
    const auto got = raw->read_until_closed(30s);
    EXPECT_TRUE(got.closed) << "a client that never answers was never dropped";
    // The server pinged it before giving up.
    const auto opcodes = frame_opcodes(got.bytes);
    EXPECT_NE(std::find(opcodes.begin(), opcodes.end(), 0x9), opcodes.end());
  }
  EXPECT_TRUE(wait_until_alone());
  // A client that half-closes, one that stops mid-frame, one that vanishes with a reset while a
  // reply is pending: each is released.
  {
    auto raw = raw_websocket(*server_);
    raw->shutdown_write();
    EXPECT_TRUE(raw->read_until_closed(30s).closed);
  }
  {
    auto raw = raw_websocket(*server_);
    const auto frame = ws_frame(0x1, R"({"type":"project_list"})");
    ASSERT_TRUE(raw->send(frame.substr(0, 5)));
    EXPECT_TRUE(raw->read_until_closed(30s).closed);
  }
  {
    auto raw = raw_websocket(*server_);
    ASSERT_TRUE(raw->send(ws_frame(0x1, R"({"type":"health"})")));
    raw->abort();
  }
  expect_all_slots_free();
}

TEST_F(HostileTransportTest, MalformedWebSocketFramesCloseTheConnection) {
  struct Case {
    std::string name;
    std::string bytes;
    int close_code;
  };
  const std::string json = R"({"type":"health"})";
  std::string rsv1 = ws_frame(0x1, json);
  rsv1[0] = static_cast<char>(rsv1[0] | 0x40);
  std::string huge_length = "\x81\xff";  // 64-bit length with the top bit set
  huge_length += std::string("\x80\x00\x00\x00\x00\x00\x00\x00", 8) + "\x12\x34\x56\x78";
  const std::vector<Case> cases = {
      {"unmasked frame", ws_frame(0x1, json, /*masked=*/false), 1002},
      {"reserved opcode 3", ws_frame(0x3, json), 1002},
      {"reserved control opcode 11", ws_frame(0xB, ""), 1002},
      {"RSV1 without an extension", rsv1, 1002},
      {"ping longer than 125 bytes", ws_frame(0x9, std::string(126, 'p')), 1002},
      {"fragmented ping", ws_frame(0x9, "p", true, /*fin=*/false), 1002},
      {"continuation without a start", ws_frame(0x0, json), 1002},
      {"text frame interrupted by a new text frame",
       ws_frame(0x1, "{\"type\":", true, false) + ws_frame(0x1, json), 1002},
      {"close code 999", ws_frame(0x8, std::string("\x03\xe7", 2)), 1002},
      {"close with one byte of payload", ws_frame(0x8, "x"), 1002},
      {"64-bit length with the top bit set", huge_length, 1009},
      {"text that is not UTF-8", ws_frame(0x1, "{\"type\":\"\xff\"}"), 1007},
      {"close reason that is not UTF-8", ws_frame(0x8, std::string("\x03\xe8\xff\xfe", 4)), 1002},
  };
  for (const auto& c : cases) {
    auto raw = raw_websocket(*server_);
    ASSERT_TRUE(raw->send(c.bytes)) << c.name;
    const auto got = raw->read_until_closed(15s);
    EXPECT_TRUE(got.closed) << c.name;
    EXPECT_EQ(close_code_of(got.bytes), c.close_code) << c.name;
  }
  // A well-formed but fragmented message is fine, and other clients never noticed.
  {
    auto raw = raw_websocket(*server_);
    ASSERT_TRUE(raw->send(ws_frame(0x1, "{\"type\":", true, false) + ws_frame(0x9, "ping") +
                          ws_frame(0x0, "\"health\"}")));
    const auto reply = raw->read_until("health_status");
    EXPECT_NE(reply.find("health_status"), std::string::npos);
  }
  expect_all_slots_free();
}

// Runs `openssl s_client` (argv only, no shell) against the server; `input` is written to its
// stdin, which is then kept open until it exits (so it does not quit on EOF before the handshake
// finishes), or closed at once when `close_stdin`.
CommandResult s_client(unsigned short port, std::vector<std::string> extra,
                       const std::string& input = "", bool close_stdin = true) {
  std::vector<std::string> argv = {"/usr/bin/openssl", "s_client",
                                   "-connect",         "127.0.0.1:" + std::to_string(port),
                                   "-servername",      "localhost"};
  argv.insert(argv.end(), extra.begin(), extra.end());
  return run_command(argv, {}, 30s,
                     CommandInput{.piped = true, .text = input, .keep_open = !close_stdin});
}

std::string match(const std::string& text, const std::string& pattern) {
  std::smatch m;
  return std::regex_search(text, m, std::regex(pattern)) ? std::string(m[1]) : std::string();
}

TEST_F(HostileTransportTest, TlsProbes) {
  const auto port = server_->port();
  // TLS 1.0 and 1.1: the client is told to offer them (OpenSSL 3 needs security level 0 for
  // that); the server answers with a protocol_version alert.
  for (const std::string& version : std::vector<std::string>{"-tls1", "-tls1_1"}) {
    const auto r = s_client(port, {version, "-cipher", "DEFAULT:@SECLEVEL=0"});
    EXPECT_NE(r.exit_code, 0) << version << "\n" << r.output;
    EXPECT_NE(r.output.find("alert protocol version"), std::string::npos) << version << "\n"
                                                                          << r.output;
    EXPECT_EQ(r.output.find("BEGIN CERTIFICATE"), std::string::npos) << version;
  }
  // SSLv3 (and SSLv2) are not even compiled into OpenSSL 3's s_client: nothing to probe with,
  // and the server's OpenSSL cannot speak them either.
  {
    const auto r = s_client(port, {"-ssl3"});
    EXPECT_NE(r.exit_code, 0) << r.output;
    EXPECT_EQ(r.output.find("BEGIN CERTIFICATE"), std::string::npos);
  }
  // TLS 1.2 and 1.3 work, without compression.
  std::map<std::string, std::string> ciphers;
  for (const std::string& version : std::vector<std::string>{"-tls1_2", "-tls1_3"}) {
    const auto r = s_client(port, {version});
    EXPECT_EQ(r.exit_code, 0) << version << "\n" << r.output;
    // s_client prints "New, TLSv1.3, Cipher is TLS_AES_256_GCM_SHA384" once the handshake is done.
    const std::string protocol = match(r.output, R"(New, (TLSv1\.\d), Cipher is)");
    EXPECT_EQ(protocol, version == "-tls1_2" ? "TLSv1.2" : "TLSv1.3") << r.output;
    EXPECT_NE(r.output.find("Compression: NONE"), std::string::npos) << version << "\n" << r.output;
    ciphers[version] = match(r.output, R"(New, TLSv1\.\d, Cipher is (\S+))");
    EXPECT_FALSE(ciphers[version].empty()) << r.output;
    std::cout << "[ TLS      ] " << protocol << " cipher " << ciphers[version] << "\n";
  }
  // TLS 1.2 with only CBC suites from the client: an AEAD-only server would refuse; either way
  // no NULL or export cipher is ever negotiated.
  {
    const auto r = s_client(port, {"-tls1_2", "-cipher", "NULL:EXPORT:@SECLEVEL=0"});
    EXPECT_NE(r.exit_code, 0) << r.output;
  }
  // Client-initiated renegotiation ("R" in s_client) is refused.
  {
    const auto r = s_client(port, {"-tls1_2"}, "R\n", /*close_stdin=*/false);
    EXPECT_NE(r.output.find("RENEGOTIATING"), std::string::npos) << r.output;
    EXPECT_NE(r.output.find("no renegotiation"), std::string::npos) << r.output;
  }
  // Plain HTTP on the TLS port gets no HTTP answer.
  {
    RawClient raw(port, true);
    ASSERT_TRUE(raw.connect(/*tcp_only=*/true));
    ASSERT_TRUE(raw.send("GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n"));
    const auto got = raw.read_until_closed(15s);
    EXPECT_TRUE(got.closed);
    EXPECT_EQ(got.bytes.find("HTTP/1.1"), std::string::npos) << got.bytes;
  }
  EXPECT_EQ(http_get(port, true, "/health").status, 200);
}

// Found by this suite: a SIGTERM while the background `claude --version` probe ran made the
// server wait out the probe's 15 s timeout plus 10 s after SIGKILL (the probe's exit is seen by
// the child reaper on the I/O threads, which had already stopped), and then report the CLI as
// unavailable ("survived SIGKILL"). The shutdown now lets the probe finish first.
TEST(HostileShutdownTest, SigtermWhileTheVersionProbeRuns) {
  ::signal(SIGPIPE, SIG_IGN);  // the FIFO write below must fail, not kill the test, if nobody reads
  TempDir dir("pa-probe");
  const auto fifo = dir / "release";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  // A CLI whose --version waits until the test releases it.
  const auto script = dir / "claude";
  {
    std::ofstream out(script);
    out << "#!/bin/sh\n"
        << "if [ \"$1\" = --version ]; then read line < '" << fifo.string()
        << "'; echo '2.1.197 (Claude Code)'; exit 0; fi\n"
        << "exec '" << PA_FAKE_CLAUDE << "' \"$@\"\n";
  }
  std::filesystem::permissions(script, std::filesystem::perms::owner_all);
  ServerOptions options;
  options.claude_binary = script.string();
  ServerProcess server(options);
  server.start();
  // Opening the FIFO for writing returns once the probe has opened it for reading: the probe is
  // running now.
  auto opened = std::async(std::launch::async, [&] { return ::open(fifo.c_str(), O_WRONLY); });
  if (opened.wait_for(30s) != std::future_status::ready) {
    ::close(::open(fifo.c_str(), O_RDONLY | O_NONBLOCK));  // unblock the open above
    FAIL() << "the version probe never started";
  }
  const int writer = opened.get();
  ASSERT_GE(writer, 0);
  server.send_signal(SIGTERM);
  ASSERT_TRUE(server.wait_for_log(
      [](const std::string& l) { return l.find("shutting down") != std::string::npos; }, 30s));
  ASSERT_EQ(::write(writer, "go\n", 3), 3);
  ::close(writer);
  EXPECT_EQ(server.wait_exit(60s), 0);
  bool available = false;
  for (const auto& line : server.log_lines()) {
    EXPECT_EQ(line.find("survived SIGKILL"), std::string::npos) << line;
    EXPECT_EQ(line.find("claude CLI unavailable"), std::string::npos) << line;
    if (line.find("claude CLI available: version 2.1.197") != std::string::npos) available = true;
  }
  EXPECT_TRUE(available) << "the probe that ran during the shutdown did not finish normally";
}

}  // namespace
}  // namespace pa::test
