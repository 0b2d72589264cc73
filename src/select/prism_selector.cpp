// Prism (algorithms.md §1): mean-pooled Q/K scored separately in a high- and a low-frequency RoPE band, each
// band's logits rescaled by the energy-based temperature, causal block softmax, T1 top-p per band, union,
// then the sink column and the diagonal block forced. Bands are chosen by RoPE frequency-pair index, so
// rotate-half and interleaved inputs give the same mask.
#include <cmath>

#include "select/prism_bands.hpp"
#include "select/selector_common.hpp"
#include "select/selectors.hpp"
#include "select/top_p_rules.hpp"
#include "sparsefill/error.hpp"

namespace sparsefill {
namespace {

constexpr double kRmsFloor = 1e-6;  // the code clamps RMS denominators at 1e-6

// RMS over all pooled blocks of the given dims (every dim when `dims` is empty).
double pooled_rms(const std::vector<double>& pooled, std::int64_t dim,
                  const std::vector<std::int64_t>& dims) {
  const std::int64_t n = static_cast<std::int64_t>(pooled.size()) / dim;
  double sum = 0;
  std::int64_t count = 0;
  for (std::int64_t u = 0; u < n; ++u) {
    if (dims.empty()) {
      for (std::int64_t c = 0; c < dim; ++c) sum += pooled[u * dim + c] * pooled[u * dim + c];
      count += dim;
    } else {
      for (std::int64_t c : dims) sum += pooled[u * dim + c] * pooled[u * dim + c];
      count += static_cast<std::int64_t>(dims.size());
    }
  }
  return count ? std::sqrt(sum / static_cast<double>(count)) : 0.0;
}

class PrismSelector final : public Selector {
 public:
  explicit PrismSelector(const PrismConfig& c) : c_(c) {}
  std::string name() const override { return "prism"; }

  Selection select(const SelectorInputs& in) const override {
    const AttentionProblem p = describe_attention(in.q, in.k, in.v, in.varlen);
    const std::int64_t d = p.head_dim;
    const PrismBands bands = prism_bands(c_, d, in.rope_layout);
    const PrismBand &high = bands.high, &low = bands.low;
    const std::int64_t block = in.block_size;

    const auto pooled_keys = pool_keys_per_kv_head(in.k, p, block);
    Selection out;
    out.mask = build_per_head_mask(p, block, [&](std::int64_t b, std::int64_t h, BlockMask& mask) {
      const std::vector<double> pq =
          pool_blocks(load_head_rows(in.q, p, true, b, h), p.seqlen_q[b], d, block);
      const std::vector<double>& pk = pooled_keys[b][p.kv_head_of(h)];
      const BlockGeometry geo(p.seqlen_q[b], p.seqlen_k[b], block, in.causal);
      const double scale_high = band_scale(high, pq, pk, d), scale_low = band_scale(low, pq, pk, d);
      std::vector<double> logits(static_cast<std::size_t>(geo.nk)), probs(static_cast<std::size_t>(geo.nk));
      for (std::int64_t u = 0; u < geo.nq; ++u) {
        const std::vector<std::int32_t> candidates = geo.candidates(u);
        std::vector<std::int32_t> kept;
        for (const auto& [band, scale] :
             {std::pair<const PrismBand*, double>{&high, scale_high}, {&low, scale_low}}) {
          for (std::int32_t v : candidates) {
            double s = 0;
            for (std::int64_t c : band->dims) s += pq[u * d + c] * pk[v * d + c];
            logits[v] = s * scale;
          }
          if (softmax_over(logits.data(), candidates, geo.nk, probs.data())) {
            kept = merge_blocks(kept, select_t1(probs.data(), candidates, band->p, 1.0));
          }
        }
        mask.set_row(b, h, u, geo.with_forced(u, std::move(kept), c_.force_sink, c_.force_recent));
      }
    });
    return out;
  }

 private:
  // 1 / (sqrt(d_z) * tau_z), with tau_z = sqrt(d_z / d) * rms(Q_z)/rms(Q) * rms(K_z)/rms(K) (1 without
  // calibration).
  double band_scale(const PrismBand& band, const std::vector<double>& pq, const std::vector<double>& pk,
                    std::int64_t d) const {
    const double dz = static_cast<double>(band.dims.size());
    double tau = 1.0;
    if (c_.calibrate) {
      tau = std::sqrt(dz / static_cast<double>(d)) *
            (pooled_rms(pq, d, band.dims) / std::max(pooled_rms(pq, d, {}), kRmsFloor)) *
            (pooled_rms(pk, d, band.dims) / std::max(pooled_rms(pk, d, {}), kRmsFloor));
    }
    return 1.0 / (std::sqrt(dz) * std::max(tau, kRmsFloor));
  }

  PrismConfig c_;
};

}  // namespace

std::unique_ptr<Selector> make_prism_selector(const PrismConfig& config) {
  return std::make_unique<PrismSelector>(config);
}

}  // namespace sparsefill
