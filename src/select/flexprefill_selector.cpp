// FlexPrefill (algorithms.md §4.3, following flex_prefill_attention.get_active_blocks): the last block of
// queries gives token-level vertical and slash distributions, whose gamma-coverage sets the vertical/slash
// budgets in blocks (count // 128 + 1, clamped to the token budgets); the sqrt Jensen-Shannon divergence
// between the pooled estimate softmax(mean last q . pooled K) and the block-pooled verticals picks
// "query-aware" heads (divergence < tau), which fall to the minimum budgets and add a pooled block-attention
// map cut by T5 (cumulative <= gamma * nQb over the flattened map). Vertical-slash heads take the top
// vertical blocks (block 0 forced) and the top slash diagonals (the main diagonal forced). Every index the
// reference pads with 0 selects block (0, 0), as there.
#include <algorithm>
#include <cmath>
#include <limits>

#include "select/selector_common.hpp"
#include "select/selectors.hpp"
#include "select/top_p_rules.hpp"
#include "sparsefill/error.hpp"

namespace sparsefill {
namespace {

constexpr std::int64_t kReferenceBudgetDivisor = 128;  // the reference divides token counts by 128 literally

// score_cover_topk: (number of sorted items with cumulative mass <= gamma) + 1.
std::int64_t cover_count(const std::vector<double>& x, double gamma) {
  std::vector<double> sorted = x;
  std::sort(sorted.begin(), sorted.end(), std::greater<double>());
  double cumulative = 0;
  std::int64_t count = 0;
  for (double v : sorted) {
    cumulative += v;
    if (cumulative > gamma) break;
    ++count;
  }
  return count + 1;
}

double sqrt_js_divergence(const std::vector<double>& a, const std::vector<double>& b) {
  auto term = [](double x, double m) { return x > 0 ? x * std::log(x / m) : 0.0; };
  double js = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    const double m = 0.5 * (a[i] + b[i]);
    if (m > 0) js += 0.5 * term(a[i], m) + 0.5 * term(b[i], m);
  }
  return std::sqrt(std::max(js, 0.0));
}

AttentionProblem checked_problem(const SelectorInputs& in, const FlexPrefillConfig& c) {
  const AttentionProblem p = describe_attention(in.q, in.k, in.v, in.varlen);
  require(in.causal, "causal", "FlexPrefill is defined for causal attention only");
  for (std::int64_t b = 0; b < p.batch; ++b) {
    require(p.seqlen_q[b] == p.seqlen_k[b], "k", "FlexPrefill needs seqlen_q == seqlen_k");
  }
  require(c.gamma > 0 && c.gamma <= 1, "flexprefill.gamma", "must be in (0, 1]");
  require(c.min_budget >= 1, "flexprefill.min-budget", "must be positive");
  require(c.max_budget >= 0, "flexprefill.max-budget", "must be >= 0");
  return p;
}

// Whether a sequence of L tokens runs dense, as in the reference.
bool runs_dense(const FlexPrefillConfig& c, std::int64_t L, std::int64_t B) {
  return L <= std::max(2 * B, ceil_div(c.min_budget, B) * B);
}

// A head's vertical-slash step: the block sums of the last block's vertical and slash distributions that the
// top-k ranks (block 0 of the verticals and the main diagonal's slash block forced, +inf), the budgets
// (blocks kept of each), and the head's class.
struct BlockLines {
  std::vector<double> vertical, slash;
  std::int64_t n_vertical = 0, n_slash = 0;
  bool query_aware = false;
};

BlockLines block_lines(const FlexPrefillConfig& c, const std::vector<float>& q, const std::vector<float>& k,
                       const std::vector<double>& pooled_k, std::int64_t L, std::int64_t B, std::int64_t d) {
  const std::int64_t nb = ceil_div(L, B);
  const double scale = 1.0 / std::sqrt(static_cast<double>(d));
  // Last-block attention: the last B queries against every key, causal inside the last block.
  std::vector<double> vertical(static_cast<std::size_t>(L), 0.0), slash(static_cast<std::size_t>(L), 0.0);
  std::vector<double> logits(static_cast<std::size_t>(L)), probs(static_cast<std::size_t>(L)),
      mean_q(static_cast<std::size_t>(d), 0.0);
  for (std::int64_t r = 0; r < B; ++r) {
    const std::int64_t i = L - B + r;
    for (std::int64_t x = 0; x < d; ++x)
      mean_q[x] += static_cast<double>(q[i * d + x]) * scale / static_cast<double>(B);
    for (std::int64_t j = 0; j <= i; ++j)
      logits[j] = dot_product(q.data() + i * d, k.data() + j * d, d) * scale;
    softmax_over(logits.data(), block_range(i + 1), L, probs.data());
    for (std::int64_t j = 0; j <= i; ++j) {
      vertical[j] += probs[j] / static_cast<double>(B);
      slash[L - 1 - (i - j)] += probs[j] / static_cast<double>(B);  // slash index j' <-> distance L - 1 - j'
    }
  }
  const std::int64_t min_blocks = ceil_div(c.min_budget, B);
  const std::int64_t max_blocks = std::min(nb, c.max_budget > 0 ? ceil_div(c.max_budget, B) : nb);
  BlockLines lines;
  lines.n_vertical =
      std::clamp(cover_count(vertical, c.gamma) / kReferenceBudgetDivisor + 1, min_blocks, max_blocks);
  lines.n_slash =
      std::clamp(cover_count(slash, c.gamma) / kReferenceBudgetDivisor + 1, min_blocks, max_blocks);
  lines.vertical.assign(static_cast<std::size_t>(nb), 0.0);
  lines.slash.assign(static_cast<std::size_t>(nb), 0.0);
  for (std::int64_t j = 0; j < L; ++j) {
    lines.vertical[j / B] += vertical[j];
    lines.slash[j / B] += slash[j];
  }
  // Head classification: pooled estimate against the block-pooled verticals.
  std::vector<double> estimate(static_cast<std::size_t>(nb));
  for (std::int64_t v = 0; v < nb; ++v) logits[v] = dot_product(mean_q.data(), pooled_k.data() + v * d, d);
  softmax_over(logits.data(), block_range(nb), nb, estimate.data());
  lines.query_aware = sqrt_js_divergence(estimate, lines.vertical) < c.tau;
  if (lines.query_aware) lines.n_vertical = lines.n_slash = min_blocks;
  lines.vertical[0] = std::numeric_limits<double>::infinity();
  lines.slash[nb - 1] = std::numeric_limits<double>::infinity();
  return lines;
}

class FlexPrefillSelector final : public Selector {
 public:
  explicit FlexPrefillSelector(const FlexPrefillConfig& c) : c_(c) {}
  std::string name() const override { return "flexprefill"; }

