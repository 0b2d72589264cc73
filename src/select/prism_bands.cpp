#include "select/prism_bands.hpp"

#include "sparsefill/error.hpp"

namespace sparsefill {
namespace {

PrismBand make_band(std::int64_t first_pair, std::int64_t pairs, std::int64_t head_dim, RopeLayout layout,
                    double p) {
  PrismBand band;
  band.p = p;
  for (std::int64_t j = first_pair; j < first_pair + pairs; ++j) {
    const auto [x, y] = rope_pair_dims(j, head_dim, layout);
    band.dims.push_back(x);
    band.dims.push_back(y);
  }
  return band;
}

}  // namespace

PrismBands prism_bands(const PrismConfig& c, std::int64_t d, RopeLayout layout) {
  require(d % 2 == 0, "q", "Prism needs an even head_dim (RoPE pairs)");
  const std::int64_t d_high = c.d_high ? c.d_high : d / 2, d_low = c.d_low ? c.d_low : (3 * d) / 4;
  require(d_high >= 2 && d_high % 2 == 0 && d_high <= d, "prism.d-high", "must be even and in [2, head_dim]");
  require(d_low >= 2 && d_low % 2 == 0 && d_low <= d, "prism.d-low", "must be even and in [2, head_dim]");
  require(c.p_high > 0 && c.p_high <= 1, "prism.p-high", "must be in (0, 1]");
  require(c.p_low > 0 && c.p_low <= 1, "prism.p-low", "must be in (0, 1]");
  return {make_band(0, d_high / 2, d, layout, c.p_high), make_band(d / 2 - d_low / 2, d_low / 2, d, layout, c.p_low)};
}

}  // namespace sparsefill
