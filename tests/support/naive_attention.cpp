#include "support/naive_attention.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

namespace sparsefill::testing {

NaiveResult naive_attention(
    const HostTensor& q, const HostTensor& k, const HostTensor& v, bool varlen,
    const std::vector<NaiveSequence>& sequences, double scale,
    const std::function<bool(std::int64_t, std::int64_t, std::int64_t, std::int64_t)>& allowed) {
  const auto& qs = q.shape();
  const std::int64_t hq = qs[qs.size() - 2], d = qs.back(), hk = k.shape()[k.shape().size() - 2];
  const std::int64_t batch = static_cast<std::int64_t>(sequences.size());
  std::int64_t max_lq = 0;
  for (const auto& s : sequences) max_lq = std::max(max_lq, s.seqlen_q);
  const std::vector<double> qd = q.to_doubles(), kd = k.to_doubles(), vd = v.to_doubles();
  NaiveResult r;
  r.out.assign(qd.size(), 0.0);
  r.lse.assign(static_cast<std::size_t>(batch * hq * max_lq), -std::numeric_limits<double>::infinity());
  auto q_at = [&](std::int64_t b, std::int64_t t, std::int64_t h) {
    const std::int64_t token = varlen ? sequences[b].start_q + t : b * qs[1] + t;
    return token * hq * d + h * d;
  };
  auto k_at = [&](std::int64_t b, std::int64_t j, std::int64_t h) {
    const std::int64_t token = varlen ? sequences[b].start_k + j : b * k.shape()[1] + j;
    return token * hk * d + h * d;
  };
  for (std::int64_t b = 0; b < batch; ++b) {
    const std::int64_t lq = sequences[b].seqlen_q, lk = sequences[b].seqlen_k;
    for (std::int64_t h = 0; h < hq; ++h) {
      const std::int64_t kvh = h / (hq / hk);
      for (std::int64_t i = 0; i < lq; ++i) {
        std::vector<double> logits;
        std::vector<std::int64_t> keys;
        for (std::int64_t j = 0; j < lk; ++j) {
          if (!allowed(b, h, i, j)) continue;
          double s = 0;
          for (std::int64_t c = 0; c < d; ++c) s += qd[q_at(b, i, h) + c] * kd[k_at(b, j, kvh) + c];
          logits.push_back(s * scale);
          keys.push_back(j);
        }
        if (keys.empty()) continue;
        const double m = *std::max_element(logits.begin(), logits.end());
        double z = 0;
        for (double& l : logits) z += (l = std::exp(l - m));
        for (std::size_t n = 0; n < keys.size(); ++n) {
          for (std::int64_t c = 0; c < d; ++c)
            r.out[q_at(b, i, h) + c] += logits[n] / z * vd[k_at(b, keys[n], kvh) + c];
        }
        r.lse[(b * hq + h) * max_lq + i] = m + std::log(z);
      }
    }
  }
  return r;
}

NaiveResult naive_attention(const HostTensor& q, const HostTensor& k, const HostTensor& v, bool varlen,
                            const std::vector<NaiveSequence>& sequences, bool causal, double scale,
                            const std::vector<std::uint8_t>& block_map, std::int64_t mask_heads,
                            std::int64_t block, std::int64_t num_q_blocks, std::int64_t num_k_blocks) {
  const std::int64_t hq = q.shape()[q.shape().size() - 2], hk = k.shape()[k.shape().size() - 2];
  return naive_attention(
      q, k, v, varlen, sequences, scale, [&](std::int64_t b, std::int64_t h, std::int64_t i, std::int64_t j) {
        const NaiveSequence& s = sequences[b];
        if (causal && j > i + s.seqlen_k - s.seqlen_q) return false;
        if (block_map.empty()) return true;
        const std::int64_t mh = mask_heads == 1 ? 0 : mask_heads == hq ? h : h / (hq / hk);
        return block_map[((b * mask_heads + mh) * num_q_blocks + i / block) * num_k_blocks + j / block] != 0;
      });
}

}  // namespace sparsefill::testing
