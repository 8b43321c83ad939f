// Issue 18 from the command line: `pocket-agent-server pair`, `devices list`, `devices revoke`
// and `qr` run as processes against the real server, their output captured (not a terminal, so
// QR codes come without colours) and the printed QR code decoded with zbarimg.
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <regex>
#include <sstream>

#include "integration/fixture.hpp"
#include "support/qr_reader.hpp"

namespace pa::test {
namespace {

// The exit statuses `pair --help` documents (cli/exit_codes.hpp).
constexpr int kNotRunning = 3;
constexpr int kUnauthorized = 4;
constexpr int kForbidden = 5;
constexpr int kNotFound = 6;

// The QR drawing in `pair`'s output: the lines made only of spaces and half blocks.
std::string qr_lines(const std::string& output) {
  std::string drawing;
  std::istringstream in(output);
  for (std::string line; std::getline(in, line);) {
    if (line.empty()) continue;
    const bool only_blocks =
        std::regex_match(line, std::regex("^( |\xe2\x96\x88|\xe2\x96\x80|\xe2\x96\x84)+$"));
    if (only_blocks) drawing += line + "\n";
  }
  return drawing;
}

std::string first_match(const std::string& text, const std::string& pattern) {
  std::smatch m;
  if (!std::regex_search(text, m, std::regex(pattern))) return {};
  return m[1];
}

class DevicesCliTest : public ServerTest {
 protected:
  // The server generates its token into the data dir: the CLI finds it there, as after make run.
  void SetUp() override {
    ServerOptions options;
    options.token.clear();
    options.args = {"--limits-connection-rate", "0"};
    start_server(options);
  }

