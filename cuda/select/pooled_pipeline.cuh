// Prism's and mean pooling's selection in one launch: the pooling of head chunk s + 1 overlaps the scoring
// of chunk s's mask rows (the order of the work: pipeline_plan.hpp).
//
// Pooling Q and K reads every token once and is memory-bound (~0.36 ms at 128K on an H200, at ~3.7 TB/s);
// scoring the rows is latency-bound and reads little. Run one after the other, the times add up. Here every
// CTA takes a ticket and does one item: a pooling item (some blocks of a stage's queries or keys, pooled
// with fp32 sums of 16 tokens added in fp64: sum_tokens_fp32, about twice the elements a clock of fp64 in
// token order, so that a pooling SM runs well ahead of its share of DRAM bandwidth) or a row item
// (score_row_tile).
// The last pooling item of a stage to finish (a counter) computes the stage's band scales and then marks
// the stage ready; a row item's thread 0 waits for that mark (an acquire load, which also drops the SM's L1
// lines, so the pooled blocks are read fresh) before the CTA scores. The control words (ticket counter,
// each stage's counter and mark) are zeroed by the host before the launch. The pooling's loads are marked
// streaming (load_raw): with default caching the 1.3 GB of Q and K streamed through L2 at 128K pushed out
// the pooled blocks the row items re-read, and the launch was no faster than pooling, then scoring (H200:
// Prism 1.06 ms either way; 0.99 with streaming loads).
#pragma once
#include <cstdint>

#include "select/pipeline_plan.hpp"
#include "select/pool_blocks.cuh"
#include "select/pooled_scoring.cuh"
#include "select/score_rows.cuh"

