// Accuracy metrics (design note): everything here is measured against the dense softmax, whose per-block mass
// the CPU reference computes in the same pass as the dense output (ReferenceOutputs::block_mass).
#include <algorithm>
#include <cmath>
#include <functional>
#include <string>

#include "sparsefill/error.hpp"
#include "sparsefill/metrics.hpp"

namespace sparsefill {
namespace {

void check_block_mass(const TensorView& m, const AttentionProblem& p, std::int64_t nq, std::int64_t nk) {
  require_data(m, "block_mass");
  require(m.dtype == DType::kFP32 || m.dtype == DType::kFP64, "block_mass", "dtype must be fp32 or fp64");
  require(m.rank == 4 && m.shape[0] == p.batch && m.shape[1] == p.heads_q && m.shape[2] == nq &&
              m.shape[3] == nk && m.is_contiguous(),
          "block_mass",
          "must be contiguous [batch, heads_q, " + std::to_string(nq) + ", " + std::to_string(nk) +
              "], got " + m.shape_string());
}

double percentile(const std::vector<double>& sorted, double q) {
  const double pos = q * static_cast<double>(sorted.size() - 1);
  const auto lo = static_cast<std::size_t>(std::floor(pos));
  const std::size_t hi = std::min(lo + 1, sorted.size() - 1);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - static_cast<double>(lo));
}

}  // namespace

Summary summarize(std::vector<double> values) {
  Summary s;
  if (values.empty()) return s;
  std::sort(values.begin(), values.end());
  s.count = static_cast<std::int64_t>(values.size());
  s.min = values.front();
  s.max = values.back();
  double sum = 0;
  for (double v : values) sum += v;
  s.mean = sum / static_cast<double>(values.size());
  s.p10 = percentile(values, 0.1);
  s.p50 = percentile(values, 0.5);
  s.p90 = percentile(values, 0.9);
  return s;
}

RecallReport recall_from_lse(const TensorView& lse_sparse, const TensorView& lse_dense,
                             const AttentionProblem& p, std::int64_t block) {
  const std::int64_t width = p.max_seqlen_q();
  for (const auto* t : {&lse_sparse, &lse_dense}) {
    require(t->data != nullptr && (t->dtype == DType::kFP32 || t->dtype == DType::kFP64) && t->rank == 3 &&
                t->shape[0] == p.batch && t->shape[1] == p.heads_q && t->shape[2] == width &&
                t->is_contiguous(),
            t == &lse_sparse ? "lse_sparse" : "lse_dense",
            "must be contiguous fp32/fp64 [batch, heads_q, max_seqlen_q]");
  }
  require(block >= 1, "block", "must be positive");
  RecallReport report;
  report.per_head_rows.resize(p.heads_q);
  for (std::int64_t h = 0; h < p.heads_q; ++h) {
    for (std::int64_t b = 0; b < p.batch; ++b) {
      for (std::int64_t u = 0; u * block < p.seqlen_q[b]; ++u) {
        double sum = 0;
        std::int64_t rows = 0;
        for (std::int64_t i = u * block; i < std::min((u + 1) * block, p.seqlen_q[b]); ++i) {
          const std::int64_t at = (b * p.heads_q + h) * width + i;
          const double dense = load_as_double(lse_dense.data, lse_dense.dtype, at);
          if (std::isinf(dense)) continue;  // no visible key
          const double sparse = load_as_double(lse_sparse.data, lse_sparse.dtype, at);
          sum += std::isinf(sparse) ? 0.0 : std::min(1.0, std::exp(sparse - dense));
          ++rows;
        }
        if (rows > 0) report.per_head_rows[h].push_back(sum / static_cast<double>(rows));
      }
    }
    const Summary s = summarize(report.per_head_rows[h]);
    report.head_min.push_back(s.min);
    report.head_mean.push_back(s.mean);
  }
  return report;
}

OutputError output_error(const TensorView& out, const TensorView& reference,
                         const AttentionProblem& problem) {
  require(out.rank == reference.rank, "out", "rank differs from the reference's");
  for (int i = 0; i < out.rank; ++i)
    require(out.shape[i] == reference.shape[i], "out", "shape differs from the reference's");
  OutputError error;
  double diff_all = 0, ref_all = 0;
  for (std::int64_t h = 0; h < problem.heads_q; ++h) {
    double diff = 0, ref = 0;
    for (std::int64_t b = 0; b < problem.batch; ++b) {
      for (std::int64_t t = 0; t < problem.seqlen_q[b]; ++t) {
        const std::int64_t oo = token_offset(out, problem.varlen, problem.start_q[b], b, t, h);
        const std::int64_t ro = token_offset(reference, problem.varlen, problem.start_q[b], b, t, h);
        for (std::int64_t c = 0; c < problem.head_dim; ++c) {
          const double r = load_as_double(reference.data, reference.dtype, ro + c);
          const double e = load_as_double(out.data, out.dtype, oo + c) - r;
          diff += e * e;
          ref += r * r;
        }
      }
    }
    error.per_head.push_back(ref > 0 ? std::sqrt(diff / ref) : std::sqrt(diff));
    diff_all += diff;
    ref_all += ref;
  }
  error.overall = ref_all > 0 ? std::sqrt(diff_all / ref_all) : std::sqrt(diff_all);
  return error;
}

std::vector<double> blocks_needed_fraction(const TensorView& block_mass, const AttentionProblem& problem,
                                           bool causal, double mass) {
  require(mass > 0 && mass <= 1, "mass", "must be in (0, 1]");
  require(block_mass.rank == 4, "block_mass", "must be [batch, heads_q, nQb, nKb]");
  const std::int64_t nq = block_mass.shape[2], nk = block_mass.shape[3];
  require(nq >= 1 && nk >= 1, "block_mass", "is empty");
  const std::int64_t block = ceil_div(problem.max_seqlen_q(), nq);
  check_block_mass(block_mass, problem, nq, nk);
  std::vector<double> fractions;
  for (std::int64_t h = 0; h < problem.heads_q; ++h) {
    double needed = 0, visible = 0;
    for (std::int64_t b = 0; b < problem.batch; ++b) {
      for (std::int64_t u = 0; u < nq; ++u) {
        const std::int64_t n =
            visible_key_blocks(u, block, block, problem.seqlen_q[b], problem.seqlen_k[b], causal);
        if (n == 0) continue;
        std::vector<double> row(static_cast<std::size_t>(n));
        const std::int64_t base = ((b * problem.heads_q + h) * nq + u) * nk;
        for (std::int64_t v = 0; v < n; ++v)
          row[v] = load_as_double(block_mass.data, block_mass.dtype, base + v);
        std::sort(row.begin(), row.end(), std::greater<double>());
        double covered = 0;
        std::int64_t k = 0;
        while (k < n && covered < mass - 1e-12) covered += row[k++];
        needed += static_cast<double>(std::max<std::int64_t>(k, 1));
        visible += static_cast<double>(n);
      }
    }
    fractions.push_back(visible > 0 ? needed / visible : 0.0);
  }
  return fractions;
}

}  // namespace sparsefill
