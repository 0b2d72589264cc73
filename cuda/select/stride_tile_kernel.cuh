// The stride selectors' tiled kernel (RRAttention, XAttention) for B / S = 16 stride rows per query block and
// head_dim <= 128, the default geometry (see stride_scoring.cuh for the scores, stride_rules.cuh for the rules).
//
// A CTA takes the query blocks of several heads of one KV head, a row group per (head, query block): its 16
// rows are one mma row tile. The key strides they may see are staged in shared memory 32 at a time (cp.async,
// two stages), and every warp multiplies its rows by the staged tile, so a key tile is read from L2 once per CTA
// instead of once per warp. Two passes over the key tiles: the first takes each row's maximum and exp-sum, the
// second the probabilities, summed per key block into the row group's block row (fp64 in shared memory); then
// one warp per row group applies the rule.
//   RRAttention: 8 row groups, a warp each; the sampled query rows sit in registers; a staged key stride holds
//     the key sums' hi and lo parts (exact sums as a pair of the input dtype), so a logit is q . hi + q . lo.
//   XAttention: 4 row groups of 2 warps, each warp one key block of the tile; a row is S query tokens (d dims
//     each) in reverse order, kept in shared memory (which is what limits the row groups); key tile part t
//     stages the keys j S + t of the tile's strides, whose product with the rows' token iS + S-1-t is the
//     antidiagonal term t. The two warps of a row group merge their rows' statistics between the passes.
// Operands, 16-byte loads and staging: mma_tiles.cuh.
#pragma once
#include <cstdint>

#include "common/dynamic_shared.cuh"
#include "select/stride_rules.cuh"
#include "select/stride_scoring.cuh"

