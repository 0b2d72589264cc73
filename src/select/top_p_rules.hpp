// The cumulative-threshold rules of algorithms.md §0.2-0.4 on one row of block scores. Candidates are ordered
// by descending score, ties by the lower block index (§0.4). Every function returns the kept block indices,
// sorted.
#pragma once
#include <cstdint>
#include <vector>

namespace sparsefill {

// Candidates ordered by descending score, ties by lower index.
std::vector<std::int32_t> order_by_score(const double* scores, std::vector<std::int32_t> candidates);

// T1: keep sorted item k iff (mass before it) < p * total. Includes the item that crosses the threshold.
std::vector<std::int32_t> select_t1(const double* scores, const std::vector<std::int32_t>& candidates,
                                    double p, double total);
// T2: keep items up to the first whose cumulative mass >= tau * total; nothing when no prefix reaches it.
std::vector<std::int32_t> select_t2(const double* scores, const std::vector<std::int32_t>& candidates,
                                    double tau, double total);
// T4 (SpargeAttn): keep the items whose cumulative mass <= tau * total, but at least one (the crossing item
// is not kept).
std::vector<std::int32_t> select_t4(const double* scores, const std::vector<std::int32_t>& candidates,
                                    double tau, double total);
// T5: keep items whose cumulative mass <= gamma * total (the crossing item is not kept).
std::vector<std::int32_t> select_t5(const double* scores, const std::vector<std::int32_t>& candidates,
                                    double gamma, double total);
// The k highest-scoring candidates.
std::vector<std::int32_t> select_top_k(const double* scores, const std::vector<std::int32_t>& candidates,
                                       std::int64_t k);

// T3 as XAttention's find_blocks_chunked behaves (§0.3), on a row of `n` scores (non-causal blocks score 0):
// `forced` blocks first, the rest by score; the k-th entry of that order is compared with the sum of the
// first k entries of [0, forced_mass, o_1, o_2, ...] and kept iff it is < tau * row total; every rejected
// entry selects column 0. The caller clears blocks above the causal diagonal afterwards.
std::vector<std::int32_t> select_t3_reference(const double* scores, std::int64_t n,
                                              const std::vector<std::int32_t>& forced, double tau);
// T3 clean: `forced` kept, then candidates while the true mass before them (forced mass included) < tau *
// total.
std::vector<std::int32_t> select_t3_clean(const double* scores, std::int64_t n,
                                          const std::vector<std::int32_t>& forced, double tau);

// Sorted union of two index lists.
std::vector<std::int32_t> merge_blocks(const std::vector<std::int32_t>& a,
                                       const std::vector<std::int32_t>& b);

}  // namespace sparsefill
