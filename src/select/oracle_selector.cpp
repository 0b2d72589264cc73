// Oracle: T1 top-p on the true block attention mass (from one dense reference pass): the accuracy ceiling of
// any block selector at its density.
#include "select/selector_common.hpp"
#include "select/selectors.hpp"
#include "select/top_p_rules.hpp"
#include "sparsefill/error.hpp"
#include "sparsefill/reference_attention.hpp"

namespace sparsefill {
namespace {

class OracleSelector final : public Selector {
 public:
  explicit OracleSelector(const OracleConfig& c) : c_(c) {}
  std::string name() const override { return "oracle"; }

  Selection select(const SelectorInputs& in) const override {
    const AttentionProblem p = describe_attention(in.q, in.k, in.v, in.varlen);
    const std::int64_t B = in.block_size;
    std::vector<std::int64_t> shape(in.q.shape.begin(), in.q.shape.begin() + in.q.rank);
    HostTensor scratch(DType::kFP32, shape);
    HostTensor mass(DType::kFP64,
                    {p.batch, p.heads_q, ceil_div(p.max_seqlen_q(), B), ceil_div(p.max_seqlen_k(), B)});
    ReferenceOptions options;
    options.attention.causal = in.causal;
    reference_attention(in.q, in.k, in.v, in.varlen, nullptr, options, {scratch.view(), {}, mass.view(), B});
    const std::int64_t nq = mass.shape()[2], nk = mass.shape()[3];
    Selection out;
    out.mask = build_per_head_mask(p, B, [&](std::int64_t b, std::int64_t h, BlockMask& mask) {
      const BlockGeometry geo(p.seqlen_q[b], p.seqlen_k[b], B, in.causal);
      for (std::int64_t u = 0; u < geo.nq; ++u) {
        const double* row = mass.ptr<double>() + ((b * p.heads_q + h) * nq + u) * nk;
        double total = 0;
        for (std::int64_t v = 0; v < nk; ++v) total += row[v];
        std::vector<std::int32_t> visible;
        for (std::int64_t v = 0; v < nk; ++v) {
          if (row[v] > 0) visible.push_back(static_cast<std::int32_t>(v));
        }
        mask.set_row(b, h, u, total > 0 ? select_t1(row, visible, c_.p, total) : std::vector<std::int32_t>{});
      }
    });
    return out;
  }

 private:
  OracleConfig c_;
};

}  // namespace

std::unique_ptr<Selector> make_oracle_selector(const OracleConfig& config) {
  require(config.p > 0 && config.p <= 1, "oracle.p", "must be in (0, 1]");
  return std::make_unique<OracleSelector>(config);
}

}  // namespace sparsefill