namespace sparsefill::cuda::select {

inline constexpr int kTileStrides = 32;  // key strides per staged tile: 4 mma n-tiles, 2 key blocks
inline constexpr int kTileMaxDim = 128;  // head_dim of the tiled kernel (4 steps of 32 dims in registers)

template <bool kRR>
inline constexpr int kRowGroups = kRR ? 8 : 4;
template <bool kRR>
inline constexpr int kColumnSplits = kRR ? 1 : 2;  // warps per row group, each a share of the tile's n-tiles
template <bool kRR>
inline constexpr int kTileWarps = kRowGroups<kRR> * kColumnSplits<kRR>;
inline constexpr int kMaxCopies = 4;  // 16-byte copies per thread and staged chunk (head_dim <= 128)

// Bytes of one staged key tile part (and of a stage).
__host__ __device__ inline std::size_t stride_stage_bytes(bool rr, int d) {
  return static_cast<std::size_t>(kTileStrides) * d * 2 * (rr ? 2 : 1);
}
// Bytes of the XAttention query rows of a CTA.
__host__ __device__ inline std::size_t stride_rows_bytes(bool rr, int d, int stride) {
  return rr ? 0 : static_cast<std::size_t>(kRowGroups<false>) * 16 * stride * d * 2;
}
// Row statistics (maximum, exp-sum) a row group's warps exchange between the passes.
__host__ __device__ inline std::size_t stride_stats_bytes(bool rr) {
  return rr ? 0 : sizeof(float) * 2 * 16 * kRowGroups<false> * kColumnSplits<false>;
}
// Shared memory of stride_tile_kernel: query rows (XAttention), two stages, the row statistics, a block row
// and the cut's scratch per row group.
inline std::size_t stride_tile_smem_bytes(bool rr, int d, int stride, int nk) {
  const int groups = rr ? kRowGroups<true> : kRowGroups<false>;
  return stride_rows_bytes(rr, d, stride) + 2 * stride_stage_bytes(rr, d) + stride_stats_bytes(rr) +
         (sizeof(double) * static_cast<std::size_t>(nk) + sizeof(CutScratch)) * groups;
}

// Grid (ceil(nq / query blocks per CTA), the launch's KV slots, head chunks). Row group r of a CTA with Gc heads
// takes head chunk * Gc + r % Gc and query block blockIdx.x * (row groups / Gc) + r / Gc; warp w is row group
// w % kRowGroups, column split w / kRowGroups.
template <typename Element, int kItems, bool kRR>
__global__ void __launch_bounds__(kTileWarps<kRR> * 32, kRR ? 2 : 1) stride_tile_kernel(const StrideParams p) {
  constexpr int kGroups = kRowGroups<kRR>, kSplits = kColumnSplits<kRR>;
  constexpr int kTilesHere = kTileStrides / 8 / kSplits;  // n-tiles of this warp per key tile
  unsigned char* smem = dynamic_shared<unsigned char>();
  const int group = p.heads_q / p.heads_kv, heads_here = min(group, kGroups), blocks_here = kGroups / heads_here;
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, g = lane / 4, q4 = lane % 4;
  const int row_group = warp % kGroups, split = warp / kGroups;
  const int slot = p.slot_begin + static_cast<int>(blockIdx.y), b = slot / p.heads_kv, kv = slot % p.heads_kv;
  const int in_group = static_cast<int>(blockIdx.z) * heads_here + row_group % heads_here;
  const bool active = row_group < heads_here * blocks_here && in_group < group;
  const int d = p.d, S = p.stride, dims = kRR ? d : S * d;
  const int parts = kRR ? 1 : S;  // staged parts per key tile
  const int part_groups = kRR ? 2 * d / 8 : d / 8;  // 16-byte groups per staged row

  Element* rows_smem = reinterpret_cast<Element*>(smem);  // XAttention: [row group][16][S d]
  unsigned char* stages = smem + stride_rows_bytes(kRR, d, S);
  const std::size_t stage_bytes = stride_stage_bytes(kRR, d);
  float* stats = reinterpret_cast<float*>(stages + 2 * stage_bytes);  // [row group][split][16][2]
  double* block_rows = reinterpret_cast<double*>(stages + 2 * stage_bytes + stride_stats_bytes(kRR));
  CutScratch& scratch = reinterpret_cast<CutScratch*>(block_rows + static_cast<std::size_t>(kGroups) * p.nk)[row_group];
  double* block_row = block_rows + static_cast<std::size_t>(row_group) * p.nk;

  StrideTile t{};
  t.slot = slot, t.b = b, t.g = kv;
  t.h = kv * group + (in_group < group ? in_group : 0);
  t.u = static_cast<int>(blockIdx.x) * blocks_here + row_group / heads_here;
  t.lq = p.lengths.q(b), t.lk = p.lengths.k(b);
  t.nq_b = p.lengths.q_blocks(b), t.nk_b = p.lengths.k_blocks(b);
  t.key_strides = (t.lk + S - 1) / S;
  t.rows = 16;
  t.offset = p.mirrored ? S - 1 - t.h % S : t.h % S;
  t.q_base = b * p.q_batch + static_cast<std::int64_t>(p.lengths.q_start(b)) * p.q_token + t.h * p.q_head;
  t.k_base = b * p.k_batch + static_cast<std::int64_t>(p.lengths.k_start(b)) * p.k_token + kv * p.k_head;
  t.dims = dims;
  const bool has_row = active && t.u < t.nq_b;
  const int limit[2] = {has_row ? t.row_limit(p, g) : -1, has_row ? t.row_limit(p, g + 8) : -1};
  int tile_limit = max(limit[0], limit[1]);
  for (int offset = 16; offset > 0; offset /= 2) tile_limit = max(tile_limit, __shfl_xor_sync(0xffffffffu, tile_limit, offset));
  __shared__ int cta_limit;
  if (threadIdx.x == 0) cta_limit = -1;
  __syncthreads();
  if (lane == 0) atomicMax(&cta_limit, tile_limit);
  for (int v = lane; split == 0 && has_row && v < t.nk_b; v += 32) block_row[v] = 0.0;

  // The row group's query rows: RRAttention's in registers (rows g and g + 8 of each 32-dim step),
  // XAttention's in shared memory, row r's dims (tt, c) from token (u 16 + r) S + S-1-tt (loaded by split 0, in
  // the first stage's copy group).
  constexpr int kSteps = kTileMaxDim / 32;
  RowFragment held[kSteps];
  if constexpr (kRR) {
#pragma unroll
    for (int step = 0; step < kSteps; ++step)
      if (step * 32 < d) held[step] = {t.sampled_query_dims(p, g, step * 32 + 8 * q4), t.sampled_query_dims(p, g + 8, step * 32 + 8 * q4)};
  } else if (split == 0) {
    Element* mine = rows_smem + static_cast<std::size_t>(row_group) * 16 * dims;
    const int groups = dims / 8;
    for (int i = lane; i < 16 * groups; i += 32) {
      const int r = i / groups, grp = i % groups, tt = grp * 8 / d, c = grp * 8 % d;
      const int token = (t.u * 16 + r) * S + S - 1 - tt;
      const bool present = has_row && token < t.lq;
      async_copy16(mine + r * dims + swizzled(r, grp, groups) * 8,
                   static_cast<const Element*>(p.q) + t.q_base + static_cast<std::int64_t>(present ? token : 0) * p.q_token + c,
                   present);
    }
  }
  __syncthreads();
  const int tiles = (cta_limit + kTileStrides) / kTileStrides;  // key tiles holding a visible stride
  const int chunks = 2 * tiles * parts;

  // This thread's copies of every staged chunk: kTileStrides rows of part_groups 16-byte groups, the same
  // (row, group) each time; only the source moves with the chunk.
  int copy_of[kMaxCopies];  // row * 256 + group, or -1
  unsigned copy_at[kMaxCopies];  // byte offset in a stage
#pragma unroll
  for (int k = 0; k < kMaxCopies; ++k) {
    const int i = threadIdx.x + k * static_cast<int>(blockDim.x), row = i / part_groups, grp = i % part_groups;
    copy_of[k] = i < kTileStrides * part_groups ? row * 256 + grp : -1;
    copy_at[k] = static_cast<unsigned>((row * part_groups + swizzled(row, grp, part_groups)) * 16);
  }
  // Stage chunk c (pass, key tile, part) into stage c % 2.
  auto issue = [&](int c) {
    const int rem = c % (tiles * parts), jt = rem / parts, part = rem % parts;
    unsigned char* stage = stages + (c % 2) * stage_bytes;
#pragma unroll
    for (int k = 0; k < kMaxCopies; ++k) {
      if (copy_of[k] < 0) continue;
      const int j = jt * kTileStrides + copy_of[k] / 256, grp = copy_of[k] % 256;
      const Element* src;
      bool present;
      if constexpr (kRR) {
        const int half = grp >= d / 8, c8 = grp - (half ? d / 8 : 0);
        present = j < t.key_strides;
        const std::int64_t at = (static_cast<std::int64_t>(slot - p.slot_begin) * p.strides_max + (present ? j : 0)) * d + c8 * 8;
        src = static_cast<const Element*>(half ? p.key_lo : p.key_hi) + at;
      } else {
        const int token = j * S + part;
        present = token < t.lk;
        src = static_cast<const Element*>(p.k) + t.k_base + static_cast<std::int64_t>(present ? token : 0) * p.k_token + grp * 8;
      }
      async_copy16(stage + copy_at[k], src, present);
    }
    async_commit();
  };

  const float scale = 1.4426950408889634f / (static_cast<float>(S) * sqrtf(static_cast<float>(d)));
  float m[2] = {-INFINITY, -INFINITY}, z[2] = {0.f, 0.f}, inv_z[2] = {0.f, 0.f};
  float acc[kTilesHere][4];
  if (chunks > 0) issue(0);
  else async_wait<0>();  // the query rows' copies
  for (int c = 0; c < chunks; ++c) {
    next_stage(c, chunks, issue);
    const int pass = c / (tiles * parts), rem = c % (tiles * parts), jt = rem / parts, part = rem % parts;
    if (kSplits > 1 && c == tiles * parts && has_row) {
      // The first chunk of pass 2: every split's statistics of the row group's rows are written; merge them in
      // split order.
#pragma unroll
      for (int i = 0; i < 2; ++i) {
        const int r = g + 8 * i;
        float mm = -INFINITY, zz = 0.f;
        for (int s2 = 0; s2 < kSplits; ++s2) {
          const float* st = stats + ((row_group * kSplits + s2) * 16 + r) * 2;
          const float next = fmaxf(mm, st[0]);
          zz = next == -INFINITY ? 0.f : zz * exp2f(mm - next) + st[1] * exp2f(st[0] - next);
          mm = next;
        }
        m[i] = mm == -INFINITY ? 0.f : mm;  // a row that sees nothing: every probability 0
        inv_z[i] = zz > 0.f ? 1.f / zz : 0.f;
      }
    }
    if (part == 0) {
#pragma unroll
      for (int nt = 0; nt < kTilesHere; ++nt)
#pragma unroll
        for (int e = 0; e < 4; ++e) acc[nt][e] = 0.f;
    }
    const uint4* stage = reinterpret_cast<const uint4*>(stages + (c % 2) * stage_bytes);
    // The tile's logits: per 32-dim step, this lane's 8 dims of rows g, g + 8 and of column nt 8 + g.
#pragma unroll
    for (int step = 0; step < kSteps; ++step) {
      if (step * 32 >= d) break;
      RowFragment a;
      if constexpr (kRR) {
        a = held[step];
      } else {
        const uint4* mine = reinterpret_cast<const uint4*>(rows_smem + static_cast<std::size_t>(row_group) * 16 * dims);
        const int groups = dims / 8, grp = part * (d / 8) + step * 4 + q4;
        a = {mine[g * groups + swizzled(g, grp, groups)], mine[(g + 8) * groups + swizzled(g + 8, grp, groups)]};
      }
#pragma unroll
      for (int nt = 0; nt < kTilesHere; ++nt) {
        const int n = (split * kTilesHere + nt) * 8 + g;
#pragma unroll
        for (int half = 0; half < (kRR ? 2 : 1); ++half) {
          mma_step<Element>(acc[nt], a, stage[n * part_groups + swizzled(n, half * (d / 8) + step * 4 + q4, part_groups)]);
        }
      }
    }
    if (part == parts - 1 && has_row) {
      // This warp's logits in log2 units, -inf where a row may not see the column.
      const int col0 = jt * kTileStrides + split * kTilesHere * 8 + 2 * q4;
      const bool all_visible = col0 + (kTilesHere - 1) * 8 + 1 <= min(limit[0], limit[1]);
      float s[kTilesHere][4];
#pragma unroll
      for (int nt = 0; nt < kTilesHere; ++nt)
#pragma unroll
        for (int e = 0; e < 4; ++e)
          s[nt][e] = all_visible || col0 + nt * 8 + (e % 2) <= limit[e / 2] ? acc[nt][e] * scale : -INFINITY;
      if (pass == 0) {  // each row's running maximum and exp-sum over this lane's columns
        float tile_max[2] = {-INFINITY, -INFINITY};
#pragma unroll
        for (int nt = 0; nt < kTilesHere; ++nt)
#pragma unroll
          for (int e = 0; e < 4; ++e) tile_max[e / 2] = fmaxf(tile_max[e / 2], s[nt][e]);
        raise_row_maxima(m, z, tile_max);
#pragma unroll
        for (int nt = 0; nt < kTilesHere; ++nt)
#pragma unroll
          for (int e = 0; e < 4; ++e) z[e / 2] += m[e / 2] == -INFINITY ? 0.f : exp2_flushed(s[nt][e] - m[e / 2]);
        if (jt == tiles - 1) {  // the rows' statistics over their 4 lanes (and, with splits, over the splits)
#pragma unroll
          for (int i = 0; i < 2; ++i) {
            merge_row_over_quad(m[i], z[i]);
            inv_z[i] = z[i] > 0.f ? 1.f / z[i] : 0.f;
            if (kSplits > 1 && q4 == 0) {
              float* st = stats + ((row_group * kSplits + split) * 16 + g + 8 * i) * 2;
              st[0] = m[i];
              st[1] = z[i];
            }
            if (m[i] == -INFINITY) m[i] = 0.f;  // a row that sees nothing: every probability 0
          }
        }
      } else {  // probabilities, summed over the rows into this warp's key blocks (16 columns each)
#pragma unroll
        for (int kb = 0; kb < kTilesHere / 2; ++kb) {
          float sum = 0.f;
#pragma unroll
          for (int nt = 2 * kb; nt < 2 * kb + 2; ++nt)
#pragma unroll
            for (int e = 0; e < 4; ++e) sum += exp2_flushed(s[nt][e] - m[e / 2]) * inv_z[e / 2];
          for (int offset = 16; offset > 0; offset /= 2) sum += __shfl_xor_sync(0xffffffffu, sum, offset);
          const int v = jt * (kTileStrides / 16) + split * (kTilesHere / 2) + kb;
          if (lane == 0 && v < t.nk_b) block_row[v] += static_cast<double>(sum);
        }
      }
    }
    __syncthreads();  // the stage is consumed before chunk c + 2 overwrites it
  }
  if (!active || split != 0 || t.u >= p.nq) return;
  const std::int64_t mask_row = (static_cast<std::int64_t>(b) * p.heads_q + t.h) * p.nq + t.u;
  const unsigned long long kept = has_row ? stride_rule<kItems>(p, block_row, t.u, t.nq_b, t.nk_b, t.lk, scratch) : 0ull;
  write_mask_row<kItems>(kept, p.nk, p.kv_indices + mask_row * p.nk, p.kv_num_blocks + mask_row);
}

}  // namespace sparsefill::cuda::select
