// The pooled selectors' first kernels (cuda/select/pool_blocks.cuh and pooled_scoring.cuh: block mean pooling
// of the queries and keys in one launch with each pooled block's band energies, Prism's band multipliers,
// PBS's keys pooled through a key order), run on the host through the device emulator, against plain host
// computations: pooled blocks equal to the fp64 token-order block means exactly (queries row-major, keys
// transposed, a partial last block; 8 dims a lane and one), energies to fp64 rounding, and each head's band
// multiplier 1 / (sqrt(d_z) max(tau_z, 1e-6)) with tau_z = sqrt(d_z / d) (rms(Q_z) / rms(Q)) (rms(K_z) /
// rms(K)) over the pooled blocks to fp64 rounding (the kernels sum the squares in another order).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "support/device_emulator.hpp"
#include "support/random_tensors.hpp"
// After the emulator, which defines the device keywords for the host.
#include "select/pooled_scoring.cuh"

namespace sparsefill {
namespace {

namespace gpu = cuda::select;

TEST(EmulatedPooling, BlockMeansEnergiesAndBandScalesEqualTheHostComputation) {
  const std::uint64_t seed = testing::fresh_seed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937_64 rng(seed);
  const int L = 3100, heads_q = 4, heads_kv = 2, d = 64, block = 16, nb = (L + block - 1) / block;
  auto tokens = [&](int heads) {
    std::vector<float> x(static_cast<std::size_t>(L) * heads * d);
    for (float& v : x) v = static_cast<float>(static_cast<int>(rng() % 257) - 128) / 64.0f;
    return x;
  };
  const std::vector<float> q = tokens(heads_q), k = tokens(heads_kv);
  std::vector<std::int32_t> order(static_cast<std::size_t>(heads_q) *
                                  L);  // PBS: keys per query head, permuted
  for (int h = 0; h < heads_q; ++h) {
    std::iota(order.begin() + static_cast<std::ptrdiff_t>(h) * L,
              order.begin() + static_cast<std::ptrdiff_t>(h + 1) * L, 0);
    std::shuffle(order.begin() + static_cast<std::ptrdiff_t>(h) * L,
                 order.begin() + static_cast<std::ptrdiff_t>(h + 1) * L, rng);
  }
  gpu::Band high{}, low{};  // two overlapping dim lists in a scrambled order
  for (int c = 0; c < d; ++c) {
    if (c % 3 != 1) high.dims[high.count++] = (c * 7) % d;
    if (c % 3 != 0) low.dims[low.count++] = (c * 7) % d;
  }
  auto job = [&](const std::vector<float>& x, int heads, bool keys, const std::int32_t* by_order,
                 std::vector<double>& out, std::vector<double>* energy) {
    gpu::PoolJob j = gpu::pool_job(x.data(), static_cast<std::int64_t>(L) * heads * d, heads * d, d, keys,
                                   by_order ? heads_q : heads, nb, out.data());
    j.group = by_order ? heads_q / heads_kv : 1;
    j.order = by_order;
    j.width = L;
    j.energy = energy ? energy->data() : nullptr;
    return j;
  };
  auto mean = [&](const std::vector<float>& x, int heads, int h, int u, int c,
                  const std::int32_t* positions) {
    double sum = 0;
    for (int t = u * block; t < std::min(L, (u + 1) * block); ++t)
      sum += x[(static_cast<std::size_t>(positions ? positions[t] : t) * heads + h) * d + c];
    return sum / block;
  };
  // Pooled value (h, u, c) in the queries' layout [h][u][c] or the keys' transposed one [h][c][u].
  auto at = [&](const std::vector<double>& pooled, bool keys, int h, int u, int c) {
    return keys ? pooled[(static_cast<std::size_t>(h) * d + c) * nb + u]
                : pooled[(static_cast<std::size_t>(h) * nb + u) * d + c];
  };
  // Every pooled value of `heads` output heads equals its block mean of input head h / (heads / in_heads),
  // through head h's key order when `orders` is given.
  auto expect_means = [&](const std::vector<double>& pooled, bool keys, const std::vector<float>& x,
                          int in_heads, int heads, const std::int32_t* orders) {
    for (int h = 0; h < heads; ++h)
      for (int u = 0; u < nb; ++u)
        for (int c = 0; c < d; ++c)
          ASSERT_EQ(at(pooled, keys, h, u, c),
                    mean(x, in_heads, h / (heads / in_heads), u, c,
                         orders ? orders + static_cast<std::size_t>(h) * L : nullptr))
              << h << " " << u << " " << c;
  };
  // Both vector widths: 8 dims a lane (16-byte staged copies of 2-byte inputs; 8 lanes a head) and one (32
  // lanes a head, two dims each); the queries and the keys in one launch, with their energies.
  for (const int vector : {8, 1}) {
    SCOPED_TRACE("vector width " + std::to_string(vector));
    std::vector<double> pooled_q(static_cast<std::size_t>(heads_q) * nb * d, -7.0),
        pooled_k(static_cast<std::size_t>(heads_kv) * d * nb, -7.0),
        energy_q(static_cast<std::size_t>(heads_q) * nb * 3, -7.0),
        energy_k(static_cast<std::size_t>(heads_kv) * nb * 3, -7.0);
    gpu::PoolParams p;
    p.lengths.lq = p.lengths.lk = L;
    p.lengths.block = block;
    p.d = d;
    p.jobs = 2;
    p.job[0] = job(q, heads_q, false, nullptr, pooled_q, &energy_q);
    p.job[1] = job(k, heads_kv, true, nullptr, pooled_k, &energy_k);
    gpu::set_band_bits(high, p.band_bits[0]);
    gpu::set_band_bits(low, p.band_bits[1]);
    const unsigned ctas = gpu::pool_layout(p, vector);
    ASSERT_EQ(p.job[1].first_cta, (nb + p.job[0].blocks_per_cta - 1) / p.job[0].blocks_per_cta);
    auto kernel = vector == 8 ? gpu::pool_blocks_kernel<float, 8> : gpu::pool_blocks_kernel<float, 1>;
    const std::size_t smem = vector == 8 ? gpu::pool_smem_bytes<float, 8>() : 0;
    testing::emulated::launch({ctas, 1, 1}, gpu::kPoolThreads, smem, [&] { kernel(p); });
    expect_means(pooled_q, false, q, heads_q, heads_q, nullptr);
    expect_means(pooled_k, true, k, heads_kv, heads_kv, nullptr);
    // Each pooled block's sums of squares (every dim, each band), to fp64 rounding (a shuffle tree's order).
    auto check_energy = [&](const std::vector<double>& pooled, const std::vector<double>& energy, int heads,
                            bool keys) {
      for (int h = 0; h < heads; ++h)
        for (int u = 0; u < nb; ++u) {
          double want[3] = {};
          for (int c = 0; c < d; ++c) {
            const double x = at(pooled, keys, h, u, c);
            want[0] += x * x;
            want[1] += std::count(high.dims, high.dims + high.count, c) ? x * x : 0.0;
            want[2] += std::count(low.dims, low.dims + low.count, c) ? x * x : 0.0;
          }
          for (int i = 0; i < 3; ++i)
            ASSERT_NEAR(energy[(static_cast<std::size_t>(h) * nb + u) * 3 + i], want[i], 1e-13 * want[0])
                << h << " " << u << " " << i;
        }
    };
    check_energy(pooled_q, energy_q, heads_q, false);
    check_energy(pooled_k, energy_k, heads_kv, true);

    std::vector<double> scales(static_cast<std::size_t>(heads_q) * 2, -7.0);
    testing::emulated::launch({static_cast<unsigned>(heads_q), 1, 1}, 32, 0, [&] {
      gpu::band_scales(energy_q.data(), energy_k.data(), nb, nb, heads_q, heads_kv, p.lengths, d, 2, 1,
                       high.count, low.count, 0, static_cast<int>(blockIdx.x), scales.data());
    });
    auto rms = [&](const std::vector<double>& pooled, bool keys, int h, const gpu::Band* band) {
      double sum = 0;
      const int count = band ? band->count : d;
      for (int u = 0; u < nb; ++u)
        for (int i = 0; i < count; ++i) {
          const int c = band ? band->dims[i] : i;
          const double x = at(pooled, keys, h, u, c);
          sum += x * x;
        }
      return std::sqrt(sum / (static_cast<double>(nb) * count));
    };
    for (int h = 0; h < heads_q; ++h) {
      const int hk = h / (heads_q / heads_kv);
      for (int z = 0; z < 2; ++z) {
        const gpu::Band& band = z == 0 ? high : low;
        const double tau = std::sqrt(static_cast<double>(band.count) / d) *
                           (rms(pooled_q, false, h, &band) / rms(pooled_q, false, h, nullptr)) *
                           (rms(pooled_k, true, hk, &band) / rms(pooled_k, true, hk, nullptr));
        const double want =
            1.0 / (std::sqrt(static_cast<double>(band.count)) * std::max(tau, gpu::kRmsFloor));
        EXPECT_NEAR(scales[static_cast<std::size_t>(h) * 2 + z], want, 1e-12 * want)
            << "head " << h << " band " << z;
      }
    }

    // PBS's keys: one job per query head through a key order (GQA: query head h reads key head h / 2).
    std::vector<double> gathered(static_cast<std::size_t>(heads_q) * d * nb, -7.0);
    gpu::PoolParams g;
    g.lengths = p.lengths;
    g.d = d;
    g.jobs = 1;
    g.job[0] = job(k, heads_kv, true, order.data(), gathered, nullptr);
    const unsigned gather_ctas = gpu::pool_layout(g, vector);
    testing::emulated::launch({gather_ctas, 1, 1}, gpu::kPoolThreads, smem, [&] { kernel(g); });
    expect_means(gathered, true, k, heads_kv, heads_q, order.data());
  }
}

}  // namespace
}  // namespace sparsefill
