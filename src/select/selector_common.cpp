#include "select/selector_common.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/parallel.hpp"
#include "select/top_p_rules.hpp"
#include "sparsefill/error.hpp"

namespace sparsefill {

std::vector<float> load_head_rows(const TensorView& t, const AttentionProblem& p, bool query_side,
                                  std::int64_t b, std::int64_t head) {
  const std::int64_t length = query_side ? p.seqlen_q[b] : p.seqlen_k[b];
  const std::int64_t start = query_side ? p.start_q[b] : p.start_k[b];
  std::vector<float> rows(static_cast<std::size_t>(length * p.head_dim));
  for (std::int64_t s = 0; s < length; ++s) {
    const std::int64_t offset = token_offset(t, p.varlen, start, b, s, head);
    for (std::int64_t c = 0; c < p.head_dim; ++c) {
      rows[s * p.head_dim + c] = static_cast<float>(load_as_double(t.data, t.dtype, offset + c));
    }
  }
  return rows;
}

std::vector<double> pool_blocks(const std::vector<float>& rows, std::int64_t length, std::int64_t dim,
                                std::int64_t block, bool divide_by_count) {
  const std::int64_t n = ceil_div(length, block);
  std::vector<double> pooled(static_cast<std::size_t>(n * dim), 0.0);
  for (std::int64_t s = 0; s < length; ++s) {
    double* dst = pooled.data() + (s / block) * dim;
    for (std::int64_t c = 0; c < dim; ++c) dst[c] += rows[s * dim + c];
  }
  for (std::int64_t u = 0; u < n; ++u) {
    const double count = divide_by_count ? static_cast<double>(std::min(block, length - u * block))
                                         : static_cast<double>(block);
    for (std::int64_t c = 0; c < dim; ++c) pooled[u * dim + c] /= count;
  }
  return pooled;
}

double dot_product(const double* a, const double* b, std::int64_t n) {
  double s = 0;
  for (std::int64_t i = 0; i < n; ++i) s += a[i] * b[i];
  return s;
}

double dot_product(const float* a, const double* b, std::int64_t n) {
  double s = 0;
  for (std::int64_t i = 0; i < n; ++i) s += static_cast<double>(a[i]) * b[i];
  return s;
}

double dot_product(const float* a, const float* b, std::int64_t n) {
  double s = 0;
  for (std::int64_t i = 0; i < n; ++i) s += static_cast<double>(a[i]) * b[i];
  return s;
}

BlockGeometry::BlockGeometry(std::int64_t seqlen_q, std::int64_t seqlen_k, std::int64_t block, bool is_causal)
    : nq(ceil_div(seqlen_q, block)), nk(ceil_div(seqlen_k, block)), shift(nk - nq), causal(is_causal) {}

std::int64_t BlockGeometry::last_candidate(std::int64_t u) const {
  return causal ? std::clamp<std::int64_t>(u + shift + 1, 0, nk) : nk;
}

std::vector<std::int32_t> block_range(std::int64_t n) {
  std::vector<std::int32_t> c(static_cast<std::size_t>(std::max<std::int64_t>(n, 0)));
  for (std::size_t v = 0; v < c.size(); ++v) c[v] = static_cast<std::int32_t>(v);
  return c;
}

std::vector<std::int32_t> BlockGeometry::candidates(std::int64_t u) const {
  return block_range(last_candidate(u));
}

std::vector<std::int32_t> BlockGeometry::with_forced(std::int64_t u, std::vector<std::int32_t> blocks,
                                                     bool sink, bool diagonal) const {
  if (sink && nk > 0) blocks = merge_blocks(blocks, {0});
  if (diagonal && has_diagonal(u))
    blocks = merge_blocks(blocks, {static_cast<std::int32_t>(this->diagonal(u))});
  return blocks;
}

std::vector<std::vector<std::vector<double>>> pool_keys_per_kv_head(const TensorView& k,
                                                                    const AttentionProblem& p,
                                                                    std::int64_t block) {
  std::vector<std::vector<std::vector<double>>> pooled(static_cast<std::size_t>(p.batch));
  for (std::int64_t b = 0; b < p.batch; ++b) {
    for (std::int64_t g = 0; g < p.heads_kv; ++g) {
      pooled[b].push_back(pool_blocks(load_head_rows(k, p, false, b, g), p.seqlen_k[b], p.head_dim, block));
    }
  }
  return pooled;
}

std::vector<std::int32_t> BlockGeometry::causal_only(std::int64_t u, std::vector<std::int32_t> blocks) const {
  const std::int64_t end = last_candidate(u);
  blocks.erase(std::remove_if(blocks.begin(), blocks.end(), [&](std::int32_t v) { return v >= end; }),
               blocks.end());
  return blocks;
}

bool softmax_over(const double* logits, const std::vector<std::int32_t>& candidates, std::int64_t n,
                  double* probs) {
  std::fill(probs, probs + n, 0.0);
  if (candidates.empty()) return false;
  double m = -std::numeric_limits<double>::infinity();
  for (std::int32_t v : candidates) m = std::max(m, logits[v]);
  double z = 0;
  for (std::int32_t v : candidates) z += (probs[v] = std::exp(logits[v] - m));
  for (std::int32_t v : candidates) probs[v] /= z;
  return true;
}

std::vector<double> stride_block_scores(
    const BlockGeometry& geo, std::int64_t rows, std::int64_t key_strides, std::int64_t strides_per_block,
    const std::function<std::int64_t(std::int64_t, double*)>& row_logits) {
  std::vector<double> blocks(static_cast<std::size_t>(geo.nq * geo.nk), 0.0);
  parallel_for(ceil_div(rows, strides_per_block), [&](std::int64_t u) {
    std::vector<double> logits(static_cast<std::size_t>(key_strides)),
        probs(static_cast<std::size_t>(key_strides));
    double* block_row = blocks.data() + u * geo.nk;
    for (std::int64_t i = u * strides_per_block; i < std::min(rows, (u + 1) * strides_per_block); ++i) {
      if (!softmax_over(logits.data(), block_range(row_logits(i, logits.data())), key_strides, probs.data()))
        continue;
      for (std::int64_t j = 0; j < key_strides; ++j) block_row[j / strides_per_block] += probs[j];
    }
  });
  return blocks;
}

std::vector<std::int32_t> select_t3_row(const double* row, const BlockGeometry& geo, std::int64_t u,
                                        bool column0_forced, double tau, bool reference) {
  std::vector<std::int32_t> forced;
  if ((column0_forced || !reference) && geo.nk > 0) forced.push_back(0);
  if (geo.has_diagonal(u) && (forced.empty() || geo.diagonal(u) != 0))
    forced.push_back(static_cast<std::int32_t>(geo.diagonal(u)));
  std::vector<std::int32_t> kept =
      reference ? select_t3_reference(row, geo.nk, forced, tau) : select_t3_clean(row, geo.nk, forced, tau);
  return geo.causal_only(u, std::move(kept));
}

BlockMask build_per_head_mask(const AttentionProblem& p, std::int64_t block,
                              const std::function<void(std::int64_t, std::int64_t, BlockMask&)>& rows) {
  BlockMask mask(p.batch, p.heads_q, ceil_div(p.max_seqlen_q(), block), ceil_div(p.max_seqlen_k(), block),
                 block, block);
  parallel_for(p.batch * p.heads_q,
               [&](std::int64_t item) { rows(item / p.heads_q, item % p.heads_q, mask); });
  return mask;
}

std::vector<double> gather_block_scores(
    const AttentionProblem& p, std::int64_t block,
    const std::function<std::vector<double>(std::int64_t, std::int64_t)>& head_scores) {
  const std::int64_t nq = ceil_div(p.max_seqlen_q(), block), nk = ceil_div(p.max_seqlen_k(), block);
  std::vector<double> scores(static_cast<std::size_t>(p.batch * p.heads_q * nq * nk), 0.0);
  parallel_for(p.batch * p.heads_q, [&](std::int64_t item) {
    const std::int64_t b = item / p.heads_q, h = item % p.heads_q;
    const std::int64_t rows = ceil_div(p.seqlen_q[b], block), cols = ceil_div(p.seqlen_k[b], block);
    const std::vector<double> head = head_scores(b, h);
    require(static_cast<std::int64_t>(head.size()) == rows * cols, "head_scores", "must hold nq * nk scores");
    for (std::int64_t u = 0; u < rows; ++u)
      std::copy(head.begin() + u * cols, head.begin() + (u + 1) * cols,
                scores.begin() + (item * nq + u) * nk);
  });
  return scores;
}

RankedLines gather_ranked_lines(
    const AttentionProblem& p, std::int64_t width,
    const std::function<HeadRankedLines(std::int64_t, std::int64_t)>& head_lines) {
  RankedLines out;
  out.width = width;
  out.scores.assign(static_cast<std::size_t>(p.batch * p.heads_q * 2 * width), 0.0);
  out.kept.assign(static_cast<std::size_t>(p.batch * p.heads_q * 2), 0);
  parallel_for(p.batch * p.heads_q, [&](std::int64_t item) {
    const HeadRankedLines head = head_lines(item / p.heads_q, item % p.heads_q);
    require(static_cast<std::int64_t>(std::max(head.vertical.size(), head.slash.size())) <= width,
            "head_lines", "must hold at most width lines a kind");
    std::copy(head.vertical.begin(), head.vertical.end(), out.scores.begin() + 2 * item * width);
    std::copy(head.slash.begin(), head.slash.end(), out.scores.begin() + (2 * item + 1) * width);
    out.kept[static_cast<std::size_t>(2 * item)] = head.keep_vertical;
    out.kept[static_cast<std::size_t>(2 * item + 1)] = head.keep_slash;
  });
  return out;
}

}  // namespace sparsefill
