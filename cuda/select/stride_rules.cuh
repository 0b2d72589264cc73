// The block rules of the stride selectors on one warp (algorithms.md §0.3, §2.3 steps 5-6, §4.2), matching
// src/select/rr_selector.cpp and xattention_selector.cpp with select_t3_reference / select_t3_clean.
//
// T3 as the reference behaves, in closed form: with F forced blocks (column 0 and/or the diagonal) ranked first
// and the other blocks o_1, o_2, ... by score, o_k is kept iff fm + S(k - 1 - lag) < tau * total (fm: the forced
// mass, S(n): the mass of o_1..o_n, lag = 2 - F, because entry k of the ranking is compared with the prefix sum of
// the list [0, fm, o_1, ...] before it); any candidate that fails selects column 0. So the kept others are the T1
// prefix C (base fm) plus the next `lag` blocks; the row's non-causal blocks (score 0, ranked last) only matter
// for whether some candidate failed. A total of 0 keeps only the forced blocks and column 0.
// tests/select/test_top_p_rules.cpp checks this form against select_t3_reference on random rows.
#pragma once
#include <type_traits>

#include "select/ranked_cut.cuh"
#include "select/stride_scoring.cuh"

namespace sparsefill::cuda::select {

// XAttention's default chunk: max(min(max(2048, next_pow2(L)), 128 * 1024 * 2048 / next_pow2(L)), 2048).
__device__ inline long long reference_chunk_tokens(long long lk) {
  long long p2 = 1;
  while (p2 < lk) p2 <<= 1;
  const long long a = p2 > 2048 ? p2 : 2048, b = 128LL * 1024 * 2048 / p2;
  const long long m = a < b ? a : b;
  return m > 2048 ? m : 2048;
}

// T3 over one row of block scores (row[v], v < nk: non-negative, read by lane as in ranked_cut.cuh), before the
// causal tril.
template <int kItems>
__device__ unsigned long long t3_row(const double* row, int nk, int candidates, bool column0_forced, int diagonal,
                                     bool has_diagonal, double tau, bool clean, CutScratch& scratch) {
  const double total = set_sum<kItems>(row, blocks_below<kItems>(nk)), required = tau * total;
  unsigned long long forced = 0;
  if ((column0_forced || clean) && nk > 0) forced |= block_bit(0);
  if (has_diagonal) forced |= block_bit(diagonal);
  const double fm = set_sum<kItems>(row, forced);
  if (clean) return forced | cut<kItems>(row, candidates, forced, kT1, required, fm, scratch);
  const unsigned long long column0 = nk > 0 ? block_bit(0) : 0ull;
  if (!(required > 0)) return forced | column0;  // every entry fails
  const unsigned long long prefix = cut<kItems>(row, candidates, forced, kT1, required, fm, scratch);
  const int f = warp_count(forced), kept = warp_count(prefix);
  const int causal_others = warp_count(blocks_below<kItems>(candidates) & ~forced), all_others = nk - f;
  const int lag = f >= 2 ? 0 : 2 - f;
  unsigned long long out = forced | prefix;
  int fitting = kept;  // how many of all the others pass the prefix test
  if (kept < causal_others) {
    for (int i = 0; i < lag; ++i) out |= best_outside<kItems>(row, candidates, out);
  } else {
    if (fm + set_sum<kItems>(row, prefix) < required) fitting = all_others;  // the zero blocks pass too
  }
  if (min(fitting + lag, all_others) < all_others) out |= column0;
  return out;
}

// The kept blocks of mask row u of one (sequence, query head) from its block scores row[v], v < nk.
template <int kItems>
__device__ unsigned long long stride_rule(const StrideParams& p, const double* row, int u, int nq, int nk, int lk,
                                          CutScratch& scratch) {
  const int shift = nk - nq, diagonal = u + shift;
  const bool has_diagonal = diagonal >= 0 && diagonal < nk;
  const int candidates = p.causal ? min(max(u + shift + 1, 0), nk) : nk;
  const unsigned long long causal = blocks_below<kItems>(candidates);
  const unsigned long long diagonal_bit = has_diagonal ? block_bit(diagonal) : 0ull;
  const unsigned long long column0 = nk > 0 ? block_bit(0) : 0ull;
  unsigned long long kept;
  if (p.rr && p.rule_v2) {
    const double total = set_sum<kItems>(row, blocks_below<kItems>(nk));
    kept = total > 0 ? cut<kItems>(row, candidates, 0ull, kT1, p.tau * total, 0.0, scratch) & causal : 0ull;
    kept |= column0 | diagonal_bit;
  } else {
    bool column0_forced = shift > 0;
    if (!p.rr) {
      const int block = p.lengths.block;
      const long long chunk = p.chunk_tokens > 0 ? p.chunk_tokens : reference_chunk_tokens(lk);
      const int chunk_blocks = static_cast<int>(chunk / block);
      column0_forced = shift + (u / chunk_blocks) * chunk_blocks > 0;
    }
    kept = t3_row<kItems>(row, nk, candidates, column0_forced, diagonal, has_diagonal, p.tau, p.t3_clean, scratch) &
           causal;
  }
  if (p.rr) {
    if (p.keep_sink) kept |= column0;
    if (p.keep_last_row && u == nq - 1) kept = causal;
  } else {
    if (p.keep_sink && u == 0) kept = blocks_below<kItems>(nk);
    if (p.keep_recent) kept |= diagonal_bit;
  }
  return kept;
}

// Calls f(std::integral_constant<int, kItems>{}) with the rule's block items a lane for rows of nk key
// blocks: 8, 32 or 64 (up to 256, 1024 or 2048 blocks).
template <typename F>
void with_rule_items(int nk, F&& f) {
  if (nk <= 8 * 32) {
    f(std::integral_constant<int, 8>{});
  } else if (nk <= 32 * 32) {
    f(std::integral_constant<int, 32>{});
  } else {
    f(std::integral_constant<int, 64>{});
  }
}

}  // namespace sparsefill::cuda::select
