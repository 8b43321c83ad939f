#include "net/gate.hpp"

#include <gtest/gtest.h>

namespace pa::net {
namespace {

using namespace std::chrono_literals;

GateOptions options() {
  GateOptions o;
  o.token = "secret-token-123";
  o.max_failures = 3;
  o.connection_rate = 2;
  return o;
}

UpgradeRequest with_bearer(std::string_view header) {
  UpgradeRequest r;
  r.remote_address = "10.0.0.1";
  r.authorization = header;
  r.host = "example.test:8443";
  return r;
}

TEST(Gate, TokenFromHeaderOrQuery) {
  Gate gate(options());
  EXPECT_EQ(gate.check_upgrade(with_bearer("Bearer secret-token-123")), Verdict::kAllow);
  EXPECT_EQ(gate.check_upgrade(with_bearer("bearer secret-token-123")), Verdict::kAllow);
  UpgradeRequest query;
  query.remote_address = "10.0.0.2";
  query.query_token = "secret-token-123";
  EXPECT_EQ(gate.check_upgrade(query), Verdict::kAllow);
  EXPECT_EQ(gate.check_upgrade(with_bearer("Basic secret-token-123")), Verdict::kUnauthorized);
  EXPECT_EQ(gate.check_upgrade(with_bearer("Bearer secret-token-12")), Verdict::kUnauthorized);
}

// A paired device's token passes with its identity; the master token's identity is admin
// without a device; a token the devices do not know counts as wrong.
TEST(Gate, DeviceTokensPassWithTheirIdentity) {
  auto o = options();
  o.device_identity = [](std::string_view token) -> std::optional<devices::Identity> {
    if (token == "pad_phone") return devices::Identity{devices::Role::kViewer, "dev-1", "Phone"};
    return std::nullopt;
  };
  Gate gate(o);
  const auto t0 = Clock::now();
  devices::Identity who;
  EXPECT_EQ(gate.check_upgrade(with_bearer("Bearer pad_phone"), t0, Counting::kEach, &who),
            Verdict::kAllow);
  EXPECT_EQ(who.device_id, "dev-1");
  EXPECT_EQ(who.role, devices::Role::kViewer);
  UpgradeRequest query;
  query.remote_address = "10.0.0.2";
  query.query_token = "pad_phone";
  EXPECT_EQ(gate.check_upgrade(query, t0, Counting::kEach, &who), Verdict::kAllow);
  EXPECT_EQ(who.device_name, "Phone");
  EXPECT_EQ(gate.check_upgrade(with_bearer("Bearer secret-token-123"), t0, Counting::kEach, &who),
            Verdict::kAllow);
  EXPECT_FALSE(who.is_device());
  EXPECT_EQ(who.role, devices::Role::kAdmin);
  for (int i = 0; i < 3; ++i)
    EXPECT_EQ(gate.check_upgrade(with_bearer("Bearer pad_revoked"), t0), Verdict::kUnauthorized);
  EXPECT_EQ(gate.check_upgrade(with_bearer("Bearer pad_revoked"), t0), Verdict::kTooManyFailures);
  // Blocked for wrong tokens, the address's right device token still passes.
  EXPECT_EQ(gate.check_upgrade(with_bearer("Bearer pad_phone"), t0), Verdict::kAllow);
}

TEST(Gate, ConstantTimeCompareSemantics) {
  EXPECT_TRUE(Gate::tokens_equal("abc", "abc"));
  EXPECT_FALSE(Gate::tokens_equal("abc", "abd"));
  EXPECT_FALSE(Gate::tokens_equal("abc", "abcd"));
  EXPECT_FALSE(Gate::tokens_equal("", ""));
}

TEST(Gate, WrongTokensAreBlockedForAWhileButTheRightOneAlwaysPasses) {
  Gate gate(options());
  const auto t0 = Clock::now();
  EXPECT_EQ(gate.check_upgrade(with_bearer("Bearer wrong"), t0), Verdict::kUnauthorized);
  EXPECT_EQ(gate.check_upgrade(with_bearer("Bearer wrong"), t0), Verdict::kUnauthorized);
  EXPECT_EQ(gate.check_upgrade(with_bearer("Bearer wrong"), t0), Verdict::kUnauthorized);
  for (int i = 0; i < 50; ++i)
    EXPECT_EQ(gate.check_upgrade(with_bearer("Bearer wrong"), t0 + 1s), Verdict::kTooManyFailures);
  UpgradeRequest missing = with_bearer("");
  missing.authorization.reset();
  EXPECT_EQ(gate.check_upgrade(missing, t0 + 1s), Verdict::kTooManyFailures);
  EXPECT_EQ(gate.check_upgrade(with_bearer("Bearer secret-token-123"), t0 + 1s), Verdict::kAllow)
      << "the right token passes even while wrong ones are blocked";
  auto other = with_bearer("Bearer wrong");
  other.remote_address = "10.0.0.9";
  EXPECT_EQ(gate.check_upgrade(other, t0 + 1s), Verdict::kUnauthorized)
      << "other addresses are not affected";
  EXPECT_EQ(gate.check_upgrade(with_bearer("Bearer wrong"), t0 + 2min), Verdict::kUnauthorized)
      << "the block ends";
}

// /auth/check after a failed upgrade: the same wrong token from the same address within a few
// seconds is the same attempt and is not counted again; another token, or later, is.
TEST(Gate, OncePerAttemptCountsTheSameWrongTokenOnce) {
  Gate gate(options());  // max_failures 3
  const auto t0 = Clock::now();
  const auto once = Counting::kOncePerAttempt;
  EXPECT_EQ(gate.check_upgrade(with_bearer("Bearer wrong"), t0), Verdict::kUnauthorized);  // 1
  for (int i = 0; i < 10; ++i)
    EXPECT_EQ(gate.check_upgrade(with_bearer("Bearer wrong"), t0 + 1s, once),
              Verdict::kUnauthorized);
  EXPECT_EQ(gate.blocked_for("10.0.0.1", t0 + 1s), 0s);
  EXPECT_EQ(gate.check_upgrade(with_bearer("Bearer other"), t0 + 1s, once),
            Verdict::kUnauthorized);  // 2: another token
  EXPECT_EQ(gate.check_upgrade(with_bearer("Bearer other"), t0 + 20s, once),
            Verdict::kUnauthorized);  // 3: the same, but no longer the same attempt
  EXPECT_EQ(gate.check_upgrade(with_bearer("Bearer wrong"), t0 + 21s, once),
            Verdict::kTooManyFailures);
  EXPECT_EQ(gate.blocked_for("10.0.0.1", t0 + 21s), 59s);
  EXPECT_EQ(gate.blocked_for("10.0.0.1", t0 + 21s + 500ms), 59s) << "rounded up";
  EXPECT_EQ(gate.blocked_for("10.0.0.2", t0 + 21s), 0s);
  EXPECT_EQ(gate.check_upgrade(with_bearer("Bearer secret-token-123"), t0 + 21s, once),
            Verdict::kAllow);
}

TEST(Gate, OriginRules) {
  Gate own(options());
  auto r = with_bearer("Bearer secret-token-123");
  r.origin = "https://example.test:8443";
  EXPECT_EQ(own.check_upgrade(r), Verdict::kAllow);
  r.origin = "HTTPS://Example.test:8443";
  EXPECT_EQ(own.check_upgrade(r), Verdict::kAllow);
  r.origin = "http://example.test:8443";
  EXPECT_EQ(own.check_upgrade(r), Verdict::kForbiddenOrigin);
  r.origin = "https://evil.test";
  EXPECT_EQ(own.check_upgrade(r), Verdict::kForbiddenOrigin);

  auto listed_options = options();
  listed_options.allowed_origins = {"https://phone.test"};
  Gate listed(listed_options);
  r.origin = "https://phone.test";
  EXPECT_EQ(listed.check_upgrade(r), Verdict::kAllow);
  r.origin = "https://example.test:8443";
  EXPECT_EQ(listed.check_upgrade(r), Verdict::kAllow) << "the server's own origin stays allowed";
  r.origin = "https://evil.test";
  EXPECT_EQ(listed.check_upgrade(r), Verdict::kForbiddenOrigin);

  auto any_options = options();
  any_options.allowed_origins = {"*"};
  Gate any(any_options);
  r.origin = "https://anything.test";
  EXPECT_EQ(any.check_upgrade(r), Verdict::kAllow);
}

TEST(Gate, AuthDisabledStillChecksOrigin) {
  auto o = options();
  o.auth_enabled = false;
  Gate gate(o);
  UpgradeRequest r;
  r.remote_address = "10.0.0.1";
  r.host = "h:1";
  EXPECT_EQ(gate.check_upgrade(r), Verdict::kAllow);
  r.origin = "https://elsewhere";
  EXPECT_EQ(gate.check_upgrade(r), Verdict::kForbiddenOrigin);
}

TEST(Gate, ConnectionRatePerAddress) {
  Gate gate(options());  // 2 per second, burst 2
  const auto t0 = Clock::now();
  EXPECT_TRUE(gate.allow_connection("a", t0));
  EXPECT_TRUE(gate.allow_connection("a", t0));
  EXPECT_FALSE(gate.allow_connection("a", t0));
  EXPECT_TRUE(gate.allow_connection("b", t0));
  EXPECT_TRUE(gate.allow_connection("a", t0 + 600ms));
  auto off = options();
  off.connection_rate = 0;
  Gate unlimited(off);
  for (int i = 0; i < 100; ++i) EXPECT_TRUE(unlimited.allow_connection("a", t0));
}

TEST(Gate, SlowRatesHoldAcrossTheBucketPruning) {
  auto slow = options();
  slow.connection_rate = 0.05;  // one connection per 20 s
  Gate gate(slow);
  const auto t0 = Clock::now();
  EXPECT_TRUE(gate.allow_connection("a", t0));
  // Pruning runs every 10 s; a bucket that has not refilled yet must survive it.
  EXPECT_TRUE(gate.allow_connection("b", t0 + 11s));
  EXPECT_FALSE(gate.allow_connection("a", t0 + 15s));
  EXPECT_TRUE(gate.allow_connection("a", t0 + 21s));
}

TEST(Gate, HostNameOfStripsThePortAndNormalizes) {
  EXPECT_EQ(Gate::host_name_of("Example.COM:8443"), "example.com");
  EXPECT_EQ(Gate::host_name_of("example.com."), "example.com");
  EXPECT_EQ(Gate::host_name_of("[::1]:8443"), "::1");
  EXPECT_EQ(Gate::host_name_of("[::1]"), "::1");
  EXPECT_EQ(Gate::host_name_of("127.0.0.1"), "127.0.0.1");
  EXPECT_EQ(Gate::host_name_of(""), "");
  EXPECT_EQ(Gate::host_name_of("a:b:c"), "");       // bare IPv6 without brackets
  EXPECT_EQ(Gate::host_name_of("host:"), "");       // empty port
  EXPECT_EQ(Gate::host_name_of("host:80x"), "");    // not a port
  EXPECT_EQ(Gate::host_name_of("[::1]x"), "");      // junk after the bracket
  EXPECT_EQ(Gate::host_name_of("evil.com/x"), "");  // not a host
  EXPECT_EQ(Gate::host_name_of("a b"), "");
}

TEST(Gate, HostMustBeOneOfTheServersNames) {
  auto o = options();
  o.allowed_hosts = {"agent.example.com", "*.lan.example", "MyBox"};
  Gate gate(o);
  gate.set_certificate_names({"pocket.test", "*.pocket.test"});
  for (const char* ok :
       {"localhost", "localhost:8443", "app.localhost", "127.0.0.1:8443", "[::1]:8443", "10.1.2.3",
        "agent.example.com:8443", "AGENT.example.com", "box.lan.example", "a.b.lan.example",
        "mybox", "pocket.test", "phone.pocket.test:443"})
    EXPECT_TRUE(gate.host_allowed(ok)) << ok;
  for (const char* bad :
       {"", "evil.example", "agent.example.com.evil.example", "lan.example", "xlan.example",
        "evilpocket.test", "localhost.evil.example", "example.com", "[::1", "host:port"})
    EXPECT_FALSE(gate.host_allowed(bad)) << bad;
  // A reloaded certificate replaces the names of the old one.
  gate.set_certificate_names({"renewed.test"});
  EXPECT_FALSE(gate.host_allowed("pocket.test"));
  EXPECT_TRUE(gate.host_allowed("renewed.test"));

  auto any = options();
  any.allowed_hosts = {"*"};
  EXPECT_TRUE(Gate(any).host_allowed("whatever.example"));
}

}  // namespace
}  // namespace pa::net
