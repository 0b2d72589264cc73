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

// 1 / (sqrt(d_z) * tau_z), with tau_z = sqrt(d_z / d) * rms(Q_z)/rms(Q) * rms(K_z)/rms(K) (1 without
// calibration).
double band_scale(const PrismConfig& c, const PrismBand& band, const std::vector<double>& pq,
                  const std::vector<double>& pk, std::int64_t d) {
  const double dz = static_cast<double>(band.dims.size());
  double tau = 1.0;
  if (c.calibrate) {
    tau = std::sqrt(dz / static_cast<double>(d)) *
          (pooled_rms(pq, d, band.dims) / std::max(pooled_rms(pq, d, {}), kRmsFloor)) *
          (pooled_rms(pk, d, band.dims) / std::max(pooled_rms(pk, d, {}), kRmsFloor));
  }
  return 1.0 / (std::sqrt(dz) * std::max(tau, kRmsFloor));
}

// Both bands' causal block softmax of one (sequence, query head): band[z][u * nk + v], the probability of key
// block v in row u (zeros outside the row's candidates); geo: the sequence's block geometry.
struct HeadBands {
  BlockGeometry geo;
  std::vector<double> band[2];  // high, low
};

HeadBands head_bands(const SelectorInputs& in, const AttentionProblem& p, const PrismConfig& c,
                     const PrismBands& bands, const std::vector<double>& pk, std::int64_t b, std::int64_t h) {
  const std::int64_t d = p.head_dim, block = in.block_size;
  const std::vector<double> pq = pool_blocks(load_head_rows(in.q, p, true, b, h), p.seqlen_q[b], d, block);
  HeadBands out{BlockGeometry(p.seqlen_q[b], p.seqlen_k[b], block, in.causal), {}};
  const BlockGeometry& geo = out.geo;
  std::vector<double> logits(static_cast<std::size_t>(geo.nk));
  const PrismBand* band[2] = {&bands.high, &bands.low};
  for (int z = 0; z < 2; ++z) {
    const double scale = band_scale(c, *band[z], pq, pk, d);
    out.band[z].assign(static_cast<std::size_t>(geo.nq * geo.nk), 0.0);
    for (std::int64_t u = 0; u < geo.nq; ++u) {
      const std::vector<std::int32_t> candidates = geo.candidates(u);
      for (std::int32_t v : candidates) {
        double s = 0;
        for (std::int64_t ch : band[z]->dims) s += pq[u * d + ch] * pk[v * d + ch];
        logits[v] = s * scale;
      }
      softmax_over(logits.data(), candidates, geo.nk, out.band[z].data() + u * geo.nk);
    }
  }
  return out;
}

class PrismSelector final : public Selector {
 public:
  explicit PrismSelector(const PrismConfig& c) : c_(c) {}
  std::string name() const override { return "prism"; }

  Selection select(const SelectorInputs& in) const override {
    const AttentionProblem p = describe_attention(in.q, in.k, in.v, in.varlen);
    const PrismBands bands = prism_bands(c_, p.head_dim, in.rope_layout);
    const auto pooled_keys = pool_keys_per_kv_head(in.k, p, in.block_size);
    Selection out;
    out.mask = build_per_head_mask(p, in.block_size, [&](std::int64_t b, std::int64_t h, BlockMask& mask) {
      const HeadBands head = head_bands(in, p, c_, bands, pooled_keys[b][p.kv_head_of(h)], b, h);
      const BlockGeometry& geo = head.geo;
      for (std::int64_t u = 0; u < geo.nq; ++u) {
        const std::vector<std::int32_t> candidates = geo.candidates(u);
        std::vector<std::int32_t> kept;
        if (!candidates.empty()) {
          kept = select_t1(head.band[0].data() + u * geo.nk, candidates, bands.high.p, 1.0);
          kept =
              merge_blocks(kept, select_t1(head.band[1].data() + u * geo.nk, candidates, bands.low.p, 1.0));
        }
        mask.set_row(b, h, u, geo.with_forced(u, std::move(kept), c_.force_sink, c_.force_recent));
      }
    });
    return out;
  }

 private:
  PrismConfig c_;
};

}  // namespace

std::unique_ptr<Selector> make_prism_selector(const PrismConfig& config) {
  return std::make_unique<PrismSelector>(config);
}

std::vector<double> prism_block_scores(const SelectorInputs& in, const PrismConfig& config) {
  const AttentionProblem p = describe_attention(in.q, in.k, in.v, in.varlen);
  const PrismBands bands = prism_bands(config, p.head_dim, in.rope_layout);
  const auto pooled_keys = pool_keys_per_kv_head(in.k, p, in.block_size);
  std::vector<double> scores;
  for (int z = 0; z < 2; ++z) {
    const std::vector<double> band =
        gather_block_scores(p, in.block_size, [&](std::int64_t b, std::int64_t h) {
          return head_bands(in, p, config, bands, pooled_keys[b][p.kv_head_of(h)], b, h).band[z];
        });
    scores.insert(scores.end(), band.begin(), band.end());
  }
  return scores;
}

}  // namespace sparsefill