namespace sparsefill::cuda::select {

struct PipelineParams {
  ScoringParams scoring;  // pooled_q, pooled_k and scales are written by the pooling items
  double* scales;         // scoring.scales
  // job[0]: the queries into scoring.pooled_q, job[1]: the keys into scoring.pooled_k (transposed), each with
  // its energies (Prism's calibration) or none, and its layout for a stage's heads (pool_cta_layout).
  PoolParams pooling;
  int stage_heads[2];  // query heads of a stage (a chunk: score_rows_chunk) and its KV heads
  int chunks;          // stages a sequence
  int row_tiles;       // row tiles a query head
  int calibrate;
  PipelinePlan plan;
  // [1 + 2 stages], zero at launch: the ticket counter, each stage's pooling items done, each stage's mark.
  unsigned* control;
};

// The control words of a pipeline over `stages` stages (PipelineParams::control).
inline int pipeline_control_words(int stages) {
  return 1 + 2 * stages;
}

// A sequence's stages: its query heads in chunks of score_rows_chunk (PipelineParams::chunks).
inline int pipeline_chunks(int heads_q, int heads_kv) {
  const int chunk = score_rows_chunk(heads_q, heads_kv);
  return (heads_q + chunk - 1) / chunk;
}

// Completes p's layout for kItems and the pooling's vector width (8: 16-byte loads, pool_vector_width): the
// stages' heads, the pooling jobs' CTA layouts for a stage's heads, the row tiles and the plan. Set by the
// caller: p.scoring (every field score_rows_kernel reads), p.scales, p.pooling's two jobs with its lengths, d
// and band bits, p.calibrate and p.control (pipeline_control_words(batch * pipeline_chunks) words).
template <int kItems>
inline void plan_pipeline(PipelineParams& p, int vector) {
  constexpr int kRows = score_rows_per_cta(kItems);
  const int heads_q = p.scoring.heads_q, heads_kv = p.scoring.heads_kv;
  p.stage_heads[0] = score_rows_chunk(heads_q, heads_kv);
  p.stage_heads[1] = p.stage_heads[0] / (heads_q / heads_kv);
  p.chunks = pipeline_chunks(heads_q, heads_kv);
  for (int j = 0; j < 2; ++j)
    pool_cta_layout(p.pooling.job[j], p.stage_heads[j], p.scoring.d, vector, kRows * 32);
  const PoolJob &q = p.pooling.job[0], &k = p.pooling.job[1];
  p.row_tiles = (p.scoring.nq + kRows - 1) / kRows;
  p.plan =
      pipeline_plan(p.scoring.batch * p.chunks, (q.blocks + q.blocks_per_cta - 1) / q.blocks_per_cta,
                    (k.blocks + k.blocks_per_cta - 1) / k.blocks_per_cta, p.stage_heads[0] * p.row_tiles);
}

// The stage marks' accesses (the device emulator, which runs one thread at a time, reads and writes plainly).
__device__ inline unsigned load_acquire(const unsigned* x) {
#if defined(__CUDA_ARCH__)
  unsigned v;
  asm volatile("ld.acquire.gpu.global.u32 %0, [%1];" : "=r"(v) : "l"(x) : "memory");
  return v;
#else
  return *x;
#endif
}
__device__ inline void store_release(unsigned* x, unsigned v) {
#if defined(__CUDA_ARCH__)
  asm volatile("st.release.gpu.global.u32 [%0], %1;" ::"l"(x), "r"(v) : "memory");
#else
  *x = v;
#endif
}

// Grid: pipeline_tickets(p.plan) CTAs of score_rows_per_cta(kItems) warps, score_rows_smem_bytes of dynamic
// shared memory; p as plan_pipeline<kItems> left it, with its control words zeroed.
template <typename Element, int kItems, int kVector>
__global__ void __launch_bounds__(score_rows_per_cta(kItems) * 32, 1)
    pooled_pipeline_kernel(const __grid_constant__ PipelineParams p) {
  __shared__ int ticket;
  __shared__ bool last;
  unsigned* done = p.control + 1;
  unsigned* ready = done + p.plan.stages;
  if (threadIdx.x == 0) ticket = static_cast<int>(atomicAdd(p.control, 1u));
  __syncthreads();
  const PipelineItem item = pipeline_item(p.plan, ticket);
  const int b = item.stage / p.chunks, c = item.stage % p.chunks;
  if (item.work == PipelineWork::kRows) {
    if (threadIdx.x == 0)
      while (load_acquire(ready + item.stage) == 0) __nanosleep(256);
    __syncthreads();
    const int h = c * p.stage_heads[0] + item.index % p.stage_heads[0];
    const int u0 = (p.row_tiles - 1 - item.index / p.stage_heads[0]) * score_rows_per_cta(kItems);
    if (h < p.scoring.heads_q) score_row_tile<Element, kItems>(p.scoring, b, h, u0);
    return;
  }
  const int j = item.work == PipelineWork::kPoolKeys ? 1 : 0;
  const PoolJob& job = p.pooling.job[j];
  pool_units<Element, kVector>(
      p.pooling, job, b, c * p.stage_heads[j], p.stage_heads[j], item.index * job.blocks_per_cta,
      job.blocks_per_cta,
      [&](const Element* column, const std::int32_t*, int t_begin, int t_end, double(&sums)[kVector]) {
        sum_tokens_fp32<Element, kVector>(column, t_begin, t_end, job.s_token, sums);
      });
  __syncthreads();
  if (threadIdx.x == 0) {
    __threadfence();  // this item's pooled blocks and energies before its count
    last = atomicAdd(done + item.stage, 1u) == static_cast<unsigned>(p.plan.pool_items - 1);
  }
  __syncthreads();
  if (!last) return;
  __threadfence();  // the other items' writes, counted before ours
  const ScoringParams& s = p.scoring;
  // The stage's band scales, a warp a head.
  for (int h = c * p.stage_heads[0] + static_cast<int>(threadIdx.x / 32);
       h < min(s.heads_q, (c + 1) * p.stage_heads[0]); h += static_cast<int>(blockDim.x / 32))
    band_scales(p.pooling.job[0].energy, p.pooling.job[1].energy, s.nq, s.nk, s.heads_q, s.heads_kv,
                s.lengths, s.d, s.bands, p.calibrate, s.band[0].count, s.band[1].count, b, h, p.scales);
  __syncthreads();
  if (threadIdx.x == 0) {
    __threadfence();
    store_release(ready + item.stage, 1u);
  }
}

}  // namespace sparsefill::cuda::select
