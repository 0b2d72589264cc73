// The blocked (sgemm) CPU attention computes the reference's function: fresh random fp32 inputs, strided views,
// random masks (broadcast, per KV head, per query head), causal and not, seqlen_k > seqlen_q, empty rows, PBS
// key orders; compared with the fp64 reference under conventions.md's rule; poisoned outputs.
#include <gtest/gtest.h>

#include <cmath>
#include <numeric>
#include <random>

#include "sparsefill/blocked_attention.hpp"
#include "sparsefill/error.hpp"
#include "support/error_argument.hpp"
#include "support/random_tensors.hpp"

namespace sparsefill {
namespace {

struct Case {
  const char* name;
  std::int64_t batch, lq, lk, heads_q, heads_kv, head_dim, block, mask_heads;  // mask_heads 0: dense
  bool causal, permuted;
  double density;
};

void PrintTo(const Case& c, std::ostream* os) {
  *os << c.name;
}

// A [batch, tokens, heads, dim] view into a buffer twice as wide in the last dimension (strided rows).
struct StridedInput {
  HostTensor buffer;
  TensorView view;
  StridedInput(std::int64_t b, std::int64_t t, std::int64_t h, std::int64_t d, std::mt19937_64& rng, double scale)
      : buffer(testing::random_tensor(DType::kFP32, {b, t, h, 2 * d}, rng, scale)) {
    view = buffer.view();
    view.shape[3] = d;
  }
};

BlockMask random_mask(const Case& c, std::mt19937_64& rng) {
  const std::int64_t nq = ceil_div(c.lq, c.block), nk = ceil_div(c.lk, c.block);
  BlockMask mask(c.batch, c.mask_heads, nq, nk, c.block, c.block);
  std::bernoulli_distribution keep(c.density);
  for (std::int64_t b = 0; b < c.batch; ++b)
    for (std::int64_t h = 0; h < c.mask_heads; ++h)
      for (std::int64_t u = 0; u < nq; ++u) {
        std::vector<std::int32_t> row;
        for (std::int64_t v = 0; v < nk; ++v)
          if (keep(rng)) row.push_back(static_cast<std::int32_t>(v));
        mask.set_row(b, h, u, row);
      }
  return mask;
}

// Segment-local shuffles of each row's keys (PBS's shape of permutation).
std::vector<std::int32_t> random_key_order(const Case& c, std::mt19937_64& rng) {
  std::vector<std::int32_t> order(static_cast<std::size_t>(c.batch * c.heads_q * c.lk));
  for (std::int64_t row = 0; row < c.batch * c.heads_q; ++row) {
    std::int32_t* o = order.data() + row * c.lk;
    std::iota(o, o + c.lk, 0);
    for (std::int64_t s = 0; s < c.lk; s += 2 * c.block) std::shuffle(o + s, o + std::min(c.lk, s + 2 * c.block), rng);
  }
  return order;
}

class BlockedAttention : public ::testing::TestWithParam<Case> {};

TEST_P(BlockedAttention, MatchesTheFp64Reference) {
  const Case& c = GetParam();
  const std::uint64_t seed = testing::fresh_seed();
  SCOPED_TRACE(std::string(c.name) + ", seed " + std::to_string(seed));
  std::mt19937_64 rng(seed);
  const StridedInput q(c.batch, c.lq, c.heads_q, c.head_dim, rng, 2.0), k(c.batch, c.lk, c.heads_kv, c.head_dim, rng, 1.0),
      v(c.batch, c.lk, c.heads_kv, c.head_dim, rng, 1.0);
  const BlockMask mask = c.mask_heads ? random_mask(c, rng) : BlockMask();
  const BlockMask* m = c.mask_heads ? &mask : nullptr;
  const std::vector<std::int32_t> order = c.permuted ? random_key_order(c, rng) : std::vector<std::int32_t>{};

  HostTensor want(DType::kFP64, {c.batch, c.lq, c.heads_q, c.head_dim}), want_lse(DType::kFP64, {c.batch, c.heads_q, c.lq});
  ReferenceOptions options;
  options.attention.causal = c.causal;
  options.accumulation = Accumulation::kFP64;
  const ReferenceOutputs want_out{want.view(), want_lse.view(), {}, 0};
  if (c.permuted) {
    reference_permuted_attention(q.view, k.view, v.view, {}, mask, order, options, want_out);
  } else {
    reference_attention(q.view, k.view, v.view, {}, m, options, want_out);
  }

  HostTensor got(DType::kFP32, want.shape()), got_lse(DType::kFP32, want_lse.shape());
  testing::poison(got);
  testing::poison(got_lse);
  blocked_attention(q.view, k.view, v.view, m, c.permuted ? &order : nullptr, options.attention,
                    {got.view(), got_lse.view(), {}, 0});
  const std::vector<double> g = got.to_doubles(), w = want.to_doubles();
  for (double x : g) ASSERT_TRUE(std::isfinite(x)) << "an output element was not written";
  EXPECT_LE(testing::relative_error(g, w), 2 * testing::relative_error(want.converted(DType::kFP32).to_doubles(), w) + 1e-5);
  const std::vector<double> gl = got_lse.to_doubles(), wl = want_lse.to_doubles();
  for (std::size_t i = 0; i < gl.size(); ++i) {
    if (std::isinf(wl[i])) {
      ASSERT_TRUE(std::isinf(gl[i]) && gl[i] < 0) << "lse " << i;
    } else {
      ASSERT_NEAR(gl[i], wl[i], 1e-4 * std::max(1.0, std::fabs(wl[i]))) << "lse " << i;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(
    Cases, BlockedAttention,
    ::testing::Values(Case{"dense_causal_odd", 1, 333, 333, 4, 4, 64, 128, 0, true, false, 1.0},
                      Case{"dense_noncausal_mqa_longer_keys", 2, 150, 401, 4, 1, 32, 128, 0, false, false, 1.0},
                      Case{"sparse_gqa_per_kv_head", 1, 300, 450, 8, 2, 64, 64, 2, true, false, 0.4},
                      Case{"sparse_per_query_head_noncausal", 2, 257, 257, 4, 2, 64, 128, 4, false, false, 0.5},
                      Case{"empty_mask", 1, 200, 200, 2, 1, 64, 64, 1, true, false, 0.0},
                      Case{"pbs_key_order", 1, 300, 300, 4, 2, 64, 64, 4, true, true, 0.5}),
    [](const ::testing::TestParamInfo<Case>& info) { return std::string(info.param.name); });

using testing::error_argument;

TEST(BlockedAttentionErrors, NameTheArgument) {
  std::mt19937_64 rng(testing::fresh_seed());
  const HostTensor q = testing::random_tensor(DType::kFP32, {1, 64, 2, 32}, rng);
  const HostTensor k = testing::random_tensor(DType::kFP32, {1, 64, 2, 32}, rng);
  const HostTensor half = testing::random_tensor(DType::kFP16, {1, 64, 2, 32}, rng);
  HostTensor out(DType::kFP32, {1, 64, 2, 32}), out16(DType::kFP16, {1, 64, 2, 32}), mass(DType::kFP32, {1, 2, 1, 1});
  EXPECT_EQ(error_argument([&] { blocked_attention(half.view(), half.view(), half.view(), nullptr, nullptr, {}, {out.view(), {}, {}, 0}); }), "q");
  EXPECT_EQ(error_argument([&] { blocked_attention(q.view(), k.view(), k.view(), nullptr, nullptr, {}, {out16.view(), {}, {}, 0}); }), "out");
  EXPECT_EQ(error_argument([&] { blocked_attention(q.view(), k.view(), k.view(), nullptr, nullptr, {}, {out.view(), {}, mass.view(), 64}); }), "block_mass");
  const BlockMask wrong(1, 2, 3, 1, 64, 64);  // three query blocks for one
  EXPECT_EQ(error_argument([&] { blocked_attention(q.view(), k.view(), k.view(), &wrong, nullptr, {}, {out.view(), {}, {}, 0}); }), "mask.num_q_blocks");
  HostTensor nan = testing::random_tensor(DType::kFP32, {1, 64, 2, 32}, rng);
  nan.ptr<float>()[5] = std::nanf("");
  EXPECT_EQ(error_argument([&] { blocked_attention(nan.view(), k.view(), k.view(), nullptr, nullptr, {}, {out.view(), {}, {}, 0}); }), "q");
}

}  // namespace
}  // namespace sparsefill
