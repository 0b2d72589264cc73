// Scene generator (design note).
//
// Work in the complex pair picture of RoPE: a head vector is z in C^P (P = head_dim / 2), pair i lives on the
// two dims given by the layout, and RoPE at position t multiplies z_i by exp(i w_i t). The logit between
// query t and key s is Re(sum_i q_i conj(k_i) exp(i w_i (t - s))) / sqrt(d), so a component shared by q and k
// yields a pattern that depends on t - s through the frequencies it occupies, exactly as in a real model.
//
// Keys carry token content (per sequence, shared by KV heads): a constant "local amplitude" on the
// high-frequency half of the pairs (slashes and windows), a sink direction on token 0, a vertical direction
// on anchor tokens, one direction per topic, one per needle span; all low-frequency directions are
// orthonormalised so components do not leak into each other at distance 0. Every direction has unit norm and
// keys carry it with amplitude kKeyAmp, so a query coefficient of logit * sqrt(d) / kKeyAmp yields exactly
// that logit. Queries combine the components their head recipe asks for, plus anisotropic noise (more energy
// on low-frequency pairs), are scaled by the head's temperature, and finally get a sink coefficient
// calibrated on sampled queries to the head's target sink mass.
#include <algorithm>
#include <cmath>
#include <complex>
#include <string>
#include <vector>

#include "core/parallel.hpp"
#include "scenes/presets.hpp"
#include "scenes/random.hpp"
#include "sparsefill/error.hpp"
#include "sparsefill/scene.hpp"

namespace sparsefill {
namespace {

using Complex = std::complex<double>;
using PairVector = std::vector<Complex>;

constexpr std::int64_t kMaxSceneTokens = std::int64_t{1} << 22;
constexpr int kTopics = 8;
constexpr int kNeedles = 3;
constexpr double kSinkKeyAmp = 4.0;       // token 0 carries the sink direction this many times stronger
constexpr double kKeyNoise = 0.5;         // per-dim std of white key noise (before the anisotropy profile)
constexpr double kQueryNoise = 1.5;       // per-dim std of white query noise at recipe noise 1
constexpr double kKeyContent = 2.0;       // per-dim std of the smooth semantic-zone key content
constexpr double kQueryContent = 2.0;     // ... and of the query content, at recipe noise 1
constexpr double kContentLength = 192.0;  // correlation length (tokens) of the smooth content
constexpr double kSinkValueScale = 0.1;   // the sink's value has a small norm
constexpr int kSinkSamples = 32;
constexpr double kMaxSinkLogit = 60.0;

// Token content of one sequence, shared by every KV head.
struct TokenContent {
  std::vector<int> topic_of;            // [L]
  std::vector<double> anchor_strength;  // [L], 0 for ordinary tokens
  std::vector<std::int64_t> needle_key_begin, needle_key_end, needle_query_begin, needle_query_end;
};

// The directions of one (sequence, KV head).
struct KvDirections {
  PairVector local_amp, sink, vertical;
  std::vector<PairVector> topics, needles;
};

double key_amp(std::int64_t head_dim) {
  return std::pow(static_cast<double>(head_dim), 0.25);
}

double noise_profile(std::int64_t pair, std::int64_t pairs) {
  // Most q/k energy on low-frequency (high index) pairs; mean square over pairs is 1.
  const double x = pairs > 1 ? static_cast<double>(pair) / static_cast<double>(pairs - 1) : 1.0;
  return (0.5 + x) / std::sqrt(1.0 / 3.0 + 0.5 + 0.25);
}

// Slowly varying content on the semantic-zone pairs (i >= P/2): a per-pair complex AR(1) process with unit
// stationary variance and correlation length kContentLength. Real Q/K dims in that zone change little inside
// a block (Prism's Fig. 3: their pooled RMS matches the token-level RMS), unlike white noise, which pooling
// removes.
class SmoothContent {
 public:
  SmoothContent(std::int64_t pairs, RandomStream& rng)
      : rng_(rng), state_(static_cast<std::size_t>(pairs)), first_(pairs / 2) {
    for (std::int64_t i = first_; i < pairs; ++i)
      state_[i] = Complex(rng_.normal(), rng_.normal()) / std::sqrt(2.0);
  }
  // Advances one token and returns the current content (zero below the semantic zone).
  const PairVector& next() {
    const double keep = std::exp(-1.0 / kContentLength), fresh = std::sqrt(1.0 - keep * keep);
    for (std::size_t i = static_cast<std::size_t>(first_); i < state_.size(); ++i) {
      state_[i] = keep * state_[i] + fresh * Complex(rng_.normal(), rng_.normal()) / std::sqrt(2.0);
    }
    return state_;
  }

