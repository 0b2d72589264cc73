#include "sparsefill/rope.hpp"

#include <cmath>

#include "sparsefill/error.hpp"

namespace sparsefill {

std::vector<double> rope_frequencies(std::int64_t head_dim, const RopeConfig& config) {
  require(head_dim >= 2 && head_dim % 2 == 0, "head_dim", "RoPE needs an even head_dim");
  require(config.theta > 1.0, "rope_theta", "must be greater than 1");
  const double kTwoPi = 6.283185307179586;
  std::vector<double> freqs(static_cast<std::size_t>(head_dim / 2));
  for (std::int64_t i = 0; i < head_dim / 2; ++i) {
    double w = std::pow(config.theta, -2.0 * static_cast<double>(i) / static_cast<double>(head_dim));
    if (config.llama3_scaling) {
      const double wavelength = kTwoPi / w;
      const double low_freq_wavelength = config.original_max_position / config.low_freq_factor;
      const double high_freq_wavelength = config.original_max_position / config.high_freq_factor;
      if (wavelength > low_freq_wavelength) {
        w /= config.scaling_factor;
      } else if (wavelength >= high_freq_wavelength) {
        const double smooth = (config.original_max_position / wavelength - config.low_freq_factor) /
                              (config.high_freq_factor - config.low_freq_factor);
        w = (1.0 - smooth) * w / config.scaling_factor + smooth * w;
      }
    }
    freqs[i] = w;
  }
  return freqs;
}

std::pair<std::int64_t, std::int64_t> rope_pair_dims(std::int64_t pair, std::int64_t head_dim,
                                                     RopeLayout layout) {
  if (layout == RopeLayout::kInterleaved) return {2 * pair, 2 * pair + 1};
  return {pair, pair + head_dim / 2};
}

void apply_rope(float* vec, std::int64_t head_dim, double position, const std::vector<double>& freqs,
                RopeLayout layout) {
  for (std::int64_t i = 0; i < head_dim / 2; ++i) {
    const auto [x, y] = rope_pair_dims(i, head_dim, layout);
    const double angle = position * freqs[i];
    const double c = std::cos(angle), s = std::sin(angle);
    const double re = vec[x], im = vec[y];
    vec[x] = static_cast<float>(re * c - im * s);
    vec[y] = static_cast<float>(re * s + im * c);
  }
}

}  // namespace sparsefill
