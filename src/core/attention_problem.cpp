#include "sparsefill/attention_problem.hpp"

#include <algorithm>
#include <string>

#include "sparsefill/error.hpp"

namespace sparsefill {
namespace {

constexpr std::int64_t kMaxSeqlen = std::int64_t{1} << 24;
constexpr std::int64_t kMaxHeadDim = 512;

void check_tensor(const TensorView& t, const char* name, int rank, DType dtype) {
  require_data(t, name);
  require(t.rank == rank, name,
          "expected rank " + std::to_string(rank) +
              (rank == 4 ? " [batch, seqlen, heads, head_dim]" : " [total_tokens, heads, head_dim]") +
              ", got shape " + t.shape_string());
  require(t.dtype == dtype, name, "dtype " + dtype_name(t.dtype) + " differs from q's " + dtype_name(dtype));
  require(t.stride[rank - 1] == 1, name, "the last (head_dim) dimension must be contiguous (stride 1)");
  for (int i = 0; i < rank; ++i)
    require(t.shape[i] >= 0, name, "negative extent in shape " + t.shape_string());
  for (int i = 0; i < rank - 1; ++i) require(t.stride[i] >= 0, name, "negative strides are not supported");
}

void check_cu_seqlens(const std::int32_t* cu, const char* name, std::int64_t batch, std::int64_t total) {
  require(cu != nullptr, name, "varlen inputs need both cu_seqlens_q and cu_seqlens_k");
  require(cu[0] == 0, name, "must start at 0");
  for (std::int64_t b = 0; b < batch; ++b) {
    require(cu[b + 1] >= cu[b], name, "must be non-decreasing (entry " + std::to_string(b + 1) + ")");
    require(cu[b + 1] - cu[b] <= kMaxSeqlen, name, "a sequence is longer than 2^24 tokens");
  }
  require(cu[batch] == total, name,
          "last entry " + std::to_string(cu[batch]) + " must equal the total token count " +
              std::to_string(total));
}

}  // namespace

std::int64_t AttentionProblem::max_seqlen_q() const {
  return seqlen_q.empty() ? 0 : *std::max_element(seqlen_q.begin(), seqlen_q.end());
}
std::int64_t AttentionProblem::max_seqlen_k() const {
  return seqlen_k.empty() ? 0 : *std::max_element(seqlen_k.begin(), seqlen_k.end());
}

AttentionProblem describe_attention(const TensorView& q, const TensorView& k, const TensorView& v,
                                    const VarlenSequences& varlen) {
  AttentionProblem p;
  p.varlen = varlen.active();
  const int rank = p.varlen ? 3 : 4;
  require(q.dtype == DType::kBF16 || q.dtype == DType::kFP16 || q.dtype == DType::kFP32, "q",
          "dtype must be bf16, fp16 or fp32, got " + dtype_name(q.dtype));
  check_tensor(q, "q", rank, q.dtype);
  check_tensor(k, "k", rank, q.dtype);
  check_tensor(v, "v", rank, q.dtype);
  const int h = rank - 2, d = rank - 1;
  p.heads_q = q.shape[h];
  p.heads_kv = k.shape[h];
  p.head_dim = q.shape[d];
  require(p.heads_q >= 1, "q", "has no heads");
  require(p.heads_kv >= 1, "k", "has no heads");
  require(v.shape[h] == p.heads_kv, "v",
          "heads " + std::to_string(v.shape[h]) + " differ from k's " + std::to_string(p.heads_kv));
  require(p.heads_q % p.heads_kv == 0, "k",
          "heads_q (" + std::to_string(p.heads_q) + ") must be a multiple of heads_kv (" +
              std::to_string(p.heads_kv) + ")");
  require(p.head_dim >= 1 && p.head_dim <= kMaxHeadDim, "q",
          "head_dim must be in 1..512, got " + std::to_string(p.head_dim));
  require(k.shape[d] == p.head_dim, "k",
          "head_dim " + std::to_string(k.shape[d]) + " differs from q's " + std::to_string(p.head_dim));
  require(v.shape[d] == p.head_dim, "v",
          "head_dim " + std::to_string(v.shape[d]) + " differs from q's " + std::to_string(p.head_dim));
  require(v.shape[0] == k.shape[0] && (p.varlen || v.shape[1] == k.shape[1]), "v",
          "shape " + v.shape_string() + " differs from k's " + k.shape_string());

  if (p.varlen) {
    require(varlen.batch >= 1, "cu_seqlens_q", "varlen batch must be at least 1");
    check_cu_seqlens(varlen.cu_seqlens_q, "cu_seqlens_q", varlen.batch, q.shape[0]);
    check_cu_seqlens(varlen.cu_seqlens_k, "cu_seqlens_k", varlen.batch, k.shape[0]);
    p.batch = varlen.batch;
    for (std::int64_t b = 0; b < p.batch; ++b) {
      p.start_q.push_back(varlen.cu_seqlens_q[b]);
      p.start_k.push_back(varlen.cu_seqlens_k[b]);
      p.seqlen_q.push_back(varlen.cu_seqlens_q[b + 1] - varlen.cu_seqlens_q[b]);
      p.seqlen_k.push_back(varlen.cu_seqlens_k[b + 1] - varlen.cu_seqlens_k[b]);
    }
  } else {
    p.batch = q.shape[0];
    require(p.batch >= 1, "q", "batch is empty");
    require(k.shape[0] == p.batch, "k",
            "batch " + std::to_string(k.shape[0]) + " differs from q's " + std::to_string(p.batch));
    require(q.shape[1] >= 1, "q", "seqlen_q is 0 (empty input)");
    require(k.shape[1] >= 1, "k", "seqlen_k is 0 (empty input)");
    require(q.shape[1] <= kMaxSeqlen, "q", "seqlen_q above 2^24 is not supported");
    require(k.shape[1] <= kMaxSeqlen, "k", "seqlen_k above 2^24 is not supported");
    p.seqlen_q.assign(p.batch, q.shape[1]);
    p.seqlen_k.assign(p.batch, k.shape[1]);
    p.start_q.assign(p.batch, 0);
    p.start_k.assign(p.batch, 0);
  }
  return p;
}

std::int64_t token_offset(const TensorView& view, bool varlen, std::int64_t start, std::int64_t b,
                          std::int64_t t, std::int64_t h) {
  if (varlen) return (start + t) * view.stride[0] + h * view.stride[1];
  return b * view.stride[0] + t * view.stride[1] + h * view.stride[2];
}

BlockVisibility block_visibility(std::int64_t u, std::int64_t v, std::int64_t block_q, std::int64_t block_k,
                                 std::int64_t seqlen_q, std::int64_t seqlen_k, bool causal) {
  const std::int64_t q_first = u * block_q, q_last = std::min((u + 1) * block_q, seqlen_q) - 1;
  const std::int64_t k_first = v * block_k, k_last = std::min((v + 1) * block_k, seqlen_k) - 1;
  if (q_first > q_last || k_first > k_last) return BlockVisibility::kNone;
  if (!causal) return BlockVisibility::kFull;
  const std::int64_t offset = seqlen_k - seqlen_q;
  if (k_first > q_last + offset) return BlockVisibility::kNone;
  if (k_last <= q_first + offset) return BlockVisibility::kFull;
  return BlockVisibility::kPartial;
}

std::int64_t visible_key_blocks(std::int64_t u, std::int64_t block_q, std::int64_t block_k,
                                std::int64_t seqlen_q, std::int64_t seqlen_k, bool causal) {
  if (u * block_q >= seqlen_q) return 0;
  const std::int64_t all = ceil_div(seqlen_k, block_k);
  if (!causal) return all;
  const std::int64_t last_key = std::min((u + 1) * block_q, seqlen_q) - 1 + seqlen_k - seqlen_q;
  if (last_key < 0) return 0;
  return std::min(all, last_key / block_k + 1);
}

}  // namespace sparsefill