 private:
  RandomStream& rng_;
  PairVector state_;
  std::int64_t first_;
};

PairVector random_direction(RandomStream& rng, std::int64_t pairs, std::int64_t first, double decay) {
  PairVector z(static_cast<std::size_t>(pairs));
  for (std::int64_t i = first; i < pairs; ++i) {
    const double weight =
        decay > 0 ? std::exp((static_cast<double>(i) - static_cast<double>(pairs - 1)) / decay) : 1.0;
    z[i] = Complex(rng.normal(), rng.normal()) * weight;
  }
  return z;
}

double real_dot(const PairVector& a, const PairVector& b) {
  double s = 0;
  for (std::size_t i = 0; i < a.size(); ++i) s += (a[i] * std::conj(b[i])).real();
  return s;
}

void normalise(PairVector& z) {
  const double norm = std::sqrt(real_dot(z, z));
  for (auto& c : z) c /= norm;
}

// Gram-Schmidt in the real 2P-dimensional space, in order.
void orthonormalise(std::vector<PairVector*> vectors) {
  for (std::size_t i = 0; i < vectors.size(); ++i) {
    for (std::size_t j = 0; j < i; ++j) {
      const double proj = real_dot(*vectors[i], *vectors[j]);
      for (std::size_t c = 0; c < vectors[i]->size(); ++c) (*vectors[i])[c] -= proj * (*vectors[j])[c];
    }
    normalise(*vectors[i]);
  }
}

TokenContent make_token_content(std::int64_t L, const std::string& preset, std::uint64_t seed,
                                std::int64_t b) {
  TokenContent c;
  RandomStream rng({seed, static_cast<std::uint64_t>(b), 0xC0417E47});
  c.topic_of.assign(static_cast<std::size_t>(L), 0);
  for (std::int64_t s = 0; s < L;) {
    const auto length = static_cast<std::int64_t>(std::exp(rng.uniform(std::log(64.0), std::log(2048.0))));
    const int topic = static_cast<int>(rng.integer(0, kTopics - 1));
    for (std::int64_t t = s; t < std::min(L, s + length); ++t) c.topic_of[t] = topic;
    s += length;
  }
  const double anchor_rate = preset == "vertical" ? 0.02 : 0.01;
  c.anchor_strength.assign(static_cast<std::size_t>(L), 0.0);
  for (std::int64_t s = 1; s < L; ++s) {
    if (rng.uniform() < anchor_rate) c.anchor_strength[s] = std::exp(0.35 * rng.normal());
  }
  for (int j = 0; j < kNeedles && L >= 64; ++j) {
    const std::int64_t key_len = std::min<std::int64_t>(24, L / 8);
    const std::int64_t key_begin = rng.integer(L / 20, (L * 6) / 10 - key_len);
    const std::int64_t query_len = std::min<std::int64_t>(16, L / 8);
    const std::int64_t query_begin = rng.integer((L * 3) / 4, L - query_len);
    c.needle_key_begin.push_back(key_begin);
    c.needle_key_end.push_back(key_begin + key_len);
    c.needle_query_begin.push_back(query_begin);
    c.needle_query_end.push_back(query_begin + query_len);
  }
  return c;
}

KvDirections make_directions(std::int64_t pairs, std::uint64_t seed, std::int64_t b, std::int64_t g) {
  RandomStream rng({seed, static_cast<std::uint64_t>(b), static_cast<std::uint64_t>(g), 0xD1EC7});
  KvDirections d;
  d.local_amp.assign(static_cast<std::size_t>(pairs), Complex(0, 0));
  for (std::int64_t i = 0; i < pairs / 2; ++i)
    d.local_amp[i] = std::polar(1.0, rng.uniform(0.0, 6.283185307179586));
  normalise(d.local_amp);
  const std::int64_t low = pairs / 2;
  d.sink = random_direction(rng, pairs, (pairs * 69) / 100, 3.0);
  d.vertical = random_direction(rng, pairs, (pairs * 6) / 10, 6.0);
  for (int t = 0; t < kTopics; ++t) d.topics.push_back(random_direction(rng, pairs, low, 0.0));
  for (int n = 0; n < kNeedles; ++n) d.needles.push_back(random_direction(rng, pairs, low, 0.0));
  std::vector<PairVector*> all = {&d.sink, &d.vertical};
  for (auto& t : d.topics) all.push_back(&t);
  for (auto& n : d.needles) all.push_back(&n);
  orthonormalise(all);
  return d;
}

void add_scaled(PairVector& acc, const PairVector& z, Complex scale) {
  for (std::size_t i = 0; i < acc.size(); ++i) acc[i] += scale * z[i];
}

// Pre-RoPE complex vector -> post-RoPE real head vector in the chosen layout.
void rotate_to_real(const PairVector& z, double position, const std::vector<double>& freqs, RopeLayout layout,
                    std::int64_t head_dim, float* out) {
  for (std::int64_t i = 0; i < head_dim / 2; ++i) {
    const Complex r = z[i] * std::polar(1.0, position * freqs[i]);
    const auto [x, y] = rope_pair_dims(i, head_dim, layout);
    out[x] = static_cast<float>(r.real());
    out[y] = static_cast<float>(r.imag());
  }
}

class SceneBuilder {
 public:
  SceneBuilder(Scene& scene) : scene_(scene), cfg_(scene.config) {
    L_ = cfg_.seqlen;
    d_ = cfg_.head_dim;
    P_ = d_ / 2;
    freqs_ = rope_frequencies(d_, scene.rope);
    amp_ = key_amp(d_);
  }