  Selection select(const SelectorInputs& in) const override {
    const AttentionProblem p = checked_problem(in, c_);
    const std::int64_t B = in.block_size;
    Selection out;
    out.mask = build_per_head_mask(p, B, [&](std::int64_t b, std::int64_t h, BlockMask& mask) {
      const std::int64_t L = p.seqlen_q[b];
      const BlockGeometry geo(L, L, B, true);
      if (runs_dense(c_, L, B)) {
        for (std::int64_t u = 0; u < geo.nq; ++u) mask.set_row(b, h, u, geo.candidates(u));
        return;
      }
      const std::vector<std::vector<char>> blocks = head_blocks(in, p, b, h, L, B);
      for (std::int64_t u = 0; u < geo.nq; ++u) {
        std::vector<std::int32_t> kept;
        for (std::int64_t v = 0; v <= u; ++v) {
          if (blocks[u][v]) kept.push_back(static_cast<std::int32_t>(v));
        }
        mask.set_row(b, h, u, std::move(kept));
      }
    });
    return out;
  }

 private:
  std::vector<std::vector<char>> head_blocks(const SelectorInputs& in, const AttentionProblem& p,
                                             std::int64_t b, std::int64_t h, std::int64_t L,
                                             std::int64_t B) const {
    const std::int64_t d = p.head_dim, nb = ceil_div(L, B);
    const std::vector<float> q = load_head_rows(in.q, p, true, b, h);
    const std::vector<float> k = load_head_rows(in.k, p, false, b, p.kv_head_of(h));
    const std::vector<double> pooled_k = pool_blocks(k, L, d, B, true);
    const BlockLines lines = block_lines(c_, q, k, pooled_k, L, B, d);
    std::vector<std::vector<char>> blocks(static_cast<std::size_t>(nb),
                                          std::vector<char>(static_cast<std::size_t>(nb), 0));
    blocks[0][0] = 1;
    for (std::int32_t v : select_top_k(lines.vertical.data(), block_range(nb), lines.n_vertical)) {
      for (std::int64_t u = v; u < nb; ++u) blocks[u][v] = 1;
    }
    for (std::int32_t s : select_top_k(lines.slash.data(), block_range(nb), lines.n_slash)) {
      const std::int64_t delta = nb - 1 - s;
      for (std::int64_t w = 0; w + delta < nb; ++w) blocks[w + delta][w] = 1;
    }
    if (lines.query_aware) add_pooled_map(q, pooled_k, L, B, d, blocks);
    return blocks;
  }

