#include <gtest/gtest.h>

#include <random>

#include "sparsefill/block_mask.hpp"
#include "sparsefill/error.hpp"
#include "support/random_tensors.hpp"

namespace sparsefill {
namespace {

std::vector<std::uint8_t> random_map(std::int64_t n, std::mt19937_64& rng, double p) {
  std::bernoulli_distribution keep(p);
  std::vector<std::uint8_t> map(static_cast<std::size_t>(n));
  for (auto& m : map) m = keep(rng);
  return map;
}

TEST(BlockMask, DenseMapRoundTrip) {
  std::mt19937_64 rng(testing::fresh_seed());
  for (double p : {0.0, 0.1, 0.5, 1.0}) {
    const auto map = random_map(2 * 3 * 7 * 9, rng, p);
    const BlockMask mask = block_mask_from_dense(map, 2, 3, 7, 9, 64, 64);
    EXPECT_EQ(block_mask_to_dense(mask), map);
    for (std::int64_t r = 0; r < 2 * 3 * 7; ++r) {
      const std::int32_t* row = mask.kv_indices().data() + r * 9;
      for (std::int32_t i = 1; i < mask.kv_num_blocks()[r]; ++i) EXPECT_LT(row[i - 1], row[i]);
    }
  }
}

TEST(BlockMask, BsrRoundTripWithUnsortedRows) {
  std::mt19937_64 rng(testing::fresh_seed());
  const auto map = random_map(1 * 2 * 5 * 6, rng, 0.4);
  std::vector<std::int32_t> indptr = {0}, indices;
  for (std::int64_t r = 0; r < 10; ++r) {
    std::vector<std::int32_t> row;
    for (std::int32_t v = 0; v < 6; ++v) {
      if (map[r * 6 + v]) row.push_back(v);
    }
    std::shuffle(row.begin(), row.end(), rng);
    indices.insert(indices.end(), row.begin(), row.end());
    indptr.push_back(static_cast<std::int32_t>(indices.size()));
  }
  EXPECT_EQ(block_mask_to_dense(block_mask_from_bsr(indptr, indices, 1, 2, 5, 6)), map);
}

TEST(BlockMask, RejectsMalformedIndices) {
  EXPECT_THROW(BlockMask::from_arrays(1, 1, 2, 4, 128, 128, {1, 2}, {3, 0, 0, 0, 1, 1, 0, 0}),
               Error);  // not ascending
  EXPECT_THROW(BlockMask::from_arrays(1, 1, 2, 4, 128, 128, {1, 5}, {0, 0, 0, 0, 0, 1, 2, 3}),
               Error);  // count > nKb
  EXPECT_THROW(BlockMask::from_arrays(1, 1, 2, 4, 128, 128, {1, 1}, {4, 0, 0, 0, 0, 0, 0, 0}),
               Error);  // index >= nKb
  EXPECT_THROW(BlockMask::from_arrays(1, 1, 2, 4, 128, 128, {1, -1}, {0, 0, 0, 0, 0, 0, 0, 0}),
               Error);                                                                   // negative count
  EXPECT_THROW(BlockMask::from_arrays(1, 1, 2, 4, 128, 128, {1}, {0, 0, 0, 0}), Error);  // wrong sizes
  EXPECT_THROW(BlockMask(1, 1, 2, 2, 96, 96), Error);                                    // block size
  EXPECT_THROW(block_mask_from_bsr({0, 2}, {1, 1}, 1, 1, 1, 4), Error);                  // duplicate
  EXPECT_THROW(block_mask_from_bsr({0, 1}, {7}, 1, 1, 1, 4), Error);                     // out of range
  BlockMask mask(1, 1, 2, 4);
  EXPECT_THROW(mask.set_row(0, 0, 0, {0, 0}), Error);
  const BlockMask ok = BlockMask::from_arrays(1, 1, 2, 4, 128, 128, {2, 0}, {1, 3, 9, 9, 9, 9, 9, 9});
  EXPECT_TRUE(ok.contains(0, 0, 0, 3));
  EXPECT_FALSE(ok.contains(0, 0, 0, 2));
  EXPECT_EQ(ok.kv_indices()[2], 0);  // entries past the count are stored as 0
}

TEST(BlockMask, ValidateForChecksGeometryAndSequenceEnds) {
  HostTensor q(DType::kBF16, {300, 4, 64}), k(DType::kBF16, {300, 2, 64}), v(DType::kBF16, {300, 2, 64});
  std::vector<std::int32_t> cu = {0, 100, 300};
  const AttentionProblem p = describe_attention(q.view(), k.view(), v.view(), {cu.data(), cu.data(), 2});
  BlockMask mask(2, 2, 2, 2);  // per KV head, longest sequence 200 -> 2 blocks of 128
  EXPECT_NO_THROW(mask.validate_for(p));
  mask.set_row(0, 0, 1, {0});  // row 1 of sequence 0 (100 tokens) does not exist
  EXPECT_THROW(mask.validate_for(p), Error);
  EXPECT_THROW(BlockMask(2, 3, 2, 2).validate_for(p), Error);  // heads must be 1, 2 or 4
  EXPECT_THROW(BlockMask(2, 1, 3, 2).validate_for(p), Error);
}

TEST(BlockMask, DensityCountsVisibleBlocks) {
  HostTensor q(DType::kBF16, {1, 512, 2, 64}), k(DType::kBF16, {1, 512, 2, 64}),
      v(DType::kBF16, {1, 512, 2, 64});
  const AttentionProblem p = describe_attention(q.view(), k.view(), v.view());
  const BlockMask full = full_block_mask(p, true);
  EXPECT_DOUBLE_EQ(mask_density(full, p, true).overall, 1.0);
  EXPECT_EQ(mask_density(full, p, true).visible_blocks, 2 * 10);  // 4 * 5 / 2 per head
  BlockMask diag(1, 2, 4, 4);
  for (int u = 0; u < 4; ++u) diag.set_row(0, 0, u, {u});
  diag.set_row(0, 1, 0, {0, 3});  // block (0, 3) lies above the diagonal: not counted
  const MaskDensity d = mask_density(diag, p, true);
  EXPECT_DOUBLE_EQ(d.per_query_head[0], 4.0 / 10.0);
  EXPECT_DOUBLE_EQ(d.per_query_head[1], 1.0 / 10.0);
  EXPECT_DOUBLE_EQ(mask_density(diag, p, false).per_query_head[1], 2.0 / 16.0);
}

TEST(BlockMask, FullMaskBottomRightWithLongerKeys) {
  HostTensor q(DType::kBF16, {1, 130, 1, 64}), k(DType::kBF16, {1, 400, 1, 64}),
      v(DType::kBF16, {1, 400, 1, 64});
  const AttentionProblem p = describe_attention(q.view(), k.view(), v.view());
  const BlockMask full = full_block_mask(p, true);
  // Row 0 (queries 0..127) sees keys <= 127 + 270 = 397: blocks 0..3; row 1 (128, 129) sees all 4 blocks.
  EXPECT_EQ(full.row_count(0, 0, 0), 4);
  EXPECT_EQ(full.row_count(0, 0, 1), 4);
  EXPECT_EQ(full_block_mask(p, true, 64).row_count(0, 0, 0), 6);  // keys <= 333 with 64-blocks: 0..5
}

}  // namespace
}  // namespace sparsefill
