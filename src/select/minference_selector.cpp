// MInference vertical-slash (algorithms.md §4.4): the last 64 queries' attention (scale 1/sqrt(128),
// hard-coded in the reference) gives column sums (verticals; the first 30 columns always kept) and diagonal
// sums (slashes; the 100 most recent diagonals always kept); the top vertical_size columns and slash_size
// diagonals are kept and rasterised to the block size: a block is selected when it holds a kept column or
// diagonal visible to one of its queries.
#include <algorithm>
#include <cmath>
#include <limits>

#include "select/selector_common.hpp"
#include "select/selectors.hpp"
#include "select/top_p_rules.hpp"
#include "sparsefill/error.hpp"

namespace sparsefill {
namespace {

constexpr std::int64_t kForcedColumns = 30;
constexpr std::int64_t kForcedDiagonals = 100;
constexpr std::int64_t kMinVertical = 30;
constexpr std::int64_t kMinSlash = 50;
constexpr double kReferenceScale = 0.08838834764831845;  // 1 / sqrt(128), as hard-coded in the reference

void check_config(const MInferenceConfig& c) {
  require(c.vertical_size >= 1, "minference.vertical-size", "must be positive");
  require(c.slash_size >= 1, "minference.slash-size", "must be positive");
}

AttentionProblem checked_problem(const SelectorInputs& in, const MInferenceConfig& c) {
  const AttentionProblem p = describe_attention(in.q, in.k, in.v, in.varlen);
  require(in.causal, "causal", "MInference vertical-slash is defined for causal attention only");
  require(c.last_q >= 1, "minference.last-q", "must be positive");
  return p;
}

// The lines of (b, h) the top-k ranks: column sums and diagonal sums (by offset from the query's bottom-right
// aligned diagonal) of the last queries' attention, forced lines +inf, and how many of each are kept.
HeadRankedLines head_lines(const SelectorInputs& in, const AttentionProblem& p, const MInferenceConfig& c,
                           std::int64_t b, std::int64_t h) {
  const std::int64_t lq = p.seqlen_q[b], lk = p.seqlen_k[b], shift = lk - lq, d = p.head_dim;
  const std::vector<float> q = load_head_rows(in.q, p, true, b, h);
  const std::vector<float> k = load_head_rows(in.k, p, false, b, p.kv_head_of(h));
  const std::int64_t rows = std::min(c.last_q, lq);
  HeadRankedLines lines;
  lines.vertical.assign(static_cast<std::size_t>(lk), 0.0);
  lines.slash.assign(static_cast<std::size_t>(lk), 0.0);
  std::vector<double> logits(static_cast<std::size_t>(lk)), probs(static_cast<std::size_t>(lk));
  for (std::int64_t i = lq - rows; i < lq; ++i) {
    const std::int64_t last_key = std::min(lk - 1, i + shift);
    for (std::int64_t j = 0; j <= last_key; ++j) {
      double s = 0;
      for (std::int64_t x = 0; x < d; ++x) s += static_cast<double>(q[i * d + x]) * k[j * d + x];
      logits[j] = s * kReferenceScale;
    }
    if (!softmax_over(logits.data(), block_range(last_key + 1), lk, probs.data())) continue;
    for (std::int64_t j = 0; j <= last_key; ++j) {
      lines.vertical[j] += probs[j];
      lines.slash[i + shift - j] += probs[j];
    }
  }
  const double inf = std::numeric_limits<double>::infinity();
  for (std::int64_t j = 0; j < std::min(kForcedColumns, lk); ++j) lines.vertical[j] = inf;
  for (std::int64_t o = 0; o < std::min(kForcedDiagonals, lk); ++o) lines.slash[o] = inf;
  lines.keep_vertical = std::clamp(c.vertical_size, kMinVertical, lk);
  lines.keep_slash = std::clamp(c.slash_size, kMinSlash, lk);
  return lines;
}

class MInferenceSelector final : public Selector {
 public:
  explicit MInferenceSelector(const MInferenceConfig& c) : c_(c) {}
  std::string name() const override { return "minference"; }

  Selection select(const SelectorInputs& in) const override {
    const AttentionProblem p = checked_problem(in, c_);
    const std::int64_t B = in.block_size;
    Selection out;
    out.mask = build_per_head_mask(p, B, [&](std::int64_t b, std::int64_t h, BlockMask& mask) {
      const std::int64_t lq = p.seqlen_q[b], lk = p.seqlen_k[b], shift = lk - lq;
      const HeadRankedLines lines = head_lines(in, p, c_, b, h);
      const std::vector<std::int32_t> columns =
          select_top_k(lines.vertical.data(), block_range(lk), lines.keep_vertical);
      const std::vector<std::int32_t> offsets =
          select_top_k(lines.slash.data(), block_range(lk), lines.keep_slash);
      const BlockGeometry geo(lq, lk, B, true);
      for (std::int64_t u = 0; u < geo.nq; ++u) {
        const std::int64_t first = u * B + shift,
                           last = std::min((u + 1) * B, lq) - 1 + shift;  // key positions
        std::vector<char> keep(static_cast<std::size_t>(geo.nk), 0);
        for (std::int32_t j : columns) {
          if (j <= last) keep[j / B] = 1;
        }
        for (std::int32_t o : offsets) {
          const std::int64_t lo = std::max<std::int64_t>(0, first - o), hi = std::min(lk - 1, last - o);
          for (std::int64_t v = lo / B; hi >= lo && v <= hi / B; ++v) keep[v] = 1;
        }
        std::vector<std::int32_t> kept;
        for (std::int64_t v = 0; v < geo.nk; ++v) {
          if (keep[v]) kept.push_back(static_cast<std::int32_t>(v));
        }
        mask.set_row(b, h, u, std::move(kept));
      }
    });
    return out;
  }

 private:
  MInferenceConfig c_;
};

}  // namespace

std::unique_ptr<Selector> make_minference_selector(const MInferenceConfig& config) {
  check_config(config);
  return std::make_unique<MInferenceSelector>(config);
}

RankedLines minference_line_scores(const SelectorInputs& in, const MInferenceConfig& config) {
  check_config(config);
  const AttentionProblem p = checked_problem(in, config);
  return gather_ranked_lines(p, p.max_seqlen_k(),
                             [&](std::int64_t b, std::int64_t h) { return head_lines(in, p, config, b, h); });
}

}  // namespace sparsefill
