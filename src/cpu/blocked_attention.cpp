// Blocked CPU attention (design note).
//
// Work item = (sequence, query head, block of query rows): the mask's block_q rows, or 128 without a mask. The
// item's visible keys are the mask row's blocks intersected with the causal limit of its last row, merged
// into contiguous ranges; S = scale * Q K^T is one sgemm per range straight from the strided k view (keys in
// PBS order are first gathered into a contiguous buffer), the causal element mask is applied only where a
// range passes a row's limit, the softmax runs in fp32 with a vectorisable exp, and O = P V is one sgemm per
// range. Items run in parallel with single-threaded OpenBLAS calls (restored afterwards).
#include "sparsefill/blocked_attention.hpp"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "core/parallel.hpp"
#include "reference/attention_validation.hpp"
#include "sparsefill/error.hpp"

namespace sparsefill {
namespace {

constexpr std::int64_t kDenseRows = 128;
constexpr float kMinusInf = -std::numeric_limits<float>::infinity();

// e^x for x <= 0 (or -inf): 2^(x log2 e) by rounding to the nearest integer n (the 1.5 * 2^23 trick, no
// library call, so loops over it vectorise), a degree-6 Taylor polynomial of 2^f on |f| <= 1/2 (truncation
// < 1.3e-7), and n added to the exponent bits. Results under 2^-126 are flushed to 0, so -inf gives 0.
inline float exp_nonpositive(float x) {
  const float t = std::max(x * 1.44269504088896341f, -127.0f);
  const float n = (t + 12582912.0f) - 12582912.0f;
  const float f = t - n;
  const float p =
      1.0f + f * (0.693147181f +
                  f * (0.240226507f + f * (0.0555041087f + f * (0.00961812911f + f * (0.00133335581f + f * 1.54035304e-4f)))));
  std::int32_t bits;
  std::memcpy(&bits, &p, sizeof bits);
  bits += static_cast<std::int32_t>(n) * (1 << 23);
  float y;
  std::memcpy(&y, &bits, sizeof y);
  return t < -126.0f ? 0.0f : y;
}

struct KeyRange {
  std::int64_t begin, end;
};

// Restores OpenBLAS's thread count when the parallel section ends (also on an exception).
class SingleThreadedBlas {
 public:
  SingleThreadedBlas() : saved_(openblas_get_num_threads()) { openblas_set_num_threads(1); }
  ~SingleThreadedBlas() { openblas_set_num_threads(saved_); }
  SingleThreadedBlas(const SingleThreadedBlas&) = delete;
  SingleThreadedBlas& operator=(const SingleThreadedBlas&) = delete;

 private:
  int saved_;
};

class BlockedRunner {
 public:
  BlockedRunner(const TensorView& q, const TensorView& k, const TensorView& v, const AttentionProblem& p,
                const BlockMask* mask, const std::int32_t* key_order, const AttentionOptions& options,
                const ReferenceOutputs& outputs)
      : q_(q), k_(k), v_(v), p_(p), mask_(mask), order_(key_order), causal_(options.causal), out_(outputs) {
    scale_ = static_cast<float>(options.scale > 0 ? options.scale : 1.0 / std::sqrt(static_cast<double>(p.head_dim)));
    rows_ = mask ? mask->block_q() : kDenseRows;
    tiles_ = ceil_div(p.max_seqlen_q(), rows_);
  }

  void run() const {
    SingleThreadedBlas single;
    parallel_for(p_.batch * p_.heads_q * tiles_, [&](std::int64_t item) {
      run_item(item / (p_.heads_q * tiles_), (item / tiles_) % p_.heads_q, item % tiles_);
    });
  }

 private:
  const float* row_ptr(const TensorView& t, std::int64_t b, std::int64_t token, std::int64_t h) const {
    return static_cast<const float*>(t.data) + b * t.stride[0] + token * t.stride[1] + h * t.stride[2];
  }

