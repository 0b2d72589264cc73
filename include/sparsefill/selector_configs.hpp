// Configuration of every selector, with the defaults of shared/spec/algorithms.md. Each config lists its
// parameters (name, help, target) so the CLI and the evaluation sweep can set them by name.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace sparsefill {

struct ParamSpec {
  enum class Kind { kDouble, kInt, kBool, kChoice };
  std::string name;  // flag name without the method prefix, e.g. "p-high"
  std::string help;
  Kind kind;
  void* target;
  std::vector<std::string> choices;  // kChoice: allowed values, stored as std::string
};

struct PrismConfig {
  double p_high = 0.95, p_low = 0.95;  // T1 thresholds per band
  // Band sizes in real dims (pairs = d / 2); 0 = scaled to head_dim as d/2 and 3d/4 (the published 64 and 96
  // at head_dim 128; the spec gives no values for other head dims, so the proportion is kept).
  std::int64_t d_high = 0, d_low = 0;
  bool calibrate = true;  // energy-based temperature; false = the tau = 1 ablation
  bool force_sink = true, force_recent = true;
  std::vector<ParamSpec> params();
};

struct RRConfig {
  std::int64_t stride = 8;
  double tau = 0.95;
  std::string rule = "v1";       // v1: T3 (t3_reference); v2: T1 then causal AND, OR column 0 and diagonal
  std::string t3 = "reference";  // v1's T3 flavour: reference | clean
  std::string offset = "code";   // sampled offset: code = h mod S; mirrored = S - 1 - (h mod S)
  // Stride key sums: exact (fp64); rounded: the v2 kernel's choice, the sum cast to K's dtype (via fp32)
  // before the dot product. On the GPU, exact sums cost two products per logit (hi + lo parts).
  std::string key_sums = "exact";
  // GPU tiled kernel only (the CPU reference's softmax is the same either way): two passes over the key
  // strides (maxima and exp-sums, then probabilities), or one that keeps each row's per-block exp-sums in a
  // workspace scratch and rescales them at the end (half the tensor and exponential work, ~78 MB more
  // workspace at 128K on a 132-SM GPU).
  std::string passes = "two";
  bool keep_sink = true, keep_last_row = true;
  std::vector<ParamSpec> params();
  // Throws Error naming the setting ("rr.rule", "rr.tau", ...) when a value is outside its range: a choice
  // not among its values, tau outside (0, 1], and, given the mask block in tokens (block > 0; 0 before it is
  // known), a stride that does not divide it. The CPU and GPU selectors call it.
  void check(std::int64_t block = 0) const;
};

struct PBSConfig {
  std::int64_t segment = 256;
  double tau = 0.9;  // T2 on the off-segment mass
  std::vector<ParamSpec> params();
};

struct MeanPoolConfig {
  std::string rule = "t2";  // t1 | t2 | t4 | t5 | topk (the rules of algorithms.md §0.2; T3 is XAttention's)
  double threshold = 0.9;
  std::int64_t top_k = 16;
  bool force_sink = true, force_diagonal = true;
  std::vector<ParamSpec> params();
};

struct XAttentionConfig {
  std::int64_t stride = 8;
  double tau = 0.9;
  std::string t3 = "reference";                 // reference | clean
  std::int64_t chunk_size = 0;                  // query tokens per chunk; 0 = the reference formula
  bool keep_sink = false, keep_recent = false;  // reference defaults (keep_sink sets row 0: the code's quirk)
  std::string passes = "two";                   // GPU tiled kernel: two | one (as RRConfig::passes)
  std::vector<ParamSpec> params();
  // As RRConfig::check ("xattn.*"); with the block also a chunk size that is not 0 or a multiple of it.
  void check(std::int64_t block = 0) const;
};

struct FlexPrefillConfig {
  double gamma = 0.95;            // coverage (README 0.9; the Prism/PBS/RR comparisons use 0.95)
  double tau = 0.1;               // sqrt-JS threshold for query-aware heads
  std::int64_t min_budget = 512;  // tokens
  std::int64_t max_budget = 0;    // tokens; 0 = none
  std::vector<ParamSpec> params();
};

struct MInferenceConfig {
  std::int64_t vertical_size = 1000, slash_size = 6096;  // PBS accuracy runs
  std::int64_t last_q = 64;
  std::vector<ParamSpec> params();
};

struct OracleConfig {
  double p = 0.95;  // T1 on the true block attention mass
  std::vector<ParamSpec> params();
};

}  // namespace sparsefill
