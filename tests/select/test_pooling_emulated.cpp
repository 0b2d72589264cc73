// The pooled selectors' first kernels (cuda/select/pooled_scoring.cuh: block mean pooling, the bands' energy sums,
// Prism's band multipliers), run on the host through the device emulator, against plain host computations:
// pooled blocks equal to the fp64 token-order block means exactly (queries row-major with 8 dims a thread,
// keys transposed with one, a partial last block), and each head's band multiplier 1 / (sqrt(d_z) max(tau_z, 1e-6)) with tau_z =
// sqrt(d_z / d) (rms(Q_z) / rms(Q)) (rms(K_z) / rms(K)) over the pooled blocks to fp64 rounding (the kernels sum
// the squares in another order).
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "support/device_emulator.hpp"
#include "support/random_tensors.hpp"
#include "select/pooled_scoring.cuh"

namespace sparsefill {
namespace {

namespace gpu = cuda::select;

TEST(EmulatedPooling, BlockMeansAndBandScalesEqualTheHostComputation) {
  const std::uint64_t seed = testing::fresh_seed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937_64 rng(seed);
  // 194 blocks: each of the 64 energy slices holds 3-4 blocks, so every warp of the energy kernel has terms.
  const int L = 3100, heads_q = 4, heads_kv = 2, d = 64, block = 16, nb = (L + block - 1) / block;
  auto tokens = [&](int heads) {
    std::vector<float> x(static_cast<std::size_t>(L) * heads * d);
    for (float& v : x) v = static_cast<float>(static_cast<int>(rng() % 257) - 128) / 64.0f;
    return x;
  };
  const std::vector<float> q = tokens(heads_q), k = tokens(heads_kv);
  gpu::Lengths lengths;
  lengths.lq = lengths.lk = L;
  lengths.block = block;
  std::vector<double> pooled_q(static_cast<std::size_t>(heads_q) * nb * d, -7.0), pooled_k(static_cast<std::size_t>(heads_kv) * d * nb, -7.0);
  auto pool = [&](const std::vector<float>& x, int heads, bool keys, std::vector<double>& out, auto kernel, int vector) {
    const gpu::PoolParams p{x.data(), static_cast<std::int64_t>(L) * heads * d, heads * d, d, lengths, keys, heads, 1, d,
                            keys, nullptr, L, false, out.data(), nb};
    testing::emulated::launch({static_cast<unsigned>(nb), 1, 1}, gpu::pool_threads(p, vector), 0, [&] { kernel(p); });
  };
  // Both vector widths: 8 dims a thread (the 16-byte loads of 2-byte inputs) and one.
  pool(q, heads_q, false, pooled_q, gpu::pool_blocks_kernel<float, 8>, 8);
  pool(k, heads_kv, true, pooled_k, gpu::pool_blocks_kernel<float, 1>, 1);
  auto mean = [&](const std::vector<float>& x, int heads, int h, int u, int c) {
    double sum = 0;
    for (int t = u * block; t < std::min(L, (u + 1) * block); ++t) sum += x[(static_cast<std::size_t>(t) * heads + h) * d + c];
    return sum / block;
  };
  for (int h = 0; h < heads_q; ++h)
    for (int u = 0; u < nb; ++u)
      for (int c = 0; c < d; ++c)
        ASSERT_EQ(pooled_q[(static_cast<std::size_t>(h) * nb + u) * d + c], mean(q, heads_q, h, u, c)) << h << " " << u << " " << c;
  for (int h = 0; h < heads_kv; ++h)
    for (int u = 0; u < nb; ++u)
      for (int c = 0; c < d; ++c)
        ASSERT_EQ(pooled_k[(static_cast<std::size_t>(h) * d + c) * nb + u], mean(k, heads_kv, h, u, c)) << h << " " << u << " " << c;

  gpu::Band high{}, low{};  // two disjoint dim lists in a scrambled order
  for (int c = 0; c < d; ++c) (c % 3 == 0 ? high : low).dims[(c % 3 == 0 ? high : low).count++] = (c * 7) % d;
  std::vector<double> energy_q(static_cast<std::size_t>(heads_q) * gpu::kEnergySlices * 3),
      energy_k(static_cast<std::size_t>(heads_kv) * gpu::kEnergySlices * 3), scales(static_cast<std::size_t>(heads_q) * 2, -7.0);
  testing::emulated::launch({static_cast<unsigned>(heads_q), gpu::kEnergySlices, 1}, gpu::kEnergyThreads, 0, [&] {
    gpu::pooled_energy_kernel(pooled_q.data(), nb, lengths, false, heads_q, d, d, 1, high, low, energy_q.data());
  });
  testing::emulated::launch({static_cast<unsigned>(heads_kv), gpu::kEnergySlices, 1}, gpu::kEnergyThreads, 0, [&] {
    gpu::pooled_energy_kernel(pooled_k.data(), nb, lengths, true, heads_kv, d, 1, nb, high, low, energy_k.data());
  });
  testing::emulated::launch({static_cast<unsigned>(heads_q), 1, 1}, 32, 0, [&] {
    gpu::band_scale_kernel(energy_q.data(), energy_k.data(), 1, heads_q, heads_kv, lengths, d, 2, 1, high, low, scales.data());
  });
  auto rms = [&](const std::vector<double>& pooled, bool keys, int h, const gpu::Band* band) {
    double sum = 0;
    const int count = band ? band->count : d;
    for (int u = 0; u < nb; ++u)
      for (int i = 0; i < count; ++i) {
        const int c = band ? band->dims[i] : i;
        const double x = keys ? pooled[(static_cast<std::size_t>(h) * d + c) * nb + u] : pooled[(static_cast<std::size_t>(h) * nb + u) * d + c];
        sum += x * x;
      }
    return std::sqrt(sum / (static_cast<double>(nb) * count));
  };
  for (int h = 0; h < heads_q; ++h) {
    const int hk = h / (heads_q / heads_kv);
    for (int z = 0; z < 2; ++z) {
      const gpu::Band& band = z == 0 ? high : low;
      const double tau = std::sqrt(static_cast<double>(band.count) / d) * (rms(pooled_q, false, h, &band) / rms(pooled_q, false, h, nullptr)) *
                         (rms(pooled_k, true, hk, &band) / rms(pooled_k, true, hk, nullptr));
      const double want = 1.0 / (std::sqrt(static_cast<double>(band.count)) * std::max(tau, gpu::kRmsFloor));
      EXPECT_NEAR(scales[static_cast<std::size_t>(h) * 2 + z], want, 1e-12 * want) << "head " << h << " band " << z;
    }
  }
}

}  // namespace
}  // namespace sparsefill
