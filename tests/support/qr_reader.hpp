// Reading QR codes back in tests: the half-block drawing of devices::qr_terminal() (as printed
// by `pair` and `qr`) becomes a bitmap of modules, which zbarimg (zbar-tools) decodes.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

namespace pa::test {

// Modules as pixels: true = dark, row-major, `size` per side (quiet zone included).
struct QrBitmap {
  int size = 0;
  std::vector<bool> dark;
};

// Reads the drawing back, two module rows per line. `coloured`: every line must start with the
// dark-on-light colours and end with a reset (QrStyle::kAnsiColours); else no escape codes may
// appear (kPlain). Throws std::runtime_error naming the first thing that is not such a drawing.
QrBitmap qr_from_terminal(const std::string& text, bool coloured);

// zbarimg's full path (run_command does not search PATH), or empty when it is not installed.
std::string zbarimg_path();

struct QrDecoded {
  int exit_code = -1;
  std::string text;  // zbarimg's output without the final newline(s)
};
// Writes the bitmap as a plain PBM to `file`, 4 pixels per module, and decodes it.
QrDecoded decode_qr(const QrBitmap& bitmap, const std::filesystem::path& file);

}  // namespace pa::test
