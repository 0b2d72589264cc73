// Mean pooling (algorithms.md §4.1): softmax over block-causal key blocks of pooled Q . pooled K / sqrt(d),
// then T1, T2 or top-k, with the sink column and the diagonal forced (PBS's "MeanPooling" baseline: T2, 0.9).
#include <cmath>

#include "select/selector_common.hpp"
#include "select/selectors.hpp"
#include "select/top_p_rules.hpp"
#include "sparsefill/error.hpp"

namespace sparsefill {
namespace {

// The causal block softmax of one (sequence, query head): probs[u * nk + v], the probability of key block v
// in row u (zeros outside the row's candidates), logits pooled q . pooled k / sqrt(d); geo: the sequence's
// block geometry.
struct HeadProbabilities {
  BlockGeometry geo;
  std::vector<double> probs;
};

HeadProbabilities head_probabilities(const SelectorInputs& in, const AttentionProblem& p,
                                     const std::vector<double>& pk, std::int64_t b, std::int64_t h) {
  const std::int64_t B = in.block_size, d = p.head_dim;
  const double scale = 1.0 / std::sqrt(static_cast<double>(d));
  const std::vector<double> pq = pool_blocks(load_head_rows(in.q, p, true, b, h), p.seqlen_q[b], d, B);
  HeadProbabilities out{BlockGeometry(p.seqlen_q[b], p.seqlen_k[b], B, in.causal), {}};
  const BlockGeometry& geo = out.geo;
  out.probs.assign(static_cast<std::size_t>(geo.nq * geo.nk), 0.0);
  std::vector<double> logits(static_cast<std::size_t>(geo.nk));
  for (std::int64_t u = 0; u < geo.nq; ++u) {
    const std::vector<std::int32_t> candidates = geo.candidates(u);
    for (std::int32_t v : candidates)
      logits[v] = dot_product(pq.data() + u * d, pk.data() + v * d, d) * scale;
    softmax_over(logits.data(), candidates, geo.nk, out.probs.data() + u * geo.nk);
  }
  return out;
}

class MeanPoolSelector final : public Selector {
 public:
  explicit MeanPoolSelector(const MeanPoolConfig& c) : c_(c) {}
  std::string name() const override { return "meanpool"; }

  Selection select(const SelectorInputs& in) const override {
    const AttentionProblem p = describe_attention(in.q, in.k, in.v, in.varlen);
    const auto pooled_keys = pool_keys_per_kv_head(in.k, p, in.block_size);
    Selection out;
    out.mask = build_per_head_mask(p, in.block_size, [&](std::int64_t b, std::int64_t h, BlockMask& mask) {
      const HeadProbabilities head = head_probabilities(in, p, pooled_keys[b][p.kv_head_of(h)], b, h);
      const BlockGeometry& geo = head.geo;
      for (std::int64_t u = 0; u < geo.nq; ++u) {
        const std::vector<std::int32_t> candidates = geo.candidates(u);
        const double* probs = head.probs.data() + u * geo.nk;
        std::vector<std::int32_t> kept;
        if (!candidates.empty()) {
          if (c_.rule == "t1") kept = select_t1(probs, candidates, c_.threshold, 1.0);
          if (c_.rule == "t2") kept = select_t2(probs, candidates, c_.threshold, 1.0);
          if (c_.rule == "t4") kept = select_t4(probs, candidates, c_.threshold, 1.0);
          if (c_.rule == "t5") kept = select_t5(probs, candidates, c_.threshold, 1.0);
          if (c_.rule == "topk") kept = select_top_k(probs, candidates, c_.top_k);
        }
        mask.set_row(b, h, u, geo.with_forced(u, std::move(kept), c_.force_sink, c_.force_diagonal));
      }
    });
    return out;
  }

 private:
  MeanPoolConfig c_;
};

}  // namespace

std::unique_ptr<Selector> make_meanpool_selector(const MeanPoolConfig& config) {
  require(config.rule == "t1" || config.rule == "t2" || config.rule == "t4" || config.rule == "t5" ||
              config.rule == "topk",
          "meanpool.rule", "must be t1, t2, t4, t5 or topk");
  require(config.rule == "topk" ? config.top_k >= 1 : config.threshold > 0 && config.threshold <= 1,
          config.rule == "topk" ? "meanpool.top-k" : "meanpool.threshold", "out of range");
  return std::make_unique<MeanPoolSelector>(config);
}

std::vector<double> meanpool_block_scores(const SelectorInputs& in) {
  const AttentionProblem p = describe_attention(in.q, in.k, in.v, in.varlen);
  const auto pooled_keys = pool_keys_per_kv_head(in.k, p, in.block_size);
  return gather_block_scores(p, in.block_size, [&](std::int64_t b, std::int64_t h) {
    return head_probabilities(in, p, pooled_keys[b][p.kv_head_of(h)], b, h).probs;
  });
}

}  // namespace sparsefill
