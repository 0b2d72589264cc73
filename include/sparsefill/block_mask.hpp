// The canonical block mask (FlexAttention-style ordered indices) and its converters.
//
//   kv_num_blocks [batch, heads, num_q_blocks]             int32: active key blocks of each query-block row
//   kv_indices    [batch, heads, num_q_blocks, num_k_blocks] int32: the first kv_num_blocks entries of a row
//   are
//                                                           the active key blocks, strictly ascending
// `heads` (Hm) is 1 (broadcast over query heads), heads_kv (one mask per KV head) or heads_q (per query
// head). Block sizes default to 128x128; 64 is supported. For varlen batches num_q_blocks/num_k_blocks are
// those of the longest sequence and rows past a shorter sequence's end must be empty.
#pragma once
#include <cstdint>
#include <vector>

#include "sparsefill/attention_problem.hpp"

namespace sparsefill {

inline constexpr std::int64_t kDefaultBlockSize = 128;

class BlockMask {
 public:
  BlockMask() = default;
  // All rows empty.
  BlockMask(std::int64_t batch, std::int64_t heads, std::int64_t num_q_blocks, std::int64_t num_k_blocks,
            std::int64_t block_q = kDefaultBlockSize, std::int64_t block_k = kDefaultBlockSize);

  std::int64_t batch() const { return batch_; }
  std::int64_t heads() const { return heads_; }
  std::int64_t num_q_blocks() const { return num_q_blocks_; }
  std::int64_t num_k_blocks() const { return num_k_blocks_; }
  std::int64_t block_q() const { return block_q_; }
  std::int64_t block_k() const { return block_k_; }

  std::int32_t row_count(std::int64_t b, std::int64_t h, std::int64_t u) const;
  const std::int32_t* row_indices(std::int64_t b, std::int64_t h, std::int64_t u) const;
  // Replaces one row; `blocks` may be unsorted but must be unique and in range (Error "blocks" otherwise).
  void set_row(std::int64_t b, std::int64_t h, std::int64_t u, std::vector<std::int32_t> blocks);
  bool contains(std::int64_t b, std::int64_t h, std::int64_t u, std::int64_t v) const;

  // Mask head used by query head `query_head` of a problem with heads_q/heads_kv heads.
  std::int64_t mask_head_of(std::int64_t query_head, std::int64_t heads_q, std::int64_t heads_kv) const;

  const std::vector<std::int32_t>& kv_num_blocks() const { return kv_num_blocks_; }
  const std::vector<std::int32_t>& kv_indices() const { return kv_indices_; }

  // Builds a mask from raw canonical arrays, validating every count and index (Error "kv_num_blocks" /
  // "kv_indices"). Entries past a row's count are ignored and stored as 0.
  static BlockMask from_arrays(std::int64_t batch, std::int64_t heads, std::int64_t num_q_blocks,
                               std::int64_t num_k_blocks, std::int64_t block_q, std::int64_t block_k,
                               const std::vector<std::int32_t>& kv_num_blocks,
                               const std::vector<std::int32_t>& kv_indices);

  // Checks the mask against a problem: heads in {1, heads_kv, heads_q}, batch, block counts of the longest
  // sequence, and empty rows past each sequence's end. Throws Error(argument).
  void validate_for(const AttentionProblem& problem, const char* argument = "mask") const;

 private:
  std::int64_t row_index(std::int64_t b, std::int64_t h, std::int64_t u) const;
  std::int64_t batch_ = 0, heads_ = 0, num_q_blocks_ = 0, num_k_blocks_ = 0;
  std::int64_t block_q_ = kDefaultBlockSize, block_k_ = kDefaultBlockSize;
  std::vector<std::int32_t> kv_num_blocks_;
  std::vector<std::int32_t> kv_indices_;
};

// Dense bool block map [batch, heads, num_q_blocks, num_k_blocks] (row-major, 1 byte per entry) <->
// canonical.
BlockMask block_mask_from_dense(const std::vector<std::uint8_t>& map, std::int64_t batch, std::int64_t heads,
                                std::int64_t num_q_blocks, std::int64_t num_k_blocks,
                                std::int64_t block_q = kDefaultBlockSize,
                                std::int64_t block_k = kDefaultBlockSize);
std::vector<std::uint8_t> block_mask_to_dense(const BlockMask& mask);

// BSR: row r = (b * heads + h) * num_q_blocks + u owns indices[indptr[r] .. indptr[r+1]) (any order, unique).
BlockMask block_mask_from_bsr(const std::vector<std::int32_t>& indptr,
                              const std::vector<std::int32_t>& indices, std::int64_t batch,
                              std::int64_t heads, std::int64_t num_q_blocks, std::int64_t num_k_blocks,
                              std::int64_t block_q = kDefaultBlockSize,
                              std::int64_t block_k = kDefaultBlockSize);

// The mask that selects every causally visible block (every block when !causal), per query head.
BlockMask full_block_mask(const AttentionProblem& problem, bool causal,
                          std::int64_t block_size = kDefaultBlockSize, std::int64_t heads = 1);

// Density = selected visible blocks / visible blocks (visible: at least one (query, key) pair allowed by the
// causal rule; for equal lengths that is N(N+1)/2 per head). Blocks selected above the diagonal are not
// counted.
struct MaskDensity {
  std::vector<double> per_query_head;  // [heads_q], summed over the batch
  double overall = 0.0;
  std::int64_t selected_blocks = 0;  // over all query heads and sequences
  std::int64_t visible_blocks = 0;
};
MaskDensity mask_density(const BlockMask& mask, const AttentionProblem& problem, bool causal);

}  // namespace sparsefill
