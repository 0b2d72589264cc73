// PBS: the permuted attention (keys read in the selector's order, own segment masked by original positions)
// equals dense fp64 attention restricted to the same set of original keys per query.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "sparsefill/error.hpp"
#include "sparsefill/reference_attention.hpp"
#include "sparsefill/selector.hpp"
#include "support/naive_attention.hpp"
#include "support/random_tensors.hpp"

namespace sparsefill {
namespace {

TEST(PbsAttention, PermutedAttentionEqualsRestrictedDenseAttention) {
  const std::uint64_t seed = testing::fresh_seed();
  SCOPED_TRACE(::testing::Message() << "seed " << seed);
  std::mt19937_64 rng(seed);
  const std::int64_t L = 600, hq = 4, hk = 2, d = 32, B = 64;
  const HostTensor q = testing::random_tensor(DType::kBF16, {1, L, hq, d}, rng, 2.0);
  const HostTensor k = testing::random_tensor(DType::kBF16, {1, L, hk, d}, rng, 2.0);
  const HostTensor v = testing::random_tensor(DType::kBF16, {1, L, hk, d}, rng);
  SelectorInputs in;
  in.q = q.view();
  in.k = k.view();
  in.v = v.view();
  in.block_size = B;
  SelectorSettings settings;
  settings.pbs.segment = 256;
  settings.pbs.tau = 0.5;  // sparse enough that the key sets really differ from dense
  const Selection s = make_selector("pbs", settings)->select(in);
  // Original keys each query may see: keys at selected permuted positions whose original index is causal.
  std::vector<std::vector<char>> allowed(static_cast<std::size_t>(hq * L),
                                         std::vector<char>(static_cast<std::size_t>(L), 0));
  std::int64_t kept = 0;
  for (std::int64_t h = 0; h < hq; ++h) {
    const std::int32_t* order = s.key_order.data() + h * L;
    for (std::int64_t i = 0; i < L; ++i) {
      const std::int64_t u = i / B;
      for (std::int32_t n = 0; n < s.mask.row_count(0, h, u); ++n) {
        const std::int64_t block = s.mask.row_indices(0, h, u)[n];
        for (std::int64_t pos = block * B; pos < std::min(L, block * B + B); ++pos) {
          if (order[pos] <= i) {
            allowed[h * L + i][order[pos]] = 1;
            ++kept;
          }
        }
      }
    }
  }
  EXPECT_LT(kept, hq * L * (L + 1) / 2) << "the mask should drop some keys";
  const testing::NaiveResult want =
      testing::naive_attention(q, k, v, false, {{0, 0, L, L}}, 1.0 / std::sqrt(static_cast<double>(d)),
                               [&](std::int64_t, std::int64_t h, std::int64_t i, std::int64_t j) {
                                 return allowed[h * L + i][j] != 0;
                               });
  HostTensor out(DType::kFP64, {1, L, hq, d}), lse(DType::kFP64, {1, hq, L});
  testing::poison(out);
  ReferenceOptions options;
  options.accumulation = Accumulation::kFP64;
  reference_permuted_attention(q.view(), k.view(), v.view(), {}, s.mask, s.key_order, options,
                               {out.view(), lse.view(), {}, 0});
  const std::vector<double> got = out.to_doubles(), got_lse = lse.to_doubles();
  double diff = 0, ref = 0;
  for (std::size_t i = 0; i < got.size(); ++i) {
    diff += (got[i] - want.out[i]) * (got[i] - want.out[i]);
    ref += want.out[i] * want.out[i];
  }
  EXPECT_LT(std::sqrt(diff / ref), 1e-12);
  for (std::size_t i = 0; i < got_lse.size(); ++i) ASSERT_NEAR(got_lse[i], want.lse[i], 1e-9) << "lse " << i;
}

TEST(PbsAttention, RejectsAnOrderThatIsNotAPermutation) {
  std::mt19937_64 rng(testing::fresh_seed());
  const HostTensor q = testing::random_tensor(DType::kBF16, {1, 128, 1, 16}, rng);
  const HostTensor k = testing::random_tensor(DType::kBF16, {1, 128, 1, 16}, rng);
  BlockMask mask(1, 1, 2, 2, 64, 64);
  std::vector<std::int32_t> order(128);
  for (int i = 0; i < 128; ++i) order[i] = i;
  order[5] = 6;  // 6 twice, 5 missing
  HostTensor out(DType::kFP32, {1, 128, 1, 16});
  EXPECT_THROW(reference_permuted_attention(q.view(), k.view(), k.view(), {}, mask, order, {},
                                            {out.view(), {}, {}, 0}),
               Error);
  order.pop_back();
  EXPECT_THROW(reference_permuted_attention(q.view(), k.view(), k.view(), {}, mask, order, {},
                                            {out.view(), {}, {}, 0}),
               Error);
}

}  // namespace
}  // namespace sparsefill