  // Pooled Q (true mean over the tokens present) . pooled K / sqrt(d), block-causal softmax per row,
  // flattened, T5 with gamma * nQb over the whole map.
  void add_pooled_map(const std::vector<float>& q, const std::vector<double>& pooled_k, std::int64_t L,
                      std::int64_t B, std::int64_t d, std::vector<std::vector<char>>& blocks) const {
    const std::int64_t nb = ceil_div(L, B);
    const std::vector<double> pooled_q = pool_blocks(q, L, d, B, true);
    const double scale = 1.0 / std::sqrt(static_cast<double>(d));
    std::vector<double> map(static_cast<std::size_t>(nb * nb), 0.0), logits(static_cast<std::size_t>(nb));
    for (std::int64_t u = 0; u < nb; ++u) {
      for (std::int64_t v = 0; v <= u; ++v)
        logits[v] = dot_product(pooled_q.data() + u * d, pooled_k.data() + v * d, d) * scale;
      softmax_over(logits.data(), block_range(u + 1), nb, map.data() + u * nb);
    }
    for (std::int32_t index :
         select_t5(map.data(), block_range(nb * nb), c_.gamma, static_cast<double>(nb))) {
      blocks[index / nb][index % nb] =
          1;  // rejected entries are padded with index 0: block (0, 0), set already
    }
  }

  FlexPrefillConfig c_;
};

}  // namespace

std::unique_ptr<Selector> make_flexprefill_selector(const FlexPrefillConfig& config) {
  return std::make_unique<FlexPrefillSelector>(config);
}

RankedLines flexprefill_block_line_scores(const SelectorInputs& in, const FlexPrefillConfig& config) {
  const AttentionProblem p = checked_problem(in, config);
  const std::int64_t B = in.block_size, d = p.head_dim;
  return gather_ranked_lines(p, ceil_div(p.max_seqlen_k(), B), [&](std::int64_t b, std::int64_t h) {
    const std::int64_t L = p.seqlen_q[b];
    if (runs_dense(config, L, B)) return HeadRankedLines{};
    const std::vector<float> q = load_head_rows(in.q, p, true, b, h);
    const std::vector<float> k = load_head_rows(in.k, p, false, b, p.kv_head_of(h));
    BlockLines lines = block_lines(config, q, k, pool_blocks(k, L, d, B, true), L, B, d);
    return HeadRankedLines{std::move(lines.vertical), std::move(lines.slash), lines.n_vertical,
                           lines.n_slash};
  });
}

}  // namespace sparsefill
