// Argument checks shared by the CPU attention entries (see the header).
#include "reference/attention_validation.hpp"

#include <cmath>
#include <string>

#include "sparsefill/error.hpp"

namespace sparsefill {
namespace {

void check_outputs(const TensorView& q, const AttentionProblem& p, const BlockMask* mask,
                   const ReferenceOutputs& outputs) {
  const TensorView& out = outputs.out;
  require_data(out, "out");
  require(is_floating(out.dtype), "out", "dtype must be floating, got " + dtype_name(out.dtype));
  require(out.rank == q.rank, "out", "shape " + out.shape_string() + " differs from q's " + q.shape_string());
  for (int i = 0; i < q.rank; ++i) {
    require(out.shape[i] == q.shape[i], "out",
            "shape " + out.shape_string() + " differs from q's " + q.shape_string());
  }
  require(out.stride[out.rank - 1] == 1, "out", "the last dimension must be contiguous");
  if (outputs.lse.data) {
    const TensorView& lse = outputs.lse;
    require(lse.dtype == DType::kFP32 || lse.dtype == DType::kFP64, "lse", "dtype must be fp32 or fp64");
    require(lse.rank == 3 && lse.shape[0] == p.batch && lse.shape[1] == p.heads_q &&
                lse.shape[2] == p.max_seqlen_q() && lse.is_contiguous(),
            "lse", "must be contiguous [batch, heads_q, max_seqlen_q], got " + lse.shape_string());
  }
  if (outputs.block_mass.data) {
    const TensorView& m = outputs.block_mass;
    require(mask == nullptr, "block_mass", "is only defined for dense attention (mask must be null)");
    require(outputs.mass_block >= 1, "mass_block", "must be positive");
    require(m.dtype == DType::kFP32 || m.dtype == DType::kFP64, "block_mass", "dtype must be fp32 or fp64");
    require(m.rank == 4 && m.shape[0] == p.batch && m.shape[1] == p.heads_q &&
                m.shape[2] == ceil_div(p.max_seqlen_q(), outputs.mass_block) &&
                m.shape[3] == ceil_div(p.max_seqlen_k(), outputs.mass_block) && m.is_contiguous(),
            "block_mass",
            "must be contiguous [batch, heads_q, nQb, nKb] for block " + std::to_string(outputs.mass_block) +
                ", got " + m.shape_string());
  }
}

void check_key_order(const std::vector<std::int32_t>& order, const AttentionProblem& p) {
  const std::int64_t width = p.max_seqlen_k();
  require(static_cast<std::int64_t>(order.size()) == p.batch * p.heads_q * width, "key_order",
          "expected batch * heads_q * max_seqlen_k = " + std::to_string(p.batch * p.heads_q * width) +
              " entries, got " + std::to_string(order.size()));
  std::vector<char> seen(static_cast<std::size_t>(width));
  for (std::int64_t b = 0; b < p.batch; ++b) {
    for (std::int64_t h = 0; h < p.heads_q; ++h) {
      std::fill(seen.begin(), seen.end(), 0);
      const std::int32_t* row = order.data() + (b * p.heads_q + h) * width;
      for (std::int64_t pos = 0; pos < p.seqlen_k[b]; ++pos) {
        require(row[pos] >= 0 && row[pos] < p.seqlen_k[b] && !seen[row[pos]], "key_order",
                "row (" + std::to_string(b) + ", " + std::to_string(h) +
                    ") is not a permutation of the sequence's keys");
        seen[row[pos]] = 1;
      }
    }
  }
}

}  // namespace

AttentionProblem validate_attention_call(const TensorView& q, const TensorView& k, const TensorView& v,
                                         const VarlenSequences& varlen, const BlockMask* mask,
                                         const std::vector<std::int32_t>* key_order,
                                         const AttentionOptions& options, const ReferenceOutputs& outputs) {
  const AttentionProblem problem = describe_attention(q, k, v, varlen);
  if (mask) mask->validate_for(problem);
  if (key_order) check_key_order(*key_order, problem);
  require(all_finite(q), "q", "contains NaN or Inf");
  require(all_finite(k), "k", "contains NaN or Inf");
  require(all_finite(v), "v", "contains NaN or Inf");
  check_outputs(q, problem, mask, outputs);
  require(std::isfinite(options.scale) && options.scale >= 0, "scale", "must be finite and >= 0");
  return problem;
}

}  // namespace sparsefill
