// Rotary position embeddings: frequencies, the two dimension layouts, and application to a tensor.
#pragma once
#include <cstdint>
#include <utility>
#include <vector>

namespace sparsefill {

// Rotate-half (Llama/HF): pair i = dims (i, i + d/2). Interleaved (GPT-J, original RoPE): pair i = (2i,
// 2i+1).
enum class RopeLayout { kRotateHalf, kInterleaved };

struct RopeConfig {
  double theta = 500000.0;
  RopeLayout layout = RopeLayout::kRotateHalf;
  bool llama3_scaling = false;  // Llama-3.1 frequency scaling
  double scaling_factor = 8.0;
  double low_freq_factor = 1.0;
  double high_freq_factor = 4.0;
  double original_max_position = 8192.0;
};

// w_i = theta^(-2i/d) for i in [0, d/2), with Llama-3.1 scaling applied when enabled.
std::vector<double> rope_frequencies(std::int64_t head_dim, const RopeConfig& config);

// The two dimensions (real, imaginary) of frequency pair `pair`.
std::pair<std::int64_t, std::int64_t> rope_pair_dims(std::int64_t pair, std::int64_t head_dim,
                                                     RopeLayout layout);

// Rotates one head vector (d floats, pre-RoPE) to position `position` in place.
void apply_rope(float* vec, std::int64_t head_dim, double position, const std::vector<double>& freqs,
                RopeLayout layout);

}  // namespace sparsefill
