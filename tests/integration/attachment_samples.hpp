// Files for the attachment tests (issue 19): a real 1x1 PNG and a UTF-8 text file, and the
// execute.data.attachments entry that carries one.
#pragma once

#include <boost/json/object.hpp>
#include <string>
#include <string_view>

#include "common/base64.hpp"

namespace pa::test {

inline std::string b64(std::string_view bytes) {
  return common::base64_encode(bytes, common::Base64Alphabet::kStandard);
}

inline const std::string kPng =
    common::base64_decode(
        "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5Er"
        "kJggg==",
        common::Base64Alphabet::kStandard)
        .value();
inline const std::string kNotes = "line one\nline two: ünïcödé\n";

inline boost::json::object attachment(const std::string& name, const std::string& type,
                                      const std::string& data) {
  return boost::json::object{{"name", name}, {"media_type", type}, {"data", data}};
}

}  // namespace pa::test
