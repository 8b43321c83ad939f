#include "support/qr_reader.hpp"

#include <unistd.h>

#include <fstream>
#include <stdexcept>

#include "support/server_process.hpp"

namespace pa::test {

namespace fs = std::filesystem;

QrBitmap qr_from_terminal(const std::string& text, bool coloured) {
  const std::string start = "\x1b[30;107m";
  const std::string reset = "\x1b[0m";
  std::vector<std::vector<bool>> rows;
  std::size_t pos = 0;
  while (pos < text.size()) {
    const std::size_t end = text.find('\n', pos);
    if (end == std::string::npos) throw std::runtime_error("the last line has no newline");
    std::string line = text.substr(pos, end - pos);
    pos = end + 1;
    if (coloured) {
      if (line.rfind(start, 0) != 0)
        throw std::runtime_error("a line does not set dark-on-light colours: " + line);
      if (line.size() < start.size() + reset.size() ||
          line.substr(line.size() - reset.size()) != reset)
        throw std::runtime_error("a line does not end with a reset: " + line);
      line = line.substr(start.size(), line.size() - start.size() - reset.size());
    }
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
      if (glyph != "█" && glyph != "▀" && glyph != "▄")
        throw std::runtime_error("unexpected glyph in: " + line);
      top.push_back(glyph == "█" || glyph == "▀");
      bottom.push_back(glyph == "█" || glyph == "▄");
    }
    rows.push_back(top);
    rows.push_back(bottom);
  }
  QrBitmap b;
  b.size = rows.empty() ? 0 : static_cast<int>(rows[0].size());
  // An odd number of module rows leaves a last half line of quiet zone: not part of the square.
  if (static_cast<int>(rows.size()) < b.size)
    throw std::runtime_error("fewer module rows than columns");
  for (int y = 0; y < b.size; ++y) {
    if (static_cast<int>(rows[y].size()) != b.size)
      throw std::runtime_error("lines of different widths");
    for (const bool d : rows[y]) b.dark.push_back(d);
  }
  return b;
}

std::string zbarimg_path() {
  for (const char* dir : {"/usr/bin", "/usr/local/bin", "/bin"}) {
    const fs::path candidate = fs::path(dir) / "zbarimg";
    if (::access(candidate.c_str(), X_OK) == 0) return candidate.string();
  }
  return {};
}

// --nodbus: without it zbarimg reports on stderr that it found no D-Bus, in containers.
QrDecoded decode_qr(const QrBitmap& b, const fs::path& file) {
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
  const auto result = run_command({zbarimg_path(), "--nodbus", "--raw", "-q", file.string()});
  QrDecoded decoded{result.exit_code, result.output};
  while (!decoded.text.empty() && decoded.text.back() == '\n') decoded.text.pop_back();
  return decoded;
}

}  // namespace pa::test