  void build() {
    for (std::int64_t b = 0; b < cfg_.batch; ++b) build_sequence(b);
  }

 private:
  void build_sequence(std::int64_t b) {
    content_ = make_token_content(L_, cfg_.preset, cfg_.seed, b);
    directions_.assign(static_cast<std::size_t>(cfg_.heads_kv), KvDirections{});
    keys_.assign(static_cast<std::size_t>(cfg_.heads_kv * L_ * d_), 0.0f);
    parallel_for(cfg_.heads_kv, [&](std::int64_t g) { build_kv_head(b, g); });
    parallel_for(cfg_.heads_q, [&](std::int64_t h) { build_query_head(b, h); });
  }

  void write(HostTensor& t, std::int64_t b, std::int64_t s, std::int64_t h, std::int64_t heads,
             const float* vec) {
    const std::int64_t base = ((b * L_ + s) * heads + h) * d_;
    for (std::int64_t c = 0; c < d_; ++c) store_from_double(t.data(), t.dtype(), base + c, vec[c]);
  }

  void build_kv_head(std::int64_t b, std::int64_t g) {
    directions_[g] = make_directions(P_, cfg_.seed, b, g);
    const KvDirections& dir = directions_[g];
    RandomStream rng({cfg_.seed, static_cast<std::uint64_t>(b), static_cast<std::uint64_t>(g), 0x4B45595});
    std::vector<float> real(static_cast<std::size_t>(d_));
    PairVector z(static_cast<std::size_t>(P_));
    RandomStream content_rng(
        {cfg_.seed, static_cast<std::uint64_t>(b), static_cast<std::uint64_t>(g), 0xC0A7E47});
    SmoothContent content(P_, content_rng);
    PairVector smooth;
    for (std::int64_t s = 0; s < L_; ++s) {
      smooth = content.next();
      add_scaled(smooth, dir.sink, -real_dot(smooth, dir.sink));  // only token 0 carries the sink direction
      for (std::int64_t i = 0; i < P_; ++i) {
        const double sigma = kKeyNoise * noise_profile(i, P_) / std::sqrt(2.0);
        z[i] =
            Complex(rng.normal(), rng.normal()) * sigma + amp_ * dir.local_amp[i] + kKeyContent * smooth[i];
      }
      if (s == 0) add_scaled(z, dir.sink, amp_ * kSinkKeyAmp);
      if (content_.anchor_strength[s] > 0) add_scaled(z, dir.vertical, amp_ * content_.anchor_strength[s]);
      add_scaled(z, dir.topics[content_.topic_of[s]], amp_);
      for (std::size_t n = 0; n < content_.needle_key_begin.size(); ++n) {
        if (s >= content_.needle_key_begin[n] && s < content_.needle_key_end[n])
          add_scaled(z, dir.needles[n], amp_);
      }
      float* key = keys_.data() + (g * L_ + s) * d_;
      rotate_to_real(z, static_cast<double>(s), freqs_, cfg_.rope_layout, d_, key);
      write(scene_.k, b, s, g, cfg_.heads_kv, key);
      for (std::int64_t c = 0; c < d_; ++c)
        real[c] = static_cast<float>(rng.normal() * (s == 0 ? kSinkValueScale : 1.0));
      write(scene_.v, b, s, g, cfg_.heads_kv, real.data());
    }
  }

