// PBS-Attn (algorithms.md §3): a global-importance proxy from the last block of queries orders the keys (and
// values) inside fixed segments, heavy keys first; blocks are then selected on the permuted keys by mean
// pooling over candidates outside the query block's own segment (T2, tau 0.9), plus the block holding
// original token 0 and every block of the own segment. Queries stay in place, so the output needs no inverse
// permutation. Choices where the reference is loose (documented in docs/selectors.md): keys with equal proxy
// scores keep their original order (the reference's argsort is not stable); scores are fp32-exact (fp64
// here). The two steps (importance, then the mask of a key order) are public: selector.hpp.
#include <algorithm>
#include <cmath>
#include <numeric>

#include "select/selector_common.hpp"
#include "select/selectors.hpp"
#include "select/top_p_rules.hpp"
#include "sparsefill/error.hpp"

namespace sparsefill {
namespace {

// The problem of a PBS call, after the checks of its conditions.
AttentionProblem checked_problem(const SelectorInputs& in, const PBSConfig& c) {
  const AttentionProblem p = describe_attention(in.q, in.k, in.v, in.varlen);
  const std::int64_t B = in.block_size, S = c.segment;
  require(in.causal, "causal", "PBS-Attn is defined for causal attention only");
  require(S >= B && S % B == 0, "pbs.segment", "must be a positive multiple of the block size " + std::to_string(B));
  require(c.tau > 0 && c.tau <= 1, "pbs.tau", "must be in (0, 1]");
  for (std::int64_t b = 0; b < p.batch; ++b) {
    require(p.seqlen_q[b] == p.seqlen_k[b], "k", "PBS-Attn needs seqlen_q == seqlen_k (prefill without a prefix)");
  }
  return p;
}

// The keys a sequence of L tokens ranks: those of complete segments, none when L fits one segment (the
// reference's dense fallback).
std::int64_t ranked_keys(std::int64_t L, std::int64_t S) { return L > S ? (L / S) * S : 0; }

// s[j] = mean over the last B queries of softmax_j(q . k_j / sqrt(d)) over the keys of complete segments,
// with no causal mask (as the reference computes it).
std::vector<double> proxy_importance(const std::vector<float>& q, const std::vector<float>& k, std::int64_t L,
                                     std::int64_t complete, std::int64_t B, std::int64_t d) {
  std::vector<double> importance(static_cast<std::size_t>(complete), 0.0), logits(static_cast<std::size_t>(complete));
  const std::int64_t rows = std::min(B, L);
  const double scale = 1.0 / std::sqrt(static_cast<double>(d));
  for (std::int64_t r = L - rows; r < L; ++r) {
    double m = -1e300;
    for (std::int64_t j = 0; j < complete; ++j) {
      double s = 0;
      for (std::int64_t c = 0; c < d; ++c) s += static_cast<double>(q[r * d + c]) * k[j * d + c];
      logits[j] = s * scale;
      m = std::max(m, logits[j]);
    }
    double z = 0;
    for (double& l : logits) z += (l = std::exp(l - m));
    for (std::int64_t j = 0; j < complete; ++j) importance[j] += logits[j] / z / static_cast<double>(rows);
  }
  return importance;
}

// Error("key_order") unless `order` (one sequence's row of L positions) permutes keys only inside complete
// segments.
void check_segmented(const std::int32_t* order, std::int64_t L, std::int64_t S) {
  const std::int64_t complete = ranked_keys(L, S);
  std::vector<char> seen(static_cast<std::size_t>(S));
  for (std::int64_t g = 0; g < L; g += S) {
    std::fill(seen.begin(), seen.end(), 0);
    for (std::int64_t pos = g; pos < std::min(g + S, L); ++pos) {
      const std::int64_t key = order[pos];
      const bool inside = pos < complete ? key >= g && key < g + S && !seen[static_cast<std::size_t>(key - g)] : key == pos;
      require(inside, "key_order",
              "position " + std::to_string(pos) + " holds key " + std::to_string(key) +
                  ": keys may move only inside complete segments of " + std::to_string(S));
      if (pos < complete) seen[static_cast<std::size_t>(key - g)] = 1;
    }
  }
}

class PBSSelector final : public Selector {
 public:
  explicit PBSSelector(const PBSConfig& c) : c_(c) {}
  std::string name() const override { return "pbs"; }

