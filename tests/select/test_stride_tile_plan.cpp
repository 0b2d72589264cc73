// Host tests of the stride selectors' kernel choice and shared-memory plan
// (cuda/select/stride_tile_plan.hpp): which calls the tiled kernel takes, where RRAttention's paired hi + lo
// stages stop fitting, and that every tiled plan fits the sm_90 opt-in limit (with the kernel's static shared
// memory) with room for the rule's fp64 block rows.
#include <gtest/gtest.h>

#include "select/stride_tile_plan.hpp"

namespace sparsefill::cuda::select {
namespace {

constexpr int kDefaultBlock = 128, kDefaultStride = 8;  // B / S = 16, the tiled kernel's geometry

TEST(StrideTilePlan, TakesOnlySixteenStrideRowsABlockAndHeadDimsOf128) {
  EXPECT_TRUE(stride_tile_plan(true, 2, kDefaultBlock, kDefaultStride, 128, 1024).tiled);
  EXPECT_TRUE(stride_tile_plan(false, 0, 64, 4, 128, 1024).tiled);
  EXPECT_FALSE(stride_tile_plan(true, 2, kDefaultBlock, 16, 128, 1024).tiled);  // 8 stride rows a block
  EXPECT_FALSE(stride_tile_plan(true, 2, kDefaultBlock, 4, 128, 1024).tiled);   // 32
  EXPECT_FALSE(stride_tile_plan(false, 0, kDefaultBlock, kDefaultStride, 64, 1024).tiled);
  EXPECT_FALSE(stride_tile_plan(false, 0, kDefaultBlock, kDefaultStride, 96, 1024).tiled);
}

// At head_dim 128 the paired stages take 1 KB of alignment + 32 KB of query rows + 2 x 64 KB of stages + 8 x
// (4 nk + 1664) bytes of block rows and scratch: with the kernel's static shared memory (256 bytes counted),
// at most 227 KB up to nk = 1688.
TEST(StrideTilePlan, PairsExactKeySumStagesWhereTheyFit) {
  for (const int nk : {1, 1024, 1688}) {
    const StrideTilePlan plan = stride_tile_plan(true, 2, kDefaultBlock, kDefaultStride, 128, nk);
    EXPECT_TRUE(plan.tiled);
    EXPECT_EQ(plan.parts, 2) << nk;
    EXPECT_EQ(plan.smem_bytes, 1024u + 32768u + 2u * 65536u + 8u * (4u * nk + 1664u)) << nk;
  }
  for (const int nk : {1689, 1696, 2048}) {
    const StrideTilePlan plan = stride_tile_plan(true, 2, kDefaultBlock, kDefaultStride, 128, nk);
    EXPECT_TRUE(plan.tiled);
    EXPECT_EQ(plan.parts, 1) << nk;
    EXPECT_EQ(plan.smem_bytes, 1024u + 32768u + 3u * 32768u + 8u * (4u * nk + 1664u)) << nk;
  }
  EXPECT_EQ(stride_tile_plan(true, 1, kDefaultBlock, kDefaultStride, 128, 1024).parts, 1);  // rounded sums
  EXPECT_EQ(stride_tile_plan(false, 0, kDefaultBlock, kDefaultStride, 128, 1024).parts, 1);
  EXPECT_EQ(stride_tile_plan(true, 2, kDefaultBlock, kDefaultStride, 256, 1024).parts, 1);  // 64 KB of rows
}

// The operand area (rows + stages, 128 KB at head_dim 128 with single-part stages) holds 8 rows of nk fp64
// block sums up to nk = 2048, the longest row GPU selection takes; longer rows run the per-warp kernel.
TEST(StrideTilePlan, TakesRowsWhoseFp64BlockRowsFitTheOperandArea) {
  EXPECT_TRUE(stride_tile_plan(true, 2, kDefaultBlock, kDefaultStride, 128, 2048).tiled);
  EXPECT_TRUE(stride_tile_plan(false, 0, kDefaultBlock, kDefaultStride, 128, 2048).tiled);
  EXPECT_FALSE(stride_tile_plan(true, 2, kDefaultBlock, kDefaultStride, 128, 2049).tiled);
  EXPECT_FALSE(stride_tile_plan(false, 0, kDefaultBlock, kDefaultStride, 128, 2049).tiled);
}

TEST(StrideTilePlan, EveryTiledPlanFitsTheSharedMemoryLimitAndTheRuleRows) {
  for (const bool rr : {true, false})
    for (const int key_parts : {1, 2})
      for (const int d : {128, 256, 384})
        for (int nk = 1; nk <= 4096; ++nk) {
          const StrideTilePlan plan = stride_tile_plan(rr, key_parts, kDefaultBlock, kDefaultStride, d, nk);
          if (!plan.tiled) continue;
          ASSERT_LE(plan.smem_bytes + kStaticSharedBytes, kMaxSharedBytes)
              << rr << " " << key_parts << " " << d << " " << nk;
          ASSERT_EQ(plan.smem_bytes, stride_tile_smem_bytes(rr, plan.parts, d, nk));
          ASSERT_LE(8u * nk * kRowGroups, stride_tile_operand_bytes(rr, plan.parts, d)) << nk;
          ASSERT_TRUE(plan.parts == 1 || (rr && key_parts == 2)) << nk;
        }
}

// One pass's scratch slot: per row, 8 block sums and one maximum a column tile of 8 key blocks, the last
// tile padded to 8 blocks.
TEST(StrideTilePlan, OnePassSlotHoldsEightSumsAndAMaximumATile) {
  EXPECT_EQ(one_pass_tiles(1024), 128);
  EXPECT_EQ(one_pass_tiles(1094), 137);
  EXPECT_EQ(one_pass_tiles(1), 1);
  EXPECT_EQ(one_pass_slot_floats(1024), std::size_t{128} * 128 * 9);
  EXPECT_EQ(one_pass_slot_floats(1094), std::size_t{128} * 137 * 9);
}

}  // namespace
}  // namespace sparsefill::cuda::select
