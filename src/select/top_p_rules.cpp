#include "select/top_p_rules.hpp"

#include <algorithm>
#include <iterator>
#include <numeric>

namespace sparsefill {
namespace {

std::vector<std::int32_t> sorted(std::vector<std::int32_t> v) {
  std::sort(v.begin(), v.end());
  return v;
}

double row_total(const double* scores, std::int64_t n) {
  return std::accumulate(scores, scores + n, 0.0);
}

// The forced blocks of a T3 row (each counted once) and their mass.
struct ForcedSet {
  std::vector<char> is_forced;
  double mass = 0;
  ForcedSet(const double* scores, std::int64_t n, const std::vector<std::int32_t>& forced)
      : is_forced(static_cast<std::size_t>(n), 0) {
    for (std::int32_t f : forced) {
      if (!is_forced[f]) mass += scores[f];
      is_forced[f] = 1;
    }
  }
};

}  // namespace

std::vector<std::int32_t> order_by_score(const double* scores, std::vector<std::int32_t> candidates) {
  std::stable_sort(candidates.begin(), candidates.end(), [&](std::int32_t a, std::int32_t b) {
    return scores[a] > scores[b] || (scores[a] == scores[b] && a < b);
  });
  return candidates;
}

std::vector<std::int32_t> select_t1(const double* scores, const std::vector<std::int32_t>& candidates,
                                    double p, double total) {
  std::vector<std::int32_t> kept;
  double before = 0;
  for (std::int32_t c : order_by_score(scores, candidates)) {
    if (!(before < p * total)) break;
    kept.push_back(c);
    before += scores[c];
  }
  return sorted(kept);
}

std::vector<std::int32_t> select_t2(const double* scores, const std::vector<std::int32_t>& candidates,
                                    double tau, double total) {
  std::vector<std::int32_t> kept;
  double cumulative = 0;
  for (std::int32_t c : order_by_score(scores, candidates)) {
    kept.push_back(c);
    cumulative += scores[c];
    if (cumulative >= tau * total) return sorted(kept);
  }
  return {};
}

std::vector<std::int32_t> select_t5(const double* scores, const std::vector<std::int32_t>& candidates,
                                    double gamma, double total) {
  std::vector<std::int32_t> kept;
  double cumulative = 0;
  for (std::int32_t c : order_by_score(scores, candidates)) {
    cumulative += scores[c];
    if (cumulative > gamma * total) break;
    kept.push_back(c);
  }
  return sorted(kept);
}

std::vector<std::int32_t> select_t4(const double* scores, const std::vector<std::int32_t>& candidates,
                                    double tau, double total) {
  std::vector<std::int32_t> kept = select_t5(scores, candidates, tau, total);
  if (kept.empty() && !candidates.empty()) kept = select_top_k(scores, candidates, 1);
  return kept;
}

std::vector<std::int32_t> select_top_k(const double* scores, const std::vector<std::int32_t>& candidates,
                                       std::int64_t k) {
  std::vector<std::int32_t> order = order_by_score(scores, candidates);
  order.resize(static_cast<std::size_t>(std::min<std::int64_t>(std::max<std::int64_t>(k, 0), order.size())));
  return sorted(order);
}

std::vector<std::int32_t> select_t3_reference(const double* scores, std::int64_t n,
                                              const std::vector<std::int32_t>& forced, double tau) {
  const double required = tau * row_total(scores, n);
  const ForcedSet set(scores, n, forced);
  std::vector<std::int32_t> forced_list, others;
  for (std::int32_t v = 0; v < n; ++v) (set.is_forced[v] ? forced_list : others).push_back(v);
  std::vector<std::int32_t> order = order_by_score(scores, forced_list);
  const std::vector<std::int32_t> ranked_others = order_by_score(scores, others);
  order.insert(order.end(), ranked_others.begin(), ranked_others.end());
  // The list whose prefix sums are compared: [0, forced_mass, o_1, o_2, ...] (o: non-forced scores,
  // descending).
  std::vector<double> counted = {0.0, set.mass};
  for (std::int32_t o : ranked_others) counted.push_back(scores[o]);
  std::vector<char> keep = set.is_forced;
  double prefix = 0;
  for (std::int64_t k = 0; k < n; ++k) {
    if (prefix < required) {
      keep[order[k]] = 1;
    } else {
      keep[0] = 1;  // a rejected candidate's index is replaced by 0, which is then set
    }
    if (static_cast<std::size_t>(k) < counted.size()) prefix += counted[static_cast<std::size_t>(k)];
  }
  std::vector<std::int32_t> kept;
  for (std::int32_t v = 0; v < n; ++v) {
    if (keep[v]) kept.push_back(v);
  }
  return kept;
}

std::vector<std::int32_t> select_t3_clean(const double* scores, std::int64_t n,
                                          const std::vector<std::int32_t>& forced, double tau) {
  const double required = tau * row_total(scores, n);
  const ForcedSet set(scores, n, forced);
  double before = set.mass;
  std::vector<std::int32_t> kept(forced.begin(), forced.end()), others;
  for (std::int32_t v = 0; v < n; ++v) {
    if (!set.is_forced[v]) others.push_back(v);
  }
  for (std::int32_t c : order_by_score(scores, others)) {
    if (!(before < required)) break;
    kept.push_back(c);
    before += scores[c];
  }
  std::sort(kept.begin(), kept.end());
  kept.erase(std::unique(kept.begin(), kept.end()), kept.end());
  return kept;
}

std::vector<std::int32_t> merge_blocks(const std::vector<std::int32_t>& a,
                                       const std::vector<std::int32_t>& b) {
  std::vector<std::int32_t> out;
  std::set_union(a.begin(), a.end(), b.begin(), b.end(), std::back_inserter(out));
  return out;
}

}  // namespace sparsefill
