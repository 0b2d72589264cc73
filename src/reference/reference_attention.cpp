// CPU reference attention (design note).
//
// For each (sequence, KV head) the keys and values are converted once into a contiguous buffer of the
// accumulation type; then every (query head of the group, query tile) is an independent work item. A row
// gathers its visible key ranges (mask blocks intersected with the causal limit), takes a two-pass softmax
// (max, then exp-sum) and a weighted sum of values. Block mass, when asked for, is accumulated per query
// tile, and tiles are exactly the mass blocks, so no two workers touch one entry.
#include "sparsefill/reference_attention.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "core/parallel.hpp"
#include "reference/attention_validation.hpp"
#include "sparsefill/error.hpp"

namespace sparsefill {
namespace {

constexpr std::int64_t kDefaultTile = 64;

struct KeyRange {
  std::int64_t begin, end;
};

template <typename T>
T dot(const T* a, const T* b, std::int64_t n) {
  T partial[8] = {};
  std::int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    for (int l = 0; l < 8; ++l) partial[l] += a[i + l] * b[i + l];
  }
  T sum = 0;
  for (; i < n; ++i) sum += a[i] * b[i];
  for (int l = 0; l < 8; ++l) sum += partial[l];
  return sum;
}

template <typename T>
class ReferenceRunner {
 public:
  ReferenceRunner(const TensorView& q, const TensorView& k, const TensorView& v, const AttentionProblem& p,
                  const BlockMask* mask, const std::int32_t* key_order, const ReferenceOptions& options,
                  const ReferenceOutputs& outputs)
      : q_(q), k_(k), v_(v), p_(p), mask_(mask), key_order_(key_order), options_(options), outputs_(outputs) {
    scale_ = options.attention.scale > 0 ? options.attention.scale
                                         : 1.0 / std::sqrt(static_cast<double>(p.head_dim));
    tile_ = outputs.block_mass.data ? outputs.mass_block : kDefaultTile;
  }

  void run() {
    if (outputs_.block_mass.data) {
      for (std::int64_t i = 0; i < outputs_.block_mass.numel(); ++i) {
        store_from_double(outputs_.block_mass.data, outputs_.block_mass.dtype, i, 0.0);
      }
    }
    if (outputs_.lse.data) {
      for (std::int64_t i = 0; i < outputs_.lse.numel(); ++i) {
        store_from_double(outputs_.lse.data, outputs_.lse.dtype, i, -std::numeric_limits<double>::infinity());
      }
    }
    const std::int64_t total = p_.batch * p_.heads_kv;
    for (std::int64_t bk = 0; bk < total; ++bk) {
      run_kv_head(bk / p_.heads_kv, bk % p_.heads_kv);
      if (options_.progress) options_.progress(static_cast<double>(bk + 1) / total);
    }
  }

 private:
  void run_kv_head(std::int64_t b, std::int64_t hkv) {
    const std::int64_t lk = p_.seqlen_k[b], lq = p_.seqlen_q[b], d = p_.head_dim;
    keys_.assign(static_cast<std::size_t>(lk * d), T(0));
    values_.assign(static_cast<std::size_t>(lk * d), T(0));
    parallel_for(lk, [&](std::int64_t j) {
      const std::int64_t ko = token_offset(k_, p_.varlen, p_.start_k[b], b, j, hkv);
      const std::int64_t vo = token_offset(v_, p_.varlen, p_.start_k[b], b, j, hkv);
      for (std::int64_t c = 0; c < d; ++c) {
        keys_[j * d + c] = static_cast<T>(load_as_double(k_.data, k_.dtype, ko + c));
        values_[j * d + c] = static_cast<T>(load_as_double(v_.data, v_.dtype, vo + c));
      }
    });
    const std::int64_t tiles = ceil_div(lq, tile_);
    const std::int64_t group = p_.group_size();
    parallel_for(group * tiles, [&](std::int64_t item) {
      const std::int64_t hq = hkv * group + item / tiles;
      const std::int64_t tile = item % tiles;
      std::vector<T> scores(static_cast<std::size_t>(lk)), acc(static_cast<std::size_t>(d)),
          qrow(static_cast<std::size_t>(d));
      std::vector<KeyRange> ranges;
      for (std::int64_t i = tile * tile_; i < std::min((tile + 1) * tile_, lq); ++i) {
        run_row(b, hq, i, lq, lk, scores, acc, qrow, ranges);
      }
    });
  }

