#include "devices/qr.hpp"

#include <unistd.h>

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <regex>

#include "support/server_process.hpp"

namespace pa::devices {
namespace {

namespace fs = std::filesystem;

const std::string kUrl = "https://192.168.1.20:8443/?pair=7K2M9QX4TB";

// Modules as pixels: true = dark, row-major, `size` per side (quiet zone included).
struct Bitmap {
  int size = 0;
  std::vector<bool> dark;
};

Bitmap from_matrix(const QrMatrix& m) {
  Bitmap b;
  b.size = m.width + 2 * kQrQuietZone;
  for (int y = -kQrQuietZone; y < m.width + kQrQuietZone; ++y)
    for (int x = -kQrQuietZone; x < m.width + kQrQuietZone; ++x) b.dark.push_back(m.at(x, y));
  return b;
}

// Reads the half-block drawing back: each line is two module rows.
Bitmap from_terminal(const std::string& text) {
  Bitmap b;
  std::vector<std::vector<bool>> rows;
  std::size_t pos = 0;
  while (pos < text.size()) {
    const std::size_t end = text.find('\n', pos);
    std::string line = text.substr(pos, end - pos);
    pos = end + 1;
    const std::string start = "\x1b[30;107m";
    const std::string reset = "\x1b[0m";
    EXPECT_EQ(line.rfind(start, 0), 0u) << "every line sets dark-on-light colours";
    EXPECT_GE(line.size(), start.size() + reset.size());
    EXPECT_EQ(line.substr(line.size() - reset.size()), reset) << "every line ends with a reset";
    line = line.substr(start.size(), line.size() - start.size() - reset.size());
    std::vector<bool> top;
    std::vector<bool> bottom;
    for (std::size_t i = 0; i < line.size();) {
      if (line[i] == ' ') {
        top.push_back(false);
        bottom.push_back(false);
        ++i;
        continue;
      }
      const std::string glyph = line.substr(i, 3);
      i += 3;
      top.push_back(glyph == "█" || glyph == "▀");
      bottom.push_back(glyph == "█" || glyph == "▄");
      EXPECT_TRUE(glyph == "█" || glyph == "▀" || glyph == "▄") << "unexpected glyph";
    }
    rows.push_back(top);
    rows.push_back(bottom);
  }
  b.size = rows.empty() ? 0 : static_cast<int>(rows[0].size());
  for (int y = 0; y < b.size && y < static_cast<int>(rows.size()); ++y) {
    EXPECT_EQ(static_cast<int>(rows[y].size()), b.size);
    for (const bool d : rows[y]) b.dark.push_back(d);
  }
  return b;
}

// Reads the SVG's path back ("M<x> <y>h<n>v1h-<n>z" per run of dark modules).
Bitmap from_svg(const std::string& svg) {
  std::smatch m;
  EXPECT_TRUE(std::regex_search(svg, m, std::regex(R"re(viewBox="0 0 (\d+) (\d+)")re")));
  Bitmap b;
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

// run_command does not search PATH: zbarimg's full path, or empty when it is not installed.
std::string zbarimg_path() {
  for (const char* dir : {"/usr/bin", "/usr/local/bin", "/bin"}) {
    const fs::path candidate = fs::path(dir) / "zbarimg";
    if (::access(candidate.c_str(), X_OK) == 0) return candidate.string();
  }
  return {};
}

// Writes the bitmap as a plain PBM, 4 pixels per module, and decodes it with zbarimg (--nodbus:
// without it zbarimg reports on stderr that it found no D-Bus, in containers).
std::string decode(const Bitmap& b, const fs::path& file) {
  constexpr int kScale = 4;
  {
    std::ofstream out(file);
    out << "P1\n" << b.size * kScale << " " << b.size * kScale << "\n";
    for (int y = 0; y < b.size * kScale; ++y) {
      for (int x = 0; x < b.size * kScale; ++x)
        out << (b.dark[static_cast<std::size_t>((y / kScale) * b.size + x / kScale)] ? "1 " : "0 ");
      out << "\n";
    }
  }
  const auto result =
      pa::test::run_command({zbarimg_path(), "--nodbus", "--raw", "-q", file.string()});
  EXPECT_EQ(result.exit_code, 0) << result.output;
  std::string text = result.output;
  while (!text.empty() && text.back() == '\n') text.pop_back();
  return text;
}

class QrDecode : public ::testing::Test {
 protected:
  void SetUp() override {
    if (zbarimg_path().empty())
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
  const Bitmap b = from_terminal(drawing);
  const auto m = qr_matrix(kUrl);
  // The quiet zone: 4 light modules on every side (rounded up to whole lines at the bottom).
  EXPECT_EQ(b.size, m.width + 2 * kQrQuietZone);
  const Bitmap expected = from_matrix(m);
  EXPECT_EQ(b.dark, expected.dark);
  EXPECT_EQ(decode(b, dir_ / "terminal.pbm"), kUrl);
}

TEST_F(QrDecode, TheSvgDecodesToTheUrl) {
  const std::string svg = qr_svg(kUrl);
  const Bitmap b = from_svg(svg);
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

}  // namespace
}  // namespace pa::devices
