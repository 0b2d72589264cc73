// Select + attend (see prefill_attention.hpp). Workspace layout: mask counts, mask indices, PBS's key order,
// the selector's workspace, the attention kernel's workspace, each 256-byte aligned.
#include "sparsefill/cuda/prefill_attention.hpp"

#include <cuda_runtime.h>

#include "common/cuda_check.hpp"
#include "common/workspace_align.hpp"
#include "pipeline/permuted_attention.hpp"
#include "select/full_mask.cuh"
#include "sparsefill/cuda/gpu_selection.hpp"
#include "sparsefill/error.hpp"

namespace sparsefill::cuda {
namespace {

struct Layout {
  std::int64_t heads, nq, nk;
  std::size_t counts, indices, key_order, selection, attention;  // byte offsets
  std::size_t total;
  bool permuted_copies;  // PBS on the Hopper kernel over permuted K/V copies (permuted_attention.hpp)
};

BlockSparseAttentionArgs attention_args(const PrefillAttentionArgs& a, const DeviceBlockMask& mask,
                                        const std::int32_t* key_order) {
  BlockSparseAttentionArgs args;
  args.key_order = key_order;
  args.q = a.q;
  args.k = a.k;
  args.v = a.v;
  args.out = a.out;
  args.lse = a.lse;
  args.mask = mask;
  args.causal = a.causal;
  args.cu_seqlens_q = a.cu_seqlens_q;
  args.cu_seqlens_k = a.cu_seqlens_k;
  args.varlen_batch = a.varlen_batch;
  args.max_seqlen_q = a.max_seqlen_q;
  args.max_seqlen_k = a.max_seqlen_k;
  return args;
}

GpuSelectionArgs selection_args(const PrefillAttentionArgs& a, std::int32_t* counts, std::int32_t* indices,
                                std::int32_t* key_order) {
  return {a.q,         a.k,         a.causal,         a.block_size,  a.rope_layout, counts, indices,
          a.cu_seqlens_q, a.cu_seqlens_k, a.varlen_batch, a.max_seqlen_q, a.max_seqlen_k, key_order};
}

struct Extent {
  std::int64_t batch, seqlen_q, seqlen_k;
};
Extent extent_of(const PrefillAttentionArgs& a) {
  const bool varlen = a.cu_seqlens_q != nullptr || a.cu_seqlens_k != nullptr;
  require(a.q.rank == (varlen ? 3 : 4) && a.k.rank == a.q.rank, "q",
          varlen ? "varlen prefill_attention takes [total_tokens, heads, head_dim]"
                 : "prefill_attention takes [batch, seqlen, heads, head_dim] (or varlen with cu_seqlens)");
  return varlen ? Extent{a.varlen_batch, a.max_seqlen_q, a.max_seqlen_k}
                : Extent{a.q.shape[0], a.q.shape[1], a.k.shape[1]};
}

Layout layout_of(const PrefillAttentionArgs& a, const std::string& method, const SelectorSettings& settings) {
  const Extent e = extent_of(a);
  require(a.block_size == 64 || a.block_size == 128, "block_size", "must be 64 or 128");
  require(e.batch >= 1 && e.seqlen_q >= 1 && e.seqlen_k >= 1, "q", "empty batch or sequence");
  Layout l{};
  const bool dense = method == "dense";
  l.heads = dense ? 1 : a.q.shape[a.q.rank - 2];
  l.nq = (e.seqlen_q + a.block_size - 1) / a.block_size;
  l.nk = (e.seqlen_k + a.block_size - 1) / a.block_size;
  const std::size_t rows = static_cast<std::size_t>(e.batch * l.heads * l.nq);
  l.counts = 0;
  l.indices = align256(rows * 4);
  l.key_order = l.indices + align256(rows * static_cast<std::size_t>(l.nk) * 4);
  const bool permuted = method == "pbs";
  l.selection = l.key_order + (permuted ? align256(static_cast<std::size_t>(e.batch * l.heads * e.seqlen_k) * 4) : 0);
  // Sizing reads only the geometry; the placeholder pointers are never dereferenced.
  static std::int32_t placeholder;
  std::int32_t* order = permuted ? &placeholder : nullptr;
  const std::size_t selection_bytes =
      dense ? 0 : GpuSelection(method, settings).workspace_size(selection_args(a, &placeholder, &placeholder, order));
  l.attention = l.selection + align256(selection_bytes);
  const DeviceBlockMask mask{&placeholder, &placeholder, l.heads, l.nq, l.nk, a.block_size, a.block_size};
  const BlockSparseAttentionArgs attention = attention_args(a, mask, order);
  l.permuted_copies = permuted && permuted_attention_on_hopper(attention);
  l.total = l.attention + (l.permuted_copies ? permuted_attention_workspace_size(attention)
                                             : BlockSparseAttention::workspace_size(attention));
  return l;
}

}  // namespace

std::size_t prefill_attention_workspace_size(const PrefillAttentionArgs& args, const std::string& method,
                                             const SelectorSettings& settings) {
  return layout_of(args, method, settings).total;
}

DeviceBlockMask mask_in_workspace(const PrefillAttentionArgs& args, const std::string& method, void* workspace) {
  const Layout l = layout_of(args, method, SelectorSettings{});
  auto* base = static_cast<unsigned char*>(workspace);
  return {reinterpret_cast<const std::int32_t*>(base + l.counts), reinterpret_cast<const std::int32_t*>(base + l.indices),
          l.heads, l.nq, l.nk, args.block_size, args.block_size};
}

const std::int32_t* key_order_in_workspace(const PrefillAttentionArgs& args, const std::string& method, void* workspace) {
  if (method != "pbs") return nullptr;
  return reinterpret_cast<const std::int32_t*>(static_cast<unsigned char*>(workspace) + layout_of(args, method, SelectorSettings{}).key_order);
}

void prefill_attention(const PrefillAttentionArgs& args, const std::string& method, const SelectorSettings& settings,
                       void* workspace, void* stream) {
  require(workspace != nullptr, "workspace", "is null (allocate prefill_attention_workspace_size bytes)");
  const Layout l = layout_of(args, method, settings);
  auto* base = static_cast<unsigned char*>(workspace);
  auto* counts = reinterpret_cast<std::int32_t*>(base + l.counts);
  auto* indices = reinterpret_cast<std::int32_t*>(base + l.indices);
  auto* key_order = method == "pbs" ? reinterpret_cast<std::int32_t*>(base + l.key_order) : nullptr;
  auto s = static_cast<cudaStream_t>(stream);
  if (method == "dense") {
    const bool varlen = args.cu_seqlens_q != nullptr;
    const Extent e = extent_of(args);
    const select::Lengths lengths{varlen ? args.cu_seqlens_q : nullptr, varlen ? args.cu_seqlens_k : nullptr,
                                  static_cast<int>(e.seqlen_q), static_cast<int>(e.seqlen_k),
                                  static_cast<int>(args.block_size)};
    select::full_mask_kernel<<<dim3(static_cast<unsigned>(l.nq), static_cast<unsigned>(e.batch)), 256, 0, s>>>(
        lengths, static_cast<int>(l.nk), args.causal ? 1 : 0, counts, indices);
    check_cuda(cudaGetLastError(), "dense mask launch");
  } else {
    GpuSelection(method, settings).run(selection_args(args, counts, indices, key_order), base + l.selection, stream);
  }
  const BlockSparseAttentionArgs attention =
      attention_args(args, {counts, indices, l.heads, l.nq, l.nk, args.block_size, args.block_size}, key_order);
  if (l.permuted_copies) {
    permuted_attention(attention, base + l.attention, s);
    return;
  }
  BlockSparseAttention::plan(attention, base + l.attention, stream);
  BlockSparseAttention::run(attention, base + l.attention, stream);
}

}  // namespace sparsefill::cuda
