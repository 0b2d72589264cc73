// RRAttention (algorithms.md §2): per stride of S tokens one sampled query whose in-stride offset rotates
// with the head (round-robin), scored against stride-summed keys with scale 1/(S sqrt(d)), softmax over the
// allowed key strides, probabilities summed into blocks, then top-tau: v1 = T3 (the default, as released), v2
// = T1 then AND the causal blocks, OR column 0 and the diagonal. Finally the sink column and the whole last
// query-block row. GQA is native: stride sums are computed once per KV head, exactly (fp64) or, with
// key_sums = rounded, cast to K's dtype as the released v2 kernel does.
#include <cmath>

#include "select/selector_common.hpp"
#include "select/selectors.hpp"
#include "select/top_p_rules.hpp"
#include "sparsefill/error.hpp"

namespace sparsefill {
namespace {

AttentionProblem checked_problem(const SelectorInputs& in, const RRConfig& c) {
  c.check(in.block_size);
  return describe_attention(in.q, in.k, in.v, in.varlen);
}

// Stride sums of KV head g's keys in sequence b, [key strides, d]: fp64, or rounded to K's dtype.
std::vector<double> stride_key_sums(const SelectorInputs& in, const AttentionProblem& p, const RRConfig& c,
                                    std::int64_t b, std::int64_t g) {
  const std::int64_t S = c.stride, d = p.head_dim;
  const std::vector<float> keys = load_head_rows(in.k, p, false, b, g);
  std::vector<double> sums(static_cast<std::size_t>(ceil_div(p.seqlen_k[b], S) * d), 0.0);
  for (std::int64_t s = 0; s < p.seqlen_k[b]; ++s) {
    for (std::int64_t e = 0; e < d; ++e) sums[(s / S) * d + e] += keys[s * d + e];
  }
  if (c.key_sums == "rounded") {
    for (double& sum : sums) sum = round_to_dtype(static_cast<double>(static_cast<float>(sum)), in.k.dtype);
  }
  return sums;
}

// (b, h)'s block scores, [nq, nk] of the sequence's block geometry: each sampled query's stride probabilities
// summed into its block row and key blocks.
std::vector<double> head_block_scores(const SelectorInputs& in, const AttentionProblem& p, const RRConfig& c,
                                      std::int64_t b, std::int64_t h, const std::vector<double>& keys) {
  const std::int64_t S = c.stride, B = in.block_size, d = p.head_dim, per_block = B / S;
  const std::int64_t lq = p.seqlen_q[b], lk = p.seqlen_k[b];
  const BlockGeometry geo(lq, lk, B, in.causal);
  const std::vector<float> queries = load_head_rows(in.q, p, true, b, h);
  const std::int64_t key_strides = ceil_div(lk, S);
  const std::int64_t offset = c.offset == "mirrored" ? S - 1 - (h % S) : h % S;
  const double scale = 1.0 / (static_cast<double>(S) * std::sqrt(static_cast<double>(d)));
  return stride_block_scores(
      geo, ceil_div(lq, S), key_strides, per_block, [&](std::int64_t i, double* logits) {
        const std::int64_t t = i * S + offset;
        if (t >= lq) return std::int64_t{0};  // the sampled query is padding: its row contributes nothing
        // Key stride j is allowed iff its first token is visible to the sampled query (v2's token form).
        const std::int64_t limit = in.causal ? t + lk - lq : lk - 1;
        std::int64_t j = 0;
        for (; j < key_strides && j * S <= limit; ++j)
          logits[j] = dot_product(queries.data() + t * d, keys.data() + j * d, d) * scale;
        return j;
      });
}

std::vector<std::vector<std::vector<double>>> all_stride_key_sums(const SelectorInputs& in,
                                                                  const AttentionProblem& p,
                                                                  const RRConfig& c) {
  std::vector<std::vector<std::vector<double>>> sums(static_cast<std::size_t>(p.batch));
  for (std::int64_t b = 0; b < p.batch; ++b)
    for (std::int64_t g = 0; g < p.heads_kv; ++g) sums[b].push_back(stride_key_sums(in, p, c, b, g));
  return sums;
}

class RRSelector final : public Selector {
 public:
  explicit RRSelector(const RRConfig& c) : c_(c) {}
  std::string name() const override { return "rr"; }

  Selection select(const SelectorInputs& in) const override {
    const AttentionProblem p = checked_problem(in, c_);
    const std::int64_t B = in.block_size;
    const auto stride_keys = all_stride_key_sums(in, p, c_);
    Selection out;
    out.mask = build_per_head_mask(p, B, [&](std::int64_t b, std::int64_t h, BlockMask& mask) {
      const BlockGeometry geo(p.seqlen_q[b], p.seqlen_k[b], B, in.causal);
      const std::vector<double> blocks = head_block_scores(in, p, c_, b, h, stride_keys[b][p.kv_head_of(h)]);
      for (std::int64_t u = 0; u < geo.nq; ++u) {
        const double* row = blocks.data() + u * geo.nk;
        std::vector<std::int32_t> kept;
        if (c_.rule == "v1") {
          kept = select_t3_row(row, geo, u, geo.shift > 0, c_.tau, c_.t3 != "clean");
        } else {
          double total = 0;
          for (std::int64_t v = 0; v < geo.nk; ++v) total += row[v];
          if (total > 0) kept = geo.causal_only(u, select_t1(row, block_range(geo.nk), c_.tau, total));
          kept = geo.with_forced(u, std::move(kept), true, true);
        }
        kept = geo.with_forced(u, std::move(kept), c_.keep_sink, false);
        if (c_.keep_last_row && u == geo.nq - 1) kept = geo.candidates(u);
        mask.set_row(b, h, u, std::move(kept));
      }
    });
    return out;
  }

 private:
  RRConfig c_;
};

}  // namespace

std::unique_ptr<Selector> make_rr_selector(const RRConfig& config) {
  config.check();
  return std::make_unique<RRSelector>(config);
}

std::vector<double> rr_block_scores(const SelectorInputs& in, const RRConfig& config) {
  const AttentionProblem p = checked_problem(in, config);
  const auto stride_keys = all_stride_key_sums(in, p, config);
  return gather_block_scores(p, in.block_size, [&](std::int64_t b, std::int64_t h) {
    return head_block_scores(in, p, config, b, h, stride_keys[b][p.kv_head_of(h)]);
  });
}

}  // namespace sparsefill
