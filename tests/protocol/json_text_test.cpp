// The number rule of protocol/json_text.hpp: no exponent form, integral doubles as integers,
// shortest round trip, strings untouched.
#include "protocol/json_text.hpp"

#include <gtest/gtest.h>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "protocol/envelope.hpp"
#include "support/json_tokens.hpp"

namespace pa::protocol {
namespace {

namespace json = boost::json;

using pa::test::number_tokens;

std::string text_of(double d) {
  return to_json_text(json::value(d));
}

TEST(NumberText, Doubles) {
  EXPECT_EQ(text_of(0.0), "0");
  EXPECT_EQ(text_of(-0.0), "0");
  EXPECT_EQ(text_of(1e-7), "0.0000001");
  EXPECT_EQ(text_of(0.1), "0.1");
  EXPECT_EQ(text_of(15.1), "15.1");
  EXPECT_EQ(text_of(-15.1), "-15.1");
  EXPECT_EQ(text_of(0.0123), "0.0123");
  EXPECT_EQ(text_of(9.99972033482148E-1), "0.999972033482148");
  EXPECT_EQ(text_of(1e15), "1000000000000000");
  EXPECT_EQ(text_of(-1e15), "-1000000000000000");
  EXPECT_EQ(text_of(9007199254740992.0), "9007199254740992");    // 2^53
  EXPECT_EQ(text_of(-9007199254740992.0), "-9007199254740992");  // -2^53
  EXPECT_EQ(text_of(9007199254740994.0), "9007199254740994");    // 2^53 + 2
  const std::string huge = text_of(1e300);
  EXPECT_EQ(huge.size(), 301u);
  EXPECT_EQ(huge.substr(0, 4), "1000");
  EXPECT_EQ(huge.find_first_not_of("0123456789"), std::string::npos) << huge;
  EXPECT_EQ(json::parse(huge).as_double(), 1e300);
  const std::string tiny = text_of(-5e-324);
  EXPECT_EQ(tiny.substr(0, 3), "-0.");
  EXPECT_EQ(json::parse(tiny).as_double(), -5e-324);
  EXPECT_EQ(text_of(std::numeric_limits<double>::max()).size(), 309u);
}

TEST(NumberText, IntegersStoredAsDoublesAreIntegers) {
  EXPECT_EQ(text_of(507.0), "507");
  EXPECT_EQ(text_of(50.0), "50");
  EXPECT_EQ(text_of(-3.0), "-3");
  EXPECT_EQ(json::serialize(json::value(507.0)), "5.07E2") << "what Boost.JSON writes";
  EXPECT_EQ(to_json_text(json::value(std::int64_t{-42})), "-42");
  EXPECT_EQ(to_json_text(json::value(std::uint64_t{18446744073709551615u})),
            "18446744073709551615");
}

TEST(NumberText, NestedValuesAndStrings) {
  const json::value v{{"a", {1.5, 2.0, {{"b", 1e-7}}}},
                      {"s", "1E5 and 5.07E2 stay"},
                      {"q", "say \"3E2\" \\"},
                      {"n", nullptr},
                      {"t", true},
                      {"i", 7}};
  const std::string text = to_json_text(v);
  EXPECT_EQ(
      text,
      R"({"a":[1.5,2,{"b":0.0000001}],"s":"1E5 and 5.07E2 stay","q":"say \"3E2\" \\","n":null,"t":true,"i":7})");
  EXPECT_EQ(json::parse(text).at("s"), v.at("s"));
  EXPECT_EQ(json::parse(text).at("q"), v.at("q"));
}

TEST(NumberText, ValuesWithoutDoublesAreBoostsText) {
  const json::value v{{"s", "5E1"}, {"a", {1, 2, -3}}, {"o", json::object{}}};
  EXPECT_FALSE(contains_double(v));
  EXPECT_EQ(to_json_text(v), json::serialize(v));
  EXPECT_TRUE(contains_double(json::value{{"x", {{"y", {1, 0.5}}}}}));
}

TEST(NumberText, NormalizesTextFromElsewhere) {
  std::string cli = R"({"type":"result","total_cost_usd":1.23E-2,"n":1e-7,"d":1.50,"i":12,)"
                    R"("big":1E+21,"s":"9f1c2d3e-4b5a \"1e5\"","z":-0.0,"u":0.0123})";
  EXPECT_TRUE(normalize_json_numbers(cli));
  EXPECT_EQ(cli, R"({"type":"result","total_cost_usd":0.0123,"n":0.0000001,"d":1.5,"i":12,)"
                 R"("big":1000000000000000000000,"s":"9f1c2d3e-4b5a \"1e5\"","z":0,"u":0.0123})");
  std::string again = cli;
  EXPECT_FALSE(normalize_json_numbers(again)) << "idempotent";
  EXPECT_EQ(again, cli);

  std::string plain = R"({"a":"x\\","b":[1,2,3.25],"c":"\\\"2E3\""})";
  const std::string before = plain;
  EXPECT_FALSE(normalize_json_numbers(plain));
  EXPECT_EQ(plain, before);
  std::string not_json = "version 1.2.3 at 5E";
  EXPECT_FALSE(normalize_json_numbers(not_json));
  std::string unterminated = R"({"a":"5E1)";
  EXPECT_FALSE(normalize_json_numbers(unterminated));
}