  // The settings the server runs with, for a client subcommand: its port, certificate, data dir.
  std::vector<std::string> cli(std::vector<std::string> words) const {
    std::vector<std::string> argv{PA_SERVER_BINARY};
    argv.insert(argv.end(), words.begin(), words.end());
    argv.insert(argv.end(), {"--port", std::to_string(server_->port()), "--data-dir",
                             server_->data_dir().string()});
    if (server_->tls())
      argv.insert(argv.end(), {"--tls-cert", test_certificate().cert});
    else
      argv.push_back("--no-tls");
    return argv;
  }
  HttpResult redeem(const std::string& code, const std::string& name = {}) {
    Json body{{"code", code}};
    if (!name.empty()) body["name"] = name;
    return http_post(server_->port(), server_->tls(), "/pair", json::serialize(body),
                     {{"Content-Type", "application/json"}});
  }
  // `pair` through the CLI, redeemed over HTTP: the device's answer (device_id, token, ...).
  Json pair_device(const std::string& role, const std::string& name) {
    const auto r = run_command(cli({"pair", "--role", role, "--name", name}));
    EXPECT_EQ(r.exit_code, 0) << r.output;
    const auto redeemed = redeem(first_match(r.output, "Pair URL: \\S+\\?pair=(\\S+)\n"));
    EXPECT_EQ(redeemed.status, 200) << redeemed.body;
    return redeemed.status == 200 ? json::parse(redeemed.body).as_object() : Json{};
  }
};

// The acceptance path: `pair` prints the URL line, the expiry and a QR code that decodes to
// exactly that URL; the URL's code redeems once with POST /pair, as the role and name asked.
TEST_F(DevicesCliTest, PairPrintsTheUrlAndAQrCodeOfItThatRedeems) {
  if (zbarimg_path().empty()) GTEST_SKIP() << "zbarimg is missing: install zbar-tools";
  const auto r = run_command(cli({"pair", "--role", "approver", "--name", "Anna's phone"}));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const std::string url = first_match(r.output, "(?:^|\n)Pair URL: (\\S+)\n");
  ASSERT_FALSE(url.empty()) << r.output;
  const std::string code = first_match(
      url, "^https://[^/]+:" + std::to_string(server_->port()) + "/\\?pair=([0-9A-Z]{10})$");
  ASSERT_FALSE(code.empty()) << url;
  EXPECT_NE(r.output.find("Expires: 20"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find('\x1b'), std::string::npos) << "no colours without a terminal";

  const std::string drawing = qr_lines(r.output);
  ASSERT_FALSE(drawing.empty()) << r.output;
  TempDir dir;
  const auto decoded = decode_qr(qr_from_terminal(drawing, false), dir / "pair.pbm");
  EXPECT_EQ(decoded.exit_code, 0) << decoded.text;
  EXPECT_EQ(decoded.text, url);

  const auto redeemed = redeem(code);
  ASSERT_EQ(redeemed.status, 200) << redeemed.body;
  const auto device = json::parse(redeemed.body).as_object();
  EXPECT_EQ(str(device, "role"), "approver");
  EXPECT_EQ(str(device, "name"), "Anna's phone");
  EXPECT_EQ(redeem(code).status, 410) << "a code works once";
}

TEST_F(DevicesCliTest, PairDefaultsToOperatorAndTheDeviceNamesItself) {
  const auto r = run_command(cli({"pair"}));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("Role: operator\n"), std::string::npos) << r.output;
  const auto redeemed = redeem(first_match(r.output, "\\?pair=(\\S+)\n"), "Pixel 7");
  ASSERT_EQ(redeemed.status, 200) << redeemed.body;
  EXPECT_EQ(str(json::parse(redeemed.body).as_object(), "role"), "operator");
  EXPECT_EQ(str(json::parse(redeemed.body).as_object(), "name"), "Pixel 7");
}

// `devices list` shows a paired device; `devices revoke` closes its connection with 4401 and
// the list no longer shows it.
TEST_F(DevicesCliTest, ListShowsTheDeviceAndRevokeClosesItAndRemovesIt) {
  const auto device = pair_device("viewer", "Kitchen tablet");
  const std::string id = str(device, "device_id");
  ASSERT_FALSE(id.empty());
  ClientOptions o;
  o.tls = server_->tls();
  o.bearer = str(device, "token");
  WsClient tablet(server_->port(), o);
  ASSERT_EQ(tablet.connect(), 101) << tablet.response_body();
  // The tablet's connection counts as seen: read one answer so the server has taken it in.
  EXPECT_EQ(str(tablet.request(Json{{"type", "project_list"}}), "type"), "project_list_response");

  auto listed = run_command(cli({"devices", "list"}));
  ASSERT_EQ(listed.exit_code, 0) << listed.output;
  EXPECT_TRUE(std::regex_search(listed.output, std::regex("^ID +NAME +ROLE +CREATED +LAST SEEN\n")))
      << listed.output;
  EXPECT_TRUE(std::regex_search(listed.output, std::regex(id + " +Kitchen tablet +viewer +20\\S+ +"
                                                               "20\\S+\n")))
      << listed.output;

  const auto revoked = run_command(cli({"devices", "revoke", id}));
  ASSERT_EQ(revoked.exit_code, 0) << revoked.output;
  EXPECT_NE(revoked.output.find("Revoked device " + id), std::string::npos) << revoked.output;
  const auto closed = tablet.wait_closed(5s);
  ASSERT_TRUE(closed.has_value());
  EXPECT_EQ(closed->code, 4401);
  EXPECT_EQ(closed->reason, "revoked");

  listed = run_command(cli({"devices", "list"}));
  ASSERT_EQ(listed.exit_code, 0) << listed.output;
  EXPECT_EQ(listed.output.find(id), std::string::npos) << listed.output;
  EXPECT_NE(listed.output.find("No paired devices."), std::string::npos) << listed.output;
}

TEST_F(DevicesCliTest, RevokingAnUnknownDeviceIsDeviceNotFound) {
  const auto r = run_command(cli({"devices", "revoke", "no-such-device"}));
  EXPECT_EQ(r.exit_code, kNotFound) << r.output;
  EXPECT_NE(r.output.find("DEVICE_NOT_FOUND"), std::string::npos) << r.output;
  EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1) << "one line: " << r.output;
}

TEST_F(DevicesCliTest, AWrongTokenIsRefusedWithItsOwnStatus) {
  auto argv = cli({"devices", "list"});
  argv.insert(argv.end(), {"--auth-token", "not-the-token-0123456789"});
  const auto r = run_command(argv);
  EXPECT_EQ(r.exit_code, kUnauthorized) << r.output;
  EXPECT_NE(r.output.find("refused the token (401)"), std::string::npos) << r.output;
}

// A device's own token is not the master token: a viewer may not list devices.
TEST_F(DevicesCliTest, ANonAdminTokenIsForbidden) {
  const auto device = pair_device("viewer", "Viewer");
  auto argv = cli({"devices", "list"});
  argv.insert(argv.end(), {"--auth-token", str(device, "token")});
  const auto r = run_command(argv);
  EXPECT_EQ(r.exit_code, kForbidden) << r.output;
  EXPECT_NE(r.output.find("FORBIDDEN"), std::string::npos) << r.output;
}

// Only the certificate the configuration names is trusted: another one (a different program on
// the port) is refused before the token is sent.
TEST_F(DevicesCliTest, AServerWithAnotherCertificateIsRefused) {
  TempDir dir("pa-other-cert");
  const std::string other = (dir / "other.crt").string();
  const auto made = run_command({"/usr/bin/openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                                 "ec_paramgen_curve:prime256v1", "-nodes", "-keyout",
                                 (dir / "other.key").string(), "-out", other, "-days", "2", "-subj",
                                 "/CN=localhost"});
  ASSERT_EQ(made.exit_code, 0) << made.output;
  auto argv = cli({"devices", "list"});
  argv.insert(argv.end(), {"--tls-cert", other});
  const auto r = run_command(argv);
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("presents a TLS certificate other than server.tls.cert"),
            std::string::npos)
      << r.output;
}

