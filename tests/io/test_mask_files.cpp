#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <random>

#include "sparsefill/error.hpp"
#include "sparsefill/io.hpp"
#include "support/random_tensors.hpp"

namespace sparsefill {
namespace {

BlockMask random_mask(std::mt19937_64& rng) {
  std::bernoulli_distribution keep(0.3);
  std::vector<std::uint8_t> map(2 * 4 * 6 * 6);
  for (auto& m : map) m = keep(rng);
  return block_mask_from_dense(map, 2, 4, 6, 6, 64, 64);
}

TEST(MaskFiles, RoundTripBothFormats) {
  std::mt19937_64 rng(testing::fresh_seed());
  const BlockMask mask = random_mask(rng);
  for (const char* ext : {".safetensors", ".npy"}) {
    const std::string path = testing::temp_path(ext);
    write_block_mask(path, mask);
    const BlockMask back = read_block_mask(path, 64);
    EXPECT_EQ(back.kv_num_blocks(), mask.kv_num_blocks()) << ext;
    EXPECT_EQ(back.kv_indices(), mask.kv_indices()) << ext;
    EXPECT_EQ(back.block_q(), 64) << ext;
    std::remove(path.c_str());
  }
}

TEST(MaskFiles, RejectsOutOfRangeIndices) {
  std::vector<std::int32_t> counts = {1}, indices = {5, 0};
  const std::string path = testing::temp_path(".safetensors");
  write_safetensors(path,
                    {{"kv_num_blocks", make_view(counts.data(), DType::kInt32, {1, 1, 1})},
                     {"kv_indices", make_view(indices.data(), DType::kInt32, {1, 1, 1, 2})}},
                    {{"block_q", "128"}, {"block_k", "128"}});
  EXPECT_THROW(read_block_mask(path), Error);
  write_safetensors(path, {{"kv_num_blocks", make_view(counts.data(), DType::kInt32, {1, 1, 1})}}, {});
  EXPECT_THROW(read_block_mask(path), Error);
  EXPECT_THROW(write_block_mask(testing::temp_path(".txt"), BlockMask(1, 1, 1, 1)), Error);
  std::remove(path.c_str());
}

}  // namespace
}  // namespace sparsefill