TEST(NumberText, EnvelopeFromAnObjectFollowsTheRule) {
  const std::string text =
      serialize(Outgoing{"server_stats", {}, {}, {}, "2024-01-01T12:00:00.000Z"},
                json::object{{"avg_duration_ms", 507.0}, {"rate_per_sec", 5.2}, {"n", 0.0}});
  EXPECT_EQ(text,
            R"({"type":"server_stats","data":{"avg_duration_ms":507,"rate_per_sec":5.2,"n":0},)"
            R"("timestamp":"2024-01-01T12:00:00.000Z"})");
}

// Random values, nested: no exponent outside strings, every double reads back the same, and an
// integral double (within 2^53) comes out as an integer.
class RandomValues {
 public:
  explicit RandomValues(std::uint32_t seed) : rng_(seed) {}

  double number() {
    switch (pick(6)) {
      case 0:  // any bit pattern that is a finite double
        for (;;) {
          const std::uint64_t bits = rng_();
          double d;
          std::memcpy(&d, &bits, sizeof d);
          if (std::isfinite(d)) return d;
        }
      case 1:  // tiny
        return std::ldexp(uniform(), -static_cast<int>(pick(1070)));
      case 2:  // huge
        return std::ldexp(uniform(), static_cast<int>(pick(1020)));
      case 3:  // integral, within and around 2^53
        return std::trunc(std::ldexp(uniform(), static_cast<int>(pick(60))));
      case 4:  // few decimals, like the server's
        return static_cast<double>(static_cast<std::int64_t>(rng_() % 2000000) - 1000000) / 10.0;
      default:
        return uniform() * 1000;
    }
  }

  json::value value(int depth) {
    switch (depth > 3 ? pick(3) : pick(6)) {
      case 0:
        return json::value(number());
      case 1:
        return json::value(static_cast<std::int64_t>(rng_()));
      case 2:
        return json::value(random_string());
      case 3: {
        json::array a;
        for (std::size_t i = pick(5); i > 0; --i) a.push_back(value(depth + 1));
        return a;
      }
      default: {
        json::object o;
        for (std::size_t i = pick(5); i > 0; --i) o[random_string()] = value(depth + 1);
        return o;
      }
    }
  }

 private:
  std::size_t pick(std::size_t n) { return static_cast<std::size_t>(rng_() % n); }
  double uniform() {
    const double d = std::uniform_real_distribution<double>(0.0, 1.0)(rng_);
    return (rng_() & 1) != 0 ? -d : d;
  }
  std::string random_string() {
    static const std::vector<std::string> kParts = {"1E5", "\"",          "\\", "2.5e-3", "x", " ",
                                                    "-7",  "\\\"9E9\\\"", "{",  "]",      ":", ","};
    std::string s;
    for (std::size_t i = pick(5); i > 0; --i) s += kParts[pick(kParts.size())];
    return s;
  }
  std::mt19937_64 rng_;
};

// The numbers of `v` in the order serialization writes them.
void collect_numbers(const json::value& v, std::vector<const json::value*>& out) {
  switch (v.kind()) {
    case json::kind::object:
      for (const auto& kv : v.get_object()) collect_numbers(kv.value(), out);
      return;
    case json::kind::array:
      for (const auto& item : v.get_array()) collect_numbers(item, out);
      return;
    case json::kind::double_:
    case json::kind::int64:
    case json::kind::uint64:
      out.push_back(&v);
      return;
    default:
      return;
  }
}

// Each token reads back (std::from_chars: correctly rounded, unlike Boost.JSON 1.81's parser for
// some 17-digit numbers) as the value written; an integral double within 2^53 is an integer.
void expect_same_numbers(const json::value& sent, const std::string& text) {
  std::vector<const json::value*> numbers;
  collect_numbers(sent, numbers);
  const auto tokens = number_tokens(text);
  ASSERT_EQ(tokens.size(), numbers.size()) << text;
  for (std::size_t i = 0; i < tokens.size(); ++i) {
    const auto& token = tokens[i];
    const json::value& v = *numbers[i];
    if (v.is_int64()) {
      ASSERT_EQ(token, std::to_string(v.get_int64()));
    } else if (v.is_uint64()) {
      ASSERT_EQ(token, std::to_string(v.get_uint64()));
    } else {
      const double d = v.get_double();
      double read = 0;
      const auto r = std::from_chars(token.data(), token.data() + token.size(), read);
      ASSERT_EQ(r.ec, std::errc()) << token;
      ASSERT_EQ(r.ptr, token.data() + token.size()) << token;
      ASSERT_EQ(read, d) << token;
      if (std::fabs(d) <= 9007199254740992.0 && std::trunc(d) == d) {
        ASSERT_EQ(token.find('.'), std::string::npos) << d << " -> " << token;
      }
    }
  }
}

TEST(NumberText, RandomValuesRoundTripWithoutExponents) {
  RandomValues random(20240116);
  for (int i = 0; i < 3000; ++i) {
    const json::value v = random.value(0);
    const std::string text = to_json_text(v);
    for (const auto& token : number_tokens(text)) {
      ASSERT_EQ(token.find_first_of("eE+"), std::string::npos) << token << " in " << text;
    }
    ASSERT_NO_THROW(json::parse(text)) << text;
    expect_same_numbers(v, text);
    if (HasFatalFailure()) {
      ADD_FAILURE() << text;
      return;
    }
    // The text from Boost.JSON, normalized, is the same text.
    std::string boost_text = json::serialize(v);
    normalize_json_numbers(boost_text);
    ASSERT_EQ(boost_text, text);
    std::string again = text;
    ASSERT_FALSE(normalize_json_numbers(again)) << text;
  }
}

}  // namespace
}  // namespace pa::protocol
