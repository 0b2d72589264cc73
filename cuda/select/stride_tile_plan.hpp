// Which kernel a stride selector's call runs, and the tiled kernel's shared memory (host-side geometry, no
// device code; tests/select/test_stride_tile_plan.cpp). The tiled kernel (stride_tile_kernel.cuh) takes
// B / S = 16 stride rows per query block and head_dim a multiple of 128 when its shared memory fits the sm_90
// opt-in limit and its operand area (resident query rows + stage ring) holds the rule's fp64 block rows;
// RRAttention's exact key sums then stage their hi and lo parts together where those 64 KB stages fit. Other
// calls run the per-warp kernel (stride_kernel.cuh).
#pragma once
#include <cstddef>

namespace sparsefill::cuda::select {

inline constexpr int kTileRows = 128;   // 8 row groups of 16 stride rows, 64 a warpgroup
inline constexpr int kTileCols = 128;   // key strides per column tile: 8 key blocks
inline constexpr int kChunkDims = 128;  // reduction dims per staged chunk
inline constexpr int kRowGroups = kTileRows / 16;
inline constexpr std::size_t kChunkBytes = static_cast<std::size_t>(kTileRows) * kChunkDims * 2;
inline constexpr int kSmemAlign = 1024;                     // the swizzled chunks' alignment
inline constexpr std::size_t kCutScratchBytes = 1664;       // sizeof(CutScratch), checked by the kernel
inline constexpr std::size_t kMaxSharedBytes = 227 * 1024;  // the sm_90 opt-in limit per CTA
// The kernel's static shared memory (its few __shared__ variables and the TMA pipeline's barriers; the kernel
// checks its bound), which the opt-in limit counts with the dynamic shared memory planned here.
inline constexpr std::size_t kStaticSharedBytes = 256;
// A stage holds kParts column chunks (RRAttention: the hi and lo key sums of the same dims, multiplied by
// the same query chunk in one wgmma batch) and, for XAttention, the row chunk: 2 stages of 64 KB, else 3 of
// 32 KB.
template <bool kRR, int kParts>
inline constexpr int kTileStages = (kRR && kParts == 1) ? 3 : 2;

// Shared memory of stride_tile_kernel: RRAttention's resident query rows (d / 128 chunks), the stage ring
// (XAttention stages both operands), the row groups' block rows and the cut's scratch. The query rows and the
// ring (stride_tile_operand_bytes) later hold the block rows widened to fp64.
inline std::size_t stride_tile_operand_bytes(bool rr, int parts, int d) {
  const std::size_t rows = rr ? static_cast<std::size_t>(kTileRows) * d * 2 : 0;
  const int stages = rr ? (parts == 1 ? kTileStages<true, 1> : kTileStages<true, 2>) : kTileStages<false, 1>;
  return rows + static_cast<std::size_t>(stages) * (rr ? parts : 2) * kChunkBytes;
}
inline std::size_t stride_tile_smem_bytes(bool rr, int parts, int d, int nk) {
  return kSmemAlign + stride_tile_operand_bytes(rr, parts, d) +
         (sizeof(float) * static_cast<std::size_t>(nk) + kCutScratchBytes) * kRowGroups;
}

// The kernel of one call: `tiled` (else the per-warp kernel), the tiled kernel's column chunks a stage
// (`parts`: 2 for RRAttention's paired hi + lo stages) and its dynamic shared memory.
struct StrideTilePlan {
  bool tiled;
  int parts;
  std::size_t smem_bytes;
};
// rr: RRAttention (else XAttention); key_parts: RRAttention's key-sum parts (2 exact, 1 rounded); block,
// stride, head_dim d and nk key blocks of the mask layout.
inline StrideTilePlan stride_tile_plan(bool rr, int key_parts, int block, int stride, int d, int nk) {
  const auto fits = [&](int parts) {
    return stride_tile_smem_bytes(rr, parts, d, nk) + kStaticSharedBytes <= kMaxSharedBytes &&
           sizeof(double) * static_cast<std::size_t>(nk) * kRowGroups <=
               stride_tile_operand_bytes(rr, parts, d);
  };
  if (block / stride != 16 || d % kChunkDims != 0 || !fits(1)) return {false, 1, 0};
  const int parts = rr && key_parts == 2 && fits(2) ? 2 : 1;
  return {true, parts, stride_tile_smem_bytes(rr, parts, d, nk)};
}

// One pass (stride_tile_kernel<..., kOnePass = true>): a CTA keeps, for each of its kTileRows rows and each
// column tile (kTileCols / 16 = 8 key blocks), the row's per-block exp-sums against its running maximum and
// that maximum, in a scratch slot of the workspace: [kTileRows][8 x tiles] sums, then [kTileRows][tiles]
// maxima (fp32). nk: key blocks of the mask layout.
inline constexpr int kTileBlocks = kTileCols / 16;
inline int one_pass_tiles(int nk) {
  return (nk + kTileBlocks - 1) / kTileBlocks;
}
inline std::size_t one_pass_slot_floats(int nk) {
  return static_cast<std::size_t>(kTileRows) * one_pass_tiles(nk) * (kTileBlocks + 1);
}

}  // namespace sparsefill::cuda::select
