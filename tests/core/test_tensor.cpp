#include <gtest/gtest.h>

#include <cmath>

#include "sparsefill/error.hpp"
#include "sparsefill/tensor.hpp"

namespace sparsefill {
namespace {

TEST(Tensor, ContiguousViewStrides) {
  HostTensor t(DType::kFP32, {2, 3, 4, 5});
  const TensorView v = t.view();
  EXPECT_EQ(v.stride[0], 60);
  EXPECT_EQ(v.stride[3], 1);
  EXPECT_TRUE(v.is_contiguous());
  EXPECT_EQ(v.shape_string(), "[2, 3, 4, 5]");
  TensorView transposed = v;
  std::swap(transposed.shape[1], transposed.shape[2]);
  std::swap(transposed.stride[1], transposed.stride[2]);
  EXPECT_FALSE(transposed.is_contiguous());
}

TEST(Tensor, AllFiniteFollowsStrides) {
  HostTensor t(DType::kFP32, {4, 4});
  t.ptr<float>()[5] = NAN;
  EXPECT_FALSE(all_finite(t.view()));
  TensorView first_row = t.view();
  first_row.shape[0] = 1;
  EXPECT_TRUE(all_finite(first_row));
}

TEST(Tensor, RejectsHugeOrNegativeShapes) {
  EXPECT_THROW(HostTensor(DType::kFP32, {-1}), Error);
  EXPECT_THROW(HostTensor(DType::kFP32, {1 << 21, 1 << 21}), Error);
  EXPECT_THROW(HostTensor(DType::kFP32, {1, 1, 1, 1, 1}), Error);
}

TEST(Tensor, ConvertedRoundsToTarget) {
  HostTensor t(DType::kFP32, {3});
  t.ptr<float>()[0] = 1.0f + 1e-3f;
  const HostTensor b = t.converted(DType::kBF16);
  EXPECT_EQ(b.dtype(), DType::kBF16);
  EXPECT_EQ(b.to_doubles()[0], 1.0);
}

}  // namespace
}  // namespace sparsefill
