// Block-sparse attention on the GPU: the host API of the CUDA kernels (layering of CUTLASS /
// FlashAttention-3).
//
//   BlockSparseAttention::validate(args)        clear errors naming the argument (shapes, dtypes, mask
//   geometry) BlockSparseAttention::workspace_size(args)  bytes the caller allocates once
//   BlockSparseAttention::plan(args, ws, s)     GPU-side: turns the mask into a schedule (heaviest tiles
//   first) BlockSparseAttention::run(args, ws, s)      launches; never allocates, never synchronises:
//   graph-capturable
//
// Semantics are those of the CPU reference (reference_attention.hpp): q [batch, seqlen_q, heads_q, head_dim],
// k/v [batch, seqlen_k, heads_kv, head_dim] (varlen: [total, heads, head_dim] plus device cu_seqlens), bf16
// or fp16, head_dim 64 or 128, fp32 accumulation, GQA/MQA by index, causal bottom-right aligned, a row
// without a visible key gives 0 and LSE -inf. The mask is the canonical one (block_mask.hpp) in device
// memory: kv_num_blocks [batch, mask_heads, nQb] and kv_indices [batch, mask_heads, nQb, nKb], int32; its
// contents are trusted (reading them on the host would synchronise) but the kernel never reads outside the
// tensors for any index value.
//
// Two kernels sit behind this API: on sm_90 with 128x128 mask blocks and 16-byte aligned rows, the Hopper
// kernel (wgmma, TMA ring, warp specialisation, 128-row tiles); otherwise (and for PBS key orders) a generic
// tensor-core kernel (WMMA, 64-row tiles) that takes every block size and alignment. Both compute the same
// function.
#pragma once
#include <cstddef>
#include <cstdint>

#include "sparsefill/tensor.hpp"

namespace sparsefill::cuda {

struct DeviceBlockMask {
  const std::int32_t* kv_num_blocks = nullptr;  // [batch, heads, num_q_blocks]
  const std::int32_t* kv_indices = nullptr;     // [batch, heads, num_q_blocks, num_k_blocks]
  std::int64_t heads = 1, num_q_blocks = 0, num_k_blocks = 0, block_q = 128, block_k = 128;
};

struct BlockSparseAttentionArgs {
  TensorView q, k, v;    // device memory
  TensorView out;        // device memory, q's shape and dtype
  float* lse = nullptr;  // optional [batch, heads_q, max_seqlen_q], device memory
  DeviceBlockMask mask;
  bool causal = true;
  double scale = 0.0;  // 0: 1 / sqrt(head_dim)
  // PBS (reference_permuted_attention): optional device int32 [batch, heads_q, max_seqlen_k], the original index
  // (within its sequence) of the key each query head reads at each position; the mask is over those positions
  // and causality compares original positions. Runs on the generic kernel.
  const std::int32_t* key_order = nullptr;
  // Varlen (rank-3 q/k/v): device cu_seqlens [batch + 1] and the host-known batch and maximum lengths.
  const std::int32_t* cu_seqlens_q = nullptr;
  const std::int32_t* cu_seqlens_k = nullptr;
  std::int64_t varlen_batch = 0, max_seqlen_q = 0, max_seqlen_k = 0;
};

class BlockSparseAttention {
 public:
  // Throws sparsefill::Error naming the argument when the call cannot run.
  static void validate(const BlockSparseAttentionArgs& args);
  static std::size_t workspace_size(const BlockSparseAttentionArgs& args);
  // "hopper-wgmma-tma" or "generic-wmma": the kernel plan() and run() use for these arguments.
  static const char* kernel_name(const BlockSparseAttentionArgs& args);
  // `stream` is a cudaStream_t.
  static void plan(const BlockSparseAttentionArgs& args, void* workspace, void* stream);
  static void run(const BlockSparseAttentionArgs& args, void* workspace, void* stream);
};

}  // namespace sparsefill::cuda