  // Query pre-RoPE vector of head h at position t, without the sink.
  void query_vector(const HeadRecipe& r, const KvDirections& dir, RandomStream& shared, RandomStream& own,
                    const PairVector& smooth, std::int64_t t, PairVector& z) const {
    const double unit = std::sqrt(static_cast<double>(d_)) / amp_;  // coefficient per logit
    std::fill(z.begin(), z.end(), Complex(0, 0));
    if (r.local_logit > 0 || !r.slash_offsets.empty()) {
      // A smooth (logistic) spectral taper centred on window_pairs: a hard cutoff rings, which real heads do
      // not.
      std::vector<double> taper(static_cast<std::size_t>(P_), 0.0);
      double window_energy = 0;
      for (std::int64_t i = 0; i < P_; ++i) {
        const double width = std::max(1.0, static_cast<double>(r.window_pairs) / 8.0);
        taper[i] =
            1.0 / (1.0 + std::exp((static_cast<double>(i) - static_cast<double>(r.window_pairs)) / width));
        window_energy += taper[i] * std::norm(dir.local_amp[i]);
      }
      for (std::size_t j = 0; j <= r.slash_offsets.size(); ++j) {
        const double logit = j == 0 ? r.local_logit : r.slash_logits[j - 1];
        const double offset = j == 0 ? 0.0 : static_cast<double>(r.slash_offsets[j - 1]);
        if (logit <= 0) continue;
        for (std::int64_t i = 0; i < P_; ++i) {
          z[i] += logit * unit * taper[i] / window_energy * dir.local_amp[i] *
                  std::polar(1.0, -freqs_[i] * offset);
        }
      }
    }
    if (r.vertical_logit > 0) add_scaled(z, dir.vertical, r.vertical_logit * unit);
    if (r.topic_logit > 0) add_scaled(z, dir.topics[content_.topic_of[t]], r.topic_logit * unit);
    if (r.retrieval) {
      for (std::size_t n = 0; n < content_.needle_query_begin.size(); ++n) {
        if (t >= content_.needle_query_begin[n] && t < content_.needle_query_end[n]) {
          add_scaled(z, dir.needles[n], r.needle_logit * unit);
        }
      }
    }
    // GQA: the query heads of one group share half of their noise (correlated, perturbed queries). The noise
    // has no component along the sink direction: the massive sink key would turn it into a wildly varying
    // sink logit, whereas real queries carry a consistent bias on the sink's dims.
    PairVector noise(static_cast<std::size_t>(P_));
    for (std::int64_t i = 0; i < P_; ++i) {
      const double sigma = kQueryNoise * r.noise * noise_profile(i, P_) / std::sqrt(2.0);
      const Complex common(shared.normal(), shared.normal()), mine(own.normal(), own.normal());
      noise[i] =
          sigma * (std::sqrt(0.5) * common + std::sqrt(0.5) * mine) + kQueryContent * r.noise * smooth[i];
    }
    add_scaled(noise, dir.sink, -real_dot(noise, dir.sink));
    add_scaled(z, noise, 1.0);
    for (auto& c : z) c *= r.temperature;
  }

