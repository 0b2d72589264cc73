// PBS's split permuted attention (see permuted_attention.hpp): gather, mask split, two attention calls, merge.
#include "pipeline/permuted_attention.hpp"

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "common/cuda_check.hpp"
#include "common/workspace_align.hpp"
#include "sparsefill/error.hpp"

namespace sparsefill::cuda {
namespace {

// Sequences of the call: fixed-length (every sequence `length` tokens, batch stride in the views) or varlen.
struct Sequences {
  const std::int32_t* cu = nullptr;
  int length = 0;
  __device__ int start(int b) const { return cu ? cu[b] : b * length; }  // first token, counting across sequences
  __device__ int size(int b) const { return cu ? cu[b + 1] - cu[b] : length; }
};

struct Shape {
  bool varlen;
  int batch, max_len, heads_q, heads_kv, d;
  std::int64_t tokens, rows;  // rows: mask rows (batch x heads_q x nq)
  int nq, nk;
};

Shape shape_of(const BlockSparseAttentionArgs& a) {
  Shape s{};
  s.varlen = a.q.rank == 3;
  const int r = a.q.rank;
  s.batch = static_cast<int>(s.varlen ? a.varlen_batch : a.q.shape[0]);
  s.max_len = static_cast<int>(s.varlen ? a.max_seqlen_q : a.q.shape[1]);
  s.heads_q = static_cast<int>(a.q.shape[r - 2]);
  s.heads_kv = static_cast<int>(a.k.shape[r - 2]);
  s.d = static_cast<int>(a.q.shape[r - 1]);
  s.tokens = s.varlen ? a.q.shape[0] : a.q.shape[0] * a.q.shape[1];
  s.nq = static_cast<int>(a.mask.num_q_blocks);
  s.nk = static_cast<int>(a.mask.num_k_blocks);
  s.rows = static_cast<std::int64_t>(s.batch) * s.heads_q * s.nq;
  return s;
}

// A contiguous view of `tokens` rows of `heads` x d in q's rank (fixed: [batch, len, heads, d]).
TensorView contiguous_view(void* data, const BlockSparseAttentionArgs& a, const Shape& s, int heads) {
  return s.varlen ? make_view(data, a.q.dtype, {s.tokens, heads, s.d})
                  : make_view(data, a.q.dtype, {s.batch, s.max_len, heads, s.d});
}

enum Part { kKeys, kValues, kOffCounts, kOffIndices, kOwnCounts, kOwnIndices, kOwnOut, kOffLse, kOwnLse, kAttention, kParts };

struct Layout {
  std::size_t offset[kParts + 1];
};

BlockSparseAttentionArgs first_args(const BlockSparseAttentionArgs& a, const Shape& s, void* keys, void* values,
                                    DeviceBlockMask mask, float* lse) {
  BlockSparseAttentionArgs f = a;
  f.k = contiguous_view(keys, a, s, s.heads_q);
  f.v = contiguous_view(values, a, s, s.heads_q);
  f.key_order = nullptr;
  f.mask = mask;
  f.lse = lse;
  return f;
}

BlockSparseAttentionArgs second_args(const BlockSparseAttentionArgs& a, const Shape& s, DeviceBlockMask mask, void* out,
                                     float* lse) {
  BlockSparseAttentionArgs o = a;
  o.mask = mask;
  o.out = contiguous_view(out, a, s, s.heads_q);
  o.lse = lse;
  return o;
}

Layout layout_of(const BlockSparseAttentionArgs& a, const Shape& s) {
  const std::size_t es = dtype_size(a.q.dtype), kv = static_cast<std::size_t>(s.tokens) * s.heads_q * s.d * es;
  const std::size_t lse = sizeof(float) * s.batch * s.heads_q * s.max_len;
  const std::size_t counts = 4 * static_cast<std::size_t>(s.rows), indices = counts * s.nk;
  // Sizing only: any 256-aligned placeholder serves as the data pointers.
  alignas(256) static unsigned char placeholder[256];
  const DeviceBlockMask mask{reinterpret_cast<std::int32_t*>(placeholder), reinterpret_cast<std::int32_t*>(placeholder),
                             s.heads_q, s.nq, s.nk, a.mask.block_q, a.mask.block_k};
  const std::size_t attention =
      std::max(BlockSparseAttention::workspace_size(first_args(a, s, placeholder, placeholder, mask, nullptr)),
               BlockSparseAttention::workspace_size(second_args(a, s, mask, placeholder, nullptr)));
  const std::size_t bytes[kParts] = {kv, kv, counts, indices, counts, indices, kv, lse, lse, attention};
  Layout l{};
  for (int i = 0; i < kParts; ++i) l.offset[i + 1] = l.offset[i] + align256(bytes[i]);
  return l;
}

// Position pos of (b, h): K and V rows of original key order[pos] (KV head h / group) copied, 16 bytes a thread.
__global__ void gather_kernel(const unsigned char* k, const unsigned char* v, std::int64_t batch_stride,
                              std::int64_t token_stride, std::int64_t head_stride, Sequences seq,
                              const std::int32_t* order, int width, int heads_q, int group, int row_bytes,
                              unsigned char* keys, unsigned char* values) {
  const int pos = blockIdx.x, h = blockIdx.y, b = blockIdx.z;
  if (pos >= seq.size(b)) return;
  const int key = order[(static_cast<std::int64_t>(b) * heads_q + h) * width + pos];
  const int local = seq.cu ? seq.cu[b] : 0;  // the views' token index of the sequence start (varlen)
  const std::int64_t src = b * batch_stride + static_cast<std::int64_t>(local + key) * token_stride + (h / group) * head_stride;
  const std::int64_t dst = (static_cast<std::int64_t>(seq.start(b) + pos) * heads_q + h) * row_bytes;
  for (int i = threadIdx.x * 16; i < row_bytes; i += blockDim.x * 16) {
    *reinterpret_cast<uint4*>(keys + dst + i) = *reinterpret_cast<const uint4*>(k + src + i);
    *reinterpret_cast<uint4*>(values + dst + i) = *reinterpret_cast<const uint4*>(v + src + i);
  }
}

// Splits mask row (b, h, u) into the blocks before its own segment and those inside it.
__global__ void split_mask_kernel(DeviceBlockMask mask, int segment_blocks, std::int32_t* off_counts,
                                  std::int32_t* off_indices, std::int32_t* own_counts, std::int32_t* own_indices) {
  const int u = blockIdx.x, nq = static_cast<int>(mask.num_q_blocks), nk = static_cast<int>(mask.num_k_blocks);
  const std::int64_t row = (static_cast<std::int64_t>(blockIdx.z) * gridDim.y + blockIdx.y) * nq + u;
  const int first = (u / segment_blocks) * segment_blocks;
  const std::int32_t* in = mask.kv_indices + row * nk;
  std::int32_t *off = off_indices + row * nk, *own = own_indices + row * nk;
  int n_off = 0, n_own = 0;
  for (int i = 0; i < mask.kv_num_blocks[row]; ++i) {
    if (in[i] < first) off[n_off++] = in[i]; else own[n_own++] = in[i];
  }
  for (int i = n_off; i < nk; ++i) off[i] = 0;
  for (int i = n_own; i < nk; ++i) own[i] = 0;
  off_counts[row] = n_off;
  own_counts[row] = n_own;
}

__device__ inline float to_float(__nv_bfloat16 x) { return __bfloat162float(x); }
__device__ inline float to_float(__half x) { return __half2float(x); }
__device__ inline void store(__nv_bfloat16* p, float x) { *p = __float2bfloat16_rn(x); }
__device__ inline void store(__half* p, float x) { *p = __float2half_rn(x); }

// Token t of (b, h): merges the two partial outputs by their log-sum-exps into out (and lse when given).
template <typename Element>
__global__ void merge_kernel(Element* out, std::int64_t batch_stride, std::int64_t token_stride,
                             std::int64_t head_stride, const Element* own, Sequences seq, int heads_q, int d,
                             int max_len, const float* lse_off, const float* lse_own, float* lse) {
  const int t = blockIdx.x, h = blockIdx.y, b = blockIdx.z;
  if (t >= seq.size(b)) return;
  const std::int64_t at = (static_cast<std::int64_t>(b) * heads_q + h) * max_len + t;
  const float l1 = lse_off[at], l2 = lse_own[at], m = fmaxf(l1, l2);
  const float w1 = m == -INFINITY ? 0.f : expf(l1 - m), w2 = m == -INFINITY ? 0.f : expf(l2 - m);
  const float total = w1 + w2;
  const int local = seq.cu ? seq.cu[b] : 0;
  Element* o = out + b * batch_stride + static_cast<std::int64_t>(local + t) * token_stride + h * head_stride;
  const Element* o2 = own + (static_cast<std::int64_t>(seq.start(b) + t) * heads_q + h) * d;
  for (int c = threadIdx.x; c < d; c += blockDim.x)
    store(o + c, total > 0.f ? (to_float(o[c]) * w1 + to_float(o2[c]) * w2) / total : 0.f);
  if (lse && threadIdx.x == 0) lse[at] = total > 0.f ? m + logf(total) : -INFINITY;
}

}  // namespace

bool permuted_attention_splits(const BlockSparseAttentionArgs& args) {
  if (args.key_order == nullptr || !args.causal) return false;
  const Shape s = shape_of(args);
  alignas(256) static unsigned char placeholder[256];
  const DeviceBlockMask mask{reinterpret_cast<std::int32_t*>(placeholder), reinterpret_cast<std::int32_t*>(placeholder),
                             s.heads_q, s.nq, s.nk, args.mask.block_q, args.mask.block_k};
  return std::strcmp(BlockSparseAttention::kernel_name(first_args(args, s, placeholder, placeholder, mask, nullptr)),
                     "hopper-wgmma-tma") == 0;
}

std::size_t permuted_attention_workspace_size(const BlockSparseAttentionArgs& args) {
  const Shape s = shape_of(args);
  return layout_of(args, s).offset[kParts];
}

void permuted_attention(const BlockSparseAttentionArgs& args, int segment_blocks, void* workspace,
                        cudaStream_t stream) {
  require(permuted_attention_splits(args), "key_order", "the split permuted attention needs the Hopper kernel's conditions");
  const Shape s = shape_of(args);
  const Layout l = layout_of(args, s);
  auto* base = static_cast<unsigned char*>(workspace);
  auto at = [&](Part p) { return base + l.offset[p]; };
  auto ints = [&](Part p) { return reinterpret_cast<std::int32_t*>(at(p)); };
  auto floats = [&](Part p) { return reinterpret_cast<float*>(at(p)); };
  const Sequences seq{s.varlen ? args.cu_seqlens_q : nullptr, s.max_len};
  const int r = args.k.rank, es = static_cast<int>(dtype_size(args.q.dtype)), row_bytes = s.d * es;
  const dim3 grid(static_cast<unsigned>(s.max_len), static_cast<unsigned>(s.heads_q), static_cast<unsigned>(s.batch));
  gather_kernel<<<grid, std::max(1, std::min(32, row_bytes / 16)), 0, stream>>>(
      static_cast<const unsigned char*>(args.k.data), static_cast<const unsigned char*>(args.v.data),
      s.varlen ? 0 : args.k.stride[0] * es, args.k.stride[r - 3] * es, args.k.stride[r - 2] * es, seq,
      args.key_order, s.max_len, s.heads_q, s.heads_q / s.heads_kv, row_bytes, at(kKeys), at(kValues));
  split_mask_kernel<<<dim3(static_cast<unsigned>(s.nq), static_cast<unsigned>(s.heads_q), static_cast<unsigned>(s.batch)),
                      1, 0, stream>>>(args.mask, segment_blocks, ints(kOffCounts), ints(kOffIndices), ints(kOwnCounts),
                                      ints(kOwnIndices));
  check_cuda(cudaGetLastError(), "permuted attention preparation");
  const DeviceBlockMask off{ints(kOffCounts), ints(kOffIndices), s.heads_q, s.nq, s.nk, args.mask.block_q, args.mask.block_k};
  const DeviceBlockMask own{ints(kOwnCounts), ints(kOwnIndices), s.heads_q, s.nq, s.nk, args.mask.block_q, args.mask.block_k};
  for (const BlockSparseAttentionArgs& call : {first_args(args, s, at(kKeys), at(kValues), off, floats(kOffLse)),
                                               second_args(args, s, own, at(kOwnOut), floats(kOwnLse))}) {
    BlockSparseAttention::plan(call, at(kAttention), stream);
    BlockSparseAttention::run(call, at(kAttention), stream);
  }
  const auto& o = args.out;
  const int orank = o.rank;
  const std::int64_t ob = s.varlen ? 0 : o.stride[0], ot = o.stride[orank - 3], oh = o.stride[orank - 2];
  if (args.q.dtype == DType::kBF16) {
    merge_kernel<__nv_bfloat16><<<grid, 128, 0, stream>>>(static_cast<__nv_bfloat16*>(o.data), ob, ot, oh,
                                                          reinterpret_cast<const __nv_bfloat16*>(at(kOwnOut)), seq,
                                                          s.heads_q, s.d, s.max_len, floats(kOffLse), floats(kOwnLse), args.lse);
  } else {
    merge_kernel<__half><<<grid, 128, 0, stream>>>(static_cast<__half*>(o.data), ob, ot, oh,
                                                   reinterpret_cast<const __half*>(at(kOwnOut)), seq, s.heads_q, s.d,
                                                   s.max_len, floats(kOffLse), floats(kOwnLse), args.lse);
  }
  check_cuda(cudaGetLastError(), "permuted attention merge");
}

}  // namespace sparsefill::cuda
