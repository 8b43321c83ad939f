#include "devices/qr.hpp"

#include <qrencode.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <stdexcept>

namespace pa::devices {

namespace {

struct QrFree {
  void operator()(QRcode* code) const { QRcode_free(code); }
};

constexpr std::string_view kDarkOnLight = "\x1b[30;107m";
constexpr std::string_view kReset = "\x1b[0m";

}  // namespace

bool QrMatrix::at(int x, int y) const {
  if (x < 0 || y < 0 || x >= width || y >= width) return false;
  return dark[static_cast<std::size_t>(y) * static_cast<std::size_t>(width) +
              static_cast<std::size_t>(x)];
}

QrMatrix qr_matrix(std::string_view text) {
  if (text.empty()) throw std::invalid_argument("a QR code needs some text");
  // QRcode_encodeData takes a length, so text with NUL bytes is encoded whole.
  std::unique_ptr<QRcode, QrFree> code(
      QRcode_encodeData(static_cast<int>(text.size()),
                        reinterpret_cast<const unsigned char*>(text.data()), 0, QR_ECLEVEL_M));
  if (!code) {
    throw std::invalid_argument(std::string("cannot encode a QR code: ") +
                                (errno == ERANGE ? "the text is too long" : std::strerror(errno)));
  }
  QrMatrix m;
  m.width = code->width;
  m.dark.resize(static_cast<std::size_t>(m.width) * static_cast<std::size_t>(m.width));
  // Bit 0 of each byte is the module's colour; the other bits describe its function.
  for (std::size_t i = 0; i < m.dark.size(); ++i) m.dark[i] = (code->data[i] & 1) != 0;
  return m;
}

std::string qr_terminal(std::string_view text, QrStyle style) {
  const bool colours = style == QrStyle::kAnsiColours;
  const QrMatrix m = qr_matrix(text);
  const int first = -kQrQuietZone;
  const int last = m.width + kQrQuietZone;  // exclusive
  std::string out;
  for (int y = first; y < last; y += 2) {
    if (colours) out += kDarkOnLight;
    for (int x = first; x < last; ++x) {
      const bool top = m.at(x, y);
      const bool bottom = y + 1 < last && m.at(x, y + 1);
      // The foreground (black) draws the dark modules, the background (white) the light ones.
      out += top ? (bottom ? "█" : "▀") : (bottom ? "▄" : " ");
    }
    if (colours) out += kReset;
    out += '\n';
  }
  return out;
}

std::string qr_svg(std::string_view text) {
  const QrMatrix m = qr_matrix(text);
  const std::string size = std::to_string(m.width + 2 * kQrQuietZone);
  std::string path;
  for (int y = 0; y < m.width; ++y) {
    for (int x = 0; x < m.width;) {
      if (!m.at(x, y)) {
        ++x;
        continue;
      }
      int run = 1;
      while (m.at(x + run, y)) ++run;
      path += "M" + std::to_string(x + kQrQuietZone) + " " + std::to_string(y + kQrQuietZone) +
              "h" + std::to_string(run) + "v1h-" + std::to_string(run) + "z";
      x += run;
    }
  }
  return "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 " + size + " " + size +
         "\" shape-rendering=\"crispEdges\"><rect width=\"" + size + "\" height=\"" + size +
         "\" fill=\"#fff\"/><path fill=\"#000\" d=\"" + path + "\"/></svg>";
}

}  // namespace pa::devices
