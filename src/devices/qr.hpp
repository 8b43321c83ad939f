// QR codes (libqrencode) for pairing URLs: drawn in a terminal by `pair` and `make run`, and as
// SVG in the console.
//
// qr_matrix() encodes `text` as bytes with error correction M, in the smallest version that
// fits; it throws std::invalid_argument when the text is empty or too long for any QR code.
// qr_terminal() draws it with Unicode half blocks, two module rows per line, with a quiet zone of
// 4 modules, in explicit colours (black modules on a bright white background, ANSI SGR 30;107),
// so it is dark-on-light as phone cameras expect whatever the terminal's own colours; every line
// ends with a reset. QrStyle::kPlain draws the same glyphs without escape codes (for output that
// is not a terminal: a file or a pipe that a test or a script reads back). qr_svg() is a minimal
// SVG: a white background <rect> and one black <path> (a run of dark modules per subpath, quiet
// zone included in the viewBox), no scripts, no styles (fill attributes only, so the console's CSP
// allows it).
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace pa::devices {

inline constexpr int kQrQuietZone = 4;
// The most bytes a QR code holds with error correction M (version 40, byte mode); longer text
// makes qr_matrix() throw.
inline constexpr std::size_t kQrMaxBytes = 2331;

struct QrMatrix {
  int width = 0;                // modules per side, without the quiet zone
  std::vector<bool> dark;       // row-major, width * width
  bool at(int x, int y) const;  // false outside the code (the quiet zone is light)
};

QrMatrix qr_matrix(std::string_view text);
enum class QrStyle { kAnsiColours, kPlain };
std::string qr_terminal(std::string_view text, QrStyle style = QrStyle::kAnsiColours);
std::string qr_svg(std::string_view text);

}  // namespace pa::devices
