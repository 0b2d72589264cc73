// Host launcher of the block-sparse attention kernels (design note): validate the views and the mask geometry
// on the host (no device reads), choose the kernel, size the workspace (work keys, item ids, their sorted
// copies, CUB's scratch), plan on the GPU (per-item work, then a descending radix sort: heaviest tiles first),
// run one CTA per item in that order.
//
// Kernels: the Hopper kernel (wgmma + TMA, 128-row tiles; attention/wgmma/) runs whenever it can: an sm_90
// device, 128x128 mask blocks, 16-byte aligned rows (TMA's requirement) and no key order. Any other case runs
// the generic tensor-core kernel (WMMA, 64-row tiles), which takes every block size, alignment and PBS's key
// orders (rows gathered by index). kernel_name() says
// which one a call uses.
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>
#include <cub/device/device_radix_sort.cuh>
#include <initializer_list>
#include <string>

#include "attention/attention_params.hpp"
#include "attention/attention_tiles.hpp"
#include "attention/key_positions.hpp"
#include "attention/schedule_kernel.cuh"
#include "attention/tensor_core_attention_kernel.cuh"
#include "attention/wgmma/wgmma_entry.hpp"
#include "common/cuda_check.hpp"
#include "common/workspace_align.hpp"
#include "sparsefill/cuda/block_sparse_attention.hpp"
#include "sparsefill/error.hpp"