  void visible_ranges(std::int64_t b, std::int64_t hq, std::int64_t i, std::int64_t lq, std::int64_t lk,
                      std::vector<KeyRange>& ranges) const {
    ranges.clear();
    std::int64_t limit =
        lk;  // exclusive; with a key order causality is checked per key on original positions
    if (options_.attention.causal && !key_order_) limit = std::clamp<std::int64_t>(i + lk - lq + 1, 0, lk);
    if (!mask_) {
      if (limit > 0) ranges.push_back({0, limit});
      return;
    }
    const std::int64_t mh = mask_->mask_head_of(hq, p_.heads_q, p_.heads_kv);
    const std::int64_t u = i / mask_->block_q();
    const std::int32_t* row = mask_->row_indices(b, mh, u);
    for (std::int32_t n = 0; n < mask_->row_count(b, mh, u); ++n) {
      const std::int64_t begin = row[n] * mask_->block_k();
      const std::int64_t end = std::min(begin + mask_->block_k(), limit);
      if (begin < end) ranges.push_back({begin, end});
    }
  }

  void run_row(std::int64_t b, std::int64_t hq, std::int64_t i, std::int64_t lq, std::int64_t lk,
               std::vector<T>& scores, std::vector<T>& acc, std::vector<T>& qrow,
               std::vector<KeyRange>& ranges) const {
    const std::int64_t d = p_.head_dim;
    const std::int64_t qo = token_offset(q_, p_.varlen, p_.start_q[b], b, i, hq);
    for (std::int64_t c = 0; c < d; ++c)
      qrow[c] = static_cast<T>(load_as_double(q_.data, q_.dtype, qo + c) * scale_);
    visible_ranges(b, hq, i, lq, lk, ranges);

    const std::int32_t* order = key_order_ ? key_order_ + (b * p_.heads_q + hq) * p_.max_seqlen_k() : nullptr;
    if (order && options_.attention.causal) keep_causal_keys(order, i + lk - lq, ranges);
    T row_max = -std::numeric_limits<T>::infinity();
    for (const KeyRange& r : ranges) {
      for (std::int64_t j = r.begin; j < r.end; ++j) {
        scores[j] = dot(qrow.data(), keys_.data() + (order ? order[j] : j) * d, d);
        row_max = std::max(row_max, scores[j]);
      }
    }
    std::fill(acc.begin(), acc.end(), T(0));
    T sum = 0;
    if (!ranges.empty()) {
      for (const KeyRange& r : ranges) {
        for (std::int64_t j = r.begin; j < r.end; ++j) {
          const T prob = std::exp(scores[j] - row_max);
          scores[j] = prob;
          sum += prob;
          const T* value = values_.data() + (order ? order[j] : j) * d;
          for (std::int64_t c = 0; c < d; ++c) acc[c] += prob * value[c];
        }
      }
    }
    const TensorView& out = outputs_.out;
    const std::int64_t oo = token_offset(out, p_.varlen, p_.start_q[b], b, i, hq);
    for (std::int64_t c = 0; c < d; ++c) {
      store_from_double(out.data, out.dtype, oo + c,
                        ranges.empty() ? 0.0 : static_cast<double>(acc[c] / sum));
    }
    if (ranges.empty()) return;
    if (outputs_.lse.data) {
      const std::int64_t li = (b * p_.heads_q + hq) * p_.max_seqlen_q() + i;
      store_from_double(outputs_.lse.data, outputs_.lse.dtype, li,
                        static_cast<double>(row_max) + std::log(static_cast<double>(sum)));
    }
    if (outputs_.block_mass.data) add_block_mass(b, hq, i, lq, scores, sum, ranges);
  }

