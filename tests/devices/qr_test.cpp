#include "devices/qr.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <regex>

#include "support/qr_reader.hpp"
#include "support/server_process.hpp"

namespace pa::devices {
namespace {

namespace fs = std::filesystem;

const std::string kUrl = "https://192.168.1.20:8443/?pair=7K2M9QX4TB";

using test::QrBitmap;

QrBitmap from_matrix(const QrMatrix& m) {
  QrBitmap b;
  b.size = m.width + 2 * kQrQuietZone;
  for (int y = -kQrQuietZone; y < m.width + kQrQuietZone; ++y)
    for (int x = -kQrQuietZone; x < m.width + kQrQuietZone; ++x) b.dark.push_back(m.at(x, y));
  return b;
}

// Reads the SVG's path back ("M<x> <y>h<n>v1h-<n>z" per run of dark modules).
QrBitmap from_svg(const std::string& svg) {
  std::smatch m;
  EXPECT_TRUE(std::regex_search(svg, m, std::regex(R"re(viewBox="0 0 (\d+) (\d+)")re")));
  QrBitmap b;
  b.size = std::stoi(m[1]);
  b.dark.assign(static_cast<std::size_t>(b.size * b.size), false);
  EXPECT_TRUE(std::regex_search(svg, m, std::regex(R"re(<path fill="#000" d="([^"]*)"/>)re")));
  const std::string d = m[1];
  const std::regex run(R"(M(\d+) (\d+)h(\d+)v1h-(\d+)z)");
  std::size_t covered = 0;
  for (std::sregex_iterator it(d.begin(), d.end(), run), end; it != end; ++it) {
    const int x = std::stoi((*it)[1]), y = std::stoi((*it)[2]), n = std::stoi((*it)[3]);
    EXPECT_EQ(n, std::stoi((*it)[4]));
    for (int i = 0; i < n; ++i) b.dark[static_cast<std::size_t>(y * b.size + x + i)] = true;
    covered += it->length();
  }
  EXPECT_EQ(covered, d.size()) << "the path has only module runs";
  return b;
}

std::string decode(const QrBitmap& b, const fs::path& file) {
  const auto decoded = test::decode_qr(b, file);
  EXPECT_EQ(decoded.exit_code, 0) << decoded.text;
  return decoded.text;
}

class QrDecode : public ::testing::Test {
 protected:
  void SetUp() override {
    if (test::zbarimg_path().empty())
      GTEST_SKIP() << "zbarimg is missing: install zbar-tools (scripts/install-deps.sh does)";
  }
  pa::test::TempDir dir_;
};

TEST_F(QrDecode, TheModuleMatrixDecodesToTheUrl) {
  const auto m = qr_matrix(kUrl);
  EXPECT_GE(m.width, 21);
  EXPECT_EQ((m.width - 17) % 4, 0) << "a QR code is 17 + 4 * version modules wide";
  EXPECT_EQ(decode(from_matrix(m), dir_ / "matrix.pbm"), kUrl);
}

TEST_F(QrDecode, TheTerminalDrawingDecodesToTheUrl) {
  const std::string drawing = qr_terminal(kUrl);
  const QrBitmap b = test::qr_from_terminal(drawing, true);
  const auto m = qr_matrix(kUrl);
  // The quiet zone: 4 light modules on every side (rounded up to whole lines at the bottom).
  EXPECT_EQ(b.size, m.width + 2 * kQrQuietZone);
  const QrBitmap expected = from_matrix(m);
  EXPECT_EQ(b.dark, expected.dark);
  EXPECT_EQ(decode(b, dir_ / "terminal.pbm"), kUrl);
}

// Without a terminal (`pair > file`), the same glyphs without escape codes.
TEST_F(QrDecode, ThePlainDrawingIsTheSameModulesWithoutEscapeCodes) {
  const std::string drawing = qr_terminal(kUrl, QrStyle::kPlain);
  EXPECT_EQ(drawing.find('\x1b'), std::string::npos);
  const QrBitmap b = test::qr_from_terminal(drawing, false);
  EXPECT_EQ(b.dark, from_matrix(qr_matrix(kUrl)).dark);
  EXPECT_EQ(decode(b, dir_ / "plain.pbm"), kUrl);
}

TEST_F(QrDecode, TheSvgDecodesToTheUrl) {
  const std::string svg = qr_svg(kUrl);
  const QrBitmap b = from_svg(svg);
  EXPECT_EQ(b.dark, from_matrix(qr_matrix(kUrl)).dark);
  EXPECT_EQ(decode(b, dir_ / "svg.pbm"), kUrl);
}

TEST_F(QrDecode, ALongUrlStillDecodes) {
  const std::string url =
      "https://pocket-agent.example.internal:8443/?pair=" + std::string(200, 'Z');
  EXPECT_EQ(decode(from_matrix(qr_matrix(url)), dir_ / "long.pbm"), url);
}

TEST(Qr, SvgIsOneRectAndOnePathWithoutScriptsOrStyles) {
  const std::string svg = qr_svg(kUrl);
  EXPECT_EQ(svg.rfind("<svg xmlns=\"http://www.w3.org/2000/svg\"", 0), 0u);
  EXPECT_EQ(svg.substr(svg.size() - 6), "</svg>");
  const auto count = [&](const std::string& what) {
    std::size_t n = 0;
    for (auto p = svg.find(what); p != std::string::npos; p = svg.find(what, p + 1)) ++n;
    return n;
  };
  EXPECT_EQ(count("<path"), 1u);
  EXPECT_EQ(count("<rect"), 1u);
  EXPECT_EQ(count("<"), 4u);  // <svg, <rect, <path, </svg>
  EXPECT_EQ(count("script"), 0u);
  EXPECT_EQ(count("style"), 0u);
  EXPECT_EQ(count("fill=\"#fff\""), 1u);
}

TEST(Qr, TheTerminalDrawingHasTwoModuleRowsPerLine) {
  const auto m = qr_matrix(kUrl);
  const std::string drawing = qr_terminal(kUrl);
  const auto lines = std::count(drawing.begin(), drawing.end(), '\n');
  EXPECT_EQ(lines, (m.width + 2 * kQrQuietZone + 1) / 2);
  // The first two lines are quiet zone: light only.
  const std::string first = drawing.substr(0, drawing.find('\n'));
  EXPECT_EQ(first.find("█"), std::string::npos);
  EXPECT_EQ(first.find("▀"), std::string::npos);
  EXPECT_EQ(first.find("▄"), std::string::npos);
}

TEST(Qr, EmptyOrTooLongTextIsRefused) {
  EXPECT_THROW(qr_matrix(""), std::invalid_argument);
  EXPECT_THROW(qr_matrix(std::string(8000, 'x')), std::invalid_argument);
  EXPECT_THROW(qr_terminal(""), std::invalid_argument);
  EXPECT_THROW(qr_svg(std::string(8000, 'x')), std::invalid_argument);
}

// kQrMaxBytes is the real limit: the pairing handler relies on it to never ask for more.
TEST(Qr, MaxBytesIsTheCapacityAtLevelM) {
  EXPECT_EQ(qr_matrix(std::string(kQrMaxBytes, 'x')).width, 177);  // version 40
  EXPECT_THROW(qr_matrix(std::string(kQrMaxBytes + 1, 'x')), std::invalid_argument);
}

}  // namespace
}  // namespace pa::devices
