// FlexPrefill's launch sequence (kernels: flexprefill_kernels.cuh), written once for any launcher: the host side
// (flexprefill_selection.cu) launches on a CUDA stream, and tests/select/test_flexprefill_emulated.cpp runs the
// very same sequence, workspace aliasing included, on the device emulator.
#pragma once
#include <algorithm>
#include <cstddef>

#include "common/workspace_align.hpp"
#include "select/flexprefill_kernels.cuh"
#include "select/pool_blocks.cuh"

namespace sparsefill::cuda::select {

struct LaunchGrid {
  unsigned x, y, z;
};

// The rows of the last-block estimate: the line sums' layout for up to 128 rows (the block size's limit).
inline constexpr int kFlexRows = 128;

// The workspace: row statistics, the line sums (the verticals, then the slashes, then the pooled queries), the
// pooled keys, block sums, the radix histograms and states, cover counts, plans, per-row ties, kept lines.
// `fp.lines` must hold the shapes (batch, heads, d, width, chunks, rows, nq, nk); returns the bytes and, with a
// base, points fp's buffers into it.
inline std::size_t bind_flexprefill_workspace(FlexParams& fp, void* base) {
  const LastRowsParams& p = fp.lines.rows;
  const std::size_t bq = static_cast<std::size_t>(p.batch) * p.heads_q, d = static_cast<std::size_t>(p.d);
  const std::size_t nq = static_cast<std::size_t>(fp.lines.nq), nk = static_cast<std::size_t>(fp.lines.nk);
  const std::size_t bytes[] = {
      sizeof(double) * bq * p.chunks * p.rows * 2,
      sizeof(double) * std::max(bq * p.width, bq * nq * d),
      sizeof(double) * p.batch * p.heads_kv * d * nk,
      sizeof(double) * bq * 2 * nk,
      sizeof(unsigned long long) * bq * kRadixLevels * kRadixBins * 2,
      sizeof(RadixState) * bq,
      sizeof(std::int32_t) * bq * 2,
      sizeof(std::int32_t) * bq * kPlanFields,
      sizeof(std::int32_t) * bq * nq,
      bq * 2 * nk,
  };
  unsigned char* part[sizeof(bytes) / sizeof(bytes[0])];
  std::size_t total = 0;
  for (std::size_t i = 0; i < sizeof(bytes) / sizeof(bytes[0]); ++i) {
    part[i] = base ? static_cast<unsigned char*>(base) + total : nullptr;
    total += align256(bytes[i]);
  }
  if (base == nullptr) return total;
  fp.lines.rows.partial = reinterpret_cast<double*>(part[0]);
  fp.lines.vertical = fp.lines.slash = fp.pooled_q = reinterpret_cast<double*>(part[1]);
  fp.pooled_k = reinterpret_cast<double*>(part[2]);
  fp.block_sums = reinterpret_cast<double*>(part[3]);
  fp.histogram = reinterpret_cast<unsigned long long*>(part[4]);
  fp.radix = reinterpret_cast<RadixState*>(part[5]);
  fp.cover = reinterpret_cast<std::int32_t*>(part[6]);
  fp.plan = reinterpret_cast<std::int32_t*>(part[7]);
  fp.row_ties = reinterpret_cast<std::int32_t*>(part[8]);
  fp.kept_lines = part[9];
  return total;
}

// Runs FlexPrefill's selection: launch(kernel, LaunchGrid, threads, dynamic shared bytes, arguments...) runs
// one kernel, in order. kItems: key blocks per lane of the map rows (32 * kItems >= nk).
template <typename Element, int kItems, typename Launch>
void launch_flexprefill(const FlexParams& fp, Launch&& launch) {
  const LastRowsParams& p = fp.lines.rows;
  const unsigned heads = static_cast<unsigned>(p.heads_q), batch = static_cast<unsigned>(p.batch);
  const unsigned nq = static_cast<unsigned>(fp.lines.nq);
  const LaunchGrid per_head{1, heads, batch};
  launch(last_rows_stats_kernel<Element>, LaunchGrid{static_cast<unsigned>(p.chunks), heads, batch},
         last_rows_threads(p.rows), last_rows_smem_bytes<Element>(p.rows, p.d), p);
  launch(merge_row_stats_kernel, per_head, last_rows_threads(p.rows), std::size_t{0}, p);
  constexpr int kLines = kLinesPerCta;
  const LaunchGrid lines{static_cast<unsigned>((p.width + kLines - 1) / kLines), heads, batch};
  for (int slash = 0; slash < 2; ++slash) {  // the slashes overwrite the verticals once those are reduced
    launch(line_sums_kernel<Element, kFlexRows>, lines, kLineThreads, line_smem_bytes<Element, kFlexRows>(p.d),
           fp.lines, slash);
    launch(flex_cover_kernel, per_head, kFlexThreads, std::size_t{0}, fp, slash);
  }
  PoolParams pools;  // the queries and the keys in one launch
  pools.lengths = p.lengths;
  pools.d = p.d;
  pools.jobs = 2;
  pools.job[0] = pool_job(p.q, p.q_batch, p.q_token, p.q_head, false, p.heads_q, fp.lines.nq, fp.pooled_q);
  pools.job[1] = pool_job(p.k, p.k_batch, p.k_token, p.k_head, true, p.heads_kv, fp.lines.nk, fp.pooled_k);
  for (PoolJob& job : pools.job)
    job.by_count = true;  // the rescaled last block: divide by the tokens present
  launch_pooling<Element>(pools, p.batch,
                          [&](auto kernel, unsigned ctas, unsigned sequences, int threads, std::size_t smem,
                              const PoolParams& params) {
                            launch(kernel, LaunchGrid{ctas, sequences, 1}, threads, smem, params);
                          });
  launch(flex_plan_kernel<Element>, per_head, kFlexThreads, std::size_t{0}, fp);
  const LaunchGrid map{(nq + kRowsPerCta - 1) / kRowsPerCta, heads, batch};
  const std::size_t map_smem = flex_map_smem_bytes(p.d, kItems);
  for (int level = 0; level < kRadixLevels; ++level) {
    launch(flex_map_kernel<kItems>, map, kRowsPerCta * 32, map_smem, fp, static_cast<int>(kMapHistogram), level);
    launch(flex_radix_kernel, per_head, 32, std::size_t{0}, fp, level);
  }
  launch(flex_map_kernel<kItems>, map, kRowsPerCta * 32, map_smem, fp, static_cast<int>(kMapTies), 0);
  launch(flex_map_kernel<kItems>, map, kRowsPerCta * 32, map_smem, fp, static_cast<int>(kMapRaster), 0);
}

}  // namespace sparsefill::cuda::select
