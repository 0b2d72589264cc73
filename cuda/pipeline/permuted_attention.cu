// PBS's permuted attention (see permuted_attention.hpp): gather, block positions, one Hopper call.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <climits>
#include <cstring>

#include "attention/key_positions.hpp"
#include "common/cuda_check.hpp"
#include "common/workspace_align.hpp"
#include "pipeline/permuted_attention.hpp"
#include "select/cta_reduce.cuh"
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

enum Part { kKeys, kValues, kBlockPositions, kAttention, kParts };

struct Layout {
  std::size_t offset[kParts + 1];
};

// The Hopper call's arguments: the permuted copies as K/V (one head each query head), the mask as given.
BlockSparseAttentionArgs copy_args(const BlockSparseAttentionArgs& a, const Shape& s, void* keys,
                                   void* values) {
  BlockSparseAttentionArgs f = a;
  f.k = contiguous_view(keys, a, s, s.heads_q);
  f.v = contiguous_view(values, a, s, s.heads_q);
  f.key_order = nullptr;
  return f;
}

// copy_args for sizing and dispatch only: a 256-aligned placeholder serves as the copies' pointers.
BlockSparseAttentionArgs sizing_args(const BlockSparseAttentionArgs& a, const Shape& s) {
  alignas(256) static unsigned char placeholder[256];
  return copy_args(a, s, placeholder, placeholder);
}

Layout layout_of(const BlockSparseAttentionArgs& a, const Shape& s) {
  const std::size_t es = dtype_size(a.q.dtype), kv = static_cast<std::size_t>(s.tokens) * s.heads_q * s.d * es;
  const std::size_t block_positions = sizeof(std::int32_t) * 2 * s.batch * s.heads_q * s.nk;
  const std::size_t attention = BlockSparseAttention::workspace_size(sizing_args(a, s));
  const std::size_t bytes[kParts] = {kv, kv, block_positions, attention};
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

// Key block kb of (b, h): the first and last original position of its keys (positions past the sequence's
// keys are left out; a block without keys gets an empty range, which the kernel never reads).
__global__ void block_positions_kernel(Sequences seq, const std::int32_t* order, int width, int heads_q,
                                       int block, int nk, std::int32_t* out) {
  const int kb = blockIdx.x, h = blockIdx.y, b = blockIdx.z;
  const std::int32_t* row = order + (static_cast<std::int64_t>(b) * heads_q + h) * width;
  int first = INT_MAX, last = INT_MIN;
  for (int pos = kb * block + static_cast<int>(threadIdx.x); pos < min((kb + 1) * block, seq.size(b));
       pos += blockDim.x) {
    first = min(first, row[pos]);
    last = max(last, row[pos]);
  }
  __shared__ int scratch[select::kCtaScratch];
  first = select::cta_reduce(first, scratch, [](int x, int y) { return min(x, y); });
  last = select::cta_reduce(last, scratch, [](int x, int y) { return max(x, y); });
  if (threadIdx.x == 0) {
    std::int32_t* at = out + ((static_cast<std::int64_t>(b) * heads_q + h) * nk + kb) * 2;
    at[0] = first;
    at[1] = last;
  }
}

}  // namespace

bool permuted_attention_on_hopper(const BlockSparseAttentionArgs& args) {
  if (args.key_order == nullptr || !args.causal) return false;
  return std::strcmp(BlockSparseAttention::kernel_name(sizing_args(args, shape_of(args))), "hopper-wgmma-tma") ==
         0;
}

std::size_t permuted_attention_workspace_size(const BlockSparseAttentionArgs& args) {
  const Shape s = shape_of(args);
  return layout_of(args, s).offset[kParts];
}

void permuted_attention(const BlockSparseAttentionArgs& args, void* workspace, cudaStream_t stream) {
  require(permuted_attention_on_hopper(args), "key_order",
          "the permuted attention on copies needs the Hopper kernel's conditions");
  const Shape s = shape_of(args);
  const Layout l = layout_of(args, s);
  auto* base = static_cast<unsigned char*>(workspace);
  auto at = [&](Part p) { return base + l.offset[p]; };
  auto* block_positions = reinterpret_cast<std::int32_t*>(at(kBlockPositions));
  const Sequences seq{s.varlen ? args.cu_seqlens_q : nullptr, s.max_len};
  const int r = args.k.rank, es = static_cast<int>(dtype_size(args.q.dtype)), row_bytes = s.d * es;
  const dim3 grid(static_cast<unsigned>(s.max_len), static_cast<unsigned>(s.heads_q), static_cast<unsigned>(s.batch));
  gather_kernel<<<grid, std::max(1, std::min(32, row_bytes / 16)), 0, stream>>>(
      static_cast<const unsigned char*>(args.k.data), static_cast<const unsigned char*>(args.v.data),
      s.varlen ? 0 : args.k.stride[0] * es, args.k.stride[r - 3] * es, args.k.stride[r - 2] * es, seq,
      args.key_order, s.max_len, s.heads_q, s.heads_q / s.heads_kv, row_bytes, at(kKeys), at(kValues));
  block_positions_kernel<<<dim3(static_cast<unsigned>(s.nk), static_cast<unsigned>(s.heads_q),
                                static_cast<unsigned>(s.batch)),
                           128, 0, stream>>>(seq, args.key_order, s.max_len, s.heads_q,
                                             static_cast<int>(args.mask.block_k), s.nk, block_positions);
  check_cuda(cudaGetLastError(), "permuted attention preparation");
  const BlockSparseAttentionArgs call = copy_args(args, s, at(kKeys), at(kValues));
  BlockSparseAttention::plan(call, at(kAttention), stream);
  run_with_key_positions(call, {args.key_order, block_positions}, at(kAttention), stream);
}

}  // namespace sparsefill::cuda