  // The item's key ranges (positions), sorted and merged; with a key order the causal limit is per key.
  void key_ranges(std::int64_t b, std::int64_t hq, std::int64_t tile, std::int64_t last_row,
                  std::vector<KeyRange>& ranges) const {
    const std::int64_t lk = p_.seqlen_k[b], lq = p_.seqlen_q[b];
    const std::int64_t limit = causal_ && !order_ ? std::clamp<std::int64_t>(last_row + lk - lq + 1, 0, lk) : lk;
    ranges.clear();
    if (!mask_) {
      if (limit > 0) ranges.push_back({0, limit});
      return;
    }
    const std::int64_t mh = mask_->mask_head_of(hq, p_.heads_q, p_.heads_kv);
    const std::int32_t* row = mask_->row_indices(b, mh, tile);
    for (std::int32_t n = 0; n < mask_->row_count(b, mh, tile); ++n) {
      const std::int64_t begin = row[n] * mask_->block_k(), end = std::min(begin + mask_->block_k(), limit);
      if (begin < end) ranges.push_back({begin, end});
    }
    std::sort(ranges.begin(), ranges.end(), [](const KeyRange& x, const KeyRange& y) { return x.begin < y.begin; });
    std::size_t merged = 0;
    for (std::size_t i = 1; i < ranges.size(); ++i) {
      if (ranges[i].begin == ranges[merged].end) {
        ranges[merged].end = ranges[i].end;
      } else {
        ranges[++merged] = ranges[i];
      }
    }
    if (!ranges.empty()) ranges.resize(merged + 1);
  }

  // Rows of k or v for positions [r.begin, r.end): the strided view itself, or (key order) a gathered copy.
  const float* keys_of(const TensorView& t, std::int64_t b, std::int64_t hk, const std::int32_t* order,
                       const KeyRange& r, std::vector<float>& gathered, std::int64_t& ld) const {
    const std::int64_t d = p_.head_dim;
    if (!order) {
      ld = t.stride[1];
      return row_ptr(t, b, r.begin, hk);
    }
    gathered.resize(static_cast<std::size_t>((r.end - r.begin) * d));
    for (std::int64_t j = r.begin; j < r.end; ++j)
      std::copy_n(row_ptr(t, b, order[j], hk), d, gathered.data() + (j - r.begin) * d);
    ld = d;
    return gathered.data();
  }

  void run_item(std::int64_t b, std::int64_t hq, std::int64_t tile) const {
    thread_local std::vector<float> scores, acc, gathered;
    thread_local std::vector<KeyRange> ranges;
    const std::int64_t lq = p_.seqlen_q[b], lk = p_.seqlen_k[b], d = p_.head_dim, shift = lk - lq;
    const std::int64_t row0 = tile * rows_, rows = std::min(rows_, lq - row0);
    if (rows <= 0) return;
    const std::int64_t hk = p_.kv_head_of(hq);
    const std::int32_t* order = order_ ? order_ + (b * p_.heads_q + hq) * p_.max_seqlen_k() : nullptr;
    key_ranges(b, hq, tile, row0 + rows - 1, ranges);
    std::int64_t n = 0;
    for (const KeyRange& r : ranges) n += r.end - r.begin;
    scores.resize(static_cast<std::size_t>(rows * std::max<std::int64_t>(n, 1)));
    const float* q = row_ptr(q_, b, row0, hq);
    std::int64_t offset = 0;
    for (const KeyRange& r : ranges) {
      std::int64_t ld = 0;
      const float* keys = keys_of(k_, b, hk, order, r, gathered, ld);
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(rows), static_cast<int>(r.end - r.begin),
                  static_cast<int>(d), scale_, q, static_cast<int>(q_.stride[1]), keys, static_cast<int>(ld), 0.0f,
                  scores.data() + offset, static_cast<int>(n));
      offset += r.end - r.begin;
    }
    std::vector<float> row_sum(static_cast<std::size_t>(rows)), row_max(static_cast<std::size_t>(rows));
    for (std::int64_t i = 0; i < rows; ++i) {
      float* s = scores.data() + i * n;
      if (causal_) mask_row(s, ranges, row0 + i + shift, order);
      float m = kMinusInf;
      for (std::int64_t j = 0; j < n; ++j) m = std::max(m, s[j]);
      float sum = 0.0f;
      if (m == kMinusInf) {
        std::fill(s, s + n, 0.0f);  // no visible key in the row: P = 0
      } else {
        for (std::int64_t j = 0; j < n; ++j) {
          s[j] = exp_nonpositive(s[j] - m);
          sum += s[j];
        }
      }
      row_max[i] = m;
      row_sum[i] = sum;
    }
    acc.assign(static_cast<std::size_t>(rows * d), 0.0f);
    offset = 0;
    for (const KeyRange& r : ranges) {
      std::int64_t ld = 0;
      const float* values = keys_of(v_, b, hk, order, r, gathered, ld);
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(rows), static_cast<int>(d),
                  static_cast<int>(r.end - r.begin), 1.0f, scores.data() + offset, static_cast<int>(n), values,
                  static_cast<int>(ld), 1.0f, acc.data(), static_cast<int>(d));
      offset += r.end - r.begin;
    }
    write_rows(b, hq, row0, rows, acc, row_max, row_sum);
  }

