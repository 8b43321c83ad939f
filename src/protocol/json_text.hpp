// The one rule for numbers in the JSON text the server sends (docs/protocol.md, "Numbers"):
//  - a double with an integral value within ±2^53 is written as an integer (-0.0 as 0);
//  - any other double in plain decimal, shortest round trip (std::to_chars, fixed): 0.0123,
//    15.1, 9007199254740994 — never exponent form (Boost.JSON writes 1.23E-2, 1.51E1, 5E1);
//  - integers (int64/uint64 values) as they are.
// Boost.JSON serializes; only text that holds a double has its number tokens rewritten, so a
// value without doubles costs a walk of its tree and nothing else.
#pragma once

#include <boost/json/value.hpp>
#include <string>
#include <string_view>

namespace pa::protocol {

// `value` serialized, numbers by the rule.
std::string to_json_text(const boost::json::value& value);
std::string to_json_text(const boost::json::object& object);

// True when the tree holds a double anywhere (text written from it may need rewriting).
bool contains_double(const boost::json::value& value);
bool contains_double(const boost::json::object& object);

// Rewrites, in `text` (JSON that came from elsewhere: a CLI line, a history entry written by an
// older server), every number token outside strings that has a fraction or an exponent and is
// not already in the rule's form. Other bytes are left as they are; text that needs no change is
// not copied. Returns whether anything changed. Text that is not JSON is not harmed (tokens that
// do not read as finite numbers are left alone).
bool normalize_json_numbers(std::string& text);

// Appends `number` by the rule (finite values; a non-finite one is written as null).
void append_json_number(std::string& out, double number);

}  // namespace pa::protocol
