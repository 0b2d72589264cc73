// GPU selectors and the select + attend pipeline (label gpu: skipped without a device), and the host-side
// argument checks, workspace layout and bound (label host).
//
// Masks: the GPU mask must equal the CPU selector's, decision by decision, on scenes and random inputs, up to
// decisions at the threshold. Prism's and mean pooling's mass rules take fp32-precision softmax numerators,
// their pooled means fp32 partial sums, the stride selectors' logits come from tensor cores, and so do
// MInference's and FlexPrefill's last-rows logits (with fp32-precision numerators), so a block whose prefix
// mass lies within rounding of the threshold may flip, and two blocks (or lines) whose scores agree to that
// rounding may swap at the cut (mean pooling's top-k rule and MInference's top-k of lines too): each
// difference must be one of these (see expect_mask_up_to_threshold_rounding), and the test prints how many
// there were. PBS (fp64 numerators, fp64 pooling) must match exactly: any difference fails.
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <functional>
#include <random>
#include <tuple>

#include "gpu/gpu_test_support.hpp"
#include "sparsefill/cuda/gpu_selection.hpp"
#include "sparsefill/cuda/prefill_attention.hpp"
#include "sparsefill/error.hpp"
#include "sparsefill/gpu_attention.hpp"
#include "sparsefill/reference_attention.hpp"
#include "sparsefill/scene.hpp"
#include "support/error_argument.hpp"
#include "support/random_tensors.hpp"

