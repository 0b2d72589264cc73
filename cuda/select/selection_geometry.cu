// Geometry of a GPU selection call (see selection_geometry.hpp).
#include "select/selection_geometry.hpp"

#include <string>
#include <utility>

#include "sparsefill/error.hpp"

namespace sparsefill::cuda {

Strides strides_of(const TensorView& t, bool varlen) {
  return varlen ? Strides{0, t.stride[0], t.stride[1]} : Strides{t.stride[0], t.stride[1], t.stride[2]};
}

select::QkTensors qk_tensors(const GpuSelectionArgs& a, const Geometry& g) {
  const Strides qs = strides_of(a.q, g.varlen), ks = strides_of(a.k, g.varlen);
  return {a.q.data, a.k.data, qs.batch, qs.token, qs.head, ks.batch, ks.token, ks.head};
}

Geometry geometry_of(const GpuSelectionArgs& a) {
  const bool varlen = a.cu_seqlens_q != nullptr || a.cu_seqlens_k != nullptr;
  const int rank = varlen ? 3 : 4;
  for (const auto& [t, name] : {std::pair<const TensorView*, const char*>{&a.q, "q"}, {&a.k, "k"}}) {
    require_data(*t, name);
    require(t->rank == rank, name,
            std::string(varlen ? "varlen selection takes [total_tokens, heads, head_dim]"
                               : "GPU selection takes [batch, seqlen, heads, head_dim] (or varlen with cu_seqlens)") +
                ", got " + t->shape_string());
    require(t->dtype == DType::kBF16 || t->dtype == DType::kFP16, name, "dtype must be bf16 or fp16");
    require(t->stride[rank - 1] == 1, name, "the last (head_dim) dimension must be contiguous");
  }
  require(a.k.dtype == a.q.dtype, "k", "dtype differs from q's");
  Geometry g{};
  g.varlen = varlen;
  g.heads_q = static_cast<int>(a.q.shape[rank - 2]);
  g.heads_kv = static_cast<int>(a.k.shape[rank - 2]);
  g.d = static_cast<int>(a.q.shape[rank - 1]);
  if (varlen) {
    require(a.cu_seqlens_q && a.cu_seqlens_k, "cu_seqlens_k", "varlen needs both cu_seqlens_q and cu_seqlens_k");
    require(a.varlen_batch >= 1, "varlen_batch", "must be at least 1");
    require(a.max_seqlen_q >= 1 && a.max_seqlen_k >= 1, "max_seqlen_q", "varlen needs positive maximum lengths");
    g.batch = static_cast<int>(a.varlen_batch);
    g.lq = static_cast<int>(a.max_seqlen_q);
    g.lk = static_cast<int>(a.max_seqlen_k);
  } else {
    g.batch = static_cast<int>(a.q.shape[0]);
    g.lq = static_cast<int>(a.q.shape[1]);
    g.lk = static_cast<int>(a.k.shape[1]);
    require(a.k.shape[0] == g.batch && g.batch >= 1, "k", "batch differs from q's or is empty");
  }
  require(a.k.shape[rank - 1] == g.d, "k", "head_dim differs from q's");
  require(g.d >= 2 && g.d <= kMaxHeadDim, "q", "head_dim must be in [2, " + std::to_string(kMaxHeadDim) + "]");
  require(g.lq >= 1 && g.lk >= 1, "q", "empty sequence");
  require(g.heads_kv >= 1 && g.heads_q % g.heads_kv == 0, "k", "heads_q must be a multiple of heads_kv");
  require(a.block_size == 64 || a.block_size == 128, "block_size", "must be 64 or 128");
  g.nq = static_cast<int>((g.lq + a.block_size - 1) / a.block_size);
  g.nk = static_cast<int>((g.lk + a.block_size - 1) / a.block_size);
  require(g.nk <= kMaxKeyBlocks, "k",
          "GPU selection handles up to " + std::to_string(kMaxKeyBlocks) + " key blocks (" +
              std::to_string(kMaxKeyBlocks * a.block_size) + " tokens at this block size)");
  require(a.kv_num_blocks != nullptr && a.kv_indices != nullptr, "mask", "kv_num_blocks and kv_indices are required");
  return g;
}

void require_16_byte_rows(const GpuSelectionArgs& a, const std::string& method) {
  for (const auto& [t, name] : {std::pair<const TensorView*, const char*>{&a.q, "q"}, {&a.k, "k"}}) {
    bool aligned = reinterpret_cast<std::uintptr_t>(t->data) % 16 == 0;
    for (int i = 0; i + 1 < t->rank; ++i) aligned = aligned && t->stride[i] % 8 == 0;
    require(aligned, name, "the GPU " + method + " selector reads 16-byte rows: pointer and strides must be multiples of 16 bytes");
  }
}

}  // namespace sparsefill::cuda