  // Sink coefficient x (in logit units at distance 0) such that the mean share of attention on token 0 over
  // the sampled queries equals the target. Logits are linear in x: logit_s(x) = base_s + x * slope_s, where
  // slope_s is the sink direction (rotated to the query's position) against key s; bisection on the monotone
  // mean mass.
  double calibrate_sink(const HeadRecipe& r, std::int64_t g, const std::vector<PairVector>& sampled,
                        const std::vector<std::int64_t>& positions) const {
    if (r.sink_mass_target <= 0 || positions.empty()) return 0.0;
    const KvDirections& dir = directions_[g];
    const double inv_sqrt_d = 1.0 / std::sqrt(static_cast<double>(d_));
    const double sink_unit = std::sqrt(static_cast<double>(d_)) / (amp_ * kSinkKeyAmp);
    std::vector<std::vector<double>> base(positions.size()), slope(positions.size());
    std::vector<float> q(static_cast<std::size_t>(d_)), u(static_cast<std::size_t>(d_));
    for (std::size_t n = 0; n < positions.size(); ++n) {
      const std::int64_t t = positions[n];
      rotate_to_real(sampled[n], static_cast<double>(t), freqs_, cfg_.rope_layout, d_, q.data());
      rotate_to_real(dir.sink, static_cast<double>(t), freqs_, cfg_.rope_layout, d_, u.data());
      for (std::int64_t s = 0; s <= t; ++s) {
        const float* key = keys_.data() + (g * L_ + s) * d_;
        double qk = 0, uk = 0;
        for (std::int64_t c = 0; c < d_; ++c) {
          qk += static_cast<double>(q[c]) * key[c];
          uk += static_cast<double>(u[c]) * key[c];
        }
        base[n].push_back(qk * inv_sqrt_d);
        slope[n].push_back(uk * sink_unit * inv_sqrt_d);
      }
    }
    auto mean_sink_mass = [&](double x) {
      double total = 0;
      for (std::size_t n = 0; n < positions.size(); ++n) {
        double m = -1e300;
        for (std::size_t s = 0; s < base[n].size(); ++s) m = std::max(m, base[n][s] + x * slope[n][s]);
        double z = 0;
        for (std::size_t s = 0; s < base[n].size(); ++s) z += std::exp(base[n][s] + x * slope[n][s] - m);
        total += std::exp(base[n][0] + x * slope[n][0] - m) / z;
      }
      return total / static_cast<double>(positions.size());
    };
    double lo = 0.0, hi = kMaxSinkLogit;
    if (mean_sink_mass(lo) >= r.sink_mass_target) return 0.0;
    for (int iteration = 0; iteration < 30; ++iteration) {
      const double mid = 0.5 * (lo + hi);
      (mean_sink_mass(mid) < r.sink_mass_target ? lo : hi) = mid;
    }
    return 0.5 * (lo + hi);
  }

