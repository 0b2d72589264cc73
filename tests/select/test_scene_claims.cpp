// Prism's central claim on slash-dominated scenes: at matched density its mean recall of attention mass beats
// mean pooling's, and the oracle beats both (Prism at 0.6 and 0.7, where its edge on our scenes is clearest;
// docs/selectors.md has the full curves). Densities are matched by bisecting the competitor's T1 threshold;
// recall comes from the dense block mass (exact for unpermuted masks). Several fresh seeds; the claim is
// asserted on the mean.
#include <gtest/gtest.h>

#include <cmath>

#include "select/top_p_rules.hpp"
#include "sparsefill/reference_attention.hpp"
#include "sparsefill/scene.hpp"
#include "sparsefill/selector.hpp"
#include "support/random_tensors.hpp"

namespace sparsefill {
namespace {

struct Measured {
  double density = 0, recall = 0;
};

Measured measure(const Selection& s, const HostTensor& mass, const AttentionProblem& p) {
  const std::int64_t nq = mass.shape()[2], nk = mass.shape()[3];
  double recall = 0;
  std::int64_t rows = 0;
  for (std::int64_t h = 0; h < p.heads_q; ++h) {
    for (std::int64_t u = 0; u < nq; ++u) {
      double covered = 0;
      for (std::int32_t n = 0; n < s.mask.row_count(0, h, u); ++n) {
        covered += mass.ptr<double>()[(h * nq + u) * nk + s.mask.row_indices(0, h, u)[n]];
      }
      recall += covered;
      ++rows;
    }
  }
  return {mask_density(s.mask, p, true).overall, recall / static_cast<double>(rows)};
}

// The oracle selector's mask for threshold p (T1 on each row's true block mass), from the mass already
// computed.
Selection oracle_from_mass(const HostTensor& mass, const AttentionProblem& p, double threshold) {
  const std::int64_t nq = mass.shape()[2], nk = mass.shape()[3];
  Selection s{BlockMask(1, p.heads_q, nq, nk), {}, 0};
  for (std::int64_t h = 0; h < p.heads_q; ++h) {
    for (std::int64_t u = 0; u < nq; ++u) {
      std::vector<std::int32_t> visible;
      for (std::int32_t v = 0; v <= u; ++v) visible.push_back(v);
      s.mask.set_row(0, h, u, select_t1(mass.ptr<double>() + (h * nq + u) * nk, visible, threshold, 1.0));
    }
  }
  return s;
}

// A method's recall at `density`, by bisection on its threshold (density grows with the threshold).
Measured at_density(const std::string& method, double density, const SelectorInputs& in,
                    const HostTensor& mass, const AttentionProblem& p) {
  double lo = 0.05, hi = 0.9999;
  Measured best;
  for (int step = 0; step < 30; ++step) {
    const double mid = 0.5 * (lo + hi);
    SelectorSettings s;
    s.meanpool.rule = "t1";
    s.set_threshold(method, mid);
    best = measure(method == "oracle" ? oracle_from_mass(mass, p, mid) : make_selector(method, s)->select(in),
                   mass, p);
    if (std::fabs(best.density - density) < 0.002) break;
    (best.density < density ? lo : hi) = mid;
  }
  return best;
}

TEST(SceneClaims, PrismBeatsMeanPoolingAtMatchedDensityOnSlashScenes) {
  double prism_sum = 0, meanpool_sum = 0, oracle_sum = 0;
  int points = 0;
  for (int trial = 0; trial < 4; ++trial) {
    const std::uint64_t seed = testing::fresh_seed();
    SceneConfig c;
    c.preset = "slash-stress";
    c.seqlen = 4096;
    c.heads_q = 16;
    c.heads_kv = 4;
    c.seed = seed;
    const Scene scene = generate_scene(c);
    const AttentionProblem p = describe_attention(scene.q.view(), scene.k.view(), scene.v.view());
    HostTensor out(DType::kFP32, {1, 4096, 16, 128}), mass(DType::kFP64, {1, 16, 32, 32});
    reference_attention(scene.q.view(), scene.k.view(), scene.v.view(), {}, nullptr, {},
                        {out.view(), {}, mass.view(), 128});
    SelectorInputs in;
    in.q = scene.q.view();
    in.k = scene.k.view();
    in.v = scene.v.view();
    for (double threshold : {0.6, 0.7}) {
      SelectorSettings s;
      s.set_threshold("prism", threshold);
      const Measured prism = measure(make_selector("prism", s)->select(in), mass, p);
      const Measured meanpool = at_density("meanpool", prism.density, in, mass, p);
      const Measured oracle = at_density("oracle", prism.density, in, mass, p);
      std::printf(
          "seed %llu p %.2f: prism density %.4f recall %.4f | meanpool %.4f %.4f | oracle %.4f %.4f\n",
          static_cast<unsigned long long>(seed), threshold, prism.density, prism.recall, meanpool.density,
          meanpool.recall, oracle.density, oracle.recall);
      EXPECT_NEAR(meanpool.density, prism.density, 0.01);
      EXPECT_NEAR(oracle.density, prism.density, 0.01);
      prism_sum += prism.recall;
      meanpool_sum += meanpool.recall;
      oracle_sum += oracle.recall;
      ++points;
    }
  }
  std::printf("mean recall at matched density: prism %.4f, meanpool %.4f, oracle %.4f\n", prism_sum / points,
              meanpool_sum / points, oracle_sum / points);
  EXPECT_GT(prism_sum, meanpool_sum);
  EXPECT_GT(oracle_sum, prism_sum);
}

}  // namespace
}  // namespace sparsefill