namespace sparsefill::cuda {
namespace {

struct Geometry {
  int batch, seqlen_q, seqlen_k, heads_q, heads_kv, head_dim, tile_rows, q_tiles, items;
  bool varlen, hopper;  // hopper: the wgmma kernel runs
};

// 16-byte aligned base pointers and strides (in 2-byte elements: multiples of 8), as TMA and vector loads need.
bool rows_aligned(std::initializer_list<const TensorView*> views) {
  bool aligned = true;
  for (const TensorView* t : views) {
    aligned = aligned && reinterpret_cast<std::uintptr_t>(t->data) % 16 == 0;
    for (int i = 0; i < t->rank - 1; ++i) aligned = aligned && t->stride[i] % 8 == 0;
  }
  return aligned;
}

bool current_device_is_sm90() {
  int device = 0, major = 0;
  if (cudaGetDevice(&device) != cudaSuccess ||
      cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device) != cudaSuccess) {
    cudaGetLastError();
    return false;
  }
  return major == 9;
}

Geometry geometry_of(const BlockSparseAttentionArgs& a) {
  Geometry g{};
  g.varlen = a.cu_seqlens_q != nullptr || a.cu_seqlens_k != nullptr;
  const int rank = g.varlen ? 3 : 4;
  for (const auto& [t, name] :
       {std::pair<const TensorView*, const char*>{&a.q, "q"}, {&a.k, "k"}, {&a.v, "v"}, {&a.out, "out"}}) {
    require_data(*t, name);
    require(t->rank == rank, name,
            std::string("expected rank ") + std::to_string(rank) + ", got " + t->shape_string());
    require(t->stride[rank - 1] == 1, name, "the last (head_dim) dimension must be contiguous");
    require(t->dtype == a.q.dtype, name, "dtype differs from q's");
  }
  require(a.q.dtype == DType::kBF16 || a.q.dtype == DType::kFP16, "q",
          "dtype must be bf16 or fp16 on the GPU");
  const int h = rank - 2, d = rank - 1;
  g.heads_q = static_cast<int>(a.q.shape[h]);
  g.heads_kv = static_cast<int>(a.k.shape[h]);
  g.head_dim = static_cast<int>(a.q.shape[d]);
  require(g.head_dim == 64 || g.head_dim == 128, "q",
          "head_dim must be 64 or 128, got " + std::to_string(g.head_dim));
  require(a.k.shape[d] == g.head_dim && a.v.shape[d] == g.head_dim, "k", "head_dim differs from q's");
  require(a.v.shape[h] == g.heads_kv && g.heads_kv >= 1 && g.heads_q % g.heads_kv == 0, "k",
          "heads_q must be a multiple of heads_kv, and v must have k's heads");
  for (int i = 0; i < rank; ++i) require(a.out.shape[i] == a.q.shape[i], "out", "shape differs from q's");
  require(a.v.shape[0] == a.k.shape[0] && (g.varlen || a.v.shape[1] == a.k.shape[1]), "v",
          "shape differs from k's");
  if (g.varlen) {
    require(a.cu_seqlens_q && a.cu_seqlens_k, "cu_seqlens_k",
            "varlen inputs need both cu_seqlens_q and cu_seqlens_k");
    require(a.varlen_batch >= 1, "varlen_batch", "must be at least 1");
    require(a.max_seqlen_q >= 1 && a.max_seqlen_k >= 1, "max_seqlen_q",
            "varlen needs positive max_seqlen_q and max_seqlen_k");
    g.batch = static_cast<int>(a.varlen_batch);
    g.seqlen_q = static_cast<int>(a.max_seqlen_q);
    g.seqlen_k = static_cast<int>(a.max_seqlen_k);
  } else {
    g.batch = static_cast<int>(a.q.shape[0]);
    g.seqlen_q = static_cast<int>(a.q.shape[1]);
    g.seqlen_k = static_cast<int>(a.k.shape[1]);
    require(g.batch >= 1 && a.k.shape[0] == g.batch, "k", "batch differs from q's or is empty");
    require(g.seqlen_q >= 1, "q", "seqlen_q is 0 (empty input)");
    require(g.seqlen_k >= 1, "k", "seqlen_k is 0 (empty input)");
  }
  require(g.seqlen_q <= (1 << 24) && g.seqlen_k <= (1 << 24), "q",
          "sequences above 2^24 tokens are not supported");
  const DeviceBlockMask& m = a.mask;
  require(m.kv_num_blocks != nullptr && m.kv_indices != nullptr, "mask",
          "kv_num_blocks and kv_indices are required");
  require(m.block_q == 64 || m.block_q == 128, "mask.block_q", "must be 64 or 128");
  require(m.block_k == 64 || m.block_k == 128, "mask.block_k", "must be 64 or 128");
  require(m.heads == 1 || m.heads == g.heads_kv || m.heads == g.heads_q, "mask.heads",
          "must be 1, heads_kv or heads_q");
  require(m.num_q_blocks == (g.seqlen_q + m.block_q - 1) / m.block_q, "mask.num_q_blocks",
          "does not match seqlen_q and block_q");
  require(m.num_k_blocks == (g.seqlen_k + m.block_k - 1) / m.block_k, "mask.num_k_blocks",
          "does not match seqlen_k and block_k");
  require(std::isfinite(a.scale) && a.scale >= 0, "scale", "must be finite and >= 0");
  g.hopper = a.key_order == nullptr && m.block_q == wgmma::kRows && m.block_k == wgmma::kRows &&
             rows_aligned({&a.q, &a.k, &a.v, &a.out}) && current_device_is_sm90();
  g.tile_rows = g.hopper ? wgmma::kRows : kTileRows;
  g.q_tiles = (g.seqlen_q + g.tile_rows - 1) / g.tile_rows;
  const long long items = static_cast<long long>(g.batch) * g.heads_q * g.q_tiles;
  require(items < (1LL << 31), "q", "too many query tiles");
  g.items = static_cast<int>(items);
  return g;
}

AttentionKernelParams params_of(const BlockSparseAttentionArgs& a, const Geometry& g,
                                const std::int32_t* schedule, const KeyPositions& positions = {}) {
  AttentionKernelParams p{};
  p.q = a.q.data;
  p.k = a.k.data;
  p.v = a.v.data;
  p.out = a.out.data;
  p.lse = a.lse;
  const int t = g.varlen ? 0 : 1, h = g.varlen ? 1 : 2;
  p.q_batch = g.varlen ? 0 : a.q.stride[0];
  p.k_batch = g.varlen ? 0 : a.k.stride[0];
  p.v_batch = g.varlen ? 0 : a.v.stride[0];
  p.o_batch = g.varlen ? 0 : a.out.stride[0];
  p.q_token = a.q.stride[t], p.k_token = a.k.stride[t], p.v_token = a.v.stride[t],
  p.o_token = a.out.stride[t];
  p.q_head = a.q.stride[h], p.k_head = a.k.stride[h], p.v_head = a.v.stride[h], p.o_head = a.out.stride[h];
  p.cu_seqlens_q = g.varlen ? a.cu_seqlens_q : nullptr;
  p.cu_seqlens_k = g.varlen ? a.cu_seqlens_k : nullptr;
  p.seqlen_q = g.seqlen_q;
  p.seqlen_k = g.seqlen_k;
  p.batch = g.batch;
  p.heads_q = g.heads_q;
  p.heads_kv = g.heads_kv;
  p.kv_num_blocks = a.mask.kv_num_blocks;
  p.kv_indices = a.mask.kv_indices;
  p.mask_heads = static_cast<int>(a.mask.heads);
  p.num_q_blocks = static_cast<int>(a.mask.num_q_blocks);
  p.num_k_blocks = static_cast<int>(a.mask.num_k_blocks);
  p.block_q = static_cast<int>(a.mask.block_q);
  p.block_k = static_cast<int>(a.mask.block_k);
  p.causal = a.causal ? 1 : 0;
  p.key_order = a.key_order;
  p.key_positions = positions.keys;
  p.block_positions = positions.blocks;
  const double scale = a.scale > 0 ? a.scale : 1.0 / std::sqrt(static_cast<double>(g.head_dim));
  p.scale_log2 = static_cast<float>(scale * 1.4426950408889634);
  p.schedule = schedule;
  p.tile_rows = g.tile_rows;
  p.q_tiles = g.q_tiles;
  p.vector_loads = rows_aligned({&a.q, &a.k, &a.v}) ? 1 : 0;
  return p;
}

// Workspace layout: work keys, item ids, sorted keys, sorted ids (the schedule), then CUB's scratch.
struct Workspace {
  std::int32_t *work, *ids, *sorted_work, *schedule;
  void* scratch;
  std::size_t scratch_bytes;
};

std::size_t cub_scratch_bytes(int items) {
  std::size_t bytes = 0;
  cub::DeviceRadixSort::SortPairsDescending(
      nullptr, bytes, static_cast<const std::int32_t*>(nullptr), static_cast<std::int32_t*>(nullptr),
      static_cast<const std::int32_t*>(nullptr), static_cast<std::int32_t*>(nullptr), items);
  return bytes;
}

Workspace carve(void* base, int items) {
  auto* bytes = static_cast<unsigned char*>(base);
  const std::size_t array = align256(static_cast<std::size_t>(items) * sizeof(std::int32_t));
  Workspace w{};
  w.work = reinterpret_cast<std::int32_t*>(bytes);
  w.ids = reinterpret_cast<std::int32_t*>(bytes + array);
  w.sorted_work = reinterpret_cast<std::int32_t*>(bytes + 2 * array);
  w.schedule = reinterpret_cast<std::int32_t*>(bytes + 3 * array);
  w.scratch = bytes + 4 * array;
  w.scratch_bytes = cub_scratch_bytes(items);
  return w;
}

template <typename Element, int kHeadDim>
void launch(const AttentionKernelParams& p, int items, cudaStream_t stream) {
  constexpr int kSmem = tensor_core_smem_bytes<Element, kHeadDim>();
  check_cuda(cudaFuncSetAttribute(tensor_core_block_sparse_attention<Element, kHeadDim>,
                                  cudaFuncAttributeMaxDynamicSharedMemorySize, kSmem),
             "shared memory opt-in");
  tensor_core_block_sparse_attention<Element, kHeadDim><<<items, kThreads, kSmem, stream>>>(p);
}

}  // namespace

