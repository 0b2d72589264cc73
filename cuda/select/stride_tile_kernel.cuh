// The stride selectors' tiled kernel (RRAttention, XAttention) for B / S = 16 stride rows per query block
// and head_dim a multiple of 128, the default geometry, for rows of up to 2048 key blocks (256K tokens at
// B = 128); see stride_scoring.cuh for the scores, stride_rules.cuh for the rules. Other geometries run the
// per-warp kernel (stride_kernel.cuh), which computes the same scores.
//
// The logits are a GEMM, rows (stride rows) x columns (key strides) over a reduction of `dims`:
//   RRAttention: row = the sampled query (d dims), column = the key sum as hi + lo parts of the input
//     dtype, so the reduction is [q, q] . [hi, lo] over 2 d dims (hi alone for rounded key sums); the CTA's
//     sampled queries stay in shared memory.
//   XAttention: row i = [q(iS + S-1), ..., q(iS)], column j = [k(jS), ..., k(jS + S-1)] over S d dims;
//     reduction chunk c covers dims of token part t = 128 c / d of both, so both operands are staged per
//     chunk.
// A CTA takes 128 rows, 8 row groups of 16 rows, each the stride rows of one (query head, query block) of
// one KV head (the GQA group's heads share the key tiles), and walks 128-column tiles up to the last column
// its rows may see, the reduction in chunks of 128 dims staged by cp.async in a ring (see kTileStages:
// RRAttention's exact sums stage the hi and lo chunks of the same dims together where they fit), in the
// 128-byte swizzled GMMA layout. Two warpgroups each multiply 64 of the rows by a stage's 128 columns with
// one wgmma batch (m64n128, fp32 accumulation, both operands in shared memory); warp w's accumulators are
// then row group w's 16 rows x 128 columns. Each warp keeps two accumulator sets: the wgmma of a tile's
// last chunk runs while the warp turns the previous tile's products into statistics or block sums. Two
// passes over the tiles: the first takes each row's maximum and exp-sum (over the 4 lanes of a row), the
// second the probabilities, summed per key block (16 columns) over the row group's rows by a reduce-scatter
// over the lanes, into the row groups' block rows (fp32 in shared memory: each entry is one fp32 sum,
// written once); then each warp widens its row group's row to fp64 in the stage ring, free by then, applies
// the rule and writes its mask row. Columns past a row's causal limit are masked only on the tiles that
// cross a limit; a warp whose rows see none of a tile's columns skips its epilogue (the warpgroups multiply
// every tile up to the CTA's last visible column: wgmma under a branch would be serialized). Chunk
// bookkeeping is incremental (no divisions in the loop). The loop's lambdas are forced inline: ptxas
// serializes every wgmma of a kernel whose wgmma pipeline crosses a call.
// One pass (kOnePass; rr.passes / xattn.passes = one): each tile raises a row's running maximum (over its 4
// lanes, so they share it), adds the tile's exponentials to the row's exp-sum and stores the row's exp-sum of
// each of the tile's 8 key blocks against that maximum, with the maximum, in the CTA's scratch slot
// (scratch_slots.cuh; stride_tile_plan.hpp sizes it); after the last tile each warp rescales its rows' stored
// sums to their final maxima and exp-sums and adds them into its block row. Half the products and
// exponentials of two passes, at the price of the scratch's global traffic.
// RRAttention adds a producer warpgroup in front of the two consumers: one of its threads stages every
// key-sum chunk of both passes by TMA into the ring (PipelineTmaAsync; the consumers wait on a stage and
// release it after its wgmma), so the consumers neither copy nor meet at a CTA barrier per chunk.
// XAttention's operands stay on cp.async: its key and query strides within a varlen batch are not a TMA box
// that zero-fills at the sequence's end.
#pragma once
#include <climits>
#include <cstdint>
#include <type_traits>
// cute/tensor.hpp must come first: the TMA and pipeline headers use its algorithms.
// clang-format off
#include <cute/tensor.hpp>
#include <cute/arch/copy_sm90_tma.hpp>
#include <cute/atom/copy_traits_sm90_tma.hpp>
#include <cute/atom/mma_traits_sm90_gmma.hpp>
#include <cutlass/arch/barrier.h>
#include <cutlass/arch/reg_reconfig.h>
#include <cutlass/pipeline/sm90_pipeline.hpp>
// clang-format on

#include "common/dynamic_shared.cuh"
#include "common/warpgroup_gemm.cuh"
#include "select/scratch_slots.cuh"
#include "select/stride_rules.cuh"
#include "select/stride_scoring.cuh"
#include "select/stride_tile_plan.hpp"

