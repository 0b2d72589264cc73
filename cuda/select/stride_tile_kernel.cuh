// The stride selectors' tiled kernel (RRAttention, XAttention) for B / S = 16 stride rows per query block and
// head_dim a multiple of 128, the default geometry, for rows of up to 2048 key blocks (256K tokens at B = 128); see
// stride_scoring.cuh for the scores, stride_rules.cuh for the rules.
// Other geometries run the per-warp kernel (stride_kernel.cuh), which computes the same scores.
//
// The logits are a GEMM, rows (stride rows) x columns (key strides) over a reduction of `dims`:
//   RRAttention: row = the sampled query (d dims), column = the key sum as hi + lo parts of the input dtype, so
//     the reduction is [q, q] . [hi, lo] over 2 d dims (hi alone for rounded key sums); the CTA's sampled
//     queries stay in shared memory.
//   XAttention: row i = [q(iS + S-1), ..., q(iS)], column j = [k(jS), ..., k(jS + S-1)] over S d dims; reduction
//     chunk c covers dims of token part t = 128 c / d of both, so both operands are staged per chunk.
// A CTA takes 128 rows, 8 row groups of 16 rows, each the stride rows of one (query head, query block) of one
// KV head (the GQA group's heads share the key tiles), and walks 128-column tiles up to the last column its rows
// may see, the reduction in chunks of 128 dims staged by cp.async in a ring of 3 stages (RRAttention) or 2
// (XAttention, two operands a stage). 8 warps, 4 along the rows x 2 along the columns, each a 32 x 64 warp tile
// of mma.sync m16n8k16 (fp32 accumulation) fed by ldmatrix from XOR-swizzled 256-byte rows. Two passes over the
// tiles: the first takes each row's maximum and exp-sum (the two column halves merged through shared memory in
// a fixed order), the second the probabilities, summed per key block (16 columns) over the row group's rows by
// a reduce-scatter over the lanes, into the row groups' block rows (fp32 in shared memory: each entry is one
// fp32 sum, written once); then one warp per row group widens its row to fp64 in the stage ring, free by then,
// applies the rule and writes its mask row. Columns past a row's causal limit are masked only on the
// tiles that cross a limit; a warp whose rows see none of a tile's columns skips its mma. Chunk bookkeeping is
// incremental (no divisions in the loop).
#pragma once
#include <climits>
#include <cstdint>
#include <cute/arch/copy_sm75.hpp>

#include "common/dynamic_shared.cuh"
#include "select/stride_rules.cuh"
#include "select/stride_scoring.cuh"

