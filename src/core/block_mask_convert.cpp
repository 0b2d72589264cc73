// Converters between the canonical block mask and dense bool maps / BSR.
#include <string>

#include "sparsefill/block_mask.hpp"
#include "sparsefill/error.hpp"

namespace sparsefill {

BlockMask block_mask_from_dense(const std::vector<std::uint8_t>& map, std::int64_t batch, std::int64_t heads,
                                std::int64_t num_q_blocks, std::int64_t num_k_blocks, std::int64_t block_q,
                                std::int64_t block_k) {
  BlockMask mask(batch, heads, num_q_blocks, num_k_blocks, block_q, block_k);
  require(static_cast<std::int64_t>(map.size()) == batch * heads * num_q_blocks * num_k_blocks, "map",
          "expected " + std::to_string(batch * heads * num_q_blocks * num_k_blocks) +
              " entries [batch, heads, nQb, nKb], got " + std::to_string(map.size()));
  for (std::int64_t b = 0; b < batch; ++b) {
    for (std::int64_t h = 0; h < heads; ++h) {
      for (std::int64_t u = 0; u < num_q_blocks; ++u) {
        const std::uint8_t* src = map.data() + ((b * heads + h) * num_q_blocks + u) * num_k_blocks;
        std::vector<std::int32_t> row;
        for (std::int64_t v = 0; v < num_k_blocks; ++v) {
          require(src[v] <= 1, "map", "entries must be 0 or 1");
          if (src[v]) row.push_back(static_cast<std::int32_t>(v));
        }
        mask.set_row(b, h, u, std::move(row));
      }
    }
  }
  return mask;
}

std::vector<std::uint8_t> block_mask_to_dense(const BlockMask& mask) {
  const std::int64_t nk = mask.num_k_blocks();
  std::vector<std::uint8_t> map(
      static_cast<std::size_t>(mask.batch() * mask.heads() * mask.num_q_blocks() * nk), 0);
  for (std::int64_t b = 0; b < mask.batch(); ++b) {
    for (std::int64_t h = 0; h < mask.heads(); ++h) {
      for (std::int64_t u = 0; u < mask.num_q_blocks(); ++u) {
        std::uint8_t* dst = map.data() + ((b * mask.heads() + h) * mask.num_q_blocks() + u) * nk;
        const std::int32_t* row = mask.row_indices(b, h, u);
        for (std::int32_t i = 0; i < mask.row_count(b, h, u); ++i) dst[row[i]] = 1;
      }
    }
  }
  return map;
}

BlockMask block_mask_from_bsr(const std::vector<std::int32_t>& indptr,
                              const std::vector<std::int32_t>& indices, std::int64_t batch,
                              std::int64_t heads, std::int64_t num_q_blocks, std::int64_t num_k_blocks,
                              std::int64_t block_q, std::int64_t block_k) {
  BlockMask mask(batch, heads, num_q_blocks, num_k_blocks, block_q, block_k);
  const std::int64_t rows = batch * heads * num_q_blocks;
  require(static_cast<std::int64_t>(indptr.size()) == rows + 1, "indptr",
          "expected " + std::to_string(rows + 1) + " entries, got " + std::to_string(indptr.size()));
  require(indptr[0] == 0, "indptr", "must start at 0");
  require(indptr[rows] == static_cast<std::int64_t>(indices.size()), "indptr",
          "last entry must equal the number of indices (" + std::to_string(indices.size()) + ")");
  for (std::int64_t r = 0; r < rows; ++r) {
    require(indptr[r + 1] >= indptr[r], "indptr", "must be non-decreasing (row " + std::to_string(r) + ")");
    require(indptr[r + 1] - indptr[r] <= num_k_blocks, "indptr",
            "row " + std::to_string(r) + " has more entries than key blocks");
    std::vector<std::int32_t> row(indices.begin() + indptr[r], indices.begin() + indptr[r + 1]);
    const std::int64_t u = r % num_q_blocks, h = (r / num_q_blocks) % heads, b = r / (num_q_blocks * heads);
    try {
      mask.set_row(b, h, u, std::move(row));
    } catch (const Error& e) {
      throw Error("indices", std::string("row ") + std::to_string(r) + ": " + e.what());
    }
  }
  return mask;
}

}  // namespace sparsefill
