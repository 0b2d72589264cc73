// XAttention (algorithms.md §4.2): antidiagonal stride scoring. Stride row i of Q holds its S queries in
// reverse order, stride column j of K its S keys in order, so their dot product sums the antidiagonal of the
// S x S sub-block; scale 1/(sqrt(d) S); softmax over the allowed key strides; sums over (B/S) x (B/S) tiles;
// T3 per row with the reference's chunked forcing (column 0 only forced in chunks past the first);
// block-causal tril. Departure, documented: the reference aligns causality at chunk granularity for seqlen_k
// > seqlen_q; we use the library's rule (key stride j allowed iff j <= i + (seqlen_k - seqlen_q) / S) and
// diagonal u + nk - nq.
#include <cmath>

#include "select/selector_common.hpp"
#include "select/selectors.hpp"
#include "select/top_p_rules.hpp"
#include "sparsefill/error.hpp"

namespace sparsefill {
namespace {

std::int64_t next_pow2(std::int64_t x) {
  std::int64_t p = 1;
  while (p < x) p <<= 1;
  return p;
}

AttentionProblem checked_problem(const SelectorInputs& in, const XAttentionConfig& c) {
  c.check(in.block_size);
  return describe_attention(in.q, in.k, in.v, in.varlen);
}

// (b, h)'s block scores, [nq, nk] of the sequence's block geometry: each stride row's antidiagonal
// probabilities summed into its block row and key blocks.
std::vector<double> head_block_scores(const SelectorInputs& in, const AttentionProblem& p,
                                      const XAttentionConfig& c, std::int64_t b, std::int64_t h) {
  const std::int64_t S = c.stride, B = in.block_size, d = p.head_dim, per_block = B / S;
  const std::int64_t lq = p.seqlen_q[b], lk = p.seqlen_k[b];
  const BlockGeometry geo(lq, lk, B, in.causal);
  const std::vector<float> q = load_head_rows(in.q, p, true, b, h);
  const std::vector<float> k = load_head_rows(in.k, p, false, b, p.kv_head_of(h));
  const std::int64_t key_strides = ceil_div(lk, S), stride_shift = (lk - lq) / S;
  const double scale = 1.0 / (std::sqrt(static_cast<double>(d)) * static_cast<double>(S));
  return stride_block_scores(geo, ceil_div(lq, S), key_strides, per_block,
                             [&](std::int64_t i, double* logits) {
                               std::int64_t j = 0;
                               for (; j < key_strides && (!in.causal || j <= i + stride_shift); ++j) {
                                 double s = 0;
                                 for (std::int64_t t = 0; t < S; ++t) {
                                   const std::int64_t qi = i * S + S - 1 - t, kj = j * S + t;
                                   if (qi >= lq || kj >= lk) continue;  // zero padding
                                   for (std::int64_t e = 0; e < d; ++e)
                                     s += static_cast<double>(q[qi * d + e]) * k[kj * d + e];
                                 }
                                 logits[j] = s * scale;
                               }
                               return j;
                             });
}

class XAttentionSelector final : public Selector {
 public:
  explicit XAttentionSelector(const XAttentionConfig& c) : c_(c) {}
  std::string name() const override { return "xattn"; }

  Selection select(const SelectorInputs& in) const override {
    const AttentionProblem p = checked_problem(in, c_);
    const std::int64_t B = in.block_size;
    Selection out;
    out.mask = build_per_head_mask(p, B, [&](std::int64_t b, std::int64_t h, BlockMask& mask) {
      const std::int64_t lk = p.seqlen_k[b];
      const BlockGeometry geo(p.seqlen_q[b], lk, B, in.causal);
      const std::vector<double> blocks = head_block_scores(in, p, c_, b, h);
      const std::int64_t chunk_blocks = (c_.chunk_size > 0 ? c_.chunk_size : reference_chunk_size(lk)) / B;
      for (std::int64_t u = 0; u < geo.nq; ++u) {
        const std::int64_t current_index = geo.shift + (u / chunk_blocks) * chunk_blocks;
        std::vector<std::int32_t> kept =
            select_t3_row(blocks.data() + u * geo.nk, geo, u, current_index > 0, c_.tau, c_.t3 != "clean");
        if (c_.keep_sink && u == 0) kept = block_range(geo.nk);
        mask.set_row(b, h, u, geo.with_forced(u, std::move(kept), false, c_.keep_recent));
      }
    });
    return out;
  }

  // Xattention_prefill's default: max(min(max(2048, next_pow2(L)), 128 * 1024 * 2048 / next_pow2(L)), 2048).
  static std::int64_t reference_chunk_size(std::int64_t lk) {
    const std::int64_t p2 = next_pow2(lk);
    return std::max<std::int64_t>(
        std::min<std::int64_t>(std::max<std::int64_t>(2048, p2), 128 * 1024 * 2048 / p2), 2048);
  }

 private:
  XAttentionConfig c_;
};

}  // namespace

std::unique_ptr<Selector> make_xattention_selector(const XAttentionConfig& config) {
  config.check();
  return std::make_unique<XAttentionSelector>(config);
}

std::vector<double> xattention_block_scores(const SelectorInputs& in, const XAttentionConfig& config) {
  const AttentionProblem p = checked_problem(in, config);
  return gather_block_scores(p, in.block_size, [&](std::int64_t b, std::int64_t h) {
    return head_block_scores(in, p, config, b, h);
  });
}

}  // namespace sparsefill
