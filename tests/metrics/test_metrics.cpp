#include <gtest/gtest.h>

#include <cmath>

#include "sparsefill/error.hpp"
#include "sparsefill/metrics.hpp"

namespace sparsefill {
namespace {

struct TinyProblem {
  HostTensor q{DType::kBF16, {1, 256, 2, 16}}, k{DType::kBF16, {1, 256, 1, 16}}, v{DType::kBF16, {1, 256, 1, 16}};
  AttentionProblem p = describe_attention(q.view(), k.view(), v.view());
};

TEST(Metrics, SummaryPercentiles) {
  const Summary s = summarize({5, 1, 4, 2, 3});
  EXPECT_EQ(s.min, 1);
  EXPECT_EQ(s.max, 5);
  EXPECT_DOUBLE_EQ(s.mean, 3);
  EXPECT_DOUBLE_EQ(s.p50, 3);
  EXPECT_DOUBLE_EQ(s.p10, 1.4);
  EXPECT_EQ(summarize({}).count, 0);
}

TEST(Metrics, RecallOnAHandBuiltCase) {
  TinyProblem t;
  // Two query blocks of 128 and two key blocks; head 0 row 1 puts 0.7 on block 0 and 0.3 on block 1.
  HostTensor mass(DType::kFP64, {1, 2, 2, 2});
  double* m = mass.ptr<double>();
  m[0] = 1.0;                  // head 0, row 0
  m[2] = 0.7, m[3] = 0.3;      // head 0, row 1
  m[4] = 1.0;                  // head 1, row 0
  m[6] = 0.2, m[7] = 0.8;      // head 1, row 1
  BlockMask mask(1, 2, 2, 2);  // per query head
  mask.set_row(0, 0, 0, {0});
  mask.set_row(0, 0, 1, {0});
  mask.set_row(0, 1, 0, {0});
  mask.set_row(0, 1, 1, {1});
  const RecallReport r = mask_recall(mass.view(), mask, t.p, true);
  EXPECT_DOUBLE_EQ(r.head_min[0], 0.7);
  EXPECT_DOUBLE_EQ(r.head_mean[0], 0.85);
  EXPECT_DOUBLE_EQ(r.head_min[1], 0.8);
  EXPECT_DOUBLE_EQ(r.head_mean[1], 0.9);
  const std::vector<double> needed = blocks_needed_fraction(mass.view(), t.p, true, 0.95);
  EXPECT_DOUBLE_EQ(needed[0], 3.0 / 3.0);  // row 0: 1 block; row 1: 0.7 + 0.3 -> 2 blocks; 3 visible
  const std::vector<double> needed_half = blocks_needed_fraction(mass.view(), t.p, true, 0.5);
  EXPECT_DOUBLE_EQ(needed_half[1], 2.0 / 3.0);
  HostTensor wrong(DType::kFP64, {1, 2, 2, 3});
  EXPECT_THROW(mask_recall(wrong.view(), mask, t.p, true), Error);
}

TEST(Metrics, OutputErrorPerHead) {
  TinyProblem t;
  HostTensor a(DType::kFP32, {1, 256, 2, 16}), b(DType::kFP32, {1, 256, 2, 16});
  for (std::int64_t i = 0; i < a.numel(); ++i) {
    a.ptr<float>()[i] = 1.0f;
    b.ptr<float>()[i] = (i / 16) % 2 == 0 ? 1.0f : 1.1f;  // head 1 off by 10%
  }
  const OutputError e = output_error(b.view(), a.view(), t.p);
  EXPECT_NEAR(e.per_head[0], 0.0, 1e-12);
  EXPECT_NEAR(e.per_head[1], 0.1, 1e-6);
  EXPECT_NEAR(e.overall, 0.1 / std::sqrt(2.0), 1e-6);
}

}  // namespace
}  // namespace sparsefill
