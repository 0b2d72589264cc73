// GPU smoke test (label gpu): skipped, never passed, where no CUDA device is present.
#include <gtest/gtest.h>

#include "sparsefill/device.hpp"

namespace sparsefill {
namespace {

TEST(GpuSmoke, Sm90KernelRunsAndWritesEveryElement) {
  if (!built_with_cuda()) GTEST_SKIP() << "built without CUDA";
  if (cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device: " << cuda_device_description();
  std::string reason;
  EXPECT_TRUE(cuda_smoke_test(&reason)) << reason;
}

}  // namespace
}  // namespace sparsefill