  Selection select(const SelectorInputs& in) const override {
    const AttentionProblem p = checked_problem(in, c_);
    const std::int64_t width = p.max_seqlen_k(), S = c_.segment;
    const std::vector<double> importance = pbs_importance(in, c_);
    std::vector<std::int32_t> key_order(static_cast<std::size_t>(p.batch * p.heads_q * width), 0);
    for (std::int64_t b = 0; b < p.batch; ++b)
      for (std::int64_t h = 0; h < p.heads_q; ++h) {
        const std::int64_t row = (b * p.heads_q + h) * width, L = p.seqlen_q[b];
        std::int32_t* order = key_order.data() + row;
        std::iota(order, order + L, 0);
        for (std::int64_t g = 0; g < ranked_keys(L, S); g += S)
          std::stable_sort(order + g, order + g + S,
                           [&](std::int32_t a, std::int32_t c) { return importance[row + a] > importance[row + c]; });
      }
    return pbs_select_with_order(in, c_, std::move(key_order));
  }

 private:
  PBSConfig c_;
};

}  // namespace

std::vector<double> pbs_importance(const SelectorInputs& in, const PBSConfig& config) {
  const AttentionProblem p = checked_problem(in, config);
  const std::int64_t width = p.max_seqlen_k(), d = p.head_dim;
  std::vector<double> importance(static_cast<std::size_t>(p.batch * p.heads_q * width), 0.0);
  for (std::int64_t b = 0; b < p.batch; ++b) {
    const std::int64_t L = p.seqlen_q[b], complete = ranked_keys(L, config.segment);
    if (complete == 0) continue;
    for (std::int64_t h = 0; h < p.heads_q; ++h) {
      const std::vector<float> q = load_head_rows(in.q, p, true, b, h);
      const std::vector<float> k = load_head_rows(in.k, p, false, b, p.kv_head_of(h));
      const std::vector<double> s = proxy_importance(q, k, L, complete, in.block_size, d);
      std::copy(s.begin(), s.end(), importance.begin() + (b * p.heads_q + h) * width);
    }
  }
  return importance;
}

Selection pbs_select_with_order(const SelectorInputs& in, const PBSConfig& config,
                                std::vector<std::int32_t> key_order) {
  const AttentionProblem p = checked_problem(in, config);
  const std::int64_t B = in.block_size, S = config.segment, d = p.head_dim, width = p.max_seqlen_k();
  require(static_cast<std::int64_t>(key_order.size()) == p.batch * p.heads_q * width, "key_order",
          "must hold batch * heads_q * max_seqlen_k = " + std::to_string(p.batch * p.heads_q * width) + " entries");
  Selection out;
  out.segment = S;
  out.key_order = std::move(key_order);
  out.mask = build_per_head_mask(p, B, [&](std::int64_t b, std::int64_t h, BlockMask& mask) {
    const std::int64_t L = p.seqlen_q[b];
    const std::int32_t* order = out.key_order.data() + (b * p.heads_q + h) * width;
    check_segmented(order, L, S);
    const BlockGeometry geo(L, L, B, true);
    if (ranked_keys(L, S) == 0) {  // the reference falls back to dense causal attention
      for (std::int64_t u = 0; u < geo.nq; ++u) mask.set_row(b, h, u, geo.candidates(u));
      return;
    }
    const std::vector<float> q = load_head_rows(in.q, p, true, b, h);
    const std::vector<float> k = load_head_rows(in.k, p, false, b, p.kv_head_of(h));
    std::vector<float> permuted(k.size());
    for (std::int64_t pos = 0; pos < L; ++pos) std::copy_n(k.data() + order[pos] * d, d, permuted.data() + pos * d);
    const std::vector<double> pq = pool_blocks(q, L, d, B), pk = pool_blocks(permuted, L, d, B);
    const std::int64_t blocks_per_segment = S / B;
    const std::int32_t sink_block = static_cast<std::int32_t>((std::find(order, order + L, 0) - order) / B);
    const double scale = 1.0 / std::sqrt(static_cast<double>(d));
    std::vector<double> logits(static_cast<std::size_t>(geo.nk)), probs(static_cast<std::size_t>(geo.nk));
    for (std::int64_t u = 0; u < geo.nq; ++u) {
      const std::int64_t segment = u / blocks_per_segment;
      std::vector<std::int32_t> candidates, own;
      for (std::int32_t v : geo.candidates(u)) {
        if (v / blocks_per_segment != segment) candidates.push_back(v);
      }
      for (std::int64_t v = segment * blocks_per_segment; v < std::min(geo.nk, (segment + 1) * blocks_per_segment); ++v) {
        own.push_back(static_cast<std::int32_t>(v));
      }
      for (std::int32_t v : candidates) logits[v] = dot_product(pq.data() + u * d, pk.data() + v * d, d) * scale;
      std::vector<std::int32_t> kept;
      if (softmax_over(logits.data(), candidates, geo.nk, probs.data()))
        kept = select_t2(probs.data(), candidates, config.tau, 1.0);
      mask.set_row(b, h, u, merge_blocks(merge_blocks(kept, {sink_block}), own));
    }
  });
  return out;
}

std::unique_ptr<Selector> make_pbs_selector(const PBSConfig& config) {
  return std::make_unique<PBSSelector>(config);
}

}  // namespace sparsefill
