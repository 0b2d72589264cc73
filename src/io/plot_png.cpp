// Line plots (design note): each panel is a 640 x 480 frame with ticked axes, one polyline plus square
// markers per series in a fixed qualitative palette, and a legend in the lower-right corner
// (recall-vs-density curves rise to the upper left, so that corner stays clear).
#include <fmt/core.h>

#include <algorithm>
#include <cmath>
#include <string>

#include "io/canvas.hpp"
#include "sparsefill/error.hpp"
#include "sparsefill/picture.hpp"

namespace sparsefill {
namespace {

constexpr int kPanelW = 640, kPanelH = 480;
constexpr int kLeft = 70, kRight = 20, kTop = 40, kBottom = 60;
constexpr int kTicks = 5;
const Rgb kPalette[] = {{31, 119, 180}, {255, 127, 14},  {44, 160, 44},   {214, 39, 40},  {148, 103, 189},
                        {140, 86, 75},  {227, 119, 194}, {127, 127, 127}, {188, 189, 34}, {23, 190, 207}};
constexpr Rgb kInk = {20, 20, 20}, kGrid = {225, 225, 225};

void draw_panel(Canvas& c, int x0, const PlotPanel& p) {
  const int plot_w = kPanelW - kLeft - kRight, plot_h = kPanelH - kTop - kBottom;
  const int left = x0 + kLeft, top = kTop, bottom = kTop + plot_h;
  auto px = [&](double x) { return left + (x - p.x_min) / (p.x_max - p.x_min) * plot_w; };
  auto py = [&](double y) { return bottom - (y - p.y_min) / (p.y_max - p.y_min) * plot_h; };
  for (int t = 0; t <= kTicks; ++t) {
    const double fx = p.x_min + (p.x_max - p.x_min) * t / kTicks,
                 fy = p.y_min + (p.y_max - p.y_min) * t / kTicks;
    c.line(px(fx), top, px(fx), bottom, kGrid);
    c.line(left, py(fy), left + plot_w, py(fy), kGrid);
    const std::string lx = fmt::format("{:.2f}", fx), ly = fmt::format("{:.2f}", fy);
    c.text(static_cast<int>(px(fx)) - c.text_width(lx, 12) / 2, bottom + 18, lx, 12, kInk);
    c.text(left - 8 - c.text_width(ly, 12), static_cast<int>(py(fy)) + 4, ly, 12, kInk);
  }
  c.line(left, top, left, bottom, kInk, 2);
  c.line(left, bottom, left + plot_w, bottom, kInk, 2);
  c.text(x0 + kPanelW / 2 - c.text_width(p.title, 16) / 2, 18, p.title, 16, kInk);
  c.text(left + plot_w / 2 - c.text_width(p.x_label, 14) / 2, kPanelH - 16, p.x_label, 14, kInk);
  c.text(x0 + 6, top - 3, p.y_label, 13, kInk);
  int legend_y = bottom - 12 - 18 * static_cast<int>(p.series.size() - 1);
  for (std::size_t s = 0; s < p.series.size(); ++s) {
    const PlotSeries& series = p.series[s];
    const Rgb color = kPalette[s % (sizeof(kPalette) / sizeof(kPalette[0]))];
    for (std::size_t i = 0; i < series.x.size(); ++i) {
      const double x = px(std::clamp(series.x[i], p.x_min, p.x_max)),
                   y = py(std::clamp(series.y[i], p.y_min, p.y_max));
      if (i > 0) {
        c.line(px(std::clamp(series.x[i - 1], p.x_min, p.x_max)),
               py(std::clamp(series.y[i - 1], p.y_min, p.y_max)), x, y, color, 2);
      }
      c.fill(static_cast<int>(x) - 3, static_cast<int>(y) - 3, 7, 7, color);
    }
    const int lx = left + plot_w - 150;
    c.fill(lx, legend_y - 8, 18, 4, color);
    c.text(lx + 24, legend_y, series.label, 13, kInk);
    legend_y += 18;
  }
}

}  // namespace

void write_line_plot_png(const std::string& path, const std::vector<PlotPanel>& panels) {
  require(!panels.empty(), "panels", "nothing to plot");
  for (const auto& p : panels) {
    require(p.x_max > p.x_min && p.y_max > p.y_min, "panels", "empty axis range in '" + p.title + "'");
    for (const auto& s : p.series)
      require(s.x.size() == s.y.size(), "panels", "series '" + s.label + "' has unequal x and y");
  }
  Canvas canvas(kPanelW * static_cast<int>(panels.size()), kPanelH);
  for (std::size_t i = 0; i < panels.size(); ++i)
    draw_panel(canvas, kPanelW * static_cast<int>(i), panels[i]);
  canvas.save_png(path);
}

}  // namespace sparsefill
