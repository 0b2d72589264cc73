// Block selectors: given q, k (and v) they return a canonical block mask, per query head (PBS also a key
// order). Selectors know nothing of the attention kernels; kernels only consume masks.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "sparsefill/attention_problem.hpp"
#include "sparsefill/block_mask.hpp"
#include "sparsefill/rope.hpp"
#include "sparsefill/selector_configs.hpp"

namespace sparsefill {

struct SelectorInputs {
  TensorView q, k, v;      // FlashAttention layout (see attention_problem.hpp)
  VarlenSequences varlen;  // optional
  bool causal = true;
  std::int64_t block_size = kDefaultBlockSize;
  RopeLayout rope_layout = RopeLayout::kRotateHalf;  // how q/k pair their RoPE dims (Prism's bands)
};

struct Selection {
  BlockMask mask;  // over key blocks in the order the attention reads them (PBS: permuted order)
  // PBS only (empty otherwise): key_order[(b * heads_q + h) * max_seqlen_k + p] is the original index, within
  // sequence b, of the key that query head h reads at position p. Values move with their keys.
  std::vector<std::int32_t> key_order;
  std::int64_t segment = 0;  // PBS segment size (tokens) when key_order is set
};

class Selector {
 public:
  virtual ~Selector() = default;
  virtual std::string name() const = 0;
  virtual Selection select(const SelectorInputs& inputs) const = 0;
};

// Every selector's configuration; make_selector reads the one its method needs.
struct SelectorSettings {
  PrismConfig prism;
  RRConfig rr;
  PBSConfig pbs;
  MeanPoolConfig meanpool;
  XAttentionConfig xattn;
  FlexPrefillConfig flexprefill;
  MInferenceConfig minference;
  OracleConfig oracle;
  // The parameters of `method` (for CLI flags "--<method>-<name>"); empty for dense.
  std::vector<ParamSpec> params(const std::string& method);
  // Sets the method's main threshold (Prism p for both bands, RR/PBS/XAttention tau, mean pooling threshold,
  // FlexPrefill gamma, oracle p). MInference has none: Error("method").
  void set_threshold(const std::string& method, double value);
};

// PBS-Attn in its two steps (algorithms.md §3.3), for callers that compare key orders (the GPU selector ranks
// keys by an fp32 importance, this one by fp64). pbs_importance: the proxy importance of every key, fp64,
// [batch, heads_q, max_seqlen_k] (0 outside complete segments and for sequences of at most one segment).
// pbs_select_with_order: the mask of PBS on a given key order (Selection::key_order's layout), which must permute
// keys only within complete segments: Error("key_order") otherwise. make_selector("pbs") is
// pbs_select_with_order on the order that ranks each segment by pbs_importance (ties by index).
std::vector<double> pbs_importance(const SelectorInputs& inputs, const PBSConfig& config);
Selection pbs_select_with_order(const SelectorInputs& inputs, const PBSConfig& config,
                                std::vector<std::int32_t> key_order);

// The block scores the stride selectors rank (RRAttention, algorithms.md §2; XAttention, §4.2), fp64, for
// callers that compare masks selected from scores summed in another order (the GPU's fp32): each query-block
// row's summed stride probabilities, [batch, heads_q, ceil(max_seqlen_q / block), ceil(max_seqlen_k / block)]
// (zeros outside a sequence's blocks). Error(<parameter>) for an invalid configuration, as make_selector.
std::vector<double> rr_block_scores(const SelectorInputs& inputs, const RRConfig& config);
std::vector<double> xattention_block_scores(const SelectorInputs& inputs, const XAttentionConfig& config);
// The pooled selectors' block scores, fp64, likewise (for the GPU's fp32-precision softmax numerators): each
// row's causal block softmax of mean pooling, [batch, heads_q, nq, nk], and of Prism's bands, [2 (high, low),
// batch, heads_q, nq, nk]. Error(<parameter>) for an invalid configuration (Prism's bands).
std::vector<double> meanpool_block_scores(const SelectorInputs& inputs);
std::vector<double> prism_block_scores(const SelectorInputs& inputs, const PrismConfig& config);

// The line scores the vertical-slash selectors rank by top-k, fp64, likewise (for the GPU's fp32 logits and
// fp32-precision numerators), forced lines +inf: per (batch, query head), `scores` holds the vertical lines
// then the slash lines, [batch, heads_q, 2, width], and `kept` how many of each the top-k keeps,
// [batch, heads_q, 2]. MInference (algorithms.md §4.4): the last queries' column sums and diagonal sums by
// offset, width max_seqlen_k (zeros past a sequence's keys). FlexPrefill (§4.3): those sums pooled to key
// blocks (the slashes indexed as the reference's L - 1 - offset), width ceil(max_seqlen_k / block), the
// budgets in `kept` (zeros for sequences that run dense). Error(<parameter>) for invalid inputs or
// configuration, as the selectors.
struct RankedLines {
  std::vector<double> scores;
  std::vector<std::int64_t> kept;
  std::int64_t width = 0;
};
RankedLines minference_line_scores(const SelectorInputs& inputs, const MInferenceConfig& config);
RankedLines flexprefill_block_line_scores(const SelectorInputs& inputs, const FlexPrefillConfig& config);

// Known method names, in the order the CLI lists them.
std::vector<std::string> selector_names();
// Error("method") for an unknown name; Error(<parameter>) for an invalid configuration.
std::unique_ptr<Selector> make_selector(const std::string& method, const SelectorSettings& settings = {});

}  // namespace sparsefill
