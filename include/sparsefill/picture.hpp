// PNG pictures: block-mask heat maps and line plots (libpng).
#pragma once
#include <string>
#include <vector>

#include "sparsefill/block_mask.hpp"

namespace sparsefill {

// One panel per query head (up to `max_heads`, batch 0): selected blocks bright, unselected visible blocks
// dark, blocks above the causal diagonal black. With `block_mass` ([batch, heads_q, nQb, nKb]) each head gets
// a second panel showing log10 of the true block attention mass (1e-6 .. 1) in a perceptual colour map.
void write_mask_png(const std::string& path, const BlockMask& mask, const AttentionProblem& problem,
                    bool causal, const TensorView* block_mass = nullptr, int max_heads = 32);

struct PlotSeries {
  std::string label;
  std::vector<double> x, y;  // points in drawing order
};

struct PlotPanel {
  std::string title, x_label, y_label;
  double x_min = 0, x_max = 1, y_min = 0, y_max = 1;
  std::vector<PlotSeries> series;
};

// Line plots side by side (one panel each), every series in its own colour with markers and a legend. Text
// uses DejaVu Sans (Debian's fonts-dejavu-core; SPARSEFILL_FONT overrides the path).
void write_line_plot_png(const std::string& path, const std::vector<PlotPanel>& panels);

}  // namespace sparsefill
