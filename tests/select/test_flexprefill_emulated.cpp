// FlexPrefill's GPU selection, the whole launch sequence of cuda/select/flexprefill_launches.cuh with its
// workspace aliasing (the slashes overwrite the verticals, the pooled queries both), run on the device
// emulator on fresh fp32 inputs (every product exact in fp64) and compared block by block with the CPU
// selector, which defines the method: heads on the vertical-slash path, query-aware heads cutting their
// pooled map (every head, with tau above the divergence's bound), budgets clamped by max_budget, the dense
// fallback, and keys all equal, which makes every map row uniform so that the T5 boundary falls inside a run
// of equal entries taken in flattened order. The workspace starts poisoned. The GPU sums in another order
// than the CPU and takes the last rows' logits and numerators at fp32 precision (f32_mma.cuh's host form,
// exp_nonpositive_fp32), so a decision could flip only where a value sits within ~1e-6 of tau or gamma, or
// two block sums tie to that rounding at a cut; none is expected at these sizes.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "sparsefill/block_mask.hpp"
#include "sparsefill/selector.hpp"
#include "select/emulated_last_rows.hpp"
#include "support/device_emulator.hpp"
#include "support/random_tensors.hpp"

#include "select/flexprefill_launches.cuh"

namespace sparsefill {
namespace {

namespace gpu = cuda::select;

struct Case {
  std::string label;
  int length = 1800, heads_q = 2, heads_kv = 1, d = 16, block = 64;
  double gamma = 0.95, tau = 0.1;
  int min_budget = 128, max_budget = 0;
  bool equal_keys = false;
};

BlockMask emulated_selection(const Case& c, const HostTensor& q, const HostTensor& k) {
  const int nb = (c.length + c.block - 1) / c.block;
  gpu::FlexParams fp{};
  fp.lines.rows =
      testing::one_sequence_rows(q.data(), k.data(), c.length, c.length, c.heads_q, c.heads_kv, c.d, c.block);
  gpu::LastRowsParams& p = fp.lines.rows;
  p.rows = c.block;
  p.scale = 1.0 / std::sqrt(static_cast<double>(c.d));
  p.causal = 1;
  fp.lines.term_divisor = c.block;
  fp.lines.nq = fp.lines.nk = nb;
  fp.gamma = c.gamma;
  fp.tau = c.tau;
  fp.min_budget = c.min_budget;
  fp.max_budget = c.max_budget;
  std::vector<double> workspace((gpu::bind_flexprefill_workspace(fp, nullptr) + 7) / 8);
  for (double& x : workspace) x = -7.25e300;  // poison: every part must be written before it is read
  gpu::bind_flexprefill_workspace(fp, workspace.data());
  std::vector<std::int32_t> counts(static_cast<std::size_t>(c.heads_q) * nb, -7),
      indices(static_cast<std::size_t>(c.heads_q) * nb * nb, -7);
  fp.lines.kv_num_blocks = counts.data();
  fp.lines.kv_indices = indices.data();
  gpu::launch_flexprefill<float, 8>(fp, [](auto kernel, gpu::LaunchGrid grid, int threads, std::size_t smem,
                                           auto... arguments) {
    testing::emulated::launch({grid.x, grid.y, grid.z}, threads, smem, [&] { kernel(arguments...); });
  });
  return BlockMask::from_arrays(1, c.heads_q, nb, nb, c.block, c.block, counts, indices);
}

TEST(EmulatedFlexPrefill, MasksEqualTheCpuSelector) {
  const std::uint64_t seed = testing::fresh_seed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937_64 rng(seed);
  std::vector<Case> cases(5);
  cases[0].label = "vertical-slash heads (tau 0.1)";
  cases[1].label = "every head query-aware (tau 10), gamma 0.9";
  cases[1].tau = 10;
  cases[1].gamma = 0.9;
  cases[1].length = 2100;
  cases[2].label = "query-aware, keys all equal (ties at the boundary)";
  cases[2].tau = 10;
  cases[2].gamma = 0.9;
  cases[2].equal_keys = true;
  cases[3].label = "no query-aware head (tau 0), max budget 192";
  cases[3].tau = 0;
  cases[3].max_budget = 192;
  cases[3].gamma = 0.99;
  cases[4].label = "dense fallback (100 tokens)";
  cases[4].length = 100;
  for (const Case& c : cases) {
    SCOPED_TRACE(c.label);
    HostTensor q = testing::random_tensor(DType::kFP32, {1, c.length, c.heads_q, c.d}, rng);
    HostTensor k = testing::random_tensor(DType::kFP32, {1, c.length, c.heads_kv, c.d}, rng);
    if (c.equal_keys)
      for (std::int64_t i = 0; i < k.numel(); ++i) k.ptr<float>()[i] = k.ptr<float>()[i % c.d];
    SelectorSettings settings;
    settings.flexprefill.gamma = c.gamma;
    settings.flexprefill.tau = c.tau;
    settings.flexprefill.min_budget = c.min_budget;
    settings.flexprefill.max_budget = c.max_budget;
    SelectorInputs in;
    in.q = q.view();
    in.k = in.v = k.view();
    in.block_size = c.block;
    const BlockMask want = make_selector("flexprefill", settings)->select(in).mask;
    const BlockMask got = emulated_selection(c, q, k);
    std::int64_t differ = 0, kept = 0, total = 0;
    for (std::int64_t h = 0; h < c.heads_q; ++h)
      for (std::int64_t u = 0; u < want.num_q_blocks(); ++u)
        for (std::int64_t v = 0; v <= u; ++v, ++total) {
          kept += want.contains(0, h, u, v);
          if (want.contains(0, h, u, v) != got.contains(0, h, u, v) && ++differ <= 10)
            ADD_FAILURE() << "head " << h << " row " << u << " block " << v << ": CPU " << want.contains(0, h, u, v);
        }
    std::printf("  %s: %lld of %lld causal block decisions differ (CPU keeps %lld)\n", c.label.c_str(),
                static_cast<long long>(differ), static_cast<long long>(total), static_cast<long long>(kept));
    EXPECT_EQ(differ, 0);
    const bool dense = c.length <= std::max(2 * c.block, (c.min_budget + c.block - 1) / c.block * c.block);
    EXPECT_EQ(kept == total, dense) << "the case must exercise the path it names";
  }
}

}  // namespace
}  // namespace sparsefill
