// PNG block-mask pictures (design note): panels of nKb x nQb blocks, each block an s x s square (s chosen so
// a panel is at most ~512 px wide), laid out in a grid at most ~4096 px wide. Written with libpng.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "io/canvas.hpp"
#include "sparsefill/error.hpp"
#include "sparsefill/picture.hpp"

namespace sparsefill {
namespace {

constexpr Rgb kSelected = {255, 196, 40};
constexpr Rgb kUnselected = {28, 38, 84};
constexpr Rgb kHidden = {0, 0, 0};
constexpr int kGap = 6;

Rgb viridis(double x) {  // x in [0, 1]
  static const std::array<Rgb, 5> stops = {
      {{68, 1, 84}, {59, 82, 139}, {33, 145, 140}, {94, 201, 98}, {253, 231, 37}}};
  x = std::clamp(x, 0.0, 1.0) * 4.0;
  const int i = std::min(3, static_cast<int>(x));
  const double f = x - i;
  Rgb c;
  for (int k = 0; k < 3; ++k)
    c[k] = static_cast<unsigned char>(stops[i][k] + f * (stops[i + 1][k] - stops[i][k]));
  return c;
}

}  // namespace

void write_mask_png(const std::string& path, const BlockMask& mask, const AttentionProblem& problem,
                    bool causal, const TensorView* block_mass, int max_heads) {
  mask.validate_for(problem);
  const std::int64_t nq = mask.num_q_blocks(), nk = mask.num_k_blocks();
  require(nq >= 1 && nk >= 1, "mask", "is empty");
  if (block_mass) {
    require(block_mass->rank == 4 && block_mass->shape[1] == problem.heads_q && block_mass->shape[2] == nq &&
                block_mass->shape[3] == nk && block_mass->is_contiguous(),
            "block_mass", "must be contiguous [batch, heads_q, nQb, nKb] matching the mask");
  }
  const int heads = static_cast<int>(std::min<std::int64_t>(problem.heads_q, std::max(1, max_heads)));
  const int scale = static_cast<int>(std::clamp<std::int64_t>(512 / std::max(nq, nk), 1, 8));
  const int panel_w = static_cast<int>(nk) * scale, panel_h = static_cast<int>(nq) * scale;
  const int panels_per_head = block_mass ? 2 : 1;
  const int cell_w = panels_per_head * (panel_w + kGap) + kGap;
  const int columns = std::max(1, std::min(heads, 4096 / cell_w));
  const int rows = (heads + columns - 1) / columns;
  Canvas canvas(columns * cell_w + kGap, rows * (panel_h + kGap) + kGap);
  const std::int64_t lq = problem.seqlen_q[0], lk = problem.seqlen_k[0];
  for (int h = 0; h < heads; ++h) {
    const int x0 = (h % columns) * cell_w + kGap, y0 = (h / columns) * (panel_h + kGap) + kGap;
    const std::int64_t mh = mask.mask_head_of(h, problem.heads_q, problem.heads_kv);
    for (std::int64_t u = 0; u < nq; ++u) {
      for (std::int64_t v = 0; v < nk; ++v) {
        const bool visible =
            block_visibility(u, v, mask.block_q(), mask.block_k(), lq, lk, causal) != BlockVisibility::kNone;
        const Rgb c = !visible ? kHidden : mask.contains(0, mh, u, v) ? kSelected : kUnselected;
        canvas.fill(x0 + static_cast<int>(v) * scale, y0 + static_cast<int>(u) * scale, scale, scale, c);
        if (block_mass) {
          const double m = load_as_double(block_mass->data, block_mass->dtype,
                                          ((static_cast<std::int64_t>(h) * nq) + u) * nk + v);
          const Rgb mc = visible ? viridis((std::log10(std::max(m, 1e-6)) + 6.0) / 6.0) : kHidden;
          canvas.fill(x0 + panel_w + kGap + static_cast<int>(v) * scale, y0 + static_cast<int>(u) * scale,
                      scale, scale, mc);
        }
      }
    }
  }
  canvas.save_png(path);
}

}  // namespace sparsefill