namespace sparsefill::cuda::select {

inline constexpr int kTileThreads = 256;      // two consumer warpgroups; warp w of them holds row group w
inline constexpr int kProducerThreads = 128;  // RRAttention: a producer warpgroup stages the key sums by TMA
inline constexpr int kProducerRegisters = 24, kConsumerRegisters = 240;
// 16-byte copies a thread per operand chunk.
inline constexpr int kCopies = kTileRows * kChunkDims / 8 / kTileThreads;
static_assert(sizeof(CutScratch) == kCutScratchBytes, "stride_tile_plan.hpp counts the cut's scratch");

// A staged chunk (128 rows or key strides x 128 dims, 32 KB) in the 128-byte swizzled K-major GMMA layout,
// and the warpgroup's wgmma (64 rows x 128 columns x 128 dims).
template <typename Element>
struct StrideTileGemm {
  using E = typename MmaOf<Element>::CuteElement;
  using ChunkLayout = decltype(cute::tile_to_shape(
      cute::GMMA::Layout_K_SW128_Atom<E>{}, cute::Shape<cute::Int<kTileRows>, cute::Int<kChunkDims>>{}));
  using Mma = decltype(cute::make_tiled_mma(
      cute::GMMA::ss_op_selector<E, E, float,
                                 cute::Shape<cute::_64, cute::Int<kTileCols>, cute::Int<kChunkDims>>>()));
  static_assert(kTileRows == kTileCols, "row chunks and column chunks share one layout");
  // Rows 16 apart lie 16 128-byte lines apart (the swizzle repeats every 8 rows), so a thread's copies of
  // rows r + 16 k are one address plus k strides.
  static constexpr int kRowStep16 = 16 * 64;  // elements
  // RRAttention's key sums as a TMA source: [key strides, d, slots of the launch, parts] (d contiguous; the
  // parts are hi and lo), one box a 128 x 128 chunk.
  using KeySums = decltype(cute::make_tensor(
      cute::make_gmem_ptr(static_cast<const E*>(nullptr)),
      cute::make_layout(cute::Shape<int, int, int, int>{},
                        cute::Stride<std::int64_t, cute::_1, std::int64_t, std::int64_t>{})));
  using KeySumsTma =
      decltype(cute::make_tma_copy(cute::SM90_TMA_LOAD{}, std::declval<KeySums>(), ChunkLayout{}));
};

// One pass's scratch: `slots` slots of one_pass_slot_floats(nk) floats, taken through the bits of `words`.
struct OnePassScratch {
  unsigned* words;
  float* slots_at;
  int slots, tiles;          // tiles: one_pass_tiles(nk)
  std::int64_t slot_floats;  // one_pass_slot_floats(nk)
};

// The tiled kernel's parameters: the stride parameters, for RRAttention the key sums' TMA descriptor
// (kernel parameters, so a captured graph replays them), and one pass's scratch.
template <typename Element>
struct StrideTileParams {
  StrideParams base;
  typename StrideTileGemm<Element>::KeySumsTma key_sums;
  OnePassScratch one_pass;
};

// Row group r of the CTA whose column of the grid is x: its (query head, query block) tile. `written`: the
// group stands for a mask row (a head of the group, a block of the mask layout); `valid`: also a block of its
// sequence, so its rows are scored.
struct RowGroup {
  StrideTile t;
  bool written, valid;
};
__device__ inline RowGroup row_group(const StrideParams& p, int slot, int x, int r) {
  const int group = p.heads_q / p.heads_kv, heads_here = min(group, kRowGroups), blocks_here = kRowGroups / heads_here;
  const int b = slot / p.heads_kv, kv = slot % p.heads_kv;
  const int in_group = static_cast<int>(blockIdx.z) * heads_here + r % heads_here;
  RowGroup out{};
  StrideTile& t = out.t;
  t.slot = slot, t.b = b, t.g = kv;
  t.h = kv * group + (in_group < group ? in_group : 0);
  t.u = x * blocks_here + r / heads_here;
  t.lq = p.lengths.q(b), t.lk = p.lengths.k(b);
  t.nq_b = p.lengths.q_blocks(b), t.nk_b = p.lengths.k_blocks(b);
  t.key_strides = (t.lk + p.stride - 1) / p.stride;
  t.rows = 16;
  t.offset = p.mirrored ? p.stride - 1 - t.h % p.stride : t.h % p.stride;
  t.q_base = b * p.q_batch + static_cast<std::int64_t>(p.lengths.q_start(b)) * p.q_token + t.h * p.q_head;
  t.k_base = b * p.k_batch + static_cast<std::int64_t>(p.lengths.k_start(b)) * p.k_token + kv * p.k_head;
  t.dims = p.rr ? p.d : p.stride * p.d;
  out.written = r < heads_here * blocks_here && in_group < group && t.u < p.nq;
  out.valid = out.written && t.u < t.nq_b;
  return out;
}

// Grid (ceil(nq / query blocks per CTA), the launch's KV slots, head chunks); the CTAs of the longest rows
// start first. kParts: column chunks a stage (1, or RRAttention's key_parts = 2); kOnePass: one pass over the
// tiles with the scratch slots of params.one_pass.
template <typename Element, int kItems, bool kRR, int kParts, bool kOnePass>
__global__ void __launch_bounds__(kRR ? kTileThreads + kProducerThreads : kTileThreads, 1)
    stride_tile_kernel(const __grid_constant__ StrideTileParams<Element> params) {
  using namespace cute;
  using Gemm = StrideTileGemm<Element>;
  using E = typename Gemm::E;
  using Pipeline = cutlass::PipelineTmaAsync<kTileStages<kRR, kParts>>;
  const StrideParams& p = params.base;
  constexpr int kStages = kTileStages<kRR, kParts>;
  constexpr int kPasses = kOnePass ? 1 : 2;
  static_assert(kParts == 1 || (kRR && kParts == 2), "two column chunks a stage are RRAttention's hi and lo");
  unsigned char* smem = dynamic_shared<unsigned char>();
  smem += (kSmemAlign - static_cast<int>(__cvta_generic_to_shared(smem) % kSmemAlign)) % kSmemAlign;
  // RRAttention's first warpgroup produces (TMA); the consumers' thread index starts at 0 after it.
  constexpr int kProducers = kRR ? kProducerThreads : 0;
  const bool producer = static_cast<int>(threadIdx.x) < kProducers;
  const int consumer_thread = producer ? 0 : static_cast<int>(threadIdx.x) - kProducers;
  const int lane = threadIdx.x % 32, warp = consumer_thread / 32, warpgroup = warp / 4, g = lane / 4,
            q4 = lane % 4;
  const int slot = p.slot_begin + static_cast<int>(blockIdx.y), x = static_cast<int>(gridDim.x - 1 - blockIdx.x);
  const int d = p.d, S = p.stride;
  // Reduction parts not within a stage: RRAttention's key-sum halves, XAttention's token parts.
  const int parts = (kRR ? p.key_parts : S) / kParts;
  const int chunks_per_tile = parts * d / kChunkDims;

  unsigned char* rows_smem = smem;  // RRAttention: [d / 128 chunks][128 rows][128 dims]
  unsigned char* stages = smem + (kRR ? static_cast<std::size_t>(kTileRows) * d * 2 : 0);
  constexpr std::size_t kStageBytes = kChunkBytes * (kRR ? kParts : 2);  // [A chunk (XAttention)][B chunks]
  float* block_rows = reinterpret_cast<float*>(stages + kStages * kStageBytes);  // [row group][nk]
  CutScratch* scratch = reinterpret_cast<CutScratch*>(block_rows + static_cast<std::size_t>(kRowGroups) * p.nk);
  __shared__ int cta_limit;                          // the last column the CTA's rows may see
  __shared__ std::int64_t query_row_at[kRowGroups];  // XAttention: a row group's row 0, token part 0
  __shared__ int query_first_part[kRowGroups];  // XAttention: its first part in the sequence (INT_MAX: none)
  __shared__ int scratch_slot;                  // one pass: the CTA's slot

  // This lane's rows g and g + 8 of row group `warp`, and their causal limits.
  const RowGroup mine = row_group(p, slot, x, warp);
  const int lk = mine.t.lk, nk_b = mine.t.nk_b;  // sequence-wide values
  int limit[2];
#pragma unroll
  for (int e = 0; e < 2; ++e) limit[e] = mine.valid ? mine.t.row_limit(p, g + 8 * e) : -1;
  int warp_max = max(limit[0], limit[1]), warp_min = min(limit[0], limit[1]);
  for (int offset = 16; offset > 0; offset /= 2) {
    warp_max = max(warp_max, __shfl_xor_sync(0xffffffffu, warp_max, offset));
    warp_min = min(warp_min, __shfl_xor_sync(0xffffffffu, warp_min, offset));
  }
  if (threadIdx.x == 0) {
    cta_limit = -1;
    if constexpr (kOnePass) scratch_slot = acquire_scratch_slot(params.one_pass.words, params.one_pass.slots);
  }
  if constexpr (!kRR) {
    if (threadIdx.x < kRowGroups) {
      const RowGroup rg = row_group(p, slot, x, static_cast<int>(threadIdx.x));
      const int last_token = rg.t.u * 16 * S + S - 1;  // row 0's query of token part 0
      query_row_at[threadIdx.x] =
          rg.valid ? rg.t.q_base + static_cast<std::int64_t>(last_token) * p.q_token : 0;
      query_first_part[threadIdx.x] = rg.valid ? last_token - rg.t.lq + 1 : INT_MAX;
    }
  }
  for (int i = threadIdx.x; i < kRowGroups * nk_b; i += blockDim.x)
    block_rows[static_cast<std::size_t>(i / nk_b) * p.nk + i % nk_b] = 0.f;
  __syncthreads();
  if (lane == 0 && !producer) atomicMax(&cta_limit, warp_max);

  // XAttention's copies: thread i stages 16-byte group i % 16 of rows i / 16 + 16 k (k < kCopies; for the
  // queries row group k) of every chunk, from sources precomputed for column tile 0, token part 0, dim 0.
  const int copy_group = threadIdx.x % 16, copy_row = static_cast<int>(threadIdx.x) / 16;
  auto chunk_tensor = [](unsigned char* at) {
    return make_tensor(make_smem_ptr(reinterpret_cast<E*>(at)), typename Gemm::ChunkLayout{});
  };
  const unsigned stages_at = static_cast<unsigned>(__cvta_generic_to_shared(stages));
  const unsigned copy_at =  // the thread's first copy in a chunk, relative to the chunk
      static_cast<unsigned>(__cvta_generic_to_shared(&chunk_tensor(stages)(copy_row, copy_group * 8))) -
      stages_at;
  const E* q = static_cast<const E*>(p.q);
  const E* keys = static_cast<const E*>(p.k);
  const std::int64_t b_row_step = 16LL * S * p.k_token;  // between a thread's copies
  const E* b_src =
      keys + copy_group * 8 + (mine.t.k_base + static_cast<std::int64_t>(copy_row) * S * p.k_token);
  const std::int64_t a_row_offset = static_cast<std::int64_t>(copy_row) * S * p.q_token + copy_group * 8;
  if constexpr (kRR) {  // the sampled queries, one copy group ahead of the stages
    const int groups = d / 8;
    for (int i = threadIdx.x; i < kTileRows * groups; i += blockDim.x) {
      const int row = i / groups, grp = i % groups;
      const RowGroup rg = row_group(p, slot, x, row / 16);
      const int token = (rg.t.u * 16 + row % 16) * S + rg.t.offset;
      const bool present = rg.valid && token < rg.t.lq;
      async_copy16(&chunk_tensor(rows_smem + grp / 16 * kChunkBytes)(row, grp % 16 * 8),
                   q + (present ? rg.t.q_base + static_cast<std::int64_t>(token) * p.q_token + grp * 8 : 0),
                   present);
    }
    async_commit();
    async_wait<0>();
    cutlass::arch::fence_view_async_shared();  // the rows, to the wgmma's reads
  }
  __shared__ alignas(
      16) unsigned char pipeline_bytes[sizeof(typename Pipeline::SharedStorage)];  // its mbarriers
  auto& pipeline_storage = *reinterpret_cast<typename Pipeline::SharedStorage*>(pipeline_bytes);
  static_assert(2 * sizeof(int) + kRowGroups * (sizeof(std::int64_t) + sizeof(int)) +
                        sizeof(typename Pipeline::SharedStorage) + 3 * 16 <=
                    kStaticSharedBytes,
                "the static shared memory (with alignment padding) within what stride_tile_plan.hpp counts");
  auto pipeline = [&] {  // RRAttention's stages: TMA transactions of kParts chunks, released by the consumers
    if constexpr (kRR) {
      typename Pipeline::Params pp{};
      pp.transaction_bytes = static_cast<std::uint32_t>(kParts * kChunkBytes);
      pp.role = producer ? Pipeline::ThreadCategory::Producer : Pipeline::ThreadCategory::Consumer;
      pp.is_leader = threadIdx.x == 0;
      pp.num_consumers = kTileThreads;
      return Pipeline(pipeline_storage, pp, Shape<_1, _1, _1>{});
    } else {
      return 0;
    }
  }();
  __syncthreads();
  const int tiles = (cta_limit + kTileCols) / kTileCols;  // column tiles holding a visible column
  const int chunks = kPasses * tiles * chunks_per_tile;
  if constexpr (kRR) {
    if (producer) {  // one thread stages every chunk of every pass, in the consumers' order
      cutlass::arch::warpgroup_reg_dealloc<kProducerRegisters>();
      if (threadIdx.x != 0) return;
      using StageLayout = decltype(tile_to_shape(
          GMMA::Layout_K_SW128_Atom<E>{}, Shape<Int<kTileCols>, Int<kChunkDims>, Int<kStages * kParts>>{}));
      Tensor s_keys = make_tensor(make_smem_ptr(reinterpret_cast<E*>(stages)), StageLayout{});
      Tensor m_keys = params.key_sums.get_tma_tensor(
          make_shape(p.strides_max, d, p.slot_end - p.slot_begin, p.key_parts));
      const int slot_here = slot - p.slot_begin;
      auto state = cutlass::make_producer_start_state<Pipeline>();
      for (int pass = 0; pass < kPasses; ++pass)
        for (int jt = 0; jt < tiles; ++jt)
          for (int part0 = 0; part0 < p.key_parts; part0 += kParts)
            for (int c = 0; c < d / kChunkDims; ++c) {
              pipeline.producer_acquire(state);
#pragma unroll
              for (int k = 0; k < kParts; ++k) {
                Tensor g_keys = local_tile(m_keys(_, _, slot_here, part0 + k),
                                           Shape<Int<kTileCols>, Int<kChunkDims>>{}, make_coord(jt, c));
                auto [from, to] = tma_partition(params.key_sums, Int<0>{}, Layout<_1>{},
                                                group_modes<0, 2>(s_keys), group_modes<0, 2>(g_keys));
                copy(params.key_sums.with(*pipeline.producer_get_barrier(state)), from,
                     to(_, state.index() * kParts + k));
              }
              ++state;
            }
      return;
    }
    cutlass::arch::warpgroup_reg_alloc<kConsumerRegisters>();
  }

  // XAttention's issue cursor: the next chunk to stage (column tile, token part, first dim c0), its slot, and
  // the element offsets it adds to the sources (a_at: queries; b_at: keys); pass 1 restages pass 0's
  // sequence.
  const std::int64_t part_step = p.k_token, tile_step = static_cast<std::int64_t>(kTileCols) * S * p.k_token;
  int issue_jt = 0, issue_part = 0, issue_c0 = 0, issue_slot = 0, issued = 0;
  std::int64_t a_part_at = 0, b_tile_at = 0, b_part_at = 0, a_at = 0, b_at = 0;
  int issue_left = lk;  // key tokens from the tile's first
  auto issue = [&]() __attribute__((always_inline)) {
    const unsigned stage = stages_at + issue_slot * static_cast<unsigned>(kStageBytes) + copy_at;
    const unsigned b_stage = stage + static_cast<unsigned>(kChunkBytes);
    const int b_left = issue_left - issue_part - copy_row * S;  // tokens
#pragma unroll
    for (int k = 0; k < kCopies; ++k) {
      const unsigned row_step = static_cast<unsigned>(k * Gemm::kRowStep16 * sizeof(E));
      const int first_part = query_first_part[k];
      const bool a_present = first_part != INT_MAX && issue_part >= first_part + copy_row * S;
      async_copy16_shared(stage + row_step, a_present ? q + query_row_at[k] + a_row_offset + a_at : q,
                          a_present);
      const bool b_present = k * 16 * S < b_left;
      async_copy16_shared(b_stage + row_step, b_present ? b_src + (b_at + k * b_row_step) : keys, b_present);
    }
    async_commit();
    issue_slot = issue_slot == kStages - 1 ? 0 : issue_slot + 1;
    ++issued;
    if ((issue_c0 += kChunkDims) < d) {
      a_at += kChunkDims, b_at += kChunkDims;
      return;
    }
    issue_c0 = 0;
    if (++issue_part < parts) {
      a_at = a_part_at -= p.q_token;
      b_at = b_part_at += part_step;
      return;
    }
    issue_part = 0;
    if (++issue_jt < tiles) {
      b_tile_at += tile_step;
      issue_left -= kTileCols * S;
    } else {
      issue_jt = 0, b_tile_at = 0, issue_left = lk;
    }
    a_at = a_part_at = 0;
    b_at = b_part_at = b_tile_at;
  };

  typename Gemm::Mma mma;
  auto thread_mma = mma.get_thread_slice(threadIdx.x % 128);
  Tensor acc0 = partition_fragment_C(mma, Shape<_64, Int<kTileCols>>{});
  Tensor acc1 = partition_fragment_C(mma, Shape<_64, Int<kTileCols>>{});
  static_assert(decltype(size(acc0))::value == kTileCols / 2, "16 x 128 accumulators a warp");

  // The products of tile T (pass T / tiles, column tile T % tiles) in acc: acc(i) is row g + 8 ((i / 2) % 2)
  // of row group `warp`, column 8 (i / 4) + 2 q4 + i % 2 of the tile. Logits are acc * scale in log2 units.
  const float scale = 1.4426950408889634f / (static_cast<float>(S) * sqrtf(static_cast<float>(d)));
  float m[2] = {-INFINITY, -INFINITY}, z[2] = {0.f, 0.f};
  // Pass 1: each row's maximum (0 for a row that sees nothing) and 1 / exp-sum.
  float shift[2] = {0.f, 0.f}, inv_z[2] = {0.f, 0.f};
  // One pass: the CTA's slot, [kTileRows][one_pass_row] block sums, then [kTileRows][tiles] maxima.
  const int one_pass_row = kTileBlocks * params.one_pass.tiles;
  float* const one_pass_sums =
      kOnePass ? params.one_pass.slots_at + scratch_slot * params.one_pass.slot_floats : nullptr;
  float* const one_pass_maxima = kOnePass ? one_pass_sums + kTileRows * one_pass_row : nullptr;
  auto epilogue = [&](auto& acc, int T) __attribute__((always_inline)) {
    const int pass = T >= tiles ? 1 : 0, col0 = (T - pass * tiles) * kTileCols;
    if (col0 <= warp_max) {                   // else the warp's rows see none of the tile's columns
      if (col0 + kTileCols - 1 > warp_min) {  // a tile crossing a row's limit: -inf past it
#pragma unroll
        for (int i = 0; i < kTileCols / 2; ++i)
          if (col0 + 8 * (i / 4) + 2 * q4 + i % 2 > limit[(i / 2) % 2]) acc(i) = -INFINITY;
      }
      // The tile maximum of each of the lane's rows over its columns: four independent chains a row (a
      // maximum does not depend on the order), then theirs; scale > 0, so the maximum of the scaled logits.
      auto lane_tile_maxima = [&](float(&tile_max)[2]) __attribute__((always_inline)) {
        float chains[8];
#pragma unroll
        for (int k = 0; k < 8; ++k) chains[k] = -INFINITY;
#pragma unroll
        for (int i = 0; i < kTileCols / 2; ++i) {  // chain (i / 4) % 4 of row (i / 2) % 2
          float& chain = chains[2 * ((i / 4) % 4) + (i / 2) % 2];
          chain = fmaxf(chain, acc(i));
        }
#pragma unroll
        for (int e = 0; e < 2; ++e)
          tile_max[e] = fmaxf(fmaxf(chains[e], chains[2 + e]), fmaxf(chains[4 + e], chains[6 + e])) * scale;
      };
      if constexpr (kOnePass) {  // the rows' maxima over their quads, then the tile's block sums stored
        float tile_max[2];
        lane_tile_maxima(tile_max);
#pragma unroll
        for (int e = 0; e < 2; ++e)
          for (int offset = 1; offset < 4; offset *= 2)
            tile_max[e] = fmaxf(tile_max[e], __shfl_xor_sync(0xffffffffu, tile_max[e], offset));
        raise_row_maxima(m, z, tile_max);
        const float base[2] = {m[0] == -INFINITY ? 0.f : m[0], m[1] == -INFINITY ? 0.f : m[1]};
        float v[2 * kTileBlocks];  // v[2 kb + e]: row g + 8 e's exp-sum over block kb's columns
#pragma unroll
        for (int k = 0; k < 2 * kTileBlocks; ++k) v[k] = 0.f;
#pragma unroll
        for (int i = 0; i < kTileCols / 2; ++i)
          v[2 * (i / 8) + (i / 2) % 2] += exp2_flushed(fmaf(acc(i), scale, -base[(i / 2) % 2]));
        // Summed over the quad: lane q4 keeps blocks 2 q4 (v[0], v[1]) and 2 q4 + 1 (v[2], v[3]).
        exchange_halves<kTileBlocks, 2>(v, lane);
        exchange_halves<kTileBlocks / 2, 1>(v, lane);
        z[0] += v[0] + v[2];
        z[1] += v[1] + v[3];
        const int row = warp * 16 + g, tile_index = col0 / kTileCols;
        float* sums = one_pass_sums + row * one_pass_row + tile_index * kTileBlocks + 2 * q4;
        *reinterpret_cast<float2*>(sums) = make_float2(v[0], v[2]);
        *reinterpret_cast<float2*>(sums + 8 * one_pass_row) = make_float2(v[1], v[3]);
        if (q4 < 2)
          one_pass_maxima[(row + 8 * q4) * params.one_pass.tiles + tile_index] = q4 == 0 ? m[0] : m[1];
      } else if (pass == 0) {  // each row's running maximum and exp-sum over this lane's columns
        float tile_max[2];
        lane_tile_maxima(tile_max);
        raise_row_maxima(m, z, tile_max);
        const float base[2] = {m[0] == -INFINITY ? 0.f : m[0], m[1] == -INFINITY ? 0.f : m[1]};
#pragma unroll
        for (int i = 0; i < kTileCols / 2; ++i)
          z[(i / 2) % 2] += exp2_flushed(fmaf(acc(i), scale, -base[(i / 2) % 2]));
      } else {
        // Probabilities summed per key block kb (n-tiles 2 kb, 2 kb + 1: registers 8 kb .. 8 kb + 7) over the
        // lane's entries, then over the warp: lane 4 j ends with block j's sum.
        float v[8];
#pragma unroll
        for (int kb = 0; kb < 8; ++kb) {
          float row_sum[2] = {0.f, 0.f};
#pragma unroll
          for (int i = 8 * kb; i < 8 * kb + 8; ++i)
            row_sum[(i / 2) % 2] += exp2_flushed(fmaf(acc(i), scale, -shift[(i / 2) % 2]));
          v[kb] = row_sum[0] * inv_z[0] + row_sum[1] * inv_z[1];
        }
        reduce_scatter_over_rows(v, lane);
        v[0] += __shfl_xor_sync(0xffffffffu, v[0], 1);
        v[0] += __shfl_xor_sync(0xffffffffu, v[0], 2);
        const int block = col0 / 16 + g;
        if (q4 == 0 && block < nk_b) block_rows[static_cast<std::size_t>(warp) * p.nk + block] = v[0];
      }
    }
    if (!kOnePass && T == tiles - 1) {  // pass 0 is complete: the rows' statistics over their quads
#pragma unroll
      for (int e = 0; e < 2; ++e) {
        merge_row_over_quad(m[e], z[e]);
        shift[e] = m[e] == -INFINITY ? 0.f : m[e];  // a row that sees nothing: every probability 0
        inv_z[e] = z[e] > 0.f ? 1.f / z[e] : 0.f;
      }
    }
  };

  // One pass, after the last tile: the rows' exp-sums over their quads, then the warp's block row, each row's
  // stored block sums rescaled from their tile's maximum to the row's final one and divided by its exp-sum.
  auto one_pass_block_row = [&](const float(&row_max)[2], float(&row_z)[2]) __attribute__((always_inline)) {
    // The rows' final maxima and 1 / exp-sums in the warp's cut scratch, free until the rule.
    float* const final_max = reinterpret_cast<float*>(&scratch[warp]);
    float* const final_inv_z = final_max + 16;
    static_assert(sizeof(CutScratch) >= 32 * sizeof(float), "the cut scratch holds the rows' statistics");
#pragma unroll
    for (int e = 0; e < 2; ++e) {
      for (int offset = 1; offset < 4; offset *= 2)
        row_z[e] += __shfl_xor_sync(0xffffffffu, row_z[e], offset);
      if (q4 == e) {  // a row that sees nothing: maximum 0 over sums of 0
        final_max[g + 8 * e] = row_max[e] == -INFINITY ? 0.f : row_max[e];
        final_inv_z[g + 8 * e] = row_z[e] > 0.f ? 1.f / row_z[e] : 0.f;
      }
    }
    __syncwarp();
    // The blocks of the tiles the warp's epilogues stored (none past warp_max's tile; the others keep the zero
    // fill). A lane takes blocks b and b + 32 of every 64 and loads all their stored values before the first
    // use, so an iteration's 64 L2 reads overlap: the CTA is alone on its SM, nothing else hides them.
    const int stored = min(nk_b, (warp_max + kTileCols) / kTileCols * kTileBlocks);
    for (int b0 = lane; b0 < stored; b0 += 64) {
      float sum[2][16], top[2][16];
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const int b = min(b0 + 32 * h, stored - 1);  // past `stored`: a duplicate, not written below
#pragma unroll
        for (int r = 0; r < 16; ++r) {
          const int row = warp * 16 + r;
          sum[h][r] = __ldcg(one_pass_sums + row * one_pass_row + b);
          top[h][r] = __ldcg(one_pass_maxima + row * params.one_pass.tiles + b / kTileBlocks);
        }
      }
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        float mass = 0.f;
#pragma unroll
        for (int r = 0; r < 16; ++r)
          mass = fmaf(sum[h][r], exp2_flushed(top[h][r] - final_max[r]) * final_inv_z[r], mass);
        if (b0 + 32 * h < stored) block_rows[static_cast<std::size_t>(warp) * p.nk + b0 + 32 * h] = mass;
      }
    }
  };

  if constexpr (!kRR) {
    for (int s = 0; s < kStages - 1; ++s) {
      if (issued < chunks)
        issue();
      else
        async_commit();
    }
  }
  int slot_now = 0, c0 = 0;  // the compute cursor (c0: the chunk's first dim)
  typename Pipeline::PipelineState consumer_state;
  // The operands' descriptors, built once for the first chunk of the rows (RRAttention) or of the ring; a
  // chunk shifts them to its stage.
  const Tensor rows_a0 = thread_mma.partition_fragment_A(local_tile(
      chunk_tensor(kRR ? rows_smem : stages), Shape<_64, Int<kChunkDims>>{}, make_coord(warpgroup, 0)));
  const Tensor keys_b0 = thread_mma.partition_fragment_B(chunk_tensor(stages));
  // The next chunk's wgmma into `now`, issued once the chunk is staged.
  auto chunk = [&](auto& now, bool zero_init) __attribute__((always_inline)) {
    std::uint32_t stage;  // its bytes from the ring's start
    if constexpr (kRR) {
      pipeline.consumer_wait(consumer_state);
      stage = consumer_state.index() * static_cast<std::uint32_t>(kStageBytes);
    } else {
      async_wait<kStages - 2>();
      cutlass::arch::fence_view_async_shared();  // this thread's cp.async data, to the wgmma's reads
      __syncthreads();  // chunk c is staged; every wgmma of chunk c - 1 is done, so its slot is refilled next
      if (issued < chunks)
        issue();
      else
        async_commit();
      stage = slot_now * static_cast<std::uint32_t>(kStageBytes);
    }
    const Tensor rows_a =
        shifted_operand(rows_a0, kRR ? c0 / kChunkDims * static_cast<std::uint32_t>(kChunkBytes) : stage);
    warpgroup_gemm_begin(now);
#pragma unroll
    for (int part = 0; part < kParts; ++part) {
      const Tensor keys_b =
          shifted_operand(keys_b0, stage + (kRR ? part : 1) * static_cast<std::uint32_t>(kChunkBytes));
      warpgroup_gemm_add(mma, rows_a, keys_b, now, zero_init && part == 0);
    }
    warpgroup_gemm_commit();
    slot_now = slot_now == kStages - 1 ? 0 : slot_now + 1;
    c0 = c0 + kChunkDims == d ? 0 : c0 + kChunkDims;
  };
  // Tile T into `now`: its chunks' wgmma, the last one issued before `previous`'s epilogue (tile T - 1, when
  // with_previous) and waited for after it.
  auto release = [&]() __attribute__((always_inline)) {  // RRAttention: the chunk's stage goes back to TMA
    if constexpr (kRR) {
      pipeline.consumer_release(consumer_state);
      ++consumer_state;
    }
  };
  auto tile = [&](auto& now, auto& previous, int T, auto with_previous) __attribute__((always_inline)) {
    for (int kc = 0; kc + 1 < chunks_per_tile; ++kc) {
      chunk(now, kc == 0);
      warpgroup_gemm_wait(now);
      release();
    }
    chunk(now, chunks_per_tile == 1);
    if constexpr (decltype(with_previous)::value) epilogue(previous, T - 1);
    warpgroup_gemm_wait(now);
    release();
  };
  if (tiles > 0) tile(acc0, acc1, 0, std::false_type{});
  for (int T = 1; T < kPasses * tiles; T += 2) {
    tile(acc1, acc0, T, std::true_type{});
    if (T + 1 < kPasses * tiles) tile(acc0, acc1, T + 1, std::true_type{});
  }
  if constexpr (kOnePass) {  // the last tile is in acc0 after an odd count
    if (tiles % 2 == 1) {
      epilogue(acc0, tiles - 1);
    } else if (tiles > 0) {
      epilogue(acc1, tiles - 1);
    }
    one_pass_block_row(m, z);
  } else if (tiles > 0) {  // 2 tiles (both passes) is even: the last tile is in acc1
    epilogue(acc1, 2 * tiles - 1);
  }
  if constexpr (kRR) {
    cutlass::arch::NamedBarrier::sync(kTileThreads, 1);  // every block row is complete (the consumers)
  } else {
    async_wait<0>();  // the copies of a CTA without visible columns (empty groups)
    __syncthreads();  // every block row is complete
  }
  if constexpr (kOnePass) {
    if (!producer && consumer_thread == 0) release_scratch_slot(params.one_pass.words, scratch_slot);
  }
  if (!mine.written) return;
  const StrideTile& t = mine.t;
  const std::int64_t mask_row = (static_cast<std::int64_t>(t.b) * p.heads_q + t.h) * p.nq + t.u;
  double* rule_row = reinterpret_cast<double*>(smem) + static_cast<std::size_t>(warp) * p.nk;  // the operand area
  for (int v = lane; v < nk_b; v += 32) rule_row[v] = block_rows[static_cast<std::size_t>(warp) * p.nk + v];
  __syncwarp();
  const unsigned long long kept =
      mine.valid ? stride_rule<kItems>(p, rule_row, t.u, t.nq_b, t.nk_b, t.lk, scratch[warp]) : 0ull;
  write_mask_row<kItems>(kept, p.nk, p.kv_indices + mask_row * p.nk, p.kv_num_blocks + mask_row);
}

}  // namespace sparsefill::cuda::select
