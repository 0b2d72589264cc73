// The GPU block-sparse attention against the CPU fp64 reference (label gpu: skipped without a device), and
// its host-side validation (label host). Tolerance (conventions.md): error(kernel) <= 2 * error(the fp64
// result rounded to the kernel's dtype) + 1e-5, relative L2 over the whole output.
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <algorithm>
#include <numeric>
#include <random>

#include "gpu/gpu_test_support.hpp"
#include "pipeline/permuted_attention.hpp"
#include "sparsefill/cuda/block_sparse_attention.hpp"
#include "sparsefill/device.hpp"
#include "sparsefill/error.hpp"
#include "sparsefill/reference_attention.hpp"
#include "support/random_tensors.hpp"

namespace sparsefill {
namespace {

using cuda::BlockSparseAttention;
using cuda::BlockSparseAttentionArgs;
using testing::DeviceBuffer;
using testing::gpu_is_sm90;
using testing::ok;

struct Case {
  std::string name;
  std::vector<std::int64_t> seqlen_q, seqlen_k;  // one entry per sequence; varlen when `varlen`
  bool varlen = false, causal = true;
  std::int64_t heads_q = 4, heads_kv = 4, head_dim = 64, block = 64;
  DType dtype = DType::kBF16;
  std::string mask_heads = "q";  // "1", "kv" or "q"
  double density = 0.5;
  bool misaligned = false;  // q/k/v views start one element into their buffers: the kernel's scalar-load path
  bool permuted = false;    // PBS: keys read in a segment-local shuffled order (generic kernel; on sm_90 with
                            // 128-blocks also permuted_attention's copies on the Hopper kernel)
};

void PrintTo(const Case& c, std::ostream* os) {
  *os << c.name;
}

std::vector<Case> cases() {
  return {
      {"mha_odd_length", {300}, {300}, false, true, 4, 4, 64, 64, DType::kBF16, "q", 0.5},
      {"gqa_fp16_batch", {513, 513}, {513, 513}, false, true, 8, 2, 128, 128, DType::kFP16, "kv", 0.1},
      {"mqa_longer_keys", {200}, {450}, false, true, 4, 1, 128, 128, DType::kBF16, "1", 1.0},
      {"noncausal_empty", {257}, {257}, false, false, 4, 2, 64, 64, DType::kBF16, "q", 0.0},
      {"noncausal_half", {190}, {333}, false, false, 4, 2, 128, 64, DType::kFP16, "kv", 0.5},
      {"varlen", {130, 1, 380}, {130, 77, 400}, true, true, 8, 4, 128, 64, DType::kBF16, "q", 0.5},
      {"dense_long", {1024, 1024}, {1024, 1024}, false, true, 8, 8, 128, 128, DType::kBF16, "1", 1.0},
      {"misaligned_views", {333}, {333}, false, true, 4, 2, 64, 64, DType::kFP16, "q", 0.5, true},
      // 128x128 blocks and aligned rows: the Hopper kernel on sm_90.
      {"hopper_mha_d64_odd", {777}, {777}, false, true, 4, 4, 64, 128, DType::kBF16, "q", 0.5},
      {"hopper_varlen_gqa", {130, 1, 380, 129}, {130, 77, 400, 300}, true, true, 8, 2, 128, 128, DType::kFP16, "q", 0.5},
      {"hopper_varlen_d64", {260, 500}, {300, 500}, true, true, 6, 3, 64, 128, DType::kBF16, "kv", 1.0},
      {"hopper_noncausal_empty", {257}, {300}, false, false, 4, 2, 64, 128, DType::kFP16, "1", 0.0},
      {"hopper_noncausal_sparse", {300}, {555}, false, false, 4, 2, 128, 128, DType::kBF16, "kv", 0.25},
      {"hopper_misaligned_views", {333}, {333}, false, true, 4, 2, 128, 128, DType::kBF16, "q", 0.5, true},
      // PBS key orders: gathered K/V rows, causality on original positions.
      {"pbs_permuted_gqa", {400}, {400}, false, true, 8, 2, 128, 128, DType::kBF16, "q", 0.5, false, true},
      {"pbs_permuted_varlen", {200, 333}, {260, 333}, true, true, 4, 2, 64, 64, DType::kFP16, "q", 0.6, false, true},
      {"pbs_permuted_varlen_128", {200, 390}, {200, 390}, true, true, 8, 2, 128, 128, DType::kFP16, "q", 0.6, false,
       true},
  };
}

struct Prepared {
  HostTensor q, k, v;
  std::vector<std::int32_t> key_order;  // permuted cases: [batch, heads_q, max_k]
  std::vector<std::int32_t> cu_q, cu_k;
  BlockMask mask;
  std::int64_t max_q = 0, max_k = 0, batch = 0;
  VarlenSequences varlen() const {
    return cu_q.empty() ? VarlenSequences{} : VarlenSequences{cu_q.data(), cu_k.data(), batch};
  }
};

Prepared prepare(const Case& c, std::mt19937_64& rng) {
  Prepared p;
  p.batch = static_cast<std::int64_t>(c.seqlen_q.size());
  for (std::size_t b = 0; b < c.seqlen_q.size(); ++b) {
    p.max_q = std::max(p.max_q, c.seqlen_q[b]);
    p.max_k = std::max(p.max_k, c.seqlen_k[b]);
  }
  if (c.varlen) {
    p.cu_q = {0};
    p.cu_k = {0};
    for (std::size_t b = 0; b < c.seqlen_q.size(); ++b) {
      p.cu_q.push_back(static_cast<std::int32_t>(p.cu_q.back() + c.seqlen_q[b]));
      p.cu_k.push_back(static_cast<std::int32_t>(p.cu_k.back() + c.seqlen_k[b]));
    }
    p.q = testing::random_tensor(c.dtype, {p.cu_q.back(), c.heads_q, c.head_dim}, rng);
    p.k = testing::random_tensor(c.dtype, {p.cu_k.back(), c.heads_kv, c.head_dim}, rng);
    p.v = testing::random_tensor(c.dtype, {p.cu_k.back(), c.heads_kv, c.head_dim}, rng);
  } else {
    p.q = testing::random_tensor(c.dtype, {p.batch, p.max_q, c.heads_q, c.head_dim}, rng);
    p.k = testing::random_tensor(c.dtype, {p.batch, p.max_k, c.heads_kv, c.head_dim}, rng);
    p.v = testing::random_tensor(c.dtype, {p.batch, p.max_k, c.heads_kv, c.head_dim}, rng);
  }
  const std::int64_t heads = c.mask_heads == "1" ? 1 : c.mask_heads == "kv" ? c.heads_kv : c.heads_q;
  const std::int64_t nq = ceil_div(p.max_q, c.block), nk = ceil_div(p.max_k, c.block);
  p.mask = BlockMask(p.batch, heads, nq, nk, c.block, c.block);
  std::bernoulli_distribution keep(c.density);
  for (std::int64_t b = 0; b < p.batch; ++b) {
    for (std::int64_t h = 0; h < heads; ++h) {
      for (std::int64_t u = 0; u < ceil_div(c.seqlen_q[b], c.block); ++u) {
        std::vector<std::int32_t> row;
        for (std::int64_t v = 0; v < ceil_div(c.seqlen_k[b], c.block); ++v) {
          if (keep(rng)) row.push_back(static_cast<std::int32_t>(v));
        }
        p.mask.set_row(b, h, u, row);
      }
    }
  }
  if (c.permuted) {  // shuffles inside segments of two blocks, as PBS permutes within segments
    p.key_order.assign(static_cast<std::size_t>(p.batch * c.heads_q * p.max_k), 0);
    for (std::int64_t b = 0; b < p.batch; ++b)
      for (std::int64_t h = 0; h < c.heads_q; ++h) {
        std::int32_t* o = p.key_order.data() + (b * c.heads_q + h) * p.max_k;
        std::iota(o, o + c.seqlen_k[b], 0);
        for (std::int64_t s0 = 0; s0 < c.seqlen_k[b]; s0 += 2 * c.block)
          std::shuffle(o + s0, o + std::min(c.seqlen_k[b], s0 + 2 * c.block), rng);
      }
  }
  return p;
}

// Device copies of a prepared case and the launch arguments over them.
struct DeviceCase {
  DeviceBuffer q, k, v, out, lse, counts, indices, cu_q, cu_k, order;
  BlockSparseAttentionArgs args;
  std::size_t shift;  // bytes the q/k/v views start into their buffers
  DeviceCase(const Case& c, const Prepared& p)
      : q(p.q.size_bytes() + 2),
        k(p.k.size_bytes() + 2),
        v(p.v.size_bytes() + 2),
        out(p.q.size_bytes()),
        lse(static_cast<std::size_t>(p.batch * c.heads_q * p.max_q) * sizeof(float)),
        counts(p.mask.kv_num_blocks().size() * sizeof(std::int32_t)),
        indices(p.mask.kv_indices().size() * sizeof(std::int32_t)),
        cu_q(std::max<std::size_t>(p.cu_q.size(), 1) * sizeof(std::int32_t)),
        cu_k(std::max<std::size_t>(p.cu_k.size(), 1) * sizeof(std::int32_t)),
        order(std::max<std::size_t>(p.key_order.size(), 1) * sizeof(std::int32_t)),
        shift(c.misaligned ? 2 : 0) {
    q.upload(p.q.data(), p.q.size_bytes(), shift);
    k.upload(p.k.data(), p.k.size_bytes(), shift);
    v.upload(p.v.data(), p.v.size_bytes(), shift);
    counts.upload(p.mask.kv_num_blocks().data());
    indices.upload(p.mask.kv_indices().data());
    args.q = view_on(q, p.q, shift);
    args.k = view_on(k, p.k, shift);
    args.v = view_on(v, p.v, shift);
    args.out = view_on(out, p.q, 0);
    args.lse = static_cast<float*>(lse.get());
    args.mask = {static_cast<const std::int32_t*>(counts.get()),
                 static_cast<const std::int32_t*>(indices.get()),
                 p.mask.heads(),
                 p.mask.num_q_blocks(),
                 p.mask.num_k_blocks(),
                 p.mask.block_q(),
                 p.mask.block_k()};
    args.causal = c.causal;
    if (c.permuted) {
      order.upload(p.key_order.data(), p.key_order.size() * sizeof(std::int32_t), 0);
      args.key_order = static_cast<const std::int32_t*>(order.get());
    }
    if (c.varlen) {
      cu_q.upload(p.cu_q.data());
      cu_k.upload(p.cu_k.data());
      args.cu_seqlens_q = static_cast<const std::int32_t*>(cu_q.get());
      args.cu_seqlens_k = static_cast<const std::int32_t*>(cu_k.get());
      args.varlen_batch = p.batch;
      args.max_seqlen_q = p.max_q;
      args.max_seqlen_k = p.max_k;
    }
  }
  static TensorView view_on(const DeviceBuffer& buffer, const HostTensor& like, std::size_t shift) {
    TensorView view = like.view();
    view.data = static_cast<char*>(buffer.get()) + shift;
    return view;
  }
};

// Downloads d's output (into got) and LSE and compares them with the fp64 reference under the tolerance rule.
void expect_matches(const Case& c, const Prepared& p, const DeviceCase& d, const HostTensor& want,
                    const HostTensor& want_lse, HostTensor& got) {
  std::vector<float> got_lse(static_cast<std::size_t>(p.batch * c.heads_q * p.max_q));
  d.out.download(got.data());
  d.lse.download(got_lse.data());
  const std::vector<double> got_d = got.to_doubles(), want_d = want.to_doubles();
  for (double x : got_d) ASSERT_TRUE(std::isfinite(x)) << "an output element was not written";
  const double tolerance = 2 * testing::relative_error(want.converted(c.dtype).to_doubles(), want_d) + 1e-5;
  EXPECT_LE(testing::relative_error(got_d, want_d), tolerance);
  const std::vector<double> lse_want = want_lse.to_doubles();
  for (std::size_t i = 0; i < got_lse.size(); ++i) {
    if (std::isinf(lse_want[i])) {
      ASSERT_TRUE(std::isinf(got_lse[i]) && got_lse[i] < 0) << "lse " << i;
    } else {
      ASSERT_NEAR(got_lse[i], lse_want[i], 1e-3 * std::max(1.0, std::fabs(lse_want[i]))) << "lse " << i;
    }
  }
}

class GpuBlockSparseAttention : public ::testing::TestWithParam<Case> {};

TEST_P(GpuBlockSparseAttention, MatchesTheFp64Reference) {
  SKIP_WITHOUT_GPU();
  const std::uint64_t seed = testing::fresh_seed();
  std::mt19937_64 rng(seed);
  {
    const Case& c = GetParam();
    SCOPED_TRACE(c.name + ", seed " + std::to_string(seed));
    const Prepared p = prepare(c, rng);
    HostTensor want(DType::kFP64, p.q.shape()), want_lse(DType::kFP64, {p.batch, c.heads_q, p.max_q});
    ReferenceOptions options;
    options.attention.causal = c.causal;
    options.accumulation = Accumulation::kFP64;
    const ReferenceOutputs want_out{want.view(), want_lse.view(), {}, 0};
    if (c.permuted) {
      reference_permuted_attention(p.q.view(), p.k.view(), p.v.view(), p.varlen(), p.mask, p.key_order, options,
                                   want_out);
    } else {
      reference_attention(p.q.view(), p.k.view(), p.v.view(), p.varlen(), &p.mask, options, want_out);
    }

    DeviceCase d(c, p);
    ASSERT_NO_THROW(BlockSparseAttention::validate(d.args));
    const bool hopper_case = gpu_is_sm90() && c.block == 128 && !c.misaligned;
    EXPECT_STREQ(BlockSparseAttention::kernel_name(d.args),
                 hopper_case && !c.permuted ? "hopper-wgmma-tma" : "generic-wmma");
    DeviceBuffer workspace(BlockSparseAttention::workspace_size(d.args));
    d.out.poison();
    d.lse.poison();
    BlockSparseAttention::plan(d.args, workspace.get(), nullptr);
    BlockSparseAttention::run(d.args, workspace.get(), nullptr);
    ok(cudaDeviceSynchronize());
    HostTensor got(c.dtype, p.q.shape());
    expect_matches(c, p, d, want, want_lse, got);
    if (c.permuted) {  // PBS's pipeline path: the Hopper kernel over permuted copies, causality by positions
      SCOPED_TRACE("permuted copies on the Hopper kernel");
      EXPECT_EQ(cuda::permuted_attention_on_hopper(d.args), hopper_case);
      if (hopper_case) {
        DeviceBuffer copies(cuda::permuted_attention_workspace_size(d.args));
        d.out.poison();
        d.lse.poison();
        cuda::permuted_attention(d.args, copies.get(), nullptr);
        ok(cudaDeviceSynchronize());
        HostTensor on_copies(c.dtype, p.q.shape());
        expect_matches(c, p, d, want, want_lse, on_copies);
      }
    }
    // A second run (and a replay of both steps captured in a CUDA graph) must give the same bits.
    d.out.poison();
    BlockSparseAttention::run(d.args, workspace.get(), nullptr);
    ok(cudaDeviceSynchronize());
    HostTensor again(c.dtype, p.q.shape());
    d.out.download(again.data());
    EXPECT_EQ(std::memcmp(again.data(), got.data(), got.size_bytes()), 0) << "repeated runs differ";
    testing::replay_in_graph(
        [&](cudaStream_t stream) {
          BlockSparseAttention::plan(d.args, workspace.get(), stream);
          BlockSparseAttention::run(d.args, workspace.get(), stream);
        },
        [&] { d.out.poison(); });
    d.out.download(again.data());
    EXPECT_EQ(std::memcmp(again.data(), got.data(), got.size_bytes()), 0) << "graph replay differs";
  }
}

INSTANTIATE_TEST_SUITE_P(Cases, GpuBlockSparseAttention, ::testing::ValuesIn(cases()),
                         [](const ::testing::TestParamInfo<Case>& info) { return info.param.name; });

TEST(BlockSparseAttentionValidation, RejectsBadArgumentsNamingThem) {
  if (!built_with_cuda()) GTEST_SKIP() << "built without CUDA";
  // Fake non-null pointers: validation of shapes happens before any device access.
  static float fake[4];
  auto args = [&] {
    BlockSparseAttentionArgs a;
    a.q = make_view(fake, DType::kBF16, {1, 256, 8, 128});
    a.k = make_view(fake, DType::kBF16, {1, 256, 2, 128});
    a.v = a.k;
    a.out = a.q;
    a.mask = {reinterpret_cast<const std::int32_t*>(fake),
              reinterpret_cast<const std::int32_t*>(fake),
              8,
              2,
              2,
              128,
              128};
    return a;
  };
  auto argument = [](const BlockSparseAttentionArgs& a) {
    try {
      BlockSparseAttention::validate(a);
    } catch (const Error& e) {
      return e.argument();
    }
    return std::string("<no error>");
  };
  BlockSparseAttentionArgs a = args();
  a.q = make_view(fake, DType::kBF16, {1, 256, 8, 96});
  EXPECT_EQ(argument(a), "q");  // head_dim 96
  a = args();
  a.q.dtype = a.k.dtype = a.v.dtype = a.out.dtype = DType::kFP32;
  EXPECT_EQ(argument(a), "q");
  a = args();
  a.k = make_view(fake, DType::kBF16, {1, 256, 3, 128});
  a.v = a.k;
  EXPECT_EQ(argument(a), "k");
  a = args();
  a.mask.heads = 4;
  EXPECT_EQ(argument(a), "mask.heads");
  a = args();
  a.mask.num_q_blocks = 3;
  EXPECT_EQ(argument(a), "mask.num_q_blocks");
  a = args();
  a.mask.block_q = 96;
  EXPECT_EQ(argument(a), "mask.block_q");
  a = args();
  a.out = make_view(fake, DType::kBF16, {1, 256, 8, 64});
  EXPECT_EQ(argument(a), "out");
  a = args();
  a.out = make_view(fake, DType::kBF16, {1, 255, 8, 128});
  EXPECT_EQ(argument(a), "out");
  a = args();
  a.cu_seqlens_q = reinterpret_cast<const std::int32_t*>(fake);
  EXPECT_EQ(argument(a), "q");  // varlen needs rank-3 views
}

}  // namespace
}  // namespace sparsefill
