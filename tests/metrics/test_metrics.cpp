#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "sparsefill/error.hpp"
#include "sparsefill/metrics.hpp"
#include "sparsefill/reference_attention.hpp"
#include "support/random_tensors.hpp"

namespace sparsefill {
namespace {

struct TinyProblem {
  HostTensor q{DType::kBF16, {1, 256, 2, 16}}, k{DType::kBF16, {1, 256, 1, 16}},
      v{DType::kBF16, {1, 256, 1, 16}};
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

TEST(Metrics, RecallFromLseOnAHandBuiltCase) {
  TinyProblem t;  // 256 queries: two query blocks of 128
  HostTensor dense(DType::kFP64, {1, 2, 256}), sparse(DType::kFP64, {1, 2, 256});
  for (int i = 0; i < 512; ++i) {
    dense.ptr<double>()[i] = 3.0;
    sparse.ptr<double>()[i] = 3.0 + std::log(i < 128 ? 0.7 : i < 256 ? 1.0 : 0.5);
  }
  sparse.ptr<double>()[300] = -INFINITY;  // head 1, block 0: one row left empty -> recall 0 for that row
  dense.ptr<double>()[511] = -INFINITY;   // head 1, last row sees nothing: skipped
  const RecallReport r = recall_from_lse(sparse.view(), dense.view(), t.p, 128);
  EXPECT_NEAR(r.head_min[0], 0.7, 1e-12);
  EXPECT_NEAR(r.head_mean[0], 0.85, 1e-12);
  EXPECT_NEAR(r.per_head_rows[1][0], (127 * 0.5) / 128, 1e-12);
  EXPECT_NEAR(r.per_head_rows[1][1], 0.5, 1e-12);
  HostTensor wrong(DType::kFP64, {1, 2, 255});
  EXPECT_THROW(recall_from_lse(wrong.view(), dense.view(), t.p, 128), Error);
}

TEST(Metrics, RecallFromLseEqualsSelectedBlockMass) {
  std::mt19937_64 rng(testing::fresh_seed());
  HostTensor q = testing::random_tensor(DType::kBF16, {1, 300, 2, 32}, rng, 2.0);
  HostTensor k = testing::random_tensor(DType::kBF16, {1, 300, 1, 32}, rng, 2.0);
  HostTensor v = testing::random_tensor(DType::kBF16, {1, 300, 1, 32}, rng);
  const AttentionProblem p = describe_attention(q.view(), k.view(), v.view());
  std::bernoulli_distribution keep(0.5);
  BlockMask mask(1, 2, 5, 5, 64, 64);
  for (int h = 0; h < 2; ++h) {
    for (int u = 0; u < 5; ++u) {
      std::vector<std::int32_t> row;
      for (int c = 0; c <= u; ++c) {
        if (keep(rng)) row.push_back(c);
      }
      mask.set_row(0, h, u, row);
    }
  }
  HostTensor out(DType::kFP64, {1, 300, 2, 32}), lse_s(DType::kFP64, {1, 2, 300}),
      lse_d(DType::kFP64, {1, 2, 300});
  HostTensor mass(DType::kFP64, {1, 2, 5, 5});
  ReferenceOptions options;
  options.accumulation = Accumulation::kFP64;
  reference_attention(q.view(), k.view(), v.view(), {}, &mask, options, {out.view(), lse_s.view(), {}, 0});
  reference_attention(q.view(), k.view(), v.view(), {}, nullptr, options,
                      {out.view(), lse_d.view(), mass.view(), 64});
  const RecallReport r = recall_from_lse(lse_s.view(), lse_d.view(), p, 64);
  for (int h = 0; h < 2; ++h) {
    for (int u = 0; u < 5; ++u) {
      double covered = 0;
      for (int n = 0; n < mask.row_count(0, h, u); ++n)
        covered += mass.ptr<double>()[(h * 5 + u) * 5 + mask.row_indices(0, h, u)[n]];
      EXPECT_NEAR(r.per_head_rows[h][u], covered, 1e-9) << "head " << h << " block " << u;
    }
  }
}

TEST(Metrics, BlocksNeededFraction) {
  TinyProblem t;
  HostTensor mass(DType::kFP64, {1, 2, 2, 2});
  double* m = mass.ptr<double>();
  m[0] = 1.0;                                                                            // head 0, row 0
  m[2] = 0.7, m[3] = 0.3;                                                                // head 0, row 1
  m[4] = 1.0;                                                                            // head 1, row 0
  m[6] = 0.2, m[7] = 0.8;                                                                // head 1, row 1
  EXPECT_DOUBLE_EQ(blocks_needed_fraction(mass.view(), t.p, true, 0.95)[0], 3.0 / 3.0);  // 1 + 2 blocks of 3
  EXPECT_DOUBLE_EQ(blocks_needed_fraction(mass.view(), t.p, true, 0.5)[1], 2.0 / 3.0);   // 1 + 1 blocks of 3
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
