// Host side of MInference on the GPU (see minference_selection.hpp): checks, workspace layout, launches.
// Workspace: row statistics per key chunk, the line sums (the vertical ones, then, once the columns are chosen,
// the slash ones), the kept offsets, each block's lowest kept column, the kept-offset counts.
#include "select/minference_selection.hpp"

#include <algorithm>
#include <cmath>

#include "common/cuda_check.hpp"
#include "common/workspace_align.hpp"
#include "select/last_rows_params.hpp"
#include "select/minference_kernels.cuh"
#include "sparsefill/error.hpp"

namespace sparsefill::cuda {
namespace {

constexpr double kReferenceScale = 0.08838834764831845;  // 1 / sqrt(128), as hard-coded in the reference
constexpr int kParts = 5;

int last_rows(const SelectorSettings& settings) {
  return static_cast<int>(settings.minference.last_q);
}

std::size_t sizes(const SelectorSettings& settings, const Geometry& g, std::size_t (&bytes)[kParts]) {
  const std::size_t bq = static_cast<std::size_t>(g.batch) * g.heads_q;
  bytes[0] = sizeof(double) * bq * last_rows_chunks(g) * last_rows(settings) * 2;
  bytes[1] = sizeof(double) * bq * g.lk;  // vertical sums, then slash sums
  bytes[2] = sizeof(std::int32_t) * bq * g.lk;  // kept offsets
  bytes[3] = sizeof(std::int32_t) * bq * g.nk;
  bytes[4] = sizeof(std::int32_t) * bq;
  std::size_t total = 0;
  for (std::size_t& b : bytes) total += (b = align256(b));
  return total;
}

template <typename Element, int kRows>
void launch(const select::LineParams& lp, const Geometry& g, cudaStream_t s) {
  const select::LastRowsParams& p = lp.rows;
  const std::size_t stats_smem = select::last_rows_smem_bytes<Element>(p.rows, g.d);
  check_cuda(cudaFuncSetAttribute(select::last_rows_stats_kernel<Element>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                  static_cast<int>(stats_smem)),
             "MInference statistics shared memory opt-in");
  const unsigned heads = static_cast<unsigned>(g.heads_q), batch = static_cast<unsigned>(g.batch);
  select::last_rows_stats_kernel<Element><<<dim3(static_cast<unsigned>(p.chunks), heads, batch), select::last_rows_threads(p.rows),
                                            stats_smem, s>>>(p);
  select::merge_row_stats_kernel<<<dim3(1, heads, batch), select::last_rows_threads(p.rows), 0, s>>>(p);
  const std::size_t line_smem = select::line_smem_bytes<Element, kRows>(g.d);
  check_cuda(cudaFuncSetAttribute(select::line_sums_kernel<Element, kRows>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                  static_cast<int>(line_smem)),
             "MInference line shared memory opt-in");
  constexpr int kLines = select::kLinesPerCta;
  const dim3 lines(static_cast<unsigned>((g.lk + kLines - 1) / kLines), heads, batch);
  for (int slash = 0; slash < 2; ++slash) {  // the slash sums overwrite the vertical ones once those are ranked
    select::line_sums_kernel<Element, kRows><<<lines, select::kLineThreads, line_smem, s>>>(lp, slash);
    select::line_top_k_kernel<<<dim3(1, heads, batch), select::kTopKThreads, 0, s>>>(lp, slash);
  }
  select::line_raster_kernel<<<dim3(static_cast<unsigned>(g.nq), heads, batch), 32, 0, s>>>(lp);
}

}  // namespace

void validate_minference_selection(const SelectorSettings& settings, const GpuSelectionArgs& args,
                                   const Geometry& g) {
  require(args.causal, "causal", "MInference vertical-slash is defined for causal attention only");
  require(settings.minference.last_q >= 1 && settings.minference.last_q <= select::kMaxLastQueries,
          "minference.last-q", "must be in [1, " + std::to_string(select::kMaxLastQueries) + "] on the GPU");
  require(g.nk <= select::kMaxRasterBlocks, "k", "too many key blocks for the GPU MInference raster");
}

std::size_t minference_workspace_size(const SelectorSettings& settings, const GpuSelectionArgs& args,
                                      const Geometry& g) {
  validate_minference_selection(settings, args, g);
  std::size_t bytes[kParts];
  return sizes(settings, g, bytes);
}

void run_minference_selection(const SelectorSettings& settings, const GpuSelectionArgs& args, const Geometry& g,
                              void* workspace, cudaStream_t stream) {
  validate_minference_selection(settings, args, g);
  std::size_t bytes[kParts];
  sizes(settings, g, bytes);
  unsigned char* part[kParts];
  auto* cursor = static_cast<unsigned char*>(workspace);
  for (int i = 0; i < kParts; ++i) {
    part[i] = cursor;
    cursor += bytes[i];
  }
  const select::Lengths lengths{g.varlen ? args.cu_seqlens_q : nullptr, g.varlen ? args.cu_seqlens_k : nullptr, g.lq,
                                g.lk, static_cast<int>(args.block_size)};
  select::LineParams lp{};
  lp.rows = last_rows_params(args, g, lengths);
  lp.rows.rows = last_rows(settings);
  lp.rows.scale = kReferenceScale;
  lp.rows.causal = 1;
  lp.rows.segment = 0;
  lp.rows.partial = reinterpret_cast<double*>(part[0]);
  lp.rows.chunks = last_rows_chunks(g);
  lp.vertical = reinterpret_cast<double*>(part[1]);
  lp.slash = reinterpret_cast<double*>(part[1]);
  lp.offsets = reinterpret_cast<std::int32_t*>(part[2]);
  lp.column_min = reinterpret_cast<std::int32_t*>(part[3]);
  lp.offset_count = reinterpret_cast<std::int32_t*>(part[4]);
  lp.forced_columns = select::kForcedColumns;
  lp.forced_diagonals = select::kForcedDiagonals;
  lp.term_divisor = 1.0;
  lp.vertical_size = static_cast<int>(std::min<std::int64_t>(settings.minference.vertical_size, 1 << 30));
  lp.slash_size = static_cast<int>(std::min<std::int64_t>(settings.minference.slash_size, 1 << 30));
  lp.nq = g.nq;
  lp.nk = g.nk;
  lp.kv_num_blocks = args.kv_num_blocks;
  lp.kv_indices = args.kv_indices;
  const bool bf16 = args.q.dtype == DType::kBF16;
  if (select::line_rows_capacity(lp.rows.rows) == 64) {
    (bf16 ? launch<__nv_bfloat16, 64> : launch<__half, 64>)(lp, g, stream);
  } else {
    (bf16 ? launch<__nv_bfloat16, 128> : launch<__half, 128>)(lp, g, stream);
  }
  check_cuda(cudaGetLastError(), "MInference selection launch");
}

}  // namespace sparsefill::cuda
