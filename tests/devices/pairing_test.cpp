#include "devices/pairing.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <set>

namespace pa::devices {
namespace {

using std::chrono::minutes;
using std::chrono::seconds;

const SystemTime kT0 = SystemTime(std::chrono::milliseconds(1'780'000'000'000));
constexpr std::string_view kAddress = "192.0.2.7";

Refusal refusal(const std::variant<Redeemed, Refusal>& result) {
  EXPECT_TRUE(std::holds_alternative<Refusal>(result)) << "the code was accepted";
  return std::holds_alternative<Refusal>(result) ? std::get<Refusal>(result) : Refusal{0, "", {}};
}

// A well-formed code that was never created (created codes are random: this one may collide
// with probability 2^-50 per outstanding code).
std::string wrong_code(const std::string& real) {
  return real == "0000000000" ? "1111111111" : "0000000000";
}

TEST(Pairing, CodesAreTenUnambiguousRandomCharactersValidTenMinutes) {
  Pairing pairing;
  std::set<std::string> seen;
  for (int i = 0; i < 15; ++i) {
    const auto c = pairing.create(Role::kViewer, "", kT0);
    EXPECT_EQ(c.code.size(), kPairingCodeLength);
    EXPECT_TRUE(std::all_of(c.code.begin(), c.code.end(), [](char ch) {
      return kPairingAlphabet.find(ch) != std::string_view::npos;
    })) << c.code;
    EXPECT_EQ(c.code.find_first_of("ILOU"), std::string::npos);
    EXPECT_EQ(c.expires_at, kT0 + minutes(10));
    seen.insert(c.code);
  }
  EXPECT_EQ(seen.size(), 15u);
  EXPECT_EQ(kPairingAlphabet.size(), 32u);
}

TEST(Pairing, ACodeRedeemsOnceWithItsRoleAndName) {
  Pairing pairing;
  const auto c = pairing.create(Role::kApprover, "Anna's phone", kT0);
  const auto first = pairing.redeem(c.code, kAddress, kT0 + seconds(5));
  ASSERT_TRUE(std::holds_alternative<Redeemed>(first));
  EXPECT_EQ(std::get<Redeemed>(first).role, Role::kApprover);
  EXPECT_EQ(std::get<Redeemed>(first).name, "Anna's phone");
  EXPECT_EQ(pairing.outstanding(kT0 + seconds(5)), 0u);

  const auto again = refusal(pairing.redeem(c.code, kAddress, kT0 + seconds(6)));
  EXPECT_EQ(again.status, 410);
  EXPECT_EQ(again.reason, "used");
  const auto elsewhere = refusal(pairing.redeem(c.code, "198.51.100.1", kT0 + seconds(7)));
  EXPECT_EQ(elsewhere.status, 410);
}

TEST(Pairing, ACodeExpiresAfterItsLifetime) {
  Pairing pairing;
  const auto a = pairing.create(Role::kViewer, "", kT0);
  const auto b = pairing.create(Role::kViewer, "", kT0);
  EXPECT_TRUE(std::holds_alternative<Redeemed>(
      pairing.redeem(a.code, kAddress, kT0 + minutes(10) - std::chrono::milliseconds(1))));
  const auto late = refusal(pairing.redeem(b.code, kAddress, kT0 + minutes(10)));
  EXPECT_EQ(late.status, 410);
  EXPECT_EQ(late.reason, "expired");
  // Still "expired" (not "unknown_code") for a while after.
  EXPECT_EQ(refusal(pairing.redeem(b.code, kAddress, kT0 + minutes(50))).reason, "expired");
}

TEST(Pairing, TheLifetimeIsConfigurable) {
  Pairing pairing(PairingOptions{.lifetime = seconds(30)});
  const auto c = pairing.create(Role::kViewer, "", kT0);
  EXPECT_EQ(c.expires_at, kT0 + seconds(30));
  EXPECT_EQ(refusal(pairing.redeem(c.code, kAddress, kT0 + seconds(30))).reason, "expired");
}

TEST(Pairing, AWrongCodeIs400UnknownCode) {
  Pairing pairing;
  const auto c = pairing.create(Role::kViewer, "", kT0);
  for (const std::string& wrong :
       {wrong_code(c.code), std::string(), c.code.substr(0, 9), c.code + "0",
        c.code.substr(0, 9) + "U", c.code.substr(0, 9) + "!", std::string(10000, 'A')}) {
    const auto r = refusal(pairing.redeem(wrong, "203.0.113." + std::to_string(wrong.size()), kT0));
    EXPECT_EQ(r.status, 400) << wrong;
    EXPECT_EQ(r.reason, "unknown_code") << wrong;
  }
  EXPECT_TRUE(std::holds_alternative<Redeemed>(pairing.redeem(c.code, kAddress, kT0)));
}

TEST(Pairing, LowerCaseLookAlikesAndDashesAreRead) {
  Pairing pairing;
  // Keep creating until a code has a 0 and a 1, to type them as o and l.
  PairingCode c;
  do {
    c = pairing.create(Role::kViewer, "", kT0);
  } while (c.code.find('0') == std::string::npos || c.code.find('1') == std::string::npos);
  std::string typed;
  for (const char ch : c.code) {
    typed += ch == '0' ? 'o' : ch == '1' ? 'l' : static_cast<char>(std::tolower(ch));
    if (typed.size() == 5) typed += '-';
  }
  EXPECT_TRUE(std::holds_alternative<Redeemed>(pairing.redeem(typed, kAddress, kT0))) << typed;
}

TEST(Pairing, RepeatedWrongCodesFromOneAddressGet429ForAMinute) {
  Pairing pairing;  // max_failures 10
  const auto c = pairing.create(Role::kOperator, "", kT0);
  const std::string wrong = wrong_code(c.code);
  for (int i = 0; i < 10; ++i) {
    EXPECT_EQ(refusal(pairing.redeem(wrong, kAddress, kT0 + seconds(i))).status, 400) << i;
  }
  const auto blocked = refusal(pairing.redeem(wrong, kAddress, kT0 + seconds(10)));
  EXPECT_EQ(blocked.status, 429);
  EXPECT_EQ(blocked.reason, "too_many_attempts");
  EXPECT_EQ(blocked.retry_after, seconds(59));  // blocked from the 10th (at 9 s) for 60 s
  // While blocked even the right code is refused, unlooked-at.
  const auto right = refusal(pairing.redeem(c.code, kAddress, kT0 + seconds(30)));
  EXPECT_EQ(right.status, 429);
  EXPECT_EQ(right.retry_after, seconds(39));
  EXPECT_EQ(
      refusal(pairing.redeem(c.code, kAddress, kT0 + seconds(68) + std::chrono::milliseconds(500)))
          .retry_after,
      seconds(1));
  // Other addresses are not affected, and the block ends after a minute.
  EXPECT_EQ(refusal(pairing.redeem(wrong, "198.51.100.1", kT0 + seconds(30))).status, 400);
  EXPECT_TRUE(
      std::holds_alternative<Redeemed>(pairing.redeem(c.code, kAddress, kT0 + seconds(69))));
}

TEST(Pairing, WrongCodesCountPerMinute) {
  Pairing pairing;
  const auto c = pairing.create(Role::kViewer, "", kT0);
  const std::string wrong = wrong_code(c.code);
  for (int i = 0; i < 9; ++i) EXPECT_EQ(refusal(pairing.redeem(wrong, kAddress, kT0)).status, 400);
  // A new window a minute later: nine more are still only wrong.
  for (int i = 0; i < 9; ++i) {
    EXPECT_EQ(refusal(pairing.redeem(wrong, kAddress, kT0 + seconds(61))).status, 400) << i;
  }
  EXPECT_EQ(refusal(pairing.redeem(wrong, kAddress, kT0 + seconds(61))).status, 400);  // 10th
  EXPECT_EQ(refusal(pairing.redeem(wrong, kAddress, kT0 + seconds(61))).status, 429);
}

TEST(Pairing, MaxFailuresIsConfigurable) {
  Pairing pairing(PairingOptions{.max_failures = 3});
  const auto c = pairing.create(Role::kViewer, "", kT0);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(refusal(pairing.redeem(wrong_code(c.code), kAddress, kT0)).status, 400);
  }
  EXPECT_EQ(refusal(pairing.redeem(wrong_code(c.code), kAddress, kT0)).status, 429);
}

TEST(Pairing, UsedAndExpiredCodesAreNotWrongCodes) {
  Pairing pairing;
  const auto used = pairing.create(Role::kViewer, "", kT0);
  ASSERT_TRUE(std::holds_alternative<Redeemed>(pairing.redeem(used.code, kAddress, kT0)));
  const auto expired = pairing.create(Role::kViewer, "", kT0);
  for (int i = 0; i < 30; ++i) {
    EXPECT_EQ(refusal(pairing.redeem(used.code, kAddress, kT0)).status, 410);
    EXPECT_EQ(refusal(pairing.redeem(expired.code, kAddress, kT0 + minutes(11))).status, 410);
  }
}

TEST(Pairing, AtMost20OutstandingTheOldestIsDropped) {
  Pairing pairing;
  std::vector<PairingCode> codes;
  for (int i = 0; i < 21; ++i) codes.push_back(pairing.create(Role::kViewer, "", kT0 + seconds(i)));
  EXPECT_EQ(pairing.outstanding(kT0 + seconds(21)), 20u);
  EXPECT_EQ(refusal(pairing.redeem(codes[0].code, kAddress, kT0 + seconds(21))).status, 410);
  for (int i = 1; i < 21; ++i) {
    EXPECT_TRUE(std::holds_alternative<Redeemed>(
        pairing.redeem(codes[i].code, kAddress, kT0 + seconds(21))))
        << i;
  }
}

}  // namespace
}  // namespace pa::devices
