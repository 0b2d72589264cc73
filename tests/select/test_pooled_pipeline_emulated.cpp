// The pooled pipeline (cuda/select/pooled_pipeline.cuh: Prism's and mean pooling's pooling, band scales and
// row scoring in one launch of ticketed CTAs), run on the host through the device emulator, against the same
// steps as separate launches (pool_blocks_kernel, band_scales a warp a head, score_rows_kernel), also
// emulated. The emulator runs CTAs one after another in ticket order, so every wait finds its stage ready;
// what this checks is the pipeline's own work: the stages' head chunks (a partial last chunk), each item's
// blocks, the key heads of a chunk, the scales computed by a stage's last pooling item, the row tiles'
// order, a varlen batch, both vector widths. Token values are multiples of 1/64 in [-2, 2], so the
// pipeline's fp32 sums of 16 tokens are exact and every output must equal the separate launches' bit for
// bit: pooled blocks, energies, scales and masks.
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "support/device_emulator.hpp"
#include "support/random_tensors.hpp"
// After the emulator, which defines the device keywords for the host.
#include "select/pooled_pipeline.cuh"

namespace sparsefill {
namespace {

namespace gpu = cuda::select;

// A varlen batch of two sequences, 10 query heads in 5 GQA groups: chunks of 4 heads (3 a sequence, the
// last of 2 heads), 16-token blocks.
constexpr int kHeadsQ = 10, kHeadsKv = 5, kD = 32, kBlock = 16, kItems = 8;
const std::vector<std::int32_t> kCuSeqlens = {0, 333, 583};

struct Outputs {
  std::vector<double> pooled_q, pooled_k, energy_q, energy_k, scales;
  std::vector<std::int32_t> counts, indices;
  explicit Outputs(int nq) {
    const std::size_t rows = 2 * static_cast<std::size_t>(kHeadsQ) * nq;
    pooled_q.assign(rows * kD, -7.0);
    pooled_k.assign(2 * static_cast<std::size_t>(kHeadsKv) * kD * nq, -7.0);
    energy_q.assign(rows * 3, -7.0);
    energy_k.assign(2 * static_cast<std::size_t>(kHeadsKv) * nq * 3, -7.0);
    scales.assign(2 * static_cast<std::size_t>(kHeadsQ) * 2, -7.0);
    counts.assign(rows, -7);
    indices.assign(rows * nq, -7);
  }
};

struct Method {
  std::string name;
  int bands, rule, calibrate;
  double p[2];
};

// The scoring and pooling parameters of `method` writing into `out`.
gpu::PipelineParams params_of(const Method& m, const std::vector<float>& q, const std::vector<float>& k,
                              int nq, Outputs& out) {
  gpu::PipelineParams pp{};
  gpu::ScoringParams& s = pp.scoring;
  s.pooled_q = out.pooled_q.data();
  s.pooled_k = out.pooled_k.data();
  s.scales = pp.scales = out.scales.data();
  s.batch = 2, s.heads_q = kHeadsQ, s.heads_kv = kHeadsKv, s.d = kD, s.nq = s.nk = nq, s.bands = m.bands;
  s.lengths = {kCuSeqlens.data(), kCuSeqlens.data(), 0, 0, kBlock};
  s.causal = 1;
  s.rule = m.rule;
  s.force_sink = s.force_diagonal = 1;
  for (int z = 0; z < 2; ++z) {  // Prism: the even dims in reverse order, the odd dims; mean pooling: all
    s.band[z].p = m.p[z];
    for (int c = 0; c < kD; ++c) {
      const int dim = m.bands == 1 ? c : z == 0 ? kD - 2 - 2 * (c / 2) : c;
      if (m.bands == 1 || c % 2 == z) s.band[z].dims[s.band[z].count++] = dim;
    }
  }
  s.kv_num_blocks = out.counts.data();
  s.kv_indices = out.indices.data();
  gpu::PoolParams& pool = pp.pooling;
  pool.lengths = s.lengths;
  pool.d = kD;
  pool.jobs = 2;
  pool.job[0] = gpu::pool_job(q.data(), 0, kHeadsQ * kD, kD, false, kHeadsQ, nq, out.pooled_q.data());
  pool.job[1] = gpu::pool_job(k.data(), 0, kHeadsKv * kD, kD, true, kHeadsKv, nq, out.pooled_k.data());
  if (m.calibrate) {
    pool.job[0].energy = out.energy_q.data();
    pool.job[1].energy = out.energy_k.data();
  }
  gpu::set_band_bits(s.band[0], pool.band_bits[0]);
  gpu::set_band_bits(s.band[1], pool.band_bits[1]);
  pp.calibrate = m.calibrate;
  return pp;
}

TEST(EmulatedPooledPipeline, EqualsPoolingThenScalesThenRowsBitForBit) {
  const std::uint64_t seed = testing::fresh_seed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937_64 rng(seed);
  auto tokens = [&](int heads) {
    std::vector<float> x(static_cast<std::size_t>(kCuSeqlens.back()) * heads * kD);
    for (float& v : x) v = static_cast<float>(static_cast<int>(rng() % 257) - 128) / 64.0f;
    return x;
  };
  const std::vector<float> q = tokens(kHeadsQ), k = tokens(kHeadsKv);
  const int nq = (333 + kBlock - 1) / kBlock;
  ASSERT_EQ(gpu::score_rows_chunk(kHeadsQ, kHeadsKv), 4);
  constexpr int kRows = gpu::score_rows_per_cta(kItems);
  const std::size_t smem = gpu::score_rows_smem_bytes(kD, kItems);
  for (const Method& m :
       {Method{"prism", 2, gpu::kT1, 1, {0.9, 0.8}}, Method{"meanpool t2", 1, gpu::kT2, 0, {0.9, 0.9}}})
    for (const int vector : {8, 1}) {
      SCOPED_TRACE(m.name + ", vector width " + std::to_string(vector));
      Outputs want(nq), got(nq);
      gpu::PipelineParams separate = params_of(m, q, k, nq, want);
      const unsigned ctas = gpu::pool_layout(separate.pooling, vector);
      auto pool = vector == 8 ? gpu::pool_blocks_kernel<float, 8> : gpu::pool_blocks_kernel<float, 1>;
      testing::emulated::launch({ctas, 2, 1}, gpu::kPoolThreads,
                                vector == 8 ? gpu::pool_smem_bytes<float, 8>() : 0,
                                [&] { pool(separate.pooling); });
      const gpu::ScoringParams& s = separate.scoring;
      testing::emulated::launch({kHeadsQ, 2, 1}, 32, 0, [&] {
        gpu::band_scales(want.energy_q.data(), want.energy_k.data(), nq, nq, kHeadsQ, kHeadsKv, s.lengths, kD,
                         s.bands, m.calibrate, s.band[0].count, s.band[1].count, static_cast<int>(blockIdx.y),
                         static_cast<int>(blockIdx.x), want.scales.data());
      });
      const gpu::ScoreRowsGrid grid = gpu::score_rows_grid(2, kHeadsQ, kHeadsKv, nq, kItems);
      testing::emulated::launch({grid.x, grid.y, grid.z}, kRows * 32, smem,
                                [&] { gpu::score_rows_kernel<float, kItems>(s); });

      gpu::PipelineParams pp = params_of(m, q, k, nq, got);
      std::vector<unsigned> control(2 * 3 * 2 + 1, 0u);
      pp.control = control.data();
      gpu::plan_pipeline<kItems>(pp, vector);
      ASSERT_EQ(pp.plan.stages, 6);
      ASSERT_EQ(gpu::pipeline_control_words(pp.plan.stages), static_cast<int>(control.size()));
      auto pipeline = vector == 8 ? gpu::pooled_pipeline_kernel<float, kItems, 8>
                                  : gpu::pooled_pipeline_kernel<float, kItems, 1>;
      testing::emulated::launch({static_cast<unsigned>(gpu::pipeline_tickets(pp.plan)), 1, 1}, kRows * 32,
                                smem, [&] { pipeline(pp); });
      EXPECT_EQ(control[0], static_cast<unsigned>(gpu::pipeline_tickets(pp.plan)));
      for (int stage = 0; stage < 6; ++stage) {
        EXPECT_EQ(control[1 + stage], static_cast<unsigned>(pp.plan.pool_items)) << "stage " << stage;
        EXPECT_EQ(control[7 + stage], 1u) << "stage " << stage;
      }
      EXPECT_EQ(got.pooled_q, want.pooled_q);
      EXPECT_EQ(got.pooled_k, want.pooled_k);
      EXPECT_EQ(got.energy_q, want.energy_q);
      EXPECT_EQ(got.energy_k, want.energy_k);
      EXPECT_EQ(got.scales, want.scales);
      EXPECT_EQ(got.counts, want.counts);
      EXPECT_EQ(got.indices, want.indices);
    }
}

}  // namespace
}  // namespace sparsefill
