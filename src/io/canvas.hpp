// An RGB canvas with the few drawing operations the pictures need (rectangles, lines, FreeType text) and
// atomic PNG output through libpng.
#pragma once
#include <array>
#include <memory>
#include <string>
#include <vector>

namespace sparsefill {

using Rgb = std::array<unsigned char, 3>;

class Canvas {
 public:
  Canvas(int width, int height, Rgb background = {255, 255, 255});
  ~Canvas();
  int width() const { return width_; }
  int height() const { return height_; }
  void fill(int x, int y, int w, int h, Rgb c);
  void line(double x0, double y0, double x1, double y1, Rgb c, int thickness = 1);
  // Draws `text` with its baseline-left corner at (x, y); returns the advance width in pixels. Needs the font
  // (DejaVu Sans from Debian's fonts-dejavu-core; SPARSEFILL_FONT overrides the path): Error("font")
  // otherwise.
  int text(int x, int y, const std::string& text, int pixel_size, Rgb c);
  int text_width(const std::string& text, int pixel_size);
  // Writes the picture to `path` through a temporary file; Error(path) on failure, leaving nothing.
  void save_png(const std::string& path) const;

 private:
  void blend(int x, int y, Rgb c, double alpha);
  int render_text(int x, int y, const std::string& text, int pixel_size,
                  const Rgb* color);  // null color: measure
  int width_, height_;
  std::vector<unsigned char> pixels_;
  struct Font;
  std::unique_ptr<Font> font_;
};

}  // namespace sparsefill