namespace sparsefill {
namespace {

using testing::DeviceBuffer;
using testing::ok;

struct Inputs {
  HostTensor q, k, v;
  RopeLayout layout = RopeLayout::kRotateHalf;
  bool causal = true;
  std::int64_t block = 128;
  std::vector<std::int32_t> cu_q, cu_k;  // varlen when set
  VarlenSequences varlen() const {
    return cu_q.empty() ? VarlenSequences{}
                        : VarlenSequences{cu_q.data(), cu_k.data(), static_cast<std::int64_t>(cu_q.size()) - 1};
  }
};

// A random varlen batch with the cumulative lengths cu_q / cu_k, heads_q / 2 heads of d dims.
Inputs random_varlen_inputs(std::mt19937_64& rng, std::vector<std::int32_t> cu_q,
                            std::vector<std::int32_t> cu_k, DType dtype, std::int64_t heads_q, std::int64_t d,
                            std::int64_t block) {
  Inputs in;
  in.cu_q = std::move(cu_q);
  in.cu_k = std::move(cu_k);
  in.q = testing::random_tensor(dtype, {in.cu_q.back(), heads_q, d}, rng, 3.0);
  in.k = testing::random_tensor(dtype, {in.cu_k.back(), 2, d}, rng);
  in.v = testing::random_tensor(dtype, {in.cu_k.back(), 2, d}, rng);
  in.block = block;
  return in;
}

// A varlen batch: sequences of 300/1/700 query and 300/77/900 key tokens (one a single token), 4/2 heads,
// bf16.
Inputs varlen_inputs(std::mt19937_64& rng) {
  return random_varlen_inputs(rng, {0, 300, 301, 1001}, {0, 300, 377, 1277}, DType::kBF16, 4, 64, 64);
}

// A varlen batch with seqlen_q == seqlen_k (PBS's condition): 4/2 heads, d 64, bf16.
Inputs equal_length_varlen_inputs(std::mt19937_64& rng, const std::vector<std::int32_t>& cu,
                                  std::int64_t block) {
  return random_varlen_inputs(rng, cu, cu, DType::kBF16, 4, 64, block);
}

// One causal bf16 sequence of `len` tokens at block 64, 2/1 heads of `d` dims. long_inputs: 70000 tokens, d
// 64, 1094 key blocks, more than the 32-item row kernels hold. long_tile_inputs: d 128 at stride 4 (B / S =
// 16), which the stride tile kernel takes: 89600 tokens, 1400 key blocks, more than it held before its block
// rows became fp32 (1328), with RRAttention's hi and lo key sums in paired stages; 115200 tokens, 1800 key
// blocks, past the ~1700 where paired stages fit, so it stages one part at a time.
Inputs long_causal_inputs(std::mt19937_64& rng, std::int64_t len, std::int64_t d) {
  Inputs in;
  in.q = testing::random_tensor(DType::kBF16, {1, len, 2, d}, rng, 3.0);
  in.k = testing::random_tensor(DType::kBF16, {1, len, 1, d}, rng);
  in.v = testing::random_tensor(DType::kBF16, {1, len, 1, d}, rng);
  in.block = 64;
  return in;
}
Inputs long_inputs(std::mt19937_64& rng) { return long_causal_inputs(rng, 70000, 64); }
Inputs long_tile_inputs(std::mt19937_64& rng, std::int64_t len) {
  return long_causal_inputs(rng, len, 128);
}

// A varlen fp16 batch in the stride tile kernel's geometry (block 128, d 128): sequences of 1000, 1 and 1900
// queries against 1000, 100 and 2200 keys, 8/2 heads.
Inputs varlen_tile_inputs(std::mt19937_64& rng) {
  return random_varlen_inputs(rng, {0, 1000, 1001, 2901}, {0, 1000, 1100, 3300}, DType::kFP16, 8, 128, 128);
}

Inputs scene_inputs(std::int64_t len, std::uint64_t seed, RopeLayout layout) {
  SceneConfig config;
  config.seqlen = len;
  config.heads_q = 8;
  config.heads_kv = 2;
  config.seed = seed;
  config.rope_layout = layout;
  Scene s = generate_scene(config);
  return {std::move(s.q), std::move(s.k), std::move(s.v), layout, true, 128};
}

// Two causal sequences of 900 tokens (seqlen_q == seqlen_k: PBS's and FlexPrefill's condition), 4/2 heads of
// d dims, fp16.
Inputs equal_length_inputs(std::mt19937_64& rng, std::int64_t d = 64) {
  Inputs in;
  in.q = testing::random_tensor(DType::kFP16, {2, 900, 4, d}, rng, 3.0);
  in.k = testing::random_tensor(DType::kFP16, {2, 900, 2, d}, rng);
  in.v = testing::random_tensor(DType::kFP16, {2, 900, 2, d}, rng);
  in.block = 64;
  return in;
}

// Random fp16 inputs, interleaved RoPE, block 64: `batch` sequences of lq queries (4 heads) and lk keys (2
// heads) of d dims.
Inputs random_fp16_inputs(std::mt19937_64& rng, bool causal, std::int64_t batch, std::int64_t lq,
                          std::int64_t lk, std::int64_t d) {
  Inputs in;
  in.q = testing::random_tensor(DType::kFP16, {batch, lq, 4, d}, rng, 3.0);
  in.k = testing::random_tensor(DType::kFP16, {batch, lk, 2, d}, rng);
  in.v = testing::random_tensor(DType::kFP16, {batch, lk, 2, d}, rng);
  in.layout = RopeLayout::kInterleaved;
  in.causal = causal;
  in.block = 64;
  return in;
}

Inputs random_inputs(std::mt19937_64& rng, bool causal) {
  return random_fp16_inputs(rng, causal, 2, 700, 900, 64);
}

// One causal sequence of 500 tokens of 36 dims: rows of 72 bytes, which the pooled pipeline pools by 2-byte
// loads (its 16-byte form needs 8-dim aligned rows).
Inputs narrow_row_inputs(std::mt19937_64& rng) {
  return random_fp16_inputs(rng, true, 1, 500, 500, 36);
}

// Counts equal block decisions over every (batch, head, row, key block); prints each difference.
double equal_fraction(const BlockMask& want, const BlockMask& got, std::int64_t& differences) {
  differences = 0;
  std::int64_t total = 0;
  for (std::int64_t b = 0; b < want.batch(); ++b)
    for (std::int64_t h = 0; h < want.heads(); ++h)
      for (std::int64_t u = 0; u < want.num_q_blocks(); ++u)
        for (std::int64_t v = 0; v < want.num_k_blocks(); ++v) {
          ++total;
          if (want.contains(b, h, u, v) != got.contains(b, h, u, v)) {
            ++differences;
            ADD_FAILURE() << "differs at batch " << b << " head " << h << " row " << u << " block " << v
                          << " (CPU " << want.contains(b, h, u, v) << ")";
          }
        }
  return 1.0 - static_cast<double>(differences) / static_cast<double>(total);
}

SelectorInputs selector_inputs(const Inputs& in) {
  SelectorInputs s;
  s.q = in.q.view();
  s.k = in.k.view();
  s.v = in.v.view();
  s.varlen = in.varlen();
  s.causal = in.causal;
  s.block_size = in.block;
  s.rope_layout = in.layout;
  return s;
}

// The stride selectors (RRAttention, XAttention) take their logits from tensor cores (fp32 sums of exact
// products) where the CPU sums in fp64, Prism and mean pooling take fp32-precision softmax numerators, and
// FlexPrefill sums its divergence, cover mass and map mass in another order, so a block may flip where a
// value sits at a threshold. A difference counts as such when the CPU's own decision on that block changes
// between a threshold times (1 - kEps) and times (1 + kEps) (RR, XAttention: tau; Prism: both bands' p; mean
// pooling: its threshold; FlexPrefill: gamma or tau). For the stride and pooled selectors a difference may
// also be a swap at the cut: two blocks of one row whose fp64 scores (rr_block_scores,
// xattention_block_scores, prism_block_scores, meanpool_block_scores) agree to kEps, relative, rank the other
// way round, and the cut between them keeps the other one (seen once in ~10 runs for RRAttention on 70000
// random tokens, one swap among 2.4 M decisions, and once for mean pooling's t1 on the same inputs). Any
// other difference fails. MInference and FlexPrefill: a difference may also lie on a line at the top-k cut
// (is_line_tie_at_cut). The test prints how many decisions differ and how each was explained.
constexpr double kThresholdEps = 1e-4;

std::vector<std::pair<SelectorSettings, SelectorSettings>> threshold_brackets(const std::string& method,
                                                                              const SelectorSettings& settings) {
  std::vector<std::pair<SelectorSettings, SelectorSettings>> brackets;
  if (method == "minference") return brackets;  // a top-k of lines: no mass threshold
  auto scaled = [&](double factor) {  // the method's mass thresholds times factor, at most 1
    SelectorSettings s = settings;
    auto at = [factor](double& threshold) { threshold = std::min(1.0, threshold * factor); };
    if (method == "prism") {
      at(s.prism.p_high);
      at(s.prism.p_low);
    } else if (method == "meanpool") {
      at(s.meanpool.threshold);
    } else if (method == "rr") {
      at(s.rr.tau);
    } else if (method == "xattn") {
      at(s.xattn.tau);
    } else {
      at(s.flexprefill.gamma);
    }
    return s;
  };
  brackets.emplace_back(scaled(1 - kThresholdEps), scaled(1 + kThresholdEps));
  if (method == "flexprefill") {
    SelectorSettings lower = settings, upper = settings;
    lower.flexprefill.tau *= 1 - kThresholdEps;
    upper.flexprefill.tau *= 1 + kThresholdEps;
    brackets.emplace_back(lower, upper);
  }
  return brackets;
}

// Whether differing decision `d` of a stride selector's row swaps a block for another of the same fp64 score
// up to relative rounding (kThresholdEps): the GPU's fp32 sums may order two such blocks the other way round,
// and a cut between them keeps the other one. The partner must differ too, with the opposite CPU decision.
bool is_rank_tie_at_cut(const BlockMask& want, const std::vector<double>& scores,
                        const std::vector<std::array<std::int64_t, 4>>& differing,
                        const std::array<std::int64_t, 4>& d) {
  const std::int64_t b = d[0], h = d[1], u = d[2], v = d[3];
  const std::size_t row =
      static_cast<std::size_t>(((b * want.heads() + h) * want.num_q_blocks() + u) * want.num_k_blocks());
  for (const auto& [b2, h2, u2, v2] : differing) {
    if (b2 != b || h2 != h || u2 != u || want.contains(b, h, u, v2) == want.contains(b, h, u, v)) continue;
    const double x = scores[row + static_cast<std::size_t>(v)],
                 y = scores[row + static_cast<std::size_t>(v2)];
    if (std::fabs(x - y) <= kThresholdEps * std::max(x, y)) return true;
  }
  return false;
}

using Decision = std::array<std::int64_t, 4>;  // batch, head, row, key block

// Whether differing decision `d` of a pooled selector (Prism, mean pooling) is a swap at the cut: the GPU's
// fp32-precision numerators may order two blocks whose fp64 probabilities (`scores`: meanpool_block_scores,
// or prism_block_scores' two bands) agree to kThresholdEps, relative, the other way round, and a cut between
// them keeps the other one. The partner is another block of the row, with that tie in some band, kept by the
// CPU or the GPU (with two bands, the swap's other block may be kept through the other band, so that it does
// not differ).
bool is_pooled_tie_at_cut(const BlockMask& want, const BlockMask& got, const std::vector<double>& scores,
                          const Decision& d) {
  const std::int64_t b = d[0], h = d[1], u = d[2], v = d[3], nk = want.num_k_blocks();
  const std::size_t plane = static_cast<std::size_t>(want.batch() * want.heads() * want.num_q_blocks() * nk);
  const std::size_t row = static_cast<std::size_t>(((b * want.heads() + h) * want.num_q_blocks() + u) * nk);
  for (std::int64_t v2 = 0; v2 < nk; ++v2) {
    if (v2 == v || !(want.contains(b, h, u, v2) || got.contains(b, h, u, v2))) continue;
    for (std::size_t band = 0; band < scores.size() / plane; ++band) {
      const double x = scores[band * plane + row + static_cast<std::size_t>(v)],
                   y = scores[band * plane + row + static_cast<std::size_t>(v2)];
      if (std::max(x, y) > 0 && std::fabs(x - y) <= kThresholdEps * std::max(x, y)) return true;
    }
  }
  return false;
}

// Sequence b's query and key lengths.
std::pair<std::int64_t, std::int64_t> sequence_lengths(const Inputs& in, std::int64_t b) {
  if (in.cu_q.empty()) return {in.q.shape()[1], in.k.shape()[1]};
  return {in.cu_q[b + 1] - in.cu_q[b], in.cu_k[b + 1] - in.cu_k[b]};
}

// The lines of entry `at` ((batch, head, kind) of RankedLines::kept) at the top-k cut: those whose fp64 score
// lies within kThresholdEps, relative, of the last kept score, when the first score below the cut does too
// (else no swap across the cut is within rounding). Forced lines (+inf) never are.
std::vector<std::int64_t> lines_at_cut(const RankedLines& lines, std::size_t at) {
  const double* scores = lines.scores.data() + at * static_cast<std::size_t>(lines.width);
  const std::int64_t keep = lines.kept[at];
  std::vector<std::int64_t> tied;
  if (keep == 0 || keep >= lines.width) return tied;
  std::vector<double> sorted(scores, scores + lines.width);
  std::sort(sorted.begin(), sorted.end(), std::greater<double>());
  const double cut = sorted[static_cast<std::size_t>(keep - 1)],
               below = sorted[static_cast<std::size_t>(keep)];
  if (!std::isfinite(cut) || below < cut * (1 - kThresholdEps)) return tied;
  for (std::int64_t x = 0; x < lines.width; ++x)
    if (std::fabs(scores[x] - cut) <= kThresholdEps * cut) tied.push_back(x);
  return tied;
}

// Whether differing decision `d` of a vertical-slash selector lies on a line at the top-k cut (lines_at_cut):
// the GPU's fp32 logits and numerators may order two lines whose fp64 scores agree to kThresholdEps the other
// way round. MInference's lines are key columns (a row's block holding the column at or before its last key)
// and diagonal offsets (a block the diagonal crosses within the row's queries); FlexPrefill's are key-block
// columns and block diagonals (slash index s: the diagonal nb - 1 - s blocks below the main one).
bool is_line_tie_at_cut(const std::string& method, const RankedLines& lines, const Inputs& in,
                        std::int64_t heads, const Decision& d) {
  const std::int64_t b = d[0], h = d[1], u = d[2], v = d[3], B = in.block;
  const auto [lq, lk] = sequence_lengths(in, b);
  const std::int64_t shift = lk - lq, first = u * B + shift, last = std::min((u + 1) * B, lq) - 1 + shift;
  for (std::size_t kind = 0; kind < 2; ++kind)
    for (const std::int64_t x : lines_at_cut(lines, static_cast<std::size_t>((b * heads + h) * 2) + kind)) {
      bool touches;
      if (method == "minference") {
        const std::int64_t lo = std::max<std::int64_t>(0, first - x), hi = std::min(lk - 1, last - x);
        touches = kind == 0 ? x / B == v && x <= last : hi >= lo && lo / B <= v && v <= hi / B;
      } else {
        touches = kind == 0 ? x == v : u - v == (lq + B - 1) / B - 1 - x;
      }
      if (touches) return true;
    }
  return false;
}

// Holds `got` to `want` up to decisions at the threshold: every differing decision must flip between the
// masks of a bracket (`brackets`, called only when some decision differs) or be a swap of equal scores at the
// cut (`swapped`); any other fails. Prints the fraction of equal decisions and how the others were
// explained.
void expect_equal_up_to_threshold(
    const std::string& what, const BlockMask& want, const BlockMask& got,
    const std::function<std::vector<std::pair<BlockMask, BlockMask>>()>& brackets,
    const std::function<bool(const std::vector<Decision>&, const Decision&)>& swapped) {
  ASSERT_EQ(got.heads(), want.heads());
  ASSERT_EQ(got.num_q_blocks(), want.num_q_blocks());
  std::vector<Decision> differing;
  std::int64_t total = 0;
  for (std::int64_t b = 0; b < want.batch(); ++b)
    for (std::int64_t h = 0; h < want.heads(); ++h)
      for (std::int64_t u = 0; u < want.num_q_blocks(); ++u)
        for (std::int64_t v = 0; v < want.num_k_blocks(); ++v, ++total)
          if (want.contains(b, h, u, v) != got.contains(b, h, u, v)) differing.push_back({b, h, u, v});
  std::int64_t at_threshold = 0, swaps = 0;
  if (!differing.empty()) {
    const std::vector<std::pair<BlockMask, BlockMask>> bracketed = brackets();
    std::vector<Decision> unexplained;
    for (const auto& [b, h, u, v] : differing) {
      bool flips = false;
      for (const auto& [low, high] : bracketed) flips = flips || low.contains(b, h, u, v) != high.contains(b, h, u, v);
      if (flips) {
        ++at_threshold;
      } else {
        unexplained.push_back({b, h, u, v});
      }
    }
    for (const Decision& d : unexplained) {
      if (swapped(unexplained, d)) {
        ++swaps;
      } else {
        ADD_FAILURE() << what << " differs at batch " << d[0] << " head " << d[1] << " row " << d[2]
                      << " block " << d[3] << " (CPU " << want.contains(d[0], d[1], d[2], d[3])
                      << "), neither within a threshold (1 +- " << kThresholdEps
                      << ") nor swapped with a block of the same score up to that relative rounding";
      }
    }
  }
  std::printf(
      "  %s: %.6f of %lld block decisions equal; %zu differ, %lld of them at the threshold, %lld swapped "
      "with an "
      "equal score at the cut\n",
      what.c_str(), 1.0 - static_cast<double>(differing.size()) / static_cast<double>(total),
      static_cast<long long>(total), differing.size(), static_cast<long long>(at_threshold),
      static_cast<long long>(swaps));
}

void expect_mask_up_to_threshold_rounding(const std::string& method, const SelectorSettings& settings,
                                          const Inputs& in, const std::string& label) {
  const SelectorInputs s = selector_inputs(in);
  const BlockMask want = make_selector(method, settings)->select(s).mask;
  const BlockMask got = make_gpu_selector(method, settings)->select(s).mask;
  auto brackets = [&] {
    std::vector<std::pair<BlockMask, BlockMask>> masks;
    for (const auto& [lower, upper] : threshold_brackets(method, settings))
      masks.emplace_back(make_selector(method, lower)->select(s).mask,
                         make_selector(method, upper)->select(s).mask);
    return masks;
  };
  std::vector<double> scores;  // the method's fp64 block scores, for the swaps at the cut
  RankedLines lines;           // the vertical-slash selectors' line scores, likewise
  auto swapped = [&](const std::vector<Decision>& unexplained, const Decision& d) {
    if (method == "minference" || method == "flexprefill") {
      if (lines.scores.empty())
        lines = method == "minference" ? minference_line_scores(s, settings.minference)
                                       : flexprefill_block_line_scores(s, settings.flexprefill);
      return is_line_tie_at_cut(method, lines, in, want.heads(), d);
    }
    if (scores.empty())
      scores = method == "rr"      ? rr_block_scores(s, settings.rr)
               : method == "xattn" ? xattention_block_scores(s, settings.xattn)
               : method == "prism" ? prism_block_scores(s, settings.prism)
                                   : meanpool_block_scores(s);
    return method == "rr" || method == "xattn" ? is_rank_tie_at_cut(want, scores, unexplained, d)
                                               : is_pooled_tie_at_cut(want, got, scores, d);
  };
  expect_equal_up_to_threshold(method + " on " + label, want, got, brackets, swapped);
}

// PBS: the GPU ranks keys by an fp32 importance (pbs_importance.cuh), the CPU by fp64, so where two keys'
// importances lie within rounding the two orders may differ. The GPU's order must rank every complete segment
// by the CPU's importance up to that rounding (two keys adjacent in the GPU's order may stand inverted only
// where their fp64 importances agree to kImportanceTolerance, relative, or both lie below fp32's normal
// range), and its mask must equal the CPU's mask for that same order up to decisions at the threshold (the
// row kernel's fp32-precision numerators; expect_equal_up_to_threshold). The test prints how many positions
// differ from the CPU's order.
constexpr double kImportanceTolerance = 1e-4, kImportanceFloor = 1e-37;

// A key order (Selection::key_order's layout) against the CPU's importance and order: positions that differ
// from the CPU's order, adjacent pairs inside a complete segment that stand inverted, and the inversions
// beyond rounding (described).
struct OrderCheck {
  std::int64_t moved = 0, inverted = 0;
  std::vector<std::string> violations;
};

OrderCheck check_key_order(const std::vector<std::int32_t>& order, const Selection& cpu,
                           const std::vector<double>& importance, const Inputs& in) {
  OrderCheck check;
  const bool varlen = !in.cu_q.empty();
  const std::int64_t batch = varlen ? static_cast<std::int64_t>(in.cu_q.size()) - 1 : in.q.shape()[0];
  const std::int64_t heads = in.q.shape()[varlen ? 1 : 2], S = cpu.segment;
  const std::int64_t width = static_cast<std::int64_t>(importance.size()) / (batch * heads);
  for (std::int64_t b = 0; b < batch; ++b) {
    const std::int64_t L = sequence_lengths(in, b).first, complete = L > S ? L / S * S : 0;
    for (std::int64_t h = 0; h < heads; ++h) {
      const std::int64_t row = (b * heads + h) * width;
      for (std::int64_t p = 0; p < width; ++p) check.moved += order[row + p] != cpu.key_order[row + p];
      for (std::int64_t p = 0; p + 1 < complete; ++p) {
        if ((p + 1) % S == 0) continue;  // the next position starts another segment
        const double a = importance[row + order[row + p]], c = importance[row + order[row + p + 1]];
        if (a >= c) continue;
        ++check.inverted;
        if (c - a > kImportanceTolerance * c + kImportanceFloor)
          check.violations.push_back("sequence " + std::to_string(b) + " head " + std::to_string(h) +
                                     " ranks key " + std::to_string(order[row + p]) + " (importance " +
                                     std::to_string(a) + ") before key " +
                                     std::to_string(order[row + p + 1]) + " (" + std::to_string(c) + ")");
      }
    }
  }
  return check;
}

void expect_pbs_selection(const SelectorSettings& settings, const Inputs& in, const std::string& label) {
  const SelectorInputs s = selector_inputs(in);
  const Selection got = make_gpu_selector("pbs", settings)->select(s);
  const Selection cpu = make_selector("pbs", settings)->select(s);
  const std::vector<double> importance = pbs_importance(s, settings.pbs);
  ASSERT_EQ(got.key_order.size(), importance.size());
  ASSERT_EQ(got.segment, settings.pbs.segment);
  const OrderCheck check = check_key_order(got.key_order, cpu, importance, in);
  for (const std::string& v : check.violations) ADD_FAILURE() << "pbs on " << label << ": " << v;
  const Selection want = pbs_select_with_order(s, settings.pbs, got.key_order);
  std::int64_t differences = 0;
  const double fraction = equal_fraction(want.mask, got.mask, differences);
  std::printf(
      "  pbs on %s: key order: %lld of %zu positions differ from the CPU's (%lld adjacent pairs inverted "
      "within rounding); %.6f of block decisions equal for the GPU's order (%lld differ)\n",
      label.c_str(), static_cast<long long>(check.moved), got.key_order.size(),
      static_cast<long long>(check.inverted), fraction, static_cast<long long>(differences));
}

TEST(GpuSelection, MasksEqualTheCpuSelectors) {
  SKIP_WITHOUT_GPU();
  const std::uint64_t seed = testing::fresh_seed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937_64 rng(seed);
  SelectorSettings t1;
  t1.meanpool.rule = "t1";
  t1.meanpool.threshold = 0.8;
  std::vector<std::pair<std::string, SelectorSettings>> rules;
  for (const std::string rule : {"t4", "t5", "topk"}) {
    SelectorSettings r;
    r.meanpool.rule = rule;
    r.meanpool.threshold = 0.85;
    r.meanpool.top_k = 5;
    rules.emplace_back(rule, r);
  }
  SelectorSettings narrow_lines;
  narrow_lines.minference.vertical_size = 40;
  narrow_lines.minference.slash_size = 60;
  narrow_lines.minference.last_q = 32;
  SelectorSettings uncalibrated;
  uncalibrated.prism.calibrate = false;
  uncalibrated.prism.p_low = 0.8;
  const Inputs scene = scene_inputs(2048, seed % 1000, RopeLayout::kRotateHalf);
  const Inputs interleaved = scene_inputs(1500, seed % 1000 + 1, RopeLayout::kInterleaved);
  const Inputs random_causal = random_inputs(rng, true), random_full = random_inputs(rng, false);
  const Inputs varlen = varlen_inputs(rng);
  for (const auto& [in, label] : {std::pair<const Inputs*, std::string>{&scene, "llama31-like 2048"},
                                  {&interleaved, "llama31-like 1500 interleaved"},
                                  {&random_causal, "random causal 700x900"},
                                  {&random_full, "random non-causal 700x900"},
                                  {&varlen, "varlen 300/1/700 x 300/77/900"}}) {
    expect_mask_up_to_threshold_rounding("prism", {}, *in, label);
    expect_mask_up_to_threshold_rounding("prism", uncalibrated, *in, label + ", uncalibrated");
    expect_mask_up_to_threshold_rounding("meanpool", {}, *in, label);
    expect_mask_up_to_threshold_rounding("meanpool", t1, *in, label + ", t1 0.8");
    for (const auto& [rule, settings] : rules)
      expect_mask_up_to_threshold_rounding("meanpool", settings, *in, label + ", " + rule);
    if (in->causal) {
      expect_mask_up_to_threshold_rounding("minference", {}, *in, label);
      expect_mask_up_to_threshold_rounding("minference", narrow_lines, *in,
                                           label + ", vertical 40, slash 60, last 32");
    }
  }
  const Inputs narrow = narrow_row_inputs(rng);
  SelectorSettings narrow_bands;  // the default low band, 3 d / 4 = 27 dims, is not whole RoPE pairs at d 36
  narrow_bands.prism.d_high = 18;
  narrow_bands.prism.d_low = 26;
  expect_mask_up_to_threshold_rounding("prism", narrow_bands, narrow, "random causal 500, d 36");
  expect_mask_up_to_threshold_rounding("meanpool", t1, narrow, "random causal 500, d 36, t1 0.8");
  expect_mask_up_to_threshold_rounding("minference", narrow_lines, narrow, "random causal 500, d 36");
  const Inputs odd = random_fp16_inputs(rng, true, 1, 500, 500, 33);  // the last rows' mma takes 2-byte pairs
  expect_mask_up_to_threshold_rounding("minference", narrow_lines, odd, "random causal 500, d 33");
  const Inputs long_rows = long_inputs(rng);
  expect_mask_up_to_threshold_rounding("prism", {}, long_rows, "random causal 70000 (1094 key blocks)");
  expect_mask_up_to_threshold_rounding("meanpool", t1, long_rows,
                                       "random causal 70000 (1094 key blocks), t1 0.8");
  expect_mask_up_to_threshold_rounding("minference", {}, long_rows, "random causal 70000 (1094 key blocks)");
}

TEST(GpuSelection, StrideSelectorMasksEqualTheCpuUpToThresholdRounding) {
  SKIP_WITHOUT_GPU();
  const std::uint64_t seed = testing::fresh_seed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937_64 rng(seed);
  std::vector<std::pair<std::string, SelectorSettings>> variants = {{"rr", {}}, {"xattn", {}}};
  auto variant = [&](const std::string& method, const std::string& name, auto&& set) {
    SelectorSettings settings;
    set(settings);
    variants.emplace_back(method + " " + name, settings);
  };
  variant("rr", "v2", [](SelectorSettings& s) { s.rr.rule = "v2"; });
  variant("rr", "clean, mirrored, no forced extras", [](SelectorSettings& s) {
    s.rr.t3 = "clean";
    s.rr.offset = "mirrored";
    s.rr.keep_sink = s.rr.keep_last_row = false;
  });
  variant("rr", "stride 16, tau 0.8", [](SelectorSettings& s) {
    s.rr.stride = 16;
    s.rr.tau = 0.8;
  });
  variant("rr", "stride 4", [](SelectorSettings& s) { s.rr.stride = 4; });
  variant("rr", "rounded key sums", [](SelectorSettings& s) { s.rr.key_sums = "rounded"; });
  variant("rr", "rounded key sums, stride 16", [](SelectorSettings& s) {
    s.rr.key_sums = "rounded";
    s.rr.stride = 16;
  });
  variant("xattn", "clean, sink row, recent, chunk 256", [](SelectorSettings& s) {
    s.xattn.t3 = "clean";
    s.xattn.keep_sink = s.xattn.keep_recent = true;
    s.xattn.chunk_size = 256;
  });
  variant("xattn", "stride 16, tau 0.95", [](SelectorSettings& s) {
    s.xattn.stride = 16;
    s.xattn.tau = 0.95;
  });
  const Inputs scene = scene_inputs(2048, seed % 1000, RopeLayout::kRotateHalf);
  const Inputs random_causal = random_inputs(rng, true), random_full = random_inputs(rng, false);
  const Inputs varlen = varlen_inputs(rng);
  // More queries than keys without causality: the first rows have no diagonal block, so T3 forces nothing there.
  Inputs longer_queries;
  longer_queries.q = testing::random_tensor(DType::kFP16, {1, 900, 4, 64}, rng, 3.0);
  longer_queries.k = testing::random_tensor(DType::kFP16, {1, 700, 2, 64}, rng);
  longer_queries.v = testing::random_tensor(DType::kFP16, {1, 700, 2, 64}, rng);
  longer_queries.causal = false;
  longer_queries.block = 64;
  for (const auto& [in, label] : {std::pair<const Inputs*, std::string>{&scene, "llama31-like 2048"},
                                  {&random_causal, "random causal 700x900"},
                                  {&random_full, "random non-causal 700x900"},
                                  {&longer_queries, "random non-causal 900x700"},
                                  {&varlen, "varlen 300/1/700 x 300/77/900"}}) {
    for (const auto& [name, settings] : variants) {
      const std::string method = name.substr(0, name.find(' '));
      expect_mask_up_to_threshold_rounding(method, settings, *in, label + ", " + name);
    }
  }
  SelectorSettings wide;
  wide.rr.stride = 32;  // 4 query strides per 128-token block
  expect_mask_up_to_threshold_rounding("rr", wide, scene, "llama31-like 2048, rr stride 32");
  const Inputs long_rows = long_inputs(rng);
  expect_mask_up_to_threshold_rounding("rr", {}, long_rows, "random causal 70000 (1094 key blocks)");
  SelectorSettings tiled_rows;
  tiled_rows.rr.stride = 4;
  expect_mask_up_to_threshold_rounding("rr", tiled_rows, long_tile_inputs(rng, 89600),
                                       "random causal 89600 (1400 key blocks, tile kernel), rr stride 4");
  expect_mask_up_to_threshold_rounding(
      "rr", tiled_rows, long_tile_inputs(rng, 115200),
      "random causal 115200 (1800 key blocks, tile kernel, one key-sum part a "
      "stage), rr stride 4");
}

// One pass (rr.passes / xattn.passes = one) keeps per-tile block sums in the workspace and rescales them at
// the end: the same probabilities with another fp32 rounding, so the same masks up to threshold rounding, on
// the tiled kernel's geometry (a scene, a varlen batch, rows of 1400 key blocks).
TEST(GpuSelection, OnePassStrideMasksEqualTheCpuUpToThresholdRounding) {
  SKIP_WITHOUT_GPU();
  const std::uint64_t seed = testing::fresh_seed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937_64 rng(seed);
  auto one_pass = [](const std::function<void(SelectorSettings&)>& set) {
    SelectorSettings s;
    s.rr.passes = s.xattn.passes = "one";
    set(s);
    return s;
  };
  const std::vector<std::tuple<std::string, std::string, SelectorSettings>> variants = {
      {"rr", "one pass", one_pass([](SelectorSettings&) {})},
      {"rr", "one pass, rounded key sums", one_pass([](SelectorSettings& s) { s.rr.key_sums = "rounded"; })},
      {"rr", "one pass, v2", one_pass([](SelectorSettings& s) { s.rr.rule = "v2"; })},
      {"rr", "one pass, clean, mirrored, no forced extras", one_pass([](SelectorSettings& s) {
         s.rr.t3 = "clean";
         s.rr.offset = "mirrored";
         s.rr.keep_sink = s.rr.keep_last_row = false;
       })},
      {"xattn", "one pass", one_pass([](SelectorSettings&) {})},
      {"xattn", "one pass, clean, sink row, recent, chunk 256", one_pass([](SelectorSettings& s) {
         s.xattn.t3 = "clean";
         s.xattn.keep_sink = s.xattn.keep_recent = true;
         s.xattn.chunk_size = 256;
       })}};
  const Inputs scene = scene_inputs(2048, seed % 1000, RopeLayout::kRotateHalf);
  const Inputs varlen = varlen_tile_inputs(rng);
  for (const auto& [in, label] : {std::pair<const Inputs*, std::string>{&scene, "llama31-like 2048"},
                                  {&varlen, "varlen fp16 1000/1/1900 x 1000/100/2200"}})
    for (const auto& [method, name, settings] : variants)
      expect_mask_up_to_threshold_rounding(method, settings, *in, label + ", " + method + " " + name);
  const SelectorSettings tiled_rows = one_pass([](SelectorSettings& s) { s.rr.stride = 4; });
  expect_mask_up_to_threshold_rounding("rr", tiled_rows, long_tile_inputs(rng, 89600),
                                       "random causal 89600 (1400 key blocks), rr stride 4, one pass");
}

// FlexPrefill: vertical-slash heads and query-aware heads (every head with tau 10, whose sqrt-JS bound is
// sqrt(ln 2)), small budgets, a varlen batch with a dense-fallback sequence, and 1094 key blocks.
TEST(GpuSelection, FlexPrefillMasksEqualTheCpuUpToThresholdRounding) {
  SKIP_WITHOUT_GPU();
  const std::uint64_t seed = testing::fresh_seed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937_64 rng(seed);
  SelectorSettings small;
  small.flexprefill.min_budget = 128;
  SelectorSettings query_aware = small;
  query_aware.flexprefill.tau = 10;
  query_aware.flexprefill.gamma = 0.9;
  SelectorSettings capped = small;
  capped.flexprefill.max_budget = 512;
  capped.flexprefill.tau = 0;
  const Inputs scene = scene_inputs(4096, seed % 1000, RopeLayout::kRotateHalf);
  const Inputs random = equal_length_inputs(rng);
  const Inputs varlen = equal_length_varlen_inputs(rng, {0, 700, 701, 1001}, 64);
  for (const auto& [in, label] : {std::pair<const Inputs*, std::string>{&scene, "llama31-like 4096"},
                                  {&random, "random 2 x 900"},
                                  {&varlen, "varlen 700/1/300"}}) {
    expect_mask_up_to_threshold_rounding("flexprefill", {}, *in, label);
    expect_mask_up_to_threshold_rounding("flexprefill", small, *in, label + ", min budget 128");
    expect_mask_up_to_threshold_rounding("flexprefill", query_aware, *in, label + ", tau 10, gamma 0.9");
    expect_mask_up_to_threshold_rounding("flexprefill", capped, *in, label + ", tau 0, max budget 512");
  }
  const Inputs long_rows = long_inputs(rng);
  expect_mask_up_to_threshold_rounding("flexprefill", {}, long_rows, "random causal 70000 (1094 key blocks)");
  expect_mask_up_to_threshold_rounding("flexprefill", query_aware, long_rows, "random causal 70000, tau 10");
}

// PBS: the key order follows the CPU's importance up to rounding and the mask on the permuted keys is the CPU's
// for that order (expect_pbs_selection).
TEST(GpuSelection, PbsOrderFollowsTheCpuImportanceAndMaskIsItsMaskForThatOrder) {
  SKIP_WITHOUT_GPU();
  const std::uint64_t seed = testing::fresh_seed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937_64 rng(seed);
  SelectorSettings small_segments;
  small_segments.pbs.segment = 128;
  small_segments.pbs.tau = 0.8;
  SelectorSettings wide_segments;
  wide_segments.pbs.segment = 1024;
  const Inputs scene = scene_inputs(2048, seed % 1000, RopeLayout::kRotateHalf);
  const Inputs random = equal_length_inputs(rng);
  // One sequence with two complete segments, one with one, one of a single token (dense).
  const Inputs varlen = equal_length_varlen_inputs(rng, {0, 700, 701, 1001}, 64);
  for (const auto& [in, label] : {std::pair<const Inputs*, std::string>{&scene, "llama31-like 2048"},
                                  {&random, "random 2 x 900"},
                                  {&varlen, "varlen 700/1/300"}}) {
    expect_pbs_selection({}, *in, label);
    expect_pbs_selection(small_segments, *in, label + ", segment 128, tau 0.8");
    expect_pbs_selection(wide_segments, *in, label + ", segment 1024");
  }
  const Inputs long_rows = long_inputs(rng);
  expect_pbs_selection({}, long_rows, "random 70000 (1094 key blocks)");
  // The proxy's other tilings: 64-byte swizzled rows (d 96) and stages of 64 keys (d 256).
  expect_pbs_selection({}, equal_length_inputs(rng, 96), "random 2 x 900, d 96");
  expect_pbs_selection({}, equal_length_inputs(rng, 256), "random 2 x 900, d 256");
}

// Host side: argument checks run before any device access, so they are tested without a GPU.
TEST(SelectionArguments, BadInputIsAClearErrorNamingTheArgument) {
  static std::int32_t placeholder[4];
  auto args = [] {
    cuda::GpuSelectionArgs a;
    a.q = make_view(placeholder, DType::kBF16, {1, 4096, 8, 128});
    a.k = make_view(placeholder, DType::kBF16, {1, 4096, 2, 128});
    a.kv_num_blocks = a.kv_indices = placeholder;
    return a;
  };
  const cuda::GpuSelection prism("prism", {});
  auto failing = [&](const cuda::GpuSelectionArgs& a) {
    return testing::error_argument([&] { prism.workspace_size(a); });
  };
  EXPECT_EQ(failing(args()), "<no error>");
  cuda::GpuSelectionArgs a = args();
  a.q = make_view(placeholder, DType::kBF16, {4096, 8, 128});
  EXPECT_EQ(failing(a), "q");  // varlen layout
  a = args();
  a.k.dtype = DType::kFP16;
  EXPECT_EQ(failing(a), "k");  // dtype differs from q's
  a = args();
  a.q.dtype = a.k.dtype = DType::kFP32;
  EXPECT_EQ(failing(a), "q");
  a = args();
  a.k = make_view(placeholder, DType::kBF16, {1, 4096, 3, 128});
  EXPECT_EQ(failing(a), "k");  // 8 query heads over 3 KV heads
  a = args();
  a.block_size = 96;
  EXPECT_EQ(failing(a), "block_size");
  a = args();
  a.k = make_view(placeholder, DType::kBF16, {1, 2049 * 128, 2, 128});
  EXPECT_EQ(failing(a), "k");  // more key blocks than the row kernel holds
  a = args();
  a.kv_indices = nullptr;
  EXPECT_EQ(failing(a), "mask");
  // Prefill workspace: the mask, the selector's and the attention kernel's workspaces, each counted.
  cuda::PrefillAttentionArgs prefill;
  prefill.q = args().q;
  prefill.k = prefill.v = args().k;
  prefill.out = args().q;
  const std::size_t with_selection = cuda::prefill_attention_workspace_size(prefill, "prism", {});
  const std::size_t dense = cuda::prefill_attention_workspace_size(prefill, "dense", {});
  EXPECT_GT(with_selection, prism.workspace_size(args()) + 8u * 32 * 32 * 4);  // + the per-head mask indices
  EXPECT_LT(dense, with_selection);
  const cuda::DeviceBlockMask mask = cuda::mask_in_workspace(prefill, "prism", placeholder);
  EXPECT_EQ(mask.heads, 8);
  EXPECT_EQ(mask.num_q_blocks, 32);
  EXPECT_EQ(mask.num_k_blocks, 32);
  EXPECT_EQ(cuda::mask_in_workspace(prefill, "dense", placeholder).heads, 1);
}

TEST(SelectionArguments, UnsupportedMethodsAndSettingsAreClearErrors) {
  EXPECT_EQ(testing::error_argument([] { cuda::GpuSelection("oracle", {}); }), "method");  // needs dense scores
  SelectorSettings bad_rule;
  bad_rule.rr.rule = "v3";
  EXPECT_EQ(testing::error_argument([&] { cuda::GpuSelection("rr", bad_rule); }), "rr.rule");
  alignas(16) static std::int32_t placeholder[4];
  cuda::GpuSelectionArgs a;
  a.q = make_view(placeholder, DType::kBF16, {1, 4096, 8, 128});
  a.k = make_view(placeholder, DType::kBF16, {1, 4096, 2, 128});
  a.kv_num_blocks = a.kv_indices = placeholder;
  SelectorSettings odd_stride;
  odd_stride.rr.stride = 3;
  EXPECT_EQ(testing::error_argument([&] { cuda::GpuSelection("rr", odd_stride).workspace_size(a); }), "rr.stride");
  SelectorSettings big_tau;
  big_tau.xattn.tau = 1.5;
  EXPECT_EQ(testing::error_argument([&] { cuda::GpuSelection("xattn", big_tau).workspace_size(a); }), "xattn.tau");
  SelectorSettings odd_chunk;
  odd_chunk.xattn.chunk_size = 100;
  EXPECT_EQ(testing::error_argument([&] { cuda::GpuSelection("xattn", odd_chunk).workspace_size(a); }),
            "xattn.chunk-size");
  EXPECT_EQ(testing::error_argument([&] { cuda::GpuSelection("rr", {}).workspace_size(a); }), "<no error>");
  SelectorSettings three_passes;
  three_passes.rr.passes = three_passes.xattn.passes = "three";
  EXPECT_EQ(testing::error_argument([&] { cuda::GpuSelection("rr", three_passes); }), "rr.passes");
  EXPECT_EQ(testing::error_argument([&] { cuda::GpuSelection("xattn", three_passes); }), "xattn.passes");
  SelectorSettings one_pass;
  one_pass.rr.passes = one_pass.xattn.passes = "one";
  const std::string one_pass_here = cuda_device_count() > 0 ? "<no error>" : "rr.passes";  // sized by the SMs
  EXPECT_EQ(testing::error_argument([&] { cuda::GpuSelection("rr", one_pass).workspace_size(a); }),
            one_pass_here);
  cuda::GpuSelectionArgs untiled = a;  // head_dim 64: the per-warp kernel, which takes two passes only
  untiled.q = make_view(placeholder, DType::kBF16, {1, 4096, 8, 64});
  untiled.k = make_view(placeholder, DType::kBF16, {1, 4096, 2, 64});
  EXPECT_EQ(testing::error_argument([&] { cuda::GpuSelection("rr", one_pass).workspace_size(untiled); }),
            "rr.passes");
  EXPECT_EQ(testing::error_argument([&] { cuda::GpuSelection("xattn", one_pass).workspace_size(untiled); }),
            "xattn.passes");
  cuda::GpuSelectionArgs narrow = a;
  narrow.q = make_view(placeholder, DType::kBF16, {1, 4096, 8, 48});
  narrow.k = make_view(placeholder, DType::kBF16, {1, 4096, 2, 48});
  EXPECT_EQ(testing::error_argument([&] { cuda::GpuSelection("rr", {}).workspace_size(narrow); }), "q");
  cuda::GpuSelectionArgs permuted = a;
  EXPECT_EQ(testing::error_argument([&] { cuda::GpuSelection("pbs", {}).workspace_size(permuted); }), "key_order");
  permuted.key_order = placeholder;
  EXPECT_EQ(testing::error_argument([&] { cuda::GpuSelection("pbs", {}).workspace_size(permuted); }), "<no error>");
  SelectorSettings many_rows;
  many_rows.minference.last_q = 129;
  EXPECT_EQ(testing::error_argument([&] { cuda::GpuSelection("minference", many_rows).workspace_size(a); }),
            "minference.last-q");
  SelectorSettings long_segment;
  long_segment.pbs.segment = 2048;
  EXPECT_EQ(testing::error_argument([&] { cuda::GpuSelection("pbs", long_segment).workspace_size(permuted); }),
            "pbs.segment");
  cuda::GpuSelectionArgs prefix = permuted;
  prefix.k = make_view(placeholder, DType::kBF16, {1, 8192, 2, 128});
  EXPECT_EQ(testing::error_argument([&] { cuda::GpuSelection("pbs", {}).workspace_size(prefix); }), "k");
  cuda::GpuSelectionArgs non_causal = permuted;
  non_causal.causal = false;
  EXPECT_EQ(testing::error_argument([&] { cuda::GpuSelection("pbs", {}).workspace_size(non_causal); }), "causal");
  cuda::GpuSelectionArgs unaligned = a;
  unaligned.k.data = reinterpret_cast<unsigned char*>(placeholder) + 2;
  EXPECT_EQ(testing::error_argument([&] { cuda::GpuSelection("xattn", {}).workspace_size(unaligned); }), "k");
  EXPECT_EQ(testing::error_argument([&] { cuda::GpuSelection("flexprefill", {}).workspace_size(a); }), "<no error>");
  EXPECT_EQ(testing::error_argument([&] { cuda::GpuSelection("flexprefill", {}).workspace_size(prefix); }), "k");
  EXPECT_EQ(testing::error_argument([&] { cuda::GpuSelection("flexprefill", {}).workspace_size(non_causal); }),
            "causal");
  SelectorSettings flex_gamma, flex_budget;
  flex_gamma.flexprefill.gamma = 1.5;
  flex_budget.flexprefill.min_budget = 0;
  EXPECT_EQ(testing::error_argument([&] { cuda::GpuSelection("flexprefill", flex_gamma).workspace_size(a); }),
            "flexprefill.gamma");
  EXPECT_EQ(testing::error_argument([&] { cuda::GpuSelection("flexprefill", flex_budget).workspace_size(a); }),
            "flexprefill.min-budget");
  SelectorSettings unknown_rule;
  unknown_rule.meanpool.rule = "t3";
  EXPECT_EQ(testing::error_argument([&] { cuda::GpuSelection("meanpool", unknown_rule); }), "meanpool.rule");
}

// The fp64 reference output over `mask`.
HostTensor reference_output(const Inputs& in, const BlockMask& mask) {
  HostTensor want(DType::kFP64, in.q.shape());
  ReferenceOptions options;
  options.accumulation = Accumulation::kFP64;
  reference_attention(in.q.view(), in.k.view(), in.v.view(), in.varlen(), &mask, options, {want.view(), {}, {}, 0});
  return want;
}

// Whether `mask` is `method`'s CPU mask.
bool is_cpu_mask(const BlockMask& mask, const Inputs& in, const std::string& method) {
  const BlockMask want = make_selector(method)->select(selector_inputs(in)).mask;
  return mask.kv_num_blocks() == want.kv_num_blocks() && mask.kv_indices() == want.kv_indices();
}

// `in` on the device and prefill_attention's arguments over it (varlen when `in` has cu_seqlens).
struct DevicePrefill {
  DeviceBuffer q, k, v, out, cu_q, cu_k;
  cuda::PrefillAttentionArgs args;
  explicit DevicePrefill(const Inputs& in)
      : q(in.q.size_bytes()),
        k(in.k.size_bytes()),
        v(in.v.size_bytes()),
        out(in.q.size_bytes()),
        cu_q(std::max<std::size_t>(in.cu_q.size(), 1) * 4),
        cu_k(std::max<std::size_t>(in.cu_k.size(), 1) * 4) {
    q.upload(in.q.data());
    k.upload(in.k.data());
    v.upload(in.v.data());
    args.q = in.q.view();
    args.q.data = q.get();
    args.k = in.k.view();
    args.k.data = k.get();
    args.v = in.v.view();
    args.v.data = v.get();
    args.out = in.q.view();
    args.out.data = out.get();
    args.block_size = in.block;
    args.rope_layout = in.layout;
    if (!in.cu_q.empty()) {
      cu_q.upload(in.cu_q.data(), in.cu_q.size() * 4, 0);
      cu_k.upload(in.cu_k.data(), in.cu_k.size() * 4, 0);
      args.cu_seqlens_q = static_cast<const std::int32_t*>(cu_q.get());
      // Equal lengths share one array (PBS's form of seqlen_q == seqlen_k).
      args.cu_seqlens_k = in.cu_k == in.cu_q ? args.cu_seqlens_q : static_cast<const std::int32_t*>(cu_k.get());
      args.varlen_batch = static_cast<std::int64_t>(in.cu_q.size()) - 1;
      for (std::int64_t b = 0; b < args.varlen_batch; ++b) {
        const auto [lq, lk] = sequence_lengths(in, b);
        args.max_seqlen_q = std::max(args.max_seqlen_q, lq);
        args.max_seqlen_k = std::max(args.max_seqlen_k, lk);
      }
    }
  }
  // Poisons the output, runs prefill_attention and waits.
  void run(const std::string& method, void* workspace) {
    out.poison();
    cuda::prefill_attention(args, method, {}, workspace, nullptr);
    ok(cudaDeviceSynchronize());
  }
  HostTensor output(const Inputs& in) const {
    HostTensor got(in.q.dtype(), in.q.shape());
    out.download(got.data());
    return got;
  }
  // The mask the last run used, read back from the workspace.
  BlockMask mask(const Inputs& in, const std::string& method, void* workspace) const {
    const cuda::DeviceBlockMask m = cuda::mask_in_workspace(args, method, workspace);
    const std::int64_t batch = in.cu_q.empty() ? in.q.shape()[0] : static_cast<std::int64_t>(in.cu_q.size()) - 1;
    std::vector<std::int32_t> counts(static_cast<std::size_t>(batch * m.heads * m.num_q_blocks)),
        indices(counts.size() * static_cast<std::size_t>(m.num_k_blocks));
    ok(cudaMemcpy(counts.data(), m.kv_num_blocks, counts.size() * 4, cudaMemcpyDeviceToHost));
    ok(cudaMemcpy(indices.data(), m.kv_indices, indices.size() * 4, cudaMemcpyDeviceToHost));
    return BlockMask::from_arrays(batch, m.heads, m.num_q_blocks, m.num_k_blocks, in.block, in.block, counts, indices);
  }
};

// Every element written and within the tolerance rule of conventions.md.
void expect_matches(const HostTensor& got, const HostTensor& want) {
  const std::vector<double> g = got.to_doubles(), w = want.to_doubles();
  for (double x : g) ASSERT_TRUE(std::isfinite(x)) << "an output element was not written";
  EXPECT_LE(testing::relative_error(g, w), 2 * testing::relative_error(want.converted(got.dtype()).to_doubles(), w) + 1e-5);
}

// prefill_attention (select + attend on the device) equals the fp64 reference on the mask it selected, which
// is the CPU selector's for the exact selectors (the stride selectors' masks are checked above); a captured
// CUDA graph replays it bit for bit.
TEST(GpuSelection, PrefillAttentionMatchesTheReferenceAndReplaysInAGraph) {
  SKIP_WITHOUT_GPU();
  const Inputs in = scene_inputs(1536, testing::fresh_seed() % 1000, RopeLayout::kRotateHalf);
  for (const std::string method : {"prism", "rr", "xattn", "minference", "flexprefill", "dense"}) {
    SCOPED_TRACE(method);
    DevicePrefill d(in);
    DeviceBuffer workspace(cuda::prefill_attention_workspace_size(d.args, method, {}));
    d.run(method, workspace.get());
    const HostTensor got = d.output(in);
    const BlockMask used = d.mask(in, method, workspace.get());
    if (method == "prism" || method == "minference")
      EXPECT_TRUE(is_cpu_mask(used, in, method)) << "the pipeline's mask differs from the CPU's";
    expect_matches(got, reference_output(in, used));

    testing::replay_in_graph(
        [&](cudaStream_t stream) { cuda::prefill_attention(d.args, method, {}, workspace.get(), stream); },
        [&] { d.out.poison(); });
    const HostTensor again = d.output(in);
    EXPECT_EQ(std::memcmp(again.data(), got.data(), got.size_bytes()), 0) << "graph replay differs";
  }
}

// One pass's scratch slots are taken and given back inside the launch: a captured graph replays it bit for
// bit, whatever slots its CTAs draw, and its output equals the reference on the mask it selected.
TEST(GpuSelection, OnePassPrefillReplaysInAGraph) {
  SKIP_WITHOUT_GPU();
  const Inputs in = scene_inputs(1536, testing::fresh_seed() % 1000, RopeLayout::kRotateHalf);
  SelectorSettings settings;
  settings.rr.passes = settings.xattn.passes = "one";
  for (const std::string method : {"rr", "xattn"}) {
    SCOPED_TRACE(method);
    DevicePrefill d(in);
    DeviceBuffer workspace(cuda::prefill_attention_workspace_size(d.args, method, settings));
    testing::replay_in_graph(
        [&](cudaStream_t stream) {
          cuda::prefill_attention(d.args, method, settings, workspace.get(), stream);
        },
        [&] { d.out.poison(); });
    const HostTensor first = d.output(in);
    testing::replay_in_graph(
        [&](cudaStream_t stream) {
          cuda::prefill_attention(d.args, method, settings, workspace.get(), stream);
        },
        [&] { d.out.poison(); });
    const HostTensor again = d.output(in);
    EXPECT_EQ(std::memcmp(again.data(), first.data(), first.size_bytes()), 0) << "graph replay differs";
    expect_matches(first, reference_output(in, d.mask(in, method, workspace.get())));
  }
}

// prefill_attention on a varlen batch equals the fp64 reference on the CPU selector's mask.
TEST(GpuSelection, PrefillAttentionTakesVarlenBatches) {
  SKIP_WITHOUT_GPU();
  std::mt19937_64 rng(testing::fresh_seed());
  const Inputs in = varlen_inputs(rng);
  for (const std::string method : {"prism", "meanpool", "rr", "xattn", "minference", "dense"}) {
    SCOPED_TRACE(method);
    DevicePrefill d(in);
    DeviceBuffer workspace(cuda::prefill_attention_workspace_size(d.args, method, {}));
    d.run(method, workspace.get());
    const BlockMask used = d.mask(in, method, workspace.get());
    if (method != "rr" && method != "xattn" && method != "dense")
      EXPECT_TRUE(is_cpu_mask(used, in, method)) << "mask differs from the CPU's";
    expect_matches(d.output(in), reference_output(in, used));
  }
}

// PBS end to end on the device: permutation, selection and the permuted attention (on sm_90 the Hopper kernel
// over permuted K/V copies, causality by the keys' original positions) equal the fp64 permuted reference on
// the order the GPU ranked and the CPU's mask for that order, fixed-length and varlen.
TEST(GpuSelection, PbsPrefillMatchesThePermutedReference) {
  SKIP_WITHOUT_GPU();
  std::mt19937_64 rng(testing::fresh_seed());
  const Inputs scene = scene_inputs(1536, testing::fresh_seed() % 1000, RopeLayout::kRotateHalf);
  // Two complete segments and a remainder, one and a remainder, a single token (dense fallback).
  const Inputs varlen = equal_length_varlen_inputs(rng, {0, 700, 1000, 1001}, 128);
  for (const auto& [in, label] : {std::pair<const Inputs*, std::string>{&scene, "llama31-like 1536"},
                                  {&varlen, "varlen 700/300/1"}}) {
    SCOPED_TRACE(label);
    DevicePrefill d(*in);
    DeviceBuffer workspace(cuda::prefill_attention_workspace_size(d.args, "pbs", {}));
    d.run("pbs", workspace.get());
    const bool varlen = !in->cu_q.empty();
    const std::int64_t batch = varlen ? static_cast<std::int64_t>(in->cu_q.size()) - 1 : in->q.shape()[0];
    const std::int64_t heads_q = in->q.shape()[varlen ? 1 : 2], width = varlen ? d.args.max_seqlen_k : in->k.shape()[1];
    std::vector<std::int32_t> order(static_cast<std::size_t>(batch * heads_q * width));
    ok(cudaMemcpy(order.data(), cuda::key_order_in_workspace(d.args, "pbs", workspace.get()), order.size() * 4,
                  cudaMemcpyDeviceToHost));
    const Selection want = pbs_select_with_order(selector_inputs(*in), {}, order);
    const BlockMask used = d.mask(*in, "pbs", workspace.get());
    EXPECT_EQ(used.kv_num_blocks(), want.mask.kv_num_blocks());
    EXPECT_EQ(used.kv_indices(), want.mask.kv_indices());
    HostTensor reference(DType::kFP64, in->q.shape());
    ReferenceOptions options;
    options.accumulation = Accumulation::kFP64;
    reference_permuted_attention(in->q.view(), in->k.view(), in->v.view(), in->varlen(), want.mask, want.key_order,
                                 options, {reference.view(), {}, {}, 0});
    expect_matches(d.output(*in), reference);
  }
}

// The PBS order check itself (host): the CPU's own order passes on a varlen batch (whose rows end in padding
// past shorter sequences, and hold an incomplete segment), and an order with two keys of very different
// importance swapped inside a segment fails.
TEST(PbsOrderCheck, AcceptsTheCpusOrderAndFindsAnInversion) {
  std::mt19937_64 rng(testing::fresh_seed());
  const Inputs in = equal_length_varlen_inputs(rng, {0, 700, 701, 1001}, 64);
  const Selection cpu = make_selector("pbs")->select(selector_inputs(in));
  const std::vector<double> importance = pbs_importance(selector_inputs(in), {});
  const OrderCheck own = check_key_order(cpu.key_order, cpu, importance, in);
  EXPECT_EQ(own.moved, 0);
  EXPECT_TRUE(own.violations.empty()) << own.violations.front();
  std::vector<std::int32_t> swapped = cpu.key_order;
  std::swap(swapped[0], swapped[255]);  // sequence 0, head 0: the most and the least important key of segment 0
  ASSERT_GT(importance[static_cast<std::size_t>(swapped[255])], 2 * importance[static_cast<std::size_t>(swapped[0])]);
  const OrderCheck bad = check_key_order(swapped, cpu, importance, in);
  EXPECT_EQ(bad.moved, 2);
  EXPECT_FALSE(bad.violations.empty());
}

// The stride test's swap rule (is_rank_tie_at_cut) on a row of 2 heads x 6 blocks: a swap of two blocks whose
// scores agree to rounding passes, one of scores 5% apart or a lone extra block does not.
TEST(StrideMaskCheck, AcceptsOnlyASwapOfTiedScoresAtTheCut) {
  std::mt19937_64 rng(testing::fresh_seed());
  const double base = std::uniform_real_distribution<double>(1e-4, 0.2)(rng);
  BlockMask want(1, 2, 2, 6, 64, 64);
  want.set_row(0, 1, 1, {0, 2, 5});
  want.set_row(0, 1, 0, {2});
  std::vector<double> scores(2 * 2 * 6, 0.0);
  double* row = scores.data() + (1 * 2 + 1) * 6;  // head 1, row 1
  row[0] = 0.6;
  row[5] = 0.3;
  row[2] = base;
  row[3] = base * (1 + 1e-6);
  // The GPU kept block 3 instead of block 2.
  const std::vector<std::array<std::int64_t, 4>> swap = {{0, 1, 1, 2}, {0, 1, 1, 3}};
  EXPECT_TRUE(is_rank_tie_at_cut(want, scores, swap, swap[0]));
  EXPECT_TRUE(is_rank_tie_at_cut(want, scores, swap, swap[1]));
  row[3] = base * 0.95;
  EXPECT_FALSE(is_rank_tie_at_cut(want, scores, swap, swap[0]));
  EXPECT_FALSE(is_rank_tie_at_cut(want, scores, swap, swap[1]));
  row[3] = base;
  const std::vector<std::array<std::int64_t, 4>> extra = {{0, 1, 1, 3}};  // the GPU kept block 3 as well
  EXPECT_FALSE(is_rank_tie_at_cut(want, scores, extra, extra[0]));
  // A partner in another row does not count, even with the same score.
  scores[(1 * 2 + 0) * 6 + 2] = base;
  const std::vector<std::array<std::int64_t, 4>> other_row = {{0, 1, 1, 3}, {0, 1, 0, 2}};
  EXPECT_FALSE(is_rank_tie_at_cut(want, scores, other_row, other_row[0]));
}

TEST(PooledMaskCheck, AcceptsOnlyATieWithABlockKeptAtTheCut) {
  std::mt19937_64 rng(testing::fresh_seed());
  const double base = std::uniform_real_distribution<double>(1e-4, 0.2)(rng);
  BlockMask want(1, 1, 1, 6, 64, 64), got(1, 1, 1, 6, 64, 64);
  std::vector<double> scores(2 * 6, 0.0);  // two bands of one row
  double* high = scores.data();
  double* low = scores.data() + 6;
  high[0] = 0.6;
  high[2] = base;
  high[3] = base * (1 + 1e-6);
  low[4] = base;
  // Band high's cut swapped blocks 2 and 3: the GPU kept 3 instead of 2.
  want.set_row(0, 0, 0, {0, 2});
  got.set_row(0, 0, 0, {0, 3});
  EXPECT_TRUE(is_pooled_tie_at_cut(want, got, scores, {0, 0, 0, 2}));
  EXPECT_TRUE(is_pooled_tie_at_cut(want, got, scores, {0, 0, 0, 3}));
  // Block 2 also kept through band low on both sides: only block 3 differs, its partner kept by both.
  want.set_row(0, 0, 0, {0, 2});
  got.set_row(0, 0, 0, {0, 2, 3});
  EXPECT_TRUE(is_pooled_tie_at_cut(want, got, scores, {0, 0, 0, 3}));
  // No tie: block 3 well apart from every kept block in both bands.
  high[3] = base * 0.95;
  EXPECT_FALSE(is_pooled_tie_at_cut(want, got, scores, {0, 0, 0, 3}));
  // A tie with a block neither side keeps does not count (block 4 in band low, block 5 in band high).
  high[3] = base * 0.5;
  high[5] = base * 0.5;
  low[3] = base;
  want.set_row(0, 0, 0, {0});
  got.set_row(0, 0, 0, {0, 3});
  EXPECT_FALSE(is_pooled_tie_at_cut(want, got, scores, {0, 0, 0, 3}));
}

TEST(SelectionWorkspace, FitsIn64MegabytesAt128K) {
  // Llama-3.1-8B shape at 128K; geometry only (placeholder pointers, never dereferenced).
  alignas(16) static std::int32_t placeholder[4];
  cuda::GpuSelectionArgs args;
  args.q = make_view(placeholder, DType::kBF16, {1, 131072, 32, 128});
  args.k = make_view(placeholder, DType::kBF16, {1, 131072, 8, 128});
  args.kv_num_blocks = args.kv_indices = placeholder;
  args.key_order = placeholder;
  for (const std::string method : {"prism", "meanpool", "rr", "xattn", "pbs", "minference", "flexprefill"}) {
    const std::size_t bytes = cuda::GpuSelection(method, {}).workspace_size(args);
    std::printf("  %s selection workspace at 128K: %.1f MiB (%.1f MB)\n", method.c_str(), bytes / 1048576.0, bytes / 1e6);
    EXPECT_LE(bytes, 64'000'000u) << method;  // 64 MB, decimal
  }
}

// One pass adds a scratch slot of 128 rows x (8 block sums + 1 maximum) a column tile for each CTA the device
// holds at once (at least one an SM): above the 64 MB bound at 128K, which is why it is an option.
TEST(SelectionWorkspace, OnePassAddsAScratchSlotAnSm) {
  SKIP_WITHOUT_GPU();
  alignas(16) static std::int32_t placeholder[4];
  cuda::GpuSelectionArgs args;
  args.q = make_view(placeholder, DType::kBF16, {1, 131072, 32, 128});
  args.k = make_view(placeholder, DType::kBF16, {1, 131072, 8, 128});
  args.kv_num_blocks = args.kv_indices = placeholder;
  int sms = 0;
  ASSERT_EQ(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0), cudaSuccess);
  const std::size_t slot_bytes = std::size_t{128} * (1024 / 8) * 9 * sizeof(float);
  for (const std::string method : {"rr", "xattn"}) {
    SelectorSettings one;
    one.rr.passes = one.xattn.passes = "one";
    const std::size_t two_bytes = cuda::GpuSelection(method, {}).workspace_size(args);
    const std::size_t one_bytes = cuda::GpuSelection(method, one).workspace_size(args);
    std::printf("  %s one-pass selection workspace at 128K: %.1f MB (two passes: %.1f MB; %d SMs)\n",
                method.c_str(), one_bytes / 1e6, two_bytes / 1e6, sms);
    EXPECT_GE(one_bytes - two_bytes, slot_bytes * static_cast<std::size_t>(sms)) << method;
    EXPECT_LE(one_bytes - two_bytes, slot_bytes * static_cast<std::size_t>(sms) + 4096) << method;
  }
}

}  // namespace
}  // namespace sparsefill
