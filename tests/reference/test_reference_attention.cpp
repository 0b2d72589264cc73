// The CPU reference against an independent naive fp64 attention, on fresh random shapes each run.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "sparsefill/error.hpp"
#include "sparsefill/reference_attention.hpp"
#include "support/naive_attention.hpp"
#include "support/random_tensors.hpp"

namespace sparsefill {
namespace {

using testing::NaiveSequence;

struct Case {
  bool varlen = false, causal = true;
  std::int64_t heads_q = 4, heads_kv = 2, head_dim = 64, block = 64;
  std::vector<NaiveSequence> sequences;
  std::int64_t mask_heads = 0;  // 0 = dense
  double density = 1.0;
  DType dtype = DType::kBF16;
};

Case random_case(std::mt19937_64& rng) {
  auto pick = [&](std::initializer_list<std::int64_t> options) {
    return *(options.begin() + std::uniform_int_distribution<std::size_t>(0, options.size() - 1)(rng));
  };
  Case c;
  c.varlen = rng() % 3 == 0;
  c.causal = rng() % 4 != 0;
  const std::int64_t group = pick({1, 2, 3, 4});
  c.heads_kv = pick({1, 2});
  c.heads_q = c.heads_kv * group;
  c.head_dim = pick({16, 40, 64});
  c.block = pick({64, 128});
  c.dtype = rng() % 2 ? DType::kBF16 : DType::kFP16;
  const std::int64_t batch = pick({1, 2, 3});
  std::uniform_int_distribution<std::int64_t> length(1, 300);
  std::int64_t start_q = 0, start_k = 0;
  const std::int64_t fixed_q = length(rng), fixed_k = rng() % 2 ? fixed_q : length(rng);
  for (std::int64_t b = 0; b < batch; ++b) {
    NaiveSequence s;
    s.seqlen_q = c.varlen ? (b == 1 && rng() % 3 == 0 ? 0 : length(rng))
                          : fixed_q;  // varlen may hold an empty sequence
    s.seqlen_k = c.varlen ? (rng() % 2 ? s.seqlen_q : length(rng)) : fixed_k;
    s.start_q = start_q;
    s.start_k = start_k;
    start_q += s.seqlen_q;
    start_k += s.seqlen_k;
    c.sequences.push_back(s);
  }
  const std::int64_t mh = pick({0, 1, 2, 3});
  c.mask_heads = mh == 0 ? 0 : mh == 1 ? 1 : mh == 2 ? c.heads_kv : c.heads_q;
  c.density = std::uniform_int_distribution<int>(0, 3)(rng) == 0 ? 0.0 : pick({1, 5, 10}) / 10.0;
  return c;
}

struct CaseTensors {
  HostTensor q, k, v;
  std::vector<std::int32_t> cu_q, cu_k;
  std::int64_t max_q = 0, max_k = 0;
  VarlenSequences varlen() const {
    return cu_q.empty()
               ? VarlenSequences{}
               : VarlenSequences{cu_q.data(), cu_k.data(), static_cast<std::int64_t>(cu_q.size()) - 1};
  }
};

CaseTensors make_tensors(const Case& c, std::mt19937_64& rng) {
  CaseTensors t;
  for (const auto& s : c.sequences) {
    t.max_q = std::max(t.max_q, s.seqlen_q);
    t.max_k = std::max(t.max_k, s.seqlen_k);
  }
  const std::int64_t batch = static_cast<std::int64_t>(c.sequences.size());
  if (c.varlen) {
    t.cu_q = {0};
    t.cu_k = {0};
    for (const auto& s : c.sequences) {
      t.cu_q.push_back(static_cast<std::int32_t>(s.start_q + s.seqlen_q));
      t.cu_k.push_back(static_cast<std::int32_t>(s.start_k + s.seqlen_k));
    }
    t.q = testing::random_tensor(c.dtype, {t.cu_q.back(), c.heads_q, c.head_dim}, rng);
    t.k = testing::random_tensor(c.dtype, {t.cu_k.back(), c.heads_kv, c.head_dim}, rng);
    t.v = testing::random_tensor(c.dtype, {t.cu_k.back(), c.heads_kv, c.head_dim}, rng);
  } else {
    t.q = testing::random_tensor(c.dtype, {batch, t.max_q, c.heads_q, c.head_dim}, rng);
    t.k = testing::random_tensor(c.dtype, {batch, t.max_k, c.heads_kv, c.head_dim}, rng);
    t.v = testing::random_tensor(c.dtype, {batch, t.max_k, c.heads_kv, c.head_dim}, rng);
  }
  return t;
}

// A random mask that is valid for the case: rows past a sequence's end are empty.
std::vector<std::uint8_t> random_block_map(const Case& c, const CaseTensors& t, std::mt19937_64& rng) {
  const std::int64_t nq = ceil_div(t.max_q, c.block), nk = ceil_div(t.max_k, c.block);
  std::vector<std::uint8_t> map(static_cast<std::size_t>(c.sequences.size() * c.mask_heads * nq * nk), 0);
  std::bernoulli_distribution keep(c.density);
  for (std::size_t b = 0; b < c.sequences.size(); ++b) {
    for (std::int64_t h = 0; h < c.mask_heads; ++h) {
      for (std::int64_t u = 0; u < ceil_div(c.sequences[b].seqlen_q, c.block); ++u) {
        for (std::int64_t v = 0; v < ceil_div(c.sequences[b].seqlen_k, c.block); ++v) {
          map[((b * c.mask_heads + h) * nq + u) * nk + v] = keep(rng);
        }
      }
    }
  }
  return map;
}

TEST(ReferenceAttention, MatchesNaiveFp64OnRandomShapes) {
  const std::uint64_t seed = testing::fresh_seed();
  std::mt19937_64 rng(seed);
  for (int trial = 0; trial < 24; ++trial) {
    const Case c = random_case(rng);
    SCOPED_TRACE(::testing::Message()
                 << "seed " << seed << " trial " << trial << " varlen " << c.varlen << " causal " << c.causal
                 << " heads " << c.heads_q << "/" << c.heads_kv << " d " << c.head_dim << " block " << c.block
                 << " mask_heads " << c.mask_heads << " density " << c.density);
    const CaseTensors t = make_tensors(c, rng);
    std::vector<std::uint8_t> map;
    BlockMask mask;
    const std::int64_t nq = ceil_div(t.max_q, c.block), nk = ceil_div(t.max_k, c.block);
    if (c.mask_heads) {
      map = random_block_map(c, t, rng);
      mask = block_mask_from_dense(map, static_cast<std::int64_t>(c.sequences.size()), c.mask_heads, nq, nk,
                                   c.block, c.block);
    }
    const double scale = 1.0 / std::sqrt(static_cast<double>(c.head_dim));
    const testing::NaiveResult want = testing::naive_attention(t.q, t.k, t.v, c.varlen, c.sequences, c.causal,
                                                               scale, map, c.mask_heads, c.block, nq, nk);
    for (Accumulation acc : {Accumulation::kFP32, Accumulation::kFP64}) {
      HostTensor out(DType::kFP64, t.q.shape());
      HostTensor lse(DType::kFP64, {static_cast<std::int64_t>(c.sequences.size()), c.heads_q, t.max_q});
      testing::poison(out);
      testing::poison(lse);
      ReferenceOptions options;
      options.attention.causal = c.causal;
      options.accumulation = acc;
      reference_attention(t.q.view(), t.k.view(), t.v.view(), t.varlen(), c.mask_heads ? &mask : nullptr,
                          options, {out.view(), lse.view(), {}, 0});
      const std::vector<double> got = out.to_doubles(), got_lse = lse.to_doubles();
      for (double x : got) ASSERT_TRUE(std::isfinite(x)) << "an output element was not written";
      const double tolerance = acc == Accumulation::kFP64 ? 1e-12 : 2e-6;
      EXPECT_LT(testing::relative_error(got, want.out), tolerance)
          << (acc == Accumulation::kFP64 ? "fp64" : "fp32");
      for (std::size_t i = 0; i < got_lse.size(); ++i) {
        if (std::isinf(want.lse[i])) {
          EXPECT_TRUE(std::isinf(got_lse[i]) && got_lse[i] < 0) << "lse " << i;
        } else {
          EXPECT_NEAR(got_lse[i], want.lse[i], acc == Accumulation::kFP64 ? 1e-10 : 1e-4) << "lse " << i;
        }
      }
    }
  }
}

TEST(ReferenceAttention, GqaEqualsReplicatedKv) {
  std::mt19937_64 rng(testing::fresh_seed());
  const std::int64_t L = 150, hq = 8, hk = 2, d = 32;
  HostTensor q = testing::random_tensor(DType::kBF16, {1, L, hq, d}, rng);
  HostTensor k = testing::random_tensor(DType::kBF16, {1, L + 40, hk, d}, rng);
  HostTensor v = testing::random_tensor(DType::kBF16, {1, L + 40, hk, d}, rng);
  HostTensor k_rep(DType::kBF16, {1, L + 40, hq, d}), v_rep(DType::kBF16, {1, L + 40, hq, d});
  for (std::int64_t j = 0; j < L + 40; ++j) {
    for (std::int64_t h = 0; h < hq; ++h) {
      for (std::int64_t c = 0; c < d; ++c) {
        k_rep.ptr<std::uint16_t>()[(j * hq + h) * d + c] = k.ptr<std::uint16_t>()[(j * hk + h / 4) * d + c];
        v_rep.ptr<std::uint16_t>()[(j * hq + h) * d + c] = v.ptr<std::uint16_t>()[(j * hk + h / 4) * d + c];
      }
    }
  }
  HostTensor a(DType::kFP32, {1, L, hq, d}), b(DType::kFP32, {1, L, hq, d});
  reference_attention(q.view(), k.view(), v.view(), {}, nullptr, {}, {a.view(), {}, {}, 0});
  reference_attention(q.view(), k_rep.view(), v_rep.view(), {}, nullptr, {}, {b.view(), {}, {}, 0});
  EXPECT_EQ(a.to_doubles(), b.to_doubles());
}

TEST(ReferenceAttention, EmptyMaskRowsGiveZeroAndMinusInfinity) {
  std::mt19937_64 rng(testing::fresh_seed());
  HostTensor q = testing::random_tensor(DType::kBF16, {1, 200, 2, 64}, rng);
  HostTensor k = testing::random_tensor(DType::kBF16, {1, 200, 2, 64}, rng);
  HostTensor v = testing::random_tensor(DType::kBF16, {1, 200, 2, 64}, rng);
  BlockMask mask(1, 1, 2, 2);
  mask.set_row(0, 0, 1, {0});
  HostTensor out(DType::kFP32, {1, 200, 2, 64}), lse(DType::kFP32, {1, 2, 200});
  testing::poison(out);
  reference_attention(q.view(), k.view(), v.view(), {}, &mask, {}, {out.view(), lse.view(), {}, 0});
  for (std::int64_t i = 0; i < 128 * 2 * 64; ++i) ASSERT_EQ(out.ptr<float>()[i], 0.0f);
  EXPECT_TRUE(std::isinf(lse.ptr<float>()[0]) && lse.ptr<float>()[0] < 0);
  EXPECT_TRUE(std::isfinite(lse.ptr<float>()[150]));
}

TEST(ReferenceAttention, BlockMassRowsSumToOne) {
  std::mt19937_64 rng(testing::fresh_seed());
  HostTensor q = testing::random_tensor(DType::kBF16, {1, 300, 2, 64}, rng, 2.0);
  HostTensor k = testing::random_tensor(DType::kBF16, {1, 300, 1, 64}, rng);
  HostTensor v = testing::random_tensor(DType::kBF16, {1, 300, 1, 64}, rng);
  HostTensor out(DType::kFP32, {1, 300, 2, 64}), mass(DType::kFP64, {1, 2, 5, 5});
  reference_attention(q.view(), k.view(), v.view(), {}, nullptr, {}, {out.view(), {}, mass.view(), 64});
  const auto m = mass.to_doubles();
  for (int h = 0; h < 2; ++h) {
    for (int u = 0; u < 5; ++u) {
      double sum = 0;
      for (int v2 = 0; v2 < 5; ++v2) {
        sum += m[(h * 5 + u) * 5 + v2];
        if (v2 > u) EXPECT_EQ(m[(h * 5 + u) * 5 + v2], 0.0);
      }
      EXPECT_NEAR(sum, 1.0, 1e-6);
    }
  }
}

TEST(ReferenceAttention, BadInputLeavesOutputsUntouched) {
  std::mt19937_64 rng(testing::fresh_seed());
  HostTensor q = testing::random_tensor(DType::kFP32, {1, 64, 2, 32}, rng);
  HostTensor k = testing::random_tensor(DType::kFP32, {1, 64, 2, 32}, rng);
  HostTensor v = testing::random_tensor(DType::kFP32, {1, 64, 2, 32}, rng);
  HostTensor out(DType::kFP32, {1, 64, 2, 32});
  testing::poison(out);
  k.ptr<float>()[77] = NAN;
  try {
    reference_attention(q.view(), k.view(), v.view(), {}, nullptr, {}, {out.view(), {}, {}, 0});
    FAIL() << "NaN input accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.argument(), "k");
  }
  for (std::int64_t i = 0; i < out.numel(); ++i) ASSERT_TRUE(std::isnan(out.ptr<float>()[i]));
  k.ptr<float>()[77] = 0;
  HostTensor wrong_out(DType::kFP32, {1, 64, 2, 16});
  EXPECT_THROW(
      reference_attention(q.view(), k.view(), v.view(), {}, nullptr, {}, {wrong_out.view(), {}, {}, 0}),
      Error);
  BlockMask wrong_mask(1, 1, 3, 1, 64, 64);
  EXPECT_THROW(
      reference_attention(q.view(), k.view(), v.view(), {}, &wrong_mask, {}, {out.view(), {}, {}, 0}), Error);
  HostTensor mass(DType::kFP32, {1, 2, 1, 1});
  BlockMask mask(1, 1, 1, 1, 64, 64);
  EXPECT_THROW(
      reference_attention(q.view(), k.view(), v.view(), {}, &mask, {}, {out.view(), {}, mass.view(), 64}),
      Error);
}

}  // namespace
}  // namespace sparsefill