  // Splits position ranges so that only keys whose original position is <= last_key remain.
  static void keep_causal_keys(const std::int32_t* order, std::int64_t last_key,
                               std::vector<KeyRange>& ranges) {
    std::vector<KeyRange> kept;
    for (const KeyRange& r : ranges) {
      for (std::int64_t j = r.begin; j < r.end;) {
        while (j < r.end && order[j] > last_key) ++j;
        const std::int64_t begin = j;
        while (j < r.end && order[j] <= last_key) ++j;
        if (begin < j) kept.push_back({begin, j});
      }
    }
    ranges.swap(kept);
  }

  void add_block_mass(std::int64_t b, std::int64_t hq, std::int64_t i, std::int64_t lq,
                      const std::vector<T>& probs, T sum, const std::vector<KeyRange>& ranges) const {
    const TensorView& m = outputs_.block_mass;
    const std::int64_t mb = outputs_.mass_block, u = i / mb;
    const double rows = static_cast<double>(std::min((u + 1) * mb, lq) - u * mb);
    const std::int64_t base = ((b * p_.heads_q + hq) * m.shape[2] + u) * m.shape[3];
    for (const KeyRange& r : ranges) {
      for (std::int64_t start = r.begin; start < r.end;) {
        const std::int64_t block = start / mb, end = std::min(r.end, (block + 1) * mb);
        double block_sum = 0;
        for (std::int64_t j = start; j < end; ++j) block_sum += static_cast<double>(probs[j]);
        const double current = load_as_double(m.data, m.dtype, base + block);
        store_from_double(m.data, m.dtype, base + block,
                          current + block_sum / static_cast<double>(sum) / rows);
        start = end;
      }
    }
  }

  const TensorView &q_, &k_, &v_;
  const AttentionProblem& p_;
  const BlockMask* mask_;
  const std::int32_t* key_order_;
  const ReferenceOptions& options_;
  const ReferenceOutputs& outputs_;
  double scale_ = 1.0;
  std::int64_t tile_ = kDefaultTile;
  std::vector<T> keys_, values_;
};

void run_reference(const TensorView& q, const TensorView& k, const TensorView& v,
                   const VarlenSequences& varlen, const BlockMask* mask,
                   const std::vector<std::int32_t>* key_order, const ReferenceOptions& options,
                   const ReferenceOutputs& outputs) {
  const AttentionProblem problem = validate_attention_call(q, k, v, varlen, mask, key_order, options.attention, outputs);
  const std::int32_t* order = key_order ? key_order->data() : nullptr;
  if (options.accumulation == Accumulation::kFP64) {
    ReferenceRunner<double>(q, k, v, problem, mask, order, options, outputs).run();
  } else {
    ReferenceRunner<float>(q, k, v, problem, mask, order, options, outputs).run();
  }
}

}  // namespace

void reference_attention(const TensorView& q, const TensorView& k, const TensorView& v,
                         const VarlenSequences& varlen, const BlockMask* mask,
                         const ReferenceOptions& options, const ReferenceOutputs& outputs) {
  run_reference(q, k, v, varlen, mask, nullptr, options, outputs);
}

void reference_permuted_attention(const TensorView& q, const TensorView& k, const TensorView& v,
                                  const VarlenSequences& varlen, const BlockMask& mask,
                                  const std::vector<std::int32_t>& key_order, const ReferenceOptions& options,
                                  const ReferenceOutputs& outputs) {
  require(outputs.block_mass.data == nullptr, "block_mass", "is not offered for permuted attention");
  run_reference(q, k, v, varlen, &mask, &key_order, options, outputs);
}

}  // namespace sparsefill
