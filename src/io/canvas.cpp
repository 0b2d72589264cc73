#include "io/canvas.hpp"

#include <ft2build.h>
#include FT_FREETYPE_H
#include <png.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "sparsefill/error.hpp"

namespace sparsefill {

struct Canvas::Font {
  FT_Library library = nullptr;
  FT_Face face = nullptr;
  ~Font() {
    if (face) FT_Done_Face(face);
    if (library) FT_Done_FreeType(library);
  }
};

namespace {

const char* font_path() {
  const char* env = std::getenv("SPARSEFILL_FONT");
  return env ? env : "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";
}

}  // namespace

Canvas::Canvas(int width, int height, Rgb background)
    : width_(width), height_(height), pixels_(static_cast<std::size_t>(width) * height * 3) {
  require(width >= 1 && height >= 1 && static_cast<long long>(width) * height <= (1LL << 28), "canvas",
          "picture size out of range");
  for (std::size_t i = 0; i < pixels_.size(); i += 3)
    std::copy(background.begin(), background.end(), pixels_.begin() + i);
}

Canvas::~Canvas() = default;

void Canvas::fill(int x, int y, int w, int h, Rgb c) {
  for (int yy = std::max(0, y); yy < std::min(height_, y + h); ++yy) {
    for (int xx = std::max(0, x); xx < std::min(width_, x + w); ++xx) {
      std::copy(c.begin(), c.end(), pixels_.begin() + (static_cast<std::size_t>(yy) * width_ + xx) * 3);
    }
  }
}

void Canvas::blend(int x, int y, Rgb c, double alpha) {
  if (x < 0 || y < 0 || x >= width_ || y >= height_ || alpha <= 0) return;
  unsigned char* p = &pixels_[(static_cast<std::size_t>(y) * width_ + x) * 3];
  for (int k = 0; k < 3; ++k)
    p[k] = static_cast<unsigned char>(std::lround(p[k] * (1 - alpha) + c[k] * alpha));
}

void Canvas::line(double x0, double y0, double x1, double y1, Rgb c, int thickness) {
  const double length = std::max(std::fabs(x1 - x0), std::fabs(y1 - y0));
  const int steps = std::max(1, static_cast<int>(std::ceil(length * 2)));
  const int half = thickness / 2;
  for (int s = 0; s <= steps; ++s) {
    const double t = static_cast<double>(s) / steps;
    const int x = static_cast<int>(std::lround(x0 + (x1 - x0) * t)),
              y = static_cast<int>(std::lround(y0 + (y1 - y0) * t));
    fill(x - half, y - half, thickness, thickness, c);
  }
}

int Canvas::text(int x, int y, const std::string& text, int pixel_size, Rgb c) {
  return render_text(x, y, text, pixel_size, &c);
}

int Canvas::text_width(const std::string& text, int pixel_size) {
  return render_text(0, 0, text, pixel_size, nullptr);
}

int Canvas::render_text(int x, int y, const std::string& text, int pixel_size, const Rgb* color) {
  if (!font_) {
    font_ = std::make_unique<Font>();
    require(FT_Init_FreeType(&font_->library) == 0, "font", "FreeType failed to initialise");
    require(
        FT_New_Face(font_->library, font_path(), 0, &font_->face) == 0, "font",
        std::string("cannot load ") + font_path() + " (install fonts-dejavu-core or set SPARSEFILL_FONT)");
  }
  FT_Set_Pixel_Sizes(font_->face, 0, static_cast<FT_UInt>(pixel_size));
  int pen = x;
  for (unsigned char ch : text) {
    if (FT_Load_Char(font_->face, ch, FT_LOAD_RENDER) != 0) continue;
    const FT_GlyphSlot g = font_->face->glyph;
    for (unsigned row = 0; color && row < g->bitmap.rows; ++row) {
      for (unsigned col = 0; col < g->bitmap.width; ++col) {
        const unsigned char a = g->bitmap.buffer[row * static_cast<unsigned>(g->bitmap.pitch) + col];
        blend(pen + g->bitmap_left + static_cast<int>(col), y - g->bitmap_top + static_cast<int>(row), *color,
              a / 255.0);
      }
    }
    pen += static_cast<int>(g->advance.x >> 6);
  }
  return pen - x;
}

void Canvas::save_png(const std::string& path) const {
  const std::string tmp = path + ".tmp";
  FILE* file = std::fopen(tmp.c_str(), "wb");
  require(file != nullptr, path, "cannot open for writing");
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, nullptr);
  png_infop info = png ? png_create_info_struct(png) : nullptr;
  if (!png || !info || setjmp(png_jmpbuf(png))) {
    png_destroy_write_struct(&png, &info);
    std::fclose(file);
    std::remove(tmp.c_str());
    throw Error(path, "libpng failed to write the picture");
  }
  png_init_io(png, file);
  png_set_IHDR(png, info, width_, height_, 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
               PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  png_write_info(png, info);
  for (int y = 0; y < height_; ++y)
    png_write_row(png, const_cast<unsigned char*>(&pixels_[static_cast<std::size_t>(y) * width_ * 3]));
  png_write_end(png, nullptr);
  png_destroy_write_struct(&png, &info);
  const bool closed = std::fclose(file) == 0;
  if (!closed || std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    throw Error(path, "cannot write the picture");
  }
}

}  // namespace sparsefill
