#include <gtest/gtest.h>

#include "redis/redis_client.hpp"

namespace pa::redis {
namespace {

RedisUrl parse_ok(std::string_view text) {
  std::string error;
  auto url = RedisUrl::parse(text, error);
  EXPECT_TRUE(url.has_value()) << text << ": " << error;
  EXPECT_TRUE(error.empty());
  return url.value_or(RedisUrl{});
}

TEST(RedisUrlTest, ParsesHostPortAndScheme) {
  auto url = parse_ok("redis://cache.internal");
  EXPECT_FALSE(url.tls);
  EXPECT_EQ(url.host, "cache.internal");
  EXPECT_EQ(url.port, 6379);
  EXPECT_EQ(url.db, 0u);
  EXPECT_TRUE(url.user.empty());
  EXPECT_TRUE(url.password.empty());

  url = parse_ok("rediss://10.0.0.7:6380/");
  EXPECT_TRUE(url.tls);
  EXPECT_EQ(url.host, "10.0.0.7");
  EXPECT_EQ(url.port, 6380);

  url = parse_ok("REDISS://Redis-1.example.com:65535");
  EXPECT_TRUE(url.tls);
  EXPECT_EQ(url.host, "Redis-1.example.com");
  EXPECT_EQ(url.port, 65535);
}

TEST(RedisUrlTest, ParsesCredentialsAndDatabase) {
  auto url = parse_ok("redis://alice:s3cret@127.0.0.1:7000/3");
  EXPECT_EQ(url.user, "alice");
  EXPECT_EQ(url.password, "s3cret");
  EXPECT_EQ(url.port, 7000);
  EXPECT_EQ(url.db, 3u);

  url = parse_ok("redis://:only-password@host/15");
  EXPECT_TRUE(url.user.empty());
  EXPECT_EQ(url.password, "only-password");
  EXPECT_EQ(url.db, 15u);

  // As redis-cli reads it: a userinfo without ':' is the password.
  url = parse_ok("redis://bare@host");
  EXPECT_TRUE(url.user.empty());
  EXPECT_EQ(url.password, "bare");
}

TEST(RedisUrlTest, PercentDecodesUserAndPassword) {
  const auto url = parse_ok("redis://us%40er:p%3Aa%2Fss%40%25@host");
  EXPECT_EQ(url.user, "us@er");
  EXPECT_EQ(url.password, "p:a/ss@%");
  // The last '@' ends the userinfo: a raw '@' in the password still parses.
  EXPECT_EQ(parse_ok("redis://:a@b@host").password, "a@b");
}

TEST(RedisUrlTest, ParsesBracketedIpv6) {
  auto url = parse_ok("redis://[::1]:6390/2");
  EXPECT_EQ(url.host, "::1");
  EXPECT_EQ(url.port, 6390);
  EXPECT_EQ(url.db, 2u);
  url = parse_ok("rediss://:pw@[fe80::1]");
  EXPECT_EQ(url.host, "fe80::1");
  EXPECT_EQ(url.port, 6379);
}

TEST(RedisUrlTest, RejectsInvalidFormsWithAReason) {
  const char* invalid[] = {
      "",
      "redis:/host",
      "http://host:6379",
      "host:6379",
      "redis://",
      "redis://:6379",
      "redis://host:",
      "redis://host:0",
      "redis://host:65536",
      "redis://host:63a9",
      "redis://host:-1",
      "redis://host/abc",
      "redis://host/-1",
      "redis://host/1/2",
      "redis://host/99999999999",
      "redis://host?db=1",
      "redis://host#x",
      "redis:// host",
      "redis://host\n",
      "redis://ho st",
      "redis://ho$t",
      "redis://user:@host",
      "redis://@host",
      "redis://:pw%4@host",
      "redis://:pw%zz@host",
      "redis://[::1",
      "redis://[not-ipv6]:6379",
      "redis://[::1]x",
      "redis://[::1]:",
  };
  for (const char* text : invalid) {
    std::string error;
    EXPECT_FALSE(RedisUrl::parse(text, error).has_value()) << text;
    EXPECT_NE(error.find("invalid Redis URL"), std::string::npos) << text << ": " << error;
  }
}

TEST(RedisUrlTest, RedactedHidesThePassword) {
  EXPECT_EQ(parse_ok("redis://alice:s3cret@h:7000/3").redacted(), "redis://alice:***@h:7000/3");
  EXPECT_EQ(parse_ok("rediss://:s3cret@h").redacted(), "rediss://:***@h:6379");
  EXPECT_EQ(parse_ok("redis://h").redacted(), "redis://h:6379");
  EXPECT_EQ(parse_ok("redis://:pw@[::1]:1/1").redacted(), "redis://:***@[::1]:1/1");
  const auto redacted = parse_ok("redis://a%3Ab:top%40secret@h").redacted();
  EXPECT_EQ(redacted, "redis://a%3Ab:***@h:6379");
  EXPECT_EQ(redacted.find("secret"), std::string::npos);
}

}  // namespace
}  // namespace pa::redis
