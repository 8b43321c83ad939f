#include "notify/web_push_crypto.hpp"

#include <gtest/gtest.h>

#include <boost/json.hpp>

#include "notify/base64url.hpp"

namespace pa::notify {
namespace {

std::string b64(std::string_view text) {
  auto out = base64url_decode(text);
  EXPECT_TRUE(out.has_value()) << text;
  return out.value_or("");
}

// RFC 8291 Appendix A, every value verbatim.
constexpr std::string_view kPlaintext = "When I grow up, I want to be a watermelon";
constexpr std::string_view kAsPrivate = "yfWPiYE-n46HLnH0KqZOF1fJJU3MYrct3AELtAQ-oRw";
constexpr std::string_view kAsPublic =
    "BP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A8";
constexpr std::string_view kUaPrivate = "q1dXpw3UpT5VOmu_cf_v6ih07Aems3njxI-JWgLcM94";
constexpr std::string_view kUaPublic =
    "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4";
constexpr std::string_view kAuthSecret = "BTBZMqHH6r4Tts7J_aSIgg";
constexpr std::string_view kSalt = "DGv6ra1nlYgDCS1FRnbzlw";
constexpr std::string_view kBody =
    "DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6T"
    "lzAC8wEqKK6PBru3jl7A_yl95bQpu6cVPTpK4Mqgkf1CXztLVBSt2Ks3oZwbuwXPXLWyouBWLVWGNWQexSgSxsj_Qulcy4"
    "a-fN";

TEST(Base64Url, RoundTripsEveryLengthAndRejectsWhatNoEncoderWrites) {
  std::string bytes;
  for (int i = 0; i < 40; ++i) {
    EXPECT_EQ(base64url_decode(base64url_encode(bytes)), bytes) << i;
    bytes.push_back(static_cast<char>(i * 37));
  }
  EXPECT_EQ(base64url_encode("\xfb\xff"), "-_8");
  EXPECT_EQ(base64url_decode("-_8="), "\xfb\xff");  // padding accepted
  EXPECT_FALSE(base64url_decode("ab+c"));           // the standard alphabet's + and /
  EXPECT_FALSE(base64url_decode("abcde"));          // a length no encoder writes
  EXPECT_FALSE(base64url_decode("-_9"));            // stray low bits
}

TEST(P256KeyTest, ThePublicPointFollowsFromThePrivateScalar) {
  const auto as = P256Key::from_private(b64(kAsPrivate));
  ASSERT_TRUE(as);
  EXPECT_EQ(base64url_encode(as->public_point()), kAsPublic);
  EXPECT_EQ(as->private_scalar(), b64(kAsPrivate));
  const auto ua = P256Key::from_private(b64(kUaPrivate));
  ASSERT_TRUE(ua);
  EXPECT_EQ(base64url_encode(ua->public_point()), kUaPublic);
}

TEST(P256KeyTest, PublicKeysMustBeUncompressedPointsOnTheCurve) {
  EXPECT_TRUE(P256Key::from_public(b64(kUaPublic)));
  std::string off_curve = b64(kUaPublic);
  off_curve[64] = static_cast<char>(off_curve[64] ^ 1);
  EXPECT_FALSE(P256Key::from_public(off_curve));
  EXPECT_FALSE(P256Key::from_public(b64(kUaPublic).substr(0, 33)));  // compressed length
  EXPECT_FALSE(P256Key::from_public(std::string(65, '\0')));
  EXPECT_FALSE(P256Key::from_private(std::string(32, '\0')));    // zero is no key
  EXPECT_FALSE(P256Key::from_private(std::string(32, '\xff')));  // above the group order
}

TEST(WebPushCrypto, Rfc8291AppendixAVectorGivesTheSameBytes) {
  const auto as = P256Key::from_private(b64(kAsPrivate));
  const auto ua = P256Key::from_public(b64(kUaPublic));
  ASSERT_TRUE(as && ua);
  const std::string auth = b64(kAuthSecret);
  const std::string salt = b64(kSalt);
  const auto body = encrypt_push({kPlaintext, &*ua, auth, &*as, salt});
  ASSERT_TRUE(body);
  EXPECT_EQ(base64url_encode(*body), kBody);
}

TEST(WebPushCrypto, RefusesWrongSizes) {
  const auto as = P256Key::from_private(b64(kAsPrivate));
  const auto ua = P256Key::from_public(b64(kUaPublic));
  ASSERT_TRUE(as && ua);
  const std::string auth = b64(kAuthSecret);
  const std::string salt = b64(kSalt);
  EXPECT_FALSE(encrypt_push({kPlaintext, &*ua, auth.substr(1), &*as, salt}));
  EXPECT_FALSE(encrypt_push({kPlaintext, &*ua, auth, &*as, salt.substr(1)}));
  EXPECT_FALSE(encrypt_push({kPlaintext, &*ua, auth, &*ua, salt}));  // sender without private key
  const std::string too_long(kMaxPushPlaintext + 1, 'x');
  EXPECT_FALSE(encrypt_push({too_long, &*ua, auth, &*as, salt}));
  const std::string longest(kMaxPushPlaintext, 'x');
  const auto body = encrypt_push({longest, &*ua, auth, &*as, salt});
  ASSERT_TRUE(body);
  EXPECT_EQ(body->size(), kRecordSize);
}

TEST(WebPushCrypto, FreshKeyAndSaltPerMessage) {
  const auto ua = P256Key::from_public(b64(kUaPublic));
  ASSERT_TRUE(ua);
  const auto a = encrypt_push(kPlaintext, *ua, b64(kAuthSecret));
  const auto b = encrypt_push(kPlaintext, *ua, b64(kAuthSecret));
  ASSERT_TRUE(a && b);
  EXPECT_NE(a->substr(0, 16), b->substr(0, 16));    // salt
  EXPECT_NE(a->substr(21, 65), b->substr(21, 65));  // sender key
  EXPECT_EQ(a->size(), b->size());
}

TEST(Vapid, TheJwtVerifiesWithTheServersPublicKeyAndCarriesTheClaims) {
  const auto server = P256Key::generate();
  ASSERT_TRUE(server);
  const auto expires = std::chrono::system_clock::time_point(std::chrono::seconds(1'900'000'000));
  const auto header =
      vapid_authorization(*server, "https://push.example.net", "mailto:owner@example.org", expires);
  ASSERT_TRUE(header);
  // "vapid t=<header>.<claims>.<signature>, k=<public key>"
  ASSERT_EQ(header->rfind("vapid t=", 0), 0u);
  const auto comma = header->find(", k=");
  ASSERT_NE(comma, std::string::npos);
  const std::string jwt = header->substr(8, comma - 8);
  const auto k = base64url_decode(header->substr(comma + 4));
  ASSERT_TRUE(k);
  EXPECT_EQ(*k, server->public_point());
  const auto last_dot = jwt.rfind('.');
  const auto first_dot = jwt.find('.');
  const auto signature = base64url_decode(jwt.substr(last_dot + 1));
  ASSERT_TRUE(signature);
  const auto verifier = P256Key::from_public(*k);
  ASSERT_TRUE(verifier);
  EXPECT_TRUE(verifier->verify_es256(jwt.substr(0, last_dot), *signature));
  std::string tampered = jwt.substr(0, last_dot);
  tampered[first_dot + 2] ^= 1;
  EXPECT_FALSE(verifier->verify_es256(tampered, *signature));

  const auto head = boost::json::parse(*base64url_decode(jwt.substr(0, first_dot)));
  EXPECT_EQ(head.at("alg"), "ES256");
  const auto claims =
      boost::json::parse(*base64url_decode(jwt.substr(first_dot + 1, last_dot - first_dot - 1)));
  EXPECT_EQ(claims.at("aud"), "https://push.example.net");
  EXPECT_EQ(claims.at("sub"), "mailto:owner@example.org");
  EXPECT_EQ(claims.at("exp").as_int64(), 1'900'000'000);
}

}  // namespace
}  // namespace pa::notify
