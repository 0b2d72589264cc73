// Host side of FlexPrefill on the GPU (see flexprefill_selection.hpp): checks, parameters, the launcher.
#include "select/flexprefill_selection.hpp"

#include <algorithm>
#include <cmath>
#include <string>

#include "common/cuda_check.hpp"
#include "select/flexprefill_launches.cuh"
#include "select/last_rows_params.hpp"
#include "sparsefill/error.hpp"

namespace sparsefill::cuda {
namespace {

// Parameters with the shapes set and no buffers (bind_flexprefill_workspace points them).
select::FlexParams flex_params(const SelectorSettings& settings, const GpuSelectionArgs& args, const Geometry& g) {
  const select::Lengths lengths{g.varlen ? args.cu_seqlens_q : nullptr, g.varlen ? args.cu_seqlens_k : nullptr, g.lq,
                                g.lk, static_cast<int>(args.block_size)};
  select::FlexParams fp{};
  fp.lines.rows = last_rows_params(args, g, lengths);
  fp.lines.rows.rows = static_cast<int>(args.block_size);
  fp.lines.rows.scale = 1.0 / std::sqrt(static_cast<double>(g.d));
  fp.lines.rows.causal = 1;
  fp.lines.rows.chunks = last_rows_chunks(g);
  fp.lines.term_divisor = static_cast<double>(args.block_size);
  fp.lines.nq = g.nq;
  fp.lines.nk = g.nk;
  fp.lines.kv_num_blocks = args.kv_num_blocks;
  fp.lines.kv_indices = args.kv_indices;
  const FlexPrefillConfig& c = settings.flexprefill;
  fp.gamma = c.gamma;
  fp.tau = c.tau;
  fp.min_budget = static_cast<int>(std::min<std::int64_t>(c.min_budget, 1 << 30));
  fp.max_budget = static_cast<int>(std::min<std::int64_t>(c.max_budget, 1 << 30));
  return fp;
}

template <typename Element, int kItems>
void launch(const select::FlexParams& fp, cudaStream_t stream) {
  select::launch_flexprefill<Element, kItems>(fp, [&](auto kernel, select::LaunchGrid grid, int threads,
                                                      std::size_t smem, auto... arguments) {
    if (smem > 48 * 1024)
      check_cuda(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem)),
                 "FlexPrefill shared memory opt-in");
    kernel<<<dim3(grid.x, grid.y, grid.z), threads, smem, stream>>>(arguments...);
  });
}

}  // namespace

void validate_flexprefill_selection(const SelectorSettings& settings, const GpuSelectionArgs& args,
                                    const Geometry& g) {
  const FlexPrefillConfig& c = settings.flexprefill;
  require(args.causal, "causal", "FlexPrefill is defined for causal attention only");
  if (g.varlen) {
    require(args.cu_seqlens_k == args.cu_seqlens_q, "cu_seqlens_k",
            "FlexPrefill needs seqlen_q == seqlen_k: pass the same device array as cu_seqlens_q");
  } else {
    require(g.lq == g.lk, "k", "FlexPrefill needs seqlen_q == seqlen_k (prefill without a prefix)");
  }
  require(args.block_size <= select::kFlexRows, "block_size",
          "FlexPrefill's last-block estimate takes at most " + std::to_string(select::kFlexRows) + " rows on the GPU");
  require(g.nk <= select::kMaxFlexBlocks, "k",
          "too many key blocks for the GPU FlexPrefill plan (at most " + std::to_string(select::kMaxFlexBlocks) + ")");
  require(c.gamma > 0 && c.gamma <= 1, "flexprefill.gamma", "must be in (0, 1]");
  require(c.min_budget >= 1, "flexprefill.min-budget", "must be positive");
  require(c.max_budget >= 0, "flexprefill.max-budget", "must be >= 0");
}

std::size_t flexprefill_workspace_size(const SelectorSettings& settings, const GpuSelectionArgs& args,
                                       const Geometry& g) {
  validate_flexprefill_selection(settings, args, g);
  select::FlexParams fp = flex_params(settings, args, g);
  return select::bind_flexprefill_workspace(fp, nullptr);
}

void run_flexprefill_selection(const SelectorSettings& settings, const GpuSelectionArgs& args, const Geometry& g,
                               void* workspace, cudaStream_t stream) {
  validate_flexprefill_selection(settings, args, g);
  select::FlexParams fp = flex_params(settings, args, g);
  select::bind_flexprefill_workspace(fp, workspace);
  const bool bf16 = args.q.dtype == DType::kBF16;
  if (g.nk <= 8 * 32) {
    (bf16 ? launch<__nv_bfloat16, 8> : launch<__half, 8>)(fp, stream);
  } else if (g.nk <= 32 * 32) {
    (bf16 ? launch<__nv_bfloat16, 32> : launch<__half, 32>)(fp, stream);
  } else {
    (bf16 ? launch<__nv_bfloat16, 64> : launch<__half, 64>)(fp, stream);
  }
  check_cuda(cudaGetLastError(), "FlexPrefill selection launch");
}

}  // namespace sparsefill::cuda
