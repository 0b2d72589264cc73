#include "sparsefill/block_mask.hpp"

#include <algorithm>
#include <string>

#include "sparsefill/error.hpp"

namespace sparsefill {
namespace {

constexpr std::int64_t kMaxBlocks = std::int64_t{1} << 20;

void check_geometry(std::int64_t batch, std::int64_t heads, std::int64_t nq, std::int64_t nk, std::int64_t bq,
                    std::int64_t bk) {
  require(batch >= 1, "mask.batch", "must be at least 1");
  require(heads >= 1, "mask.heads", "must be at least 1");
  require(nq >= 0 && nq <= kMaxBlocks, "mask.num_q_blocks", "out of range");
  require(nk >= 0 && nk <= kMaxBlocks, "mask.num_k_blocks", "out of range");
  require(bq == 64 || bq == 128, "mask.block_q", "block size must be 64 or 128, got " + std::to_string(bq));
  require(bk == 64 || bk == 128, "mask.block_k", "block size must be 64 or 128, got " + std::to_string(bk));
  require(batch * heads * nq * nk <= (std::int64_t{1} << 34), "mask", "too many blocks");
}

// Checks one row (unsorted allowed), returns it sorted.
std::vector<std::int32_t> checked_row(std::vector<std::int32_t> blocks, std::int64_t nk,
                                      const char* argument) {
  std::sort(blocks.begin(), blocks.end());
  for (std::size_t i = 0; i < blocks.size(); ++i) {
    require(blocks[i] >= 0 && blocks[i] < nk, argument,
            "key block index " + std::to_string(blocks[i]) + " out of range [0, " + std::to_string(nk) + ")");
    require(i == 0 || blocks[i] != blocks[i - 1], argument,
            "duplicate key block " + std::to_string(blocks[i]));
  }
  return blocks;
}

}  // namespace

BlockMask::BlockMask(std::int64_t batch, std::int64_t heads, std::int64_t num_q_blocks,
                     std::int64_t num_k_blocks, std::int64_t block_q, std::int64_t block_k)
    : batch_(batch),
      heads_(heads),
      num_q_blocks_(num_q_blocks),
      num_k_blocks_(num_k_blocks),
      block_q_(block_q),
      block_k_(block_k) {
  check_geometry(batch, heads, num_q_blocks, num_k_blocks, block_q, block_k);
  kv_num_blocks_.assign(static_cast<std::size_t>(batch * heads * num_q_blocks), 0);
  kv_indices_.assign(static_cast<std::size_t>(batch * heads * num_q_blocks * num_k_blocks), 0);
}

std::int64_t BlockMask::row_index(std::int64_t b, std::int64_t h, std::int64_t u) const {
  require(b >= 0 && b < batch_ && h >= 0 && h < heads_ && u >= 0 && u < num_q_blocks_, "mask",
          "row out of range");
  return (b * heads_ + h) * num_q_blocks_ + u;
}

std::int32_t BlockMask::row_count(std::int64_t b, std::int64_t h, std::int64_t u) const {
  return kv_num_blocks_[row_index(b, h, u)];
}

const std::int32_t* BlockMask::row_indices(std::int64_t b, std::int64_t h, std::int64_t u) const {
  return kv_indices_.data() + row_index(b, h, u) * num_k_blocks_;
}

void BlockMask::set_row(std::int64_t b, std::int64_t h, std::int64_t u, std::vector<std::int32_t> blocks) {
  const std::int64_t row = row_index(b, h, u);
  blocks = checked_row(std::move(blocks), num_k_blocks_, "blocks");
  std::int32_t* dst = kv_indices_.data() + row * num_k_blocks_;
  std::fill(dst, dst + num_k_blocks_, 0);
  std::copy(blocks.begin(), blocks.end(), dst);
  kv_num_blocks_[row] = static_cast<std::int32_t>(blocks.size());
}

bool BlockMask::contains(std::int64_t b, std::int64_t h, std::int64_t u, std::int64_t v) const {
  const std::int32_t* first = row_indices(b, h, u);
  return std::binary_search(first, first + row_count(b, h, u), static_cast<std::int32_t>(v));
}

std::int64_t BlockMask::mask_head_of(std::int64_t query_head, std::int64_t heads_q,
                                     std::int64_t heads_kv) const {
  if (heads_ == 1) return 0;
  if (heads_ == heads_q) return query_head;
  return query_head / (heads_q / heads_kv);
}

BlockMask BlockMask::from_arrays(std::int64_t batch, std::int64_t heads, std::int64_t num_q_blocks,
                                 std::int64_t num_k_blocks, std::int64_t block_q, std::int64_t block_k,
                                 const std::vector<std::int32_t>& kv_num_blocks,
                                 const std::vector<std::int32_t>& kv_indices) {
  BlockMask mask(batch, heads, num_q_blocks, num_k_blocks, block_q, block_k);
  const std::int64_t rows = batch * heads * num_q_blocks;
  require(static_cast<std::int64_t>(kv_num_blocks.size()) == rows, "kv_num_blocks",
          "expected " + std::to_string(rows) + " entries [batch, heads, num_q_blocks], got " +
              std::to_string(kv_num_blocks.size()));
  require(static_cast<std::int64_t>(kv_indices.size()) == rows * num_k_blocks, "kv_indices",
          "expected " + std::to_string(rows * num_k_blocks) +
              " entries [batch, heads, num_q_blocks, num_k_blocks], got " +
              std::to_string(kv_indices.size()));
  for (std::int64_t r = 0; r < rows; ++r) {
    const std::int32_t count = kv_num_blocks[r];
    require(count >= 0 && count <= num_k_blocks, "kv_num_blocks",
            "row " + std::to_string(r) + " has count " + std::to_string(count) + " outside [0, " +
                std::to_string(num_k_blocks) + "]");
    const std::int32_t* src = kv_indices.data() + r * num_k_blocks;
    for (std::int32_t i = 0; i < count; ++i) {
      require(src[i] >= 0 && src[i] < num_k_blocks, "kv_indices",
              "row " + std::to_string(r) + " index " + std::to_string(src[i]) + " out of range [0, " +
                  std::to_string(num_k_blocks) + ")");
      require(i == 0 || src[i] > src[i - 1], "kv_indices",
              "row " + std::to_string(r) + " is not strictly ascending");
    }
    std::copy(src, src + count, mask.kv_indices_.data() + r * num_k_blocks);
    mask.kv_num_blocks_[r] = count;
  }
  return mask;
}

void BlockMask::validate_for(const AttentionProblem& problem, const char* argument) const {
  const std::string arg = argument;
  require(heads_ == 1 || heads_ == problem.heads_kv || heads_ == problem.heads_q, arg + ".heads",
          "must be 1, heads_kv (" + std::to_string(problem.heads_kv) + ") or heads_q (" +
              std::to_string(problem.heads_q) + "), got " + std::to_string(heads_));
  require(batch_ == problem.batch, arg + ".batch",
          "is " + std::to_string(batch_) + ", inputs have " + std::to_string(problem.batch));
  const std::int64_t nq = ceil_div(problem.max_seqlen_q(), block_q_),
                     nk = ceil_div(problem.max_seqlen_k(), block_k_);
  require(num_q_blocks_ == nq, arg + ".num_q_blocks",
          "is " + std::to_string(num_q_blocks_) + ", the inputs need " + std::to_string(nq));
  require(num_k_blocks_ == nk, arg + ".num_k_blocks",
          "is " + std::to_string(num_k_blocks_) + ", the inputs need " + std::to_string(nk));
  for (std::int64_t b = 0; b < batch_; ++b) {
    const std::int64_t rows = ceil_div(problem.seqlen_q[b], block_q_),
                       cols = ceil_div(problem.seqlen_k[b], block_k_);
    for (std::int64_t h = 0; h < heads_; ++h) {
      for (std::int64_t u = 0; u < num_q_blocks_; ++u) {
        const std::int32_t count = row_count(b, h, u);
        require(u < rows || count == 0, arg + ".kv_num_blocks",
                "row past the end of sequence " + std::to_string(b) + " is not empty");
        if (count > 0) {
          require(row_indices(b, h, u)[count - 1] < cols, arg + ".kv_indices",
                  "key block past the end of sequence " + std::to_string(b) + " selected");
        }
      }
    }
  }
}

BlockMask full_block_mask(const AttentionProblem& problem, bool causal, std::int64_t block_size,
                          std::int64_t heads) {
  BlockMask mask(problem.batch, heads, ceil_div(problem.max_seqlen_q(), block_size),
                 ceil_div(problem.max_seqlen_k(), block_size), block_size, block_size);
  for (std::int64_t b = 0; b < problem.batch; ++b) {
    for (std::int64_t h = 0; h < heads; ++h) {
      for (std::int64_t u = 0; u < mask.num_q_blocks(); ++u) {
        const std::int64_t n =
            visible_key_blocks(u, block_size, block_size, problem.seqlen_q[b], problem.seqlen_k[b], causal);
        std::vector<std::int32_t> row(static_cast<std::size_t>(n));
        for (std::int64_t v = 0; v < n; ++v) row[v] = static_cast<std::int32_t>(v);
        mask.set_row(b, h, u, std::move(row));
      }
    }
  }
  return mask;
}

MaskDensity mask_density(const BlockMask& mask, const AttentionProblem& problem, bool causal) {
  mask.validate_for(problem);
  MaskDensity density;
  density.per_query_head.assign(problem.heads_q, 0.0);
  for (std::int64_t h = 0; h < problem.heads_q; ++h) {
    const std::int64_t mh = mask.mask_head_of(h, problem.heads_q, problem.heads_kv);
    std::int64_t selected = 0, visible = 0;
    for (std::int64_t b = 0; b < problem.batch; ++b) {
      for (std::int64_t u = 0; u < mask.num_q_blocks(); ++u) {
        visible += visible_key_blocks(u, mask.block_q(), mask.block_k(), problem.seqlen_q[b],
                                      problem.seqlen_k[b], causal);
        const std::int32_t* row = mask.row_indices(b, mh, u);
        for (std::int32_t i = 0; i < mask.row_count(b, mh, u); ++i) {
          selected += block_visibility(u, row[i], mask.block_q(), mask.block_k(), problem.seqlen_q[b],
                                       problem.seqlen_k[b], causal) != BlockVisibility::kNone;
        }
      }
    }
    density.per_query_head[h] = visible ? static_cast<double>(selected) / visible : 0.0;
    density.selected_blocks += selected;
    density.visible_blocks += visible;
  }
  density.overall =
      density.visible_blocks ? static_cast<double>(density.selected_blocks) / density.visible_blocks : 0.0;
  return density;
}

}  // namespace sparsefill