namespace sparsefill::cuda::select {

inline constexpr int kTileRows = 128;   // 8 row groups of 16 stride rows
inline constexpr int kTileCols = 128;   // key strides per column tile: 8 key blocks
inline constexpr int kChunkDims = 128;  // reduction dims per staged chunk: 256-byte rows
template <bool kRR>
inline constexpr int kTileStages = kRR ? 3 : 2;  // XAttention stages both operands
inline constexpr int kTileWarps = 8;    // warp tile 32 rows x 64 columns
inline constexpr int kRowGroups = kTileRows / 16;
inline constexpr std::size_t kChunkBytes = static_cast<std::size_t>(kTileRows) * kChunkDims * 2;
inline constexpr int kCopies = kTileRows * kChunkDims / 8 / (kTileWarps * 32);  // 16-byte copies a thread per operand
inline constexpr int kSmemAlign = 1024;  // the kernel aligns its shared memory (swizzled addresses are XORs)

// Shared memory of stride_tile_kernel: RRAttention's resident query rows, the stage ring (XAttention stages
// both operands), the two column halves' row statistics, the row groups' block rows and the cut's scratch.
// The query rows and the ring (stride_tile_operand_bytes) later hold the block rows widened to fp64.
inline std::size_t stride_tile_operand_bytes(bool rr, int d) {
  const std::size_t rows = rr ? static_cast<std::size_t>(kTileRows) * d * 2 : 0;
  return rows + (rr ? kTileStages<true> * kChunkBytes : kTileStages<false> * 2 * kChunkBytes);
}
inline std::size_t stride_tile_smem_bytes(bool rr, int d, int nk) {
  const std::size_t stats = sizeof(float) * 2 * 2 * kTileRows;
  return kSmemAlign + stride_tile_operand_bytes(rr, d) + stats +
         (sizeof(float) * static_cast<std::size_t>(nk) + sizeof(CutScratch)) * kRowGroups;
}
// Whether the operand area holds the block rows widened to fp64 for the rule.
inline bool stride_tile_rule_rows_fit(bool rr, int d, int nk) {
  return sizeof(double) * static_cast<std::size_t>(nk) * kRowGroups <= stride_tile_operand_bytes(rr, d);
}

// Element offset of 16-byte group `group` of row `row` in rows of `width` elements (a multiple of 64): the
// groups of each 128-byte line are XOR-swizzled by the row, so the 8 rows an ldmatrix phase reads hit distinct
// banks.
__device__ inline int swizzled_offset(int row, int group, int width) { return row * width + ((group ^ (row & 7)) << 3); }

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
// start first.
template <typename Element, int kItems, bool kRR>
__global__ void __launch_bounds__(kTileWarps * 32, 1) stride_tile_kernel(const StrideParams p) {
  using Op = typename MmaOf<Element>::Op;
  using Ldsm = cute::SM75_U32x4_LDSM_N;
  constexpr int kStages = kTileStages<kRR>;
  unsigned char* smem = dynamic_shared<unsigned char>();
  smem += (kSmemAlign - static_cast<int>(__cvta_generic_to_shared(smem) % kSmemAlign)) % kSmemAlign;
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, g = lane / 4, q4 = lane % 4;
  const int wm = warp % 4, wn = warp / 4;
  const int slot = p.slot_begin + static_cast<int>(blockIdx.y), x = static_cast<int>(gridDim.x - 1 - blockIdx.x);
  const int d = p.d, S = p.stride;
  const int parts = kRR ? p.key_parts : S;  // reduction parts: key-sum hi (+ lo), or token parts
  const int chunks_per_tile = parts * d / kChunkDims;

  Element* rows_smem = reinterpret_cast<Element*>(smem);  // RRAttention: [128][d]
  unsigned char* stages = smem + (kRR ? static_cast<std::size_t>(kTileRows) * d * 2 : 0);
  constexpr std::size_t kStageBytes = kChunkBytes * (kRR ? 1 : 2);  // [A chunk (XAttention)][B chunk]
  float* stats = reinterpret_cast<float*>(stages + kStages * kStageBytes);  // [column half][128][2]
  float* block_rows = stats + 2 * 2 * kTileRows;                              // [row group][nk]
  CutScratch* scratch = reinterpret_cast<CutScratch*>(block_rows + static_cast<std::size_t>(kRowGroups) * p.nk);

  // This lane's 4 rows (m-tile mt, half e / 2 of the accumulator): their row groups' tiles and causal limits.
  const RowGroup mine[2] = {row_group(p, slot, x, 2 * wm), row_group(p, slot, x, 2 * wm + 1)};
  const StrideTile& first = mine[0].t;  // sequence-wide values (any row group's)
  const int lk = first.lk, key_strides = first.key_strides, nk_b = first.nk_b;
  int limit[4];
#pragma unroll
  for (int i = 0; i < 4; ++i) limit[i] = mine[i / 2].valid ? mine[i / 2].t.row_limit(p, g + 8 * (i % 2)) : -1;
  int warp_max = max(max(limit[0], limit[1]), max(limit[2], limit[3]));
  int warp_min = min(min(limit[0], limit[1]), min(limit[2], limit[3]));
  for (int offset = 16; offset > 0; offset /= 2) {
    warp_max = max(warp_max, __shfl_xor_sync(0xffffffffu, warp_max, offset));
    warp_min = min(warp_min, __shfl_xor_sync(0xffffffffu, warp_min, offset));
  }
  __shared__ int cta_limit;
  if (threadIdx.x == 0) cta_limit = -1;
  for (int i = threadIdx.x; i < kRowGroups * nk_b; i += blockDim.x)
    block_rows[static_cast<std::size_t>(i / nk_b) * p.nk + i % nk_b] = 0.f;
  __syncthreads();
  if (lane == 0 && wn == 0) atomicMax(&cta_limit, warp_max);

  // Copies: thread i stages 16-byte group i % 16 of rows i / 16 + 16 k (k < kCopies; for XAttention's queries
  // row group k) of every chunk, from sources precomputed for column tile 0, token part / key-sum half 0, dim 0.
  const int copy_group = threadIdx.x % 16, copy_row = static_cast<int>(threadIdx.x) / 16;
  const Element* q = static_cast<const Element*>(p.q);
  const Element* keys = kRR ? static_cast<const Element*>(p.key_hi) : static_cast<const Element*>(p.k);
  const std::int64_t b_row_step = kRR ? 16LL * d : 16LL * S * p.k_token;  // between a thread's copies
  const Element* b_src = keys + copy_group * 8 +
                         (kRR ? (static_cast<std::int64_t>(slot - p.slot_begin) * p.strides_max + copy_row) * d
                              : first.k_base + static_cast<std::int64_t>(copy_row) * S * p.k_token);
  const Element* a_src[kCopies] = {};  // XAttention's query rows
  int a_first_part[kCopies] = {};      // XAttention: the first token part t whose query token is in the sequence
  if constexpr (!kRR) {
#pragma unroll
    for (int k = 0; k < kCopies; ++k) {
      const RowGroup rg = row_group(p, slot, x, k);
      const int last_token = (rg.t.u * 16 + copy_row) * S + S - 1;  // token part 0 of the row
      a_first_part[k] = rg.valid ? last_token - rg.t.lq + 1 : INT_MAX;
      a_src[k] = q + (rg.valid ? rg.t.q_base + static_cast<std::int64_t>(last_token) * p.q_token + copy_group * 8 : 0);
    }
  }
  if constexpr (kRR) {  // the sampled queries, one copy group ahead of the stages
    const int groups = d / 8;
    for (int i = threadIdx.x; i < kTileRows * groups; i += blockDim.x) {
      const int row = i / groups, grp = i % groups;
      const RowGroup rg = row_group(p, slot, x, row / 16);
      const int token = (rg.t.u * 16 + row % 16) * S + rg.t.offset;
      const bool present = rg.valid && token < rg.t.lq;
      async_copy16(rows_smem + swizzled_offset(row, grp, d),
                   q + (present ? rg.t.q_base + static_cast<std::int64_t>(token) * p.q_token + grp * 8 : 0), present);
    }
    async_commit();
  }
  __syncthreads();
  const int tiles = (cta_limit + kTileCols) / kTileCols;  // column tiles holding a visible column
  const int chunks = 2 * tiles * chunks_per_tile;         // two passes

  // The issue cursor: the next chunk to stage (column tile, part = XAttention's token part or RRAttention's
  // key-sum half, first dim c0), its slot, and the element offsets it adds to the sources (a_at: XAttention's
  // queries; b_at: keys or key sums); pass 1 restages pass 0's sequence.
  const std::int64_t part_step = !kRR ? p.k_token : p.key_parts == 2 ? static_cast<const Element*>(p.key_lo) - keys : 0;
  const std::int64_t tile_step = kRR ? static_cast<std::int64_t>(kTileCols) * d : static_cast<std::int64_t>(kTileCols) * S * p.k_token;
  const int tile_left_step = kRR ? kTileCols : kTileCols * S;
  int issue_jt = 0, issue_part = 0, issue_c0 = 0, issue_slot = 0, issued = 0;
  std::int64_t a_part_at = 0, b_tile_at = 0, b_part_at = 0, a_at = 0, b_at = 0;
  int issue_left = kRR ? key_strides : lk;  // key strides (RR) / key tokens (XAttention) from the tile's first
  auto issue = [&]() {
    unsigned char* stage = stages + issue_slot * kStageBytes;
    Element* a_stage = reinterpret_cast<Element*>(stage) + swizzled_offset(copy_row, copy_group, kChunkDims);
    Element* b_stage = reinterpret_cast<Element*>(stage + (kRR ? 0 : kChunkBytes)) + swizzled_offset(copy_row, copy_group, kChunkDims);
    const int b_left = kRR ? issue_left - copy_row : issue_left - issue_part - copy_row * S;  // in rows (RR) / tokens
#pragma unroll
    for (int k = 0; k < kCopies; ++k) {
      if constexpr (!kRR) {
        const bool a_present = issue_part >= a_first_part[k];
        async_copy16(a_stage + k * 16 * kChunkDims, a_present ? a_src[k] + a_at : q, a_present);
      }
      const bool b_present = k * 16 * (kRR ? 1 : S) < b_left;
      async_copy16(b_stage + k * 16 * kChunkDims, b_present ? b_src + (b_at + k * b_row_step) : keys, b_present);
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
      issue_left -= tile_left_step;
    } else {
      issue_jt = 0, b_tile_at = 0, issue_left = kRR ? key_strides : lk;
    }
    a_at = a_part_at = 0;
    b_at = b_part_at = b_tile_at;
  };

  // ldmatrix lanes: A (m-tile rows) row lane % 16, 16-byte group half lane / 16; B (pairs of n-tiles) row
  // (lane / 16) 8 + lane % 8, group half (lane / 8) % 2. Rows start at multiples of 256 bytes and are = lane
  // (mod 8), so the byte address of k-step ks is (row start + swizzled half) ^ (ks << 5).
  const int swz = lane & 7;
  const unsigned a_in_row = static_cast<unsigned>((((lane >> 4) ^ swz) << 4));
  const unsigned b_in_row = static_cast<unsigned>(((((lane >> 3) & 1) ^ swz) << 4));
  const unsigned rows_at = static_cast<unsigned>(__cvta_generic_to_shared(rows_smem));
  const unsigned stages_at = static_cast<unsigned>(__cvta_generic_to_shared(stages));
  const int a_row = wm * 32 + (lane & 15), b_row = wn * 64 + ((lane >> 4) << 3) + (lane & 7);
  auto ldsm = [](unsigned at, unsigned (&r)[4]) {
    Ldsm::copy(*reinterpret_cast<const cute::uint128_t*>(__cvta_shared_to_generic(at)), r[0], r[1], r[2], r[3]);
  };

  const float scale = 1.4426950408889634f / (static_cast<float>(S) * sqrtf(static_cast<float>(d)));
  float m[4] = {-INFINITY, -INFINITY, -INFINITY, -INFINITY}, z[4] = {0.f, 0.f, 0.f, 0.f};
  float shift[4], inv_z[4];  // pass 1: each row's maximum (0 for a row that sees nothing) and 1 / exp-sum
  // Column half `half`'s (maximum, exp-sum) of this lane's row i, exchanged at the end of pass 0.
  auto row_stats = [&](int half, int i) {
    return stats + (half * kTileRows + wm * 32 + 16 * (i / 2) + g + 8 * (i % 2)) * 2;
  };
  float acc[2][8][4];
  zero_accumulators(acc);
  for (int s = 0; s < kStages - 1; ++s) {
    if (issued < chunks) issue();
    else async_commit();
  }
  int pass = 0, jt = 0, kc = 0, c0 = 0, slot_now = 0;  // the compute cursor (c0: the chunk's first dim)
  for (int c = 0; c < chunks; ++c) {
    async_wait<kStages - 2>();
    __syncthreads();  // chunk c is staged; every warp is done with chunk c - 1, whose slot is refilled next
    if (issued < chunks) issue();
    else async_commit();
    const int col0 = jt * kTileCols + wn * 64;  // this warp's first column
    const bool live = col0 <= warp_max;
    if (live) {
      const unsigned stage_at = stages_at + slot_now * static_cast<unsigned>(kStageBytes);
      const unsigned b_at = stage_at + (kRR ? 0u : static_cast<unsigned>(kChunkBytes));
      unsigned a_base[2], b_base[4];
#pragma unroll
      for (int mt = 0; mt < 2; ++mt)
        a_base[mt] = (kRR ? rows_at + static_cast<unsigned>(((a_row + 16 * mt) * d + c0) * 2)
                          : stage_at + static_cast<unsigned>((a_row + 16 * mt) * kChunkDims * 2)) + a_in_row;
#pragma unroll
      for (int np = 0; np < 4; ++np) b_base[np] = b_at + static_cast<unsigned>((b_row + 16 * np) * kChunkDims * 2) + b_in_row;
#pragma unroll
      for (int ks = 0; ks < kChunkDims / 16; ++ks) {
        unsigned a[2][4], bf[4][4];
#pragma unroll
        for (int mt = 0; mt < 2; ++mt) ldsm(a_base[mt] ^ (ks << 5), a[mt]);
#pragma unroll
        for (int np = 0; np < 4; ++np) ldsm(b_base[np] ^ (ks << 5), bf[np]);
#pragma unroll
        for (int mt = 0; mt < 2; ++mt)
#pragma unroll
          for (int nt = 0; nt < 8; ++nt) {
            float (&r)[4] = acc[mt][nt];
            Op::fma(r[0], r[1], r[2], r[3], a[mt][0], a[mt][1], a[mt][2], a[mt][3], bf[nt / 2][2 * (nt % 2)],
                    bf[nt / 2][2 * (nt % 2) + 1], r[0], r[1], r[2], r[3]);
          }
      }
    }
    slot_now = slot_now == kStages - 1 ? 0 : slot_now + 1;
    c0 = c0 + kChunkDims == d ? 0 : c0 + kChunkDims;
    if (++kc < chunks_per_tile) continue;
    kc = 0;
    // The tile's products: acc[mt][nt][e] is row 16 mt + g + 8 (e / 2) of the warp (this lane's row i =
    // 2 mt + e / 2), column col0 + 8 nt + 2 q4 + e % 2. Logits are acc * scale in log2 units.
    if (pass == 1 && jt == 0) {  // pass 1's first tile: both column halves' statistics are written; merge them
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        float mm = -INFINITY, zz = 0.f;
        for (int half = 0; half < 2; ++half) combine_row_stats(mm, zz, row_stats(half, i)[0], row_stats(half, i)[1]);
        shift[i] = mm == -INFINITY ? 0.f : mm;  // a row that sees nothing: every probability 0
        inv_z[i] = zz > 0.f ? 1.f / zz : 0.f;
      }
    }
    if (live) {
      if (col0 + 63 > warp_min) {  // a tile crossing a row's limit: -inf past it
#pragma unroll
        for (int mt = 0; mt < 2; ++mt)
#pragma unroll
          for (int nt = 0; nt < 8; ++nt)
#pragma unroll
            for (int e = 0; e < 4; ++e)
              if (col0 + 8 * nt + 2 * q4 + (e % 2) > limit[2 * mt + e / 2]) acc[mt][nt][e] = -INFINITY;
      }
      if (pass == 0) {  // each row's running maximum and exp-sum over this lane's columns
        float tile_max[4] = {-INFINITY, -INFINITY, -INFINITY, -INFINITY};
#pragma unroll
        for (int mt = 0; mt < 2; ++mt)
#pragma unroll
          for (int nt = 0; nt < 8; ++nt)
#pragma unroll
            for (int e = 0; e < 4; ++e) tile_max[2 * mt + e / 2] = fmaxf(tile_max[2 * mt + e / 2], acc[mt][nt][e]);
#pragma unroll
        for (int i = 0; i < 4; ++i) tile_max[i] *= scale;
        raise_row_maxima(m, z, tile_max);
        float base[4];
#pragma unroll
        for (int i = 0; i < 4; ++i) base[i] = m[i] == -INFINITY ? 0.f : m[i];
#pragma unroll
        for (int mt = 0; mt < 2; ++mt)
#pragma unroll
          for (int nt = 0; nt < 8; ++nt)
#pragma unroll
            for (int e = 0; e < 4; ++e) z[2 * mt + e / 2] += exp2_flushed(fmaf(acc[mt][nt][e], scale, -base[2 * mt + e / 2]));
      } else {
        // Probabilities summed per (m-tile, key block kb of n-tiles 2 kb, 2 kb + 1): v[4 mt + kb], then over
        // the warp: lane 4 j ends with entry j.
        float v[8];
#pragma unroll
        for (int mt = 0; mt < 2; ++mt)
#pragma unroll
          for (int kb = 0; kb < 4; ++kb) {
            float row_sum[2] = {0.f, 0.f};
#pragma unroll
            for (int nt = 2 * kb; nt < 2 * kb + 2; ++nt)
#pragma unroll
              for (int e = 0; e < 4; ++e) row_sum[e / 2] += exp2_flushed(fmaf(acc[mt][nt][e], scale, -shift[2 * mt + e / 2]));
            v[4 * mt + kb] = row_sum[0] * inv_z[2 * mt] + row_sum[1] * inv_z[2 * mt + 1];
          }
        exchange_halves<4, 16>(v, lane);
        exchange_halves<2, 8>(v, lane);
        exchange_halves<1, 4>(v, lane);
        v[0] += __shfl_xor_sync(0xffffffffu, v[0], 1);
        v[0] += __shfl_xor_sync(0xffffffffu, v[0], 2);
        const int block = jt * (kTileCols / 16) + wn * 4 + g % 4, row_group = 2 * wm + g / 4;
        if (q4 == 0 && block < nk_b) block_rows[static_cast<std::size_t>(row_group) * p.nk + block] = v[0];
      }
      zero_accumulators(acc);
    }
    if (pass == 0 && jt == tiles - 1) {  // the rows' statistics over their quads, for the other column half
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        merge_row_over_quad(m[i], z[i]);
        if (q4 == 0) {
          row_stats(wn, i)[0] = m[i];
          row_stats(wn, i)[1] = z[i];
        }
      }
    }
    if (++jt == tiles) jt = 0, ++pass;
  }
  async_wait<0>();  // the copies of a CTA without visible columns (RRAttention's rows, empty groups)
  __syncthreads();  // every block row is complete
  const RowGroup rg = row_group(p, slot, x, warp);
  if (!rg.written) return;
  const StrideTile& t = rg.t;
  const std::int64_t mask_row = (static_cast<std::int64_t>(t.b) * p.heads_q + t.h) * p.nq + t.u;
  double* rule_row = reinterpret_cast<double*>(smem) + static_cast<std::size_t>(warp) * p.nk;  // the operand area
  for (int v = lane; v < nk_b; v += 32) rule_row[v] = block_rows[static_cast<std::size_t>(warp) * p.nk + v];
  __syncwarp();
  const unsigned long long kept =
      rg.valid ? stride_rule<kItems>(p, rule_row, t.u, t.nq_b, t.nk_b, t.lk, scratch[warp]) : 0ull;
  write_mask_row<kItems>(kept, p.nk, p.kv_indices + mask_row * p.nk, p.kv_num_blocks + mask_row);
}

}  // namespace sparsefill::cuda::select