const char* BlockSparseAttention::kernel_name(const BlockSparseAttentionArgs& args) {
  return geometry_of(args).hopper ? "hopper-wgmma-tma" : "generic-wmma";
}

void BlockSparseAttention::validate(const BlockSparseAttentionArgs& args) {
  geometry_of(args);
  for (const auto& [ptr, name] : {std::pair<const void*, const char*>{args.q.data, "q"},
                                  {args.k.data, "k"},
                                  {args.v.data, "v"},
                                  {args.out.data, "out"},
                                  {args.mask.kv_num_blocks, "mask.kv_num_blocks"},
                                  {args.mask.kv_indices, "mask.kv_indices"}}) {
    require(is_device_pointer(ptr), name, "must point to device memory");
  }
  if (args.lse) require(is_device_pointer(args.lse), "lse", "must point to device memory");
  if (args.key_order) require(is_device_pointer(args.key_order), "key_order", "must point to device memory");
}

std::size_t BlockSparseAttention::workspace_size(const BlockSparseAttentionArgs& args) {
  const Geometry g = geometry_of(args);
  return 4 * align256(static_cast<std::size_t>(g.items) * sizeof(std::int32_t)) + cub_scratch_bytes(g.items);
}

void BlockSparseAttention::plan(const BlockSparseAttentionArgs& args, void* workspace, void* stream) {
  const Geometry g = geometry_of(args);
  require(workspace != nullptr, "workspace", "is null (allocate workspace_size bytes)");
  const Workspace w = carve(workspace, g.items);
  auto s = static_cast<cudaStream_t>(stream);
  const AttentionKernelParams p = params_of(args, g, w.schedule);
  tile_work_kernel<<<(g.items + 255) / 256, 256, 0, s>>>(p, g.items, w.work, w.ids);
  check_cuda(cudaGetLastError(), "tile_work_kernel launch");
  std::size_t scratch_bytes = w.scratch_bytes;
  check_cuda(cub::DeviceRadixSort::SortPairsDescending(w.scratch, scratch_bytes, w.work, w.sorted_work, w.ids,
                                                       w.schedule, g.items, 0, 32, s),
             "schedule sort");
}

