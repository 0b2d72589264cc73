#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "sparsefill/error.hpp"
#include "sparsefill/picture.hpp"
#include "support/random_tensors.hpp"

namespace sparsefill {
namespace {

TEST(Png, WritesAValidPictureWithBothPanels) {
  HostTensor q(DType::kBF16, {1, 512, 2, 16}), k(DType::kBF16, {1, 512, 1, 16}),
      v(DType::kBF16, {1, 512, 1, 16});
  const AttentionProblem p = describe_attention(q.view(), k.view(), v.view());
  const BlockMask mask = full_block_mask(p, true);
  HostTensor mass(DType::kFP32, {1, 2, 4, 4});
  const std::string path = (std::filesystem::temp_directory_path() /
                            ("sparsefill_png_" + std::to_string(testing::fresh_seed()) + ".png"))
                               .string();
  const TensorView mass_view = mass.view();
  write_mask_png(path, mask, p, true, &mass_view);
  std::ifstream in(path, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), {});
  ASSERT_GT(bytes.size(), 33u);
  EXPECT_EQ(bytes.substr(1, 3), "PNG");
  const auto be32 = [&](std::size_t at) {
    return (static_cast<unsigned>(static_cast<unsigned char>(bytes[at])) << 24) |
           (static_cast<unsigned>(static_cast<unsigned char>(bytes[at + 1])) << 16) |
           (static_cast<unsigned>(static_cast<unsigned char>(bytes[at + 2])) << 8) |
           static_cast<unsigned char>(bytes[at + 3]);
  };
  // 4 blocks at scale 8 = 32 px panels; two heads of two panels each side by side with 6 px gaps.
  EXPECT_EQ(be32(16), 2u * (2 * (32 + 6) + 6) + 6);
  EXPECT_EQ(be32(20), 32u + 12);
  std::remove(path.c_str());
  HostTensor wrong(DType::kFP32, {1, 2, 3, 4});
  const TensorView wrong_view = wrong.view();
  EXPECT_THROW(write_mask_png(path, mask, p, true, &wrong_view), Error);
}

}  // namespace
}  // namespace sparsefill