// Nothing listens on the port (a socket bound but not listening refuses connections).
TEST_F(DevicesCliTest, AServerThatIsNotRunningIsSaidSo) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
  socklen_t length = sizeof address;
  ASSERT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length), 0);
  const auto r = run_command({PA_SERVER_BINARY, "pair", "--port",
                              std::to_string(ntohs(address.sin_port)), "--data-dir",
                              server_->data_dir().string(), "--tls-cert", test_certificate().cert});
  ::close(fd);
  EXPECT_EQ(r.exit_code, kNotRunning) << r.output;
  EXPECT_NE(r.output.find("the server is not running"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("make run"), std::string::npos) << r.output;
  EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1) << "one line: " << r.output;
}

TEST_F(DevicesCliTest, HelpListsTheExitStatuses) {
  for (const std::vector<std::string>& words :
       {std::vector<std::string>{"pair", "--help"}, {"devices", "--help"}}) {
    std::vector<std::string> argv{PA_SERVER_BINARY};
    argv.insert(argv.end(), words.begin(), words.end());
    const auto r = run_command(argv);
    EXPECT_EQ(r.exit_code, 0) << r.output;
    EXPECT_NE(r.output.find("3 the server is not"), std::string::npos) << r.output;
    EXPECT_NE(r.output.find("6 DEVICE_NOT_FOUND"), std::string::npos) << r.output;
  }
}

// `qr TEXT` (used by make run for the console's URL) draws exactly TEXT.
TEST(QrCommand, PrintsAQrCodeThatDecodesToTheText) {
  if (zbarimg_path().empty()) GTEST_SKIP() << "zbarimg is missing: install zbar-tools";
  const std::string url = "https://localhost:8443/?token=0123456789abcdef";
  const auto r = run_command({PA_SERVER_BINARY, "qr", url});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  TempDir dir;
  const auto decoded = decode_qr(qr_from_terminal(r.output, false), dir / "qr.pbm");
  EXPECT_EQ(decoded.text, url);
  EXPECT_EQ(run_command({PA_SERVER_BINARY, "qr", ""}).exit_code, 2);
}

// Without TLS (behind a proxy) the CLI speaks ws://; the master token from --auth-token.
class DevicesCliPlainTest : public DevicesCliTest {
 protected:
  void SetUp() override {
    ServerOptions options;
    options.tls = false;
    start_server(options);
  }
};

TEST_F(DevicesCliPlainTest, PairAndListWorkOverPlainWebSocket) {
  auto argv = cli({"pair", "--name", "Laptop"});
  argv.insert(argv.end(), {"--auth-token", server_->token()});
  const auto r = run_command(argv);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const std::string url = first_match(r.output, "Pair URL: (\\S+)\n");
  EXPECT_EQ(url.rfind("http://", 0), 0u) << url;
  ASSERT_EQ(redeem(first_match(url, "\\?pair=(\\S+)$")).status, 200);
  argv = cli({"devices", "list"});
  argv.insert(argv.end(), {"--auth-token", server_->token()});
  const auto listed = run_command(argv);
  ASSERT_EQ(listed.exit_code, 0) << listed.output;
  EXPECT_TRUE(std::regex_search(listed.output, std::regex(" Laptop +operator +20\\S+ +never\n")))
      << listed.output;
}

}  // namespace
}  // namespace pa::test
