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

class RRSelector final : public Selector {
 public:
  explicit RRSelector(const RRConfig& c) : c_(c) {}
  std::string name() const override { return "rr"; }

  Selection select(const SelectorInputs& in) const override {
    const AttentionProblem p = describe_attention(in.q, in.k, in.v, in.varlen);
    const std::int64_t S = c_.stride, B = in.block_size, d = p.head_dim;
    require(S >= 1 && B % S == 0, "rr.stride", "must divide the block size " + std::to_string(B));
    require(c_.tau > 0 && c_.tau <= 1, "rr.tau", "must be in (0, 1]");
    const std::int64_t per_block = B / S;
    std::vector<std::vector<std::vector<double>>> stride_keys(static_cast<std::size_t>(p.batch));
    for (std::int64_t b = 0; b < p.batch; ++b) {
      for (std::int64_t g = 0; g < p.heads_kv; ++g) {
        const std::vector<float> keys = load_head_rows(in.k, p, false, b, g);
        std::vector<double> sums(static_cast<std::size_t>(ceil_div(p.seqlen_k[b], S) * d), 0.0);
        for (std::int64_t s = 0; s < p.seqlen_k[b]; ++s) {
          for (std::int64_t c = 0; c < d; ++c) sums[(s / S) * d + c] += keys[s * d + c];
        }
        if (c_.key_sums == "rounded") {
          for (double& sum : sums) sum = round_to_dtype(static_cast<double>(static_cast<float>(sum)), in.k.dtype);
        }
        stride_keys[b].push_back(std::move(sums));
      }
    }
    Selection out;
    out.mask = build_per_head_mask(p, B, [&](std::int64_t b, std::int64_t h, BlockMask& mask) {
      const std::int64_t lq = p.seqlen_q[b], lk = p.seqlen_k[b];
      const BlockGeometry geo(lq, lk, B, in.causal);
      const std::vector<float> queries = load_head_rows(in.q, p, true, b, h);
      const std::vector<double>& keys = stride_keys[b][p.kv_head_of(h)];
      const std::int64_t key_strides = ceil_div(lk, S);
      const std::int64_t offset = c_.offset == "mirrored" ? S - 1 - (h % S) : h % S;
      const double scale = 1.0 / (static_cast<double>(S) * std::sqrt(static_cast<double>(d)));
      std::vector<double> blocks(static_cast<std::size_t>(geo.nq * geo.nk), 0.0);
      std::vector<double> logits(static_cast<std::size_t>(key_strides)),
          probs(static_cast<std::size_t>(key_strides));
      for (std::int64_t i = 0; i < ceil_div(lq, S); ++i) {
        const std::int64_t t = i * S + offset;
        if (t >= lq) continue;  // the sampled query is padding: its row contributes nothing
        // Key stride j is allowed iff its first token is visible to the sampled query (v2's token form).
        const std::int64_t limit = in.causal ? t + lk - lq : lk - 1;
        std::vector<std::int32_t> allowed;
        for (std::int64_t j = 0; j < key_strides && j * S <= limit; ++j) {
          logits[j] = dot_product(queries.data() + t * d, keys.data() + j * d, d) * scale;
          allowed.push_back(static_cast<std::int32_t>(j));
        }
        if (softmax_over(logits.data(), allowed, key_strides, probs.data())) {
          add_stride_row(probs.data(), key_strides, per_block, blocks.data() + (i / per_block) * geo.nk);
        }
      }
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
  require(config.rule == "v1" || config.rule == "v2", "rr.rule", "must be v1 or v2");
  require(config.key_sums == "exact" || config.key_sums == "rounded", "rr.key-sums", "must be exact or rounded");
  return std::make_unique<RRSelector>(config);
}

}  // namespace sparsefill
