// ClientProfile: a hello is taken once, only before any other request; the query's name wins.
#include "server/client_profile.hpp"

#include <gtest/gtest.h>

namespace pa::server {
namespace {

using Outcome = ClientProfile::HelloOutcome;

TEST(ClientProfile, AHelloIsTakenOnceBeforeAnythingElse) {
  ClientProfile profile("");
  EXPECT_FALSE(profile.declared("permissions"));
  EXPECT_EQ(profile.accept_hello("Phone", {"permissions"}), Outcome::kAccepted);
  EXPECT_TRUE(profile.declared("permissions"));
  EXPECT_FALSE(profile.declared("queue"));
  EXPECT_EQ(profile.name(), "Phone");
  // A second one changes nothing.
  EXPECT_EQ(profile.accept_hello("Other", {"queue"}), Outcome::kRepeated);
  EXPECT_EQ(profile.name(), "Phone");
  EXPECT_TRUE(profile.declared("permissions"));
  EXPECT_FALSE(profile.declared("queue"));
}

TEST(ClientProfile, AHelloAfterAnotherRequestIsTooLate) {
  ClientProfile profile("");
  profile.note_other_request();
  EXPECT_EQ(profile.accept_hello("Phone", {"permissions"}), Outcome::kTooLate);
  EXPECT_FALSE(profile.declared("permissions"));
  EXPECT_EQ(profile.name(), "");
}

TEST(ClientProfile, TheQueryNameWinsAndAHelloWithoutNameKeepsIt) {
  ClientProfile named("From query");
  EXPECT_EQ(named.accept_hello("From hello", {}), Outcome::kAccepted);
  EXPECT_EQ(named.name(), "From query");
  ClientProfile anonymous("");
  EXPECT_EQ(anonymous.accept_hello("", {"permissions"}), Outcome::kAccepted);
  EXPECT_EQ(anonymous.name(), "");
}

}  // namespace
}  // namespace pa::server