namespace {

void run_kernel(const BlockSparseAttentionArgs& args, const Geometry& g, const KeyPositions& positions,
                void* workspace, cudaStream_t s) {
  require(workspace != nullptr, "workspace", "is null (allocate workspace_size bytes)");
  const Workspace w = carve(workspace, g.items);
  const AttentionKernelParams p = params_of(args, g, w.schedule, positions);
  const bool bf16 = args.q.dtype == DType::kBF16;
  if (g.hopper) {
    const wgmma::TmaExtents extents{static_cast<int>(g.varlen ? args.q.shape[0] : g.seqlen_q),
                                    static_cast<int>(g.varlen ? args.k.shape[0] : g.seqlen_k),
                                    g.varlen ? 1 : g.batch};
    check_cuda(bf16 ? wgmma::launch<cutlass::bfloat16_t>(g.head_dim, p, extents, g.items, s)
                    : wgmma::launch<cutlass::half_t>(g.head_dim, p, extents, g.items, s),
               "attention kernel launch");
    return;
  }
  if (g.head_dim == 64) {
    bf16 ? launch<__nv_bfloat16, 64>(p, g.items, s) : launch<__half, 64>(p, g.items, s);
  } else {
    bf16 ? launch<__nv_bfloat16, 128>(p, g.items, s) : launch<__half, 128>(p, g.items, s);
  }
  check_cuda(cudaGetLastError(), "attention kernel launch");
}

}  // namespace

void BlockSparseAttention::run(const BlockSparseAttentionArgs& args, void* workspace, void* stream) {
  run_kernel(args, geometry_of(args), {}, workspace, static_cast<cudaStream_t>(stream));
}

void run_with_key_positions(const BlockSparseAttentionArgs& args, const KeyPositions& positions,
                            void* workspace, cudaStream_t stream) {
  require(args.key_order == nullptr && positions.keys != nullptr && positions.blocks != nullptr, "key_order",
          "the Hopper kernel takes permuted keys as copies with their positions, not as a key order");
  const Geometry g = geometry_of(args);
  require(g.hopper, "key_order",
          "key positions need the Hopper kernel (sm_90, 128 x 128 mask blocks, 16-byte aligned rows)");
  run_kernel(args, g, positions, workspace, stream);
}

}  // namespace sparsefill::cuda