  void build_query_head(std::int64_t b, std::int64_t h) {
    HeadRecipe& r = scene_.heads[h];
    const std::int64_t g = h / (cfg_.heads_q / cfg_.heads_kv);
    const KvDirections& dir = directions_[g];
    RandomStream shared({cfg_.seed, static_cast<std::uint64_t>(b), static_cast<std::uint64_t>(g), 0x51A4ED});
    RandomStream own({cfg_.seed, static_cast<std::uint64_t>(b), static_cast<std::uint64_t>(h), 0x0A1E});
    RandomStream content_rng(
        {cfg_.seed, static_cast<std::uint64_t>(b), static_cast<std::uint64_t>(h), 0xC0A7E48});
    SmoothContent content(P_, content_rng);
    std::vector<PairVector> pre(static_cast<std::size_t>(L_), PairVector(static_cast<std::size_t>(P_)));
    for (std::int64_t t = 0; t < L_; ++t) query_vector(r, dir, shared, own, content.next(), t, pre[t]);

    std::vector<std::int64_t> positions;
    std::vector<PairVector> sampled;
    if (L_ >= 2) {
      const std::int64_t first = std::max<std::int64_t>(1, L_ / 8);
      for (int n = 0; n < kSinkSamples; ++n) {
        const std::int64_t t = first + (L_ - 1 - first) * n / std::max(1, kSinkSamples - 1);
        if (positions.empty() || positions.back() != t) {
          positions.push_back(t);
          sampled.push_back(pre[t]);
        }
      }
    }
    const double sink_logit = calibrate_sink(r, g, sampled, positions);
    if (b == 0) r.sink_logit = sink_logit;
    const Complex sink_coeff = sink_logit * std::sqrt(static_cast<double>(d_)) / (amp_ * kSinkKeyAmp);
    std::vector<float> real(static_cast<std::size_t>(d_));
    for (std::int64_t t = 0; t < L_; ++t) {
      add_scaled(pre[t], dir.sink, sink_coeff);
      rotate_to_real(pre[t], static_cast<double>(t), freqs_, cfg_.rope_layout, d_, real.data());
      write(scene_.q, b, t, h, cfg_.heads_q, real.data());
    }
  }

  Scene& scene_;
  const SceneConfig& cfg_;
  std::int64_t L_ = 0, d_ = 0, P_ = 0;
  std::vector<double> freqs_;
  double amp_ = 1.0;
  TokenContent content_;
  std::vector<KvDirections> directions_;
  std::vector<float> keys_;  // post-RoPE keys of the current sequence, [heads_kv][L][d]
};

}  // namespace

Scene generate_scene(const SceneConfig& config) {
  const ScenePreset& preset = find_scene_preset(config.preset);
  Scene scene;
  scene.config = config;
  SceneConfig& c = scene.config;
  if (c.heads_q == 0) c.heads_q = preset.heads_q;
  if (c.heads_kv == 0) c.heads_kv = c.heads_q == preset.heads_q ? preset.heads_kv : c.heads_q;
  if (c.head_dim == 0) c.head_dim = preset.head_dim;
  if (c.rope_theta == 0) c.rope_theta = preset.rope_theta;
  require(c.seqlen >= 1 && c.seqlen <= kMaxSceneTokens, "seqlen",
          "must be in 1..4194304, got " + std::to_string(c.seqlen));
  require(c.batch >= 1 && c.batch <= 64, "batch", "must be in 1..64");
  require(c.heads_q >= 1 && c.heads_kv >= 1 && c.heads_q % c.heads_kv == 0, "heads_kv",
          "heads_q (" + std::to_string(c.heads_q) + ") must be a positive multiple of heads_kv (" +
              std::to_string(c.heads_kv) + ")");
  require(c.head_dim >= 16 && c.head_dim <= 256 && c.head_dim % 8 == 0, "head_dim",
          "must be a multiple of 8 in 16..256, got " + std::to_string(c.head_dim));
  require(is_floating(c.dtype) && c.dtype != DType::kFP64, "dtype", "scenes are bf16, fp16 or fp32");
  require(c.rope_theta > 1, "rope_theta", "must be greater than 1");
  scene.rope.theta = c.rope_theta;
  scene.rope.layout = c.rope_layout;
  scene.heads = build_head_recipes(c.preset, c.heads_q, c.head_dim, c.seed);
  scene.q = HostTensor(c.dtype, {c.batch, c.seqlen, c.heads_q, c.head_dim});
  scene.k = HostTensor(c.dtype, {c.batch, c.seqlen, c.heads_kv, c.head_dim});
  scene.v = HostTensor(c.dtype, {c.batch, c.seqlen, c.heads_kv, c.head_dim});
  SceneBuilder(scene).build();
  return scene;
}

}  // namespace sparsefill