  // Sets to -inf the scores of keys after `last_key` (original positions) in one row laid out by the ranges.
  static void mask_row(float* s, const std::vector<KeyRange>& ranges, std::int64_t last_key,
                       const std::int32_t* order) {
    std::int64_t offset = 0;
    for (const KeyRange& r : ranges) {
      if (!order && r.end - 1 <= last_key) {  // the whole range is visible
        offset += r.end - r.begin;
        continue;
      }
      for (std::int64_t j = r.begin; j < r.end; ++j) {
        const std::int64_t key = order ? order[j] : j;
        if (key > last_key) s[offset + (j - r.begin)] = kMinusInf;
      }
      offset += r.end - r.begin;
    }
  }

  // out = acc / sum (0 for a row without a visible key), lse = max + log(sum) (-inf for such a row).
  void write_rows(std::int64_t b, std::int64_t hq, std::int64_t row0, std::int64_t rows, const std::vector<float>& acc,
                  const std::vector<float>& row_max, const std::vector<float>& row_sum) const {
    const std::int64_t d = p_.head_dim;
    const TensorView& out = out_.out;
    for (std::int64_t i = 0; i < rows; ++i) {
      float* o = static_cast<float*>(out.data) + b * out.stride[0] + (row0 + i) * out.stride[1] + hq * out.stride[2];
      const bool empty = !(row_sum[i] > 0.0f);
      const float inv = empty ? 0.0f : 1.0f / row_sum[i];
      for (std::int64_t c = 0; c < d; ++c) o[c] = acc[i * d + c] * inv;
      if (out_.lse.data) {
        store_from_double(out_.lse.data, out_.lse.dtype, (b * p_.heads_q + hq) * p_.max_seqlen_q() + row0 + i,
                          empty ? -std::numeric_limits<double>::infinity()
                                : static_cast<double>(row_max[i]) + std::log(static_cast<double>(row_sum[i])));
      }
    }
  }

  const TensorView &q_, &k_, &v_;
  const AttentionProblem& p_;
  const BlockMask* mask_;
  const std::int32_t* order_;
  bool causal_;
  const ReferenceOutputs& out_;
  float scale_ = 1.0f;
  std::int64_t rows_ = kDenseRows, tiles_ = 0;
};

}  // namespace

void blocked_attention(const TensorView& q, const TensorView& k, const TensorView& v, const BlockMask* mask,
                       const std::vector<std::int32_t>* key_order, const AttentionOptions& options,
                       const ReferenceOutputs& outputs) {
  const AttentionProblem problem = validate_attention_call(q, k, v, {}, mask, key_order, options, outputs);
  require(q.dtype == DType::kFP32, "q", "blocked attention takes fp32 inputs, got " + dtype_name(q.dtype));
  require(outputs.out.dtype == DType::kFP32, "out", "blocked attention writes fp32, got " + dtype_name(outputs.out.dtype));
  require(outputs.block_mass.data == nullptr, "block_mass", "is not offered by blocked attention (use the reference)");
  BlockedRunner(q, k, v, problem, mask, key_order ? key_order->data() : nullptr, options, outputs).run();
}

}  // namespace sparsefill
