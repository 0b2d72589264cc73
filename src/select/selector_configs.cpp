// Parameter lists of the selector configs (names are CLI flag suffixes).
#include "sparsefill/error.hpp"
#include "sparsefill/selector.hpp"

namespace sparsefill {
namespace {

using K = ParamSpec::Kind;

// RRAttention's and XAttention's `passes` (their GPU tiled kernel's).
ParamSpec passes_param(std::string& passes) {
  return {"passes",
          "GPU tiled kernel: two passes, or one with per-block sums in the workspace",
          K::kChoice,
          &passes,
          {"two", "one"}};
}

// The settings shared by RRAttention and XAttention: every choice among its values (the config's params()),
// tau in (0, 1] and, when the block is known, a stride that divides it.
template <typename Config>
void check_stride_config(Config config, const std::string& prefix, std::int64_t block) {
  for (const ParamSpec& spec : config.params()) {
    if (spec.kind != K::kChoice) continue;
    const auto& value = *static_cast<const std::string*>(spec.target);
    std::string listed;
    bool found = false;
    for (const std::string& choice : spec.choices) {
      found = found || value == choice;
      listed += (listed.empty() ? "" : " or ") + choice;
    }
    require(found, prefix + spec.name, "must be " + listed + ", got '" + value + "'");
  }
  require(config.tau > 0 && config.tau <= 1, prefix + "tau", "must be in (0, 1]");
  if (block > 0)
    require(config.stride >= 1 && block % config.stride == 0, prefix + "stride",
            "must divide the block size " + std::to_string(block));
}

}  // namespace

void RRConfig::check(std::int64_t block) const {
  check_stride_config(*this, "rr.", block);
}

void XAttentionConfig::check(std::int64_t block) const {
  check_stride_config(*this, "xattn.", block);
  if (block > 0)
    require(chunk_size == 0 || (chunk_size > 0 && chunk_size % block == 0), "xattn.chunk-size",
            "must be 0 or a positive multiple of the block");
}

std::vector<ParamSpec> PrismConfig::params() {
  return {{"p-high", "T1 threshold of the high-frequency band", K::kDouble, &p_high, {}},
          {"p-low", "T1 threshold of the low-frequency band", K::kDouble, &p_low, {}},
          {"d-high",
           "high band size in dims, pairs [0, d_high/2) (0: head_dim/2, 64 at d 128)",
           K::kInt,
           &d_high,
           {}},
          {"d-low",
           "low band size in dims, the last d_low/2 pairs (0: 3*head_dim/4, 96 at d 128)",
           K::kInt,
           &d_low,
           {}},
          {"calibrate",
           "energy-based temperature calibration (false: tau = 1 ablation)",
           K::kBool,
           &calibrate,
           {}},
          {"force-sink", "force key block 0", K::kBool, &force_sink, {}},
          {"force-recent", "force the diagonal block", K::kBool, &force_recent, {}}};
}

std::vector<ParamSpec> RRConfig::params() {
  return {{"stride", "stride S (divides the block)", K::kInt, &stride, {}},
          {"tau", "top-tau threshold", K::kDouble, &tau, {}},
          {"rule",
           "v1: T3 (XAttention rule); v2: T1 then OR column 0 and diagonal",
           K::kChoice,
           &rule,
           {"v1", "v2"}},
          {"t3", "T3 flavour of v1", K::kChoice, &t3, {"reference", "clean"}},
          {"offset",
           "sampled query offset: code = h mod S, mirrored = S-1-(h mod S)",
           K::kChoice,
           &offset,
           {"code", "mirrored"}},
          {"key-sums",
           "stride key sums: exact (fp64) or rounded to K's dtype (the v2 kernel)",
           K::kChoice,
           &key_sums,
           {"exact", "rounded"}},
          passes_param(passes),
          {"keep-sink", "force key block 0", K::kBool, &keep_sink, {}},
          {"keep-last-row", "make the last query-block row dense", K::kBool, &keep_last_row, {}}};
}

std::vector<ParamSpec> PBSConfig::params() {
  return {{"segment", "permutation segment size in tokens (multiple of the block)", K::kInt, &segment, {}},
          {"tau", "T2 threshold on the off-segment mass", K::kDouble, &tau, {}}};
}

std::vector<ParamSpec> MeanPoolConfig::params() {
  return {
      {"rule", "selection rule (algorithms.md §0.2)", K::kChoice, &rule, {"t1", "t2", "t4", "t5", "topk"}},
      {"threshold", "cumulative threshold (t1, t2, t4, t5)", K::kDouble, &threshold, {}},
      {"top-k", "blocks per row (topk)", K::kInt, &top_k, {}},
      {"force-sink", "force key block 0", K::kBool, &force_sink, {}},
      {"force-diagonal", "force the diagonal block", K::kBool, &force_diagonal, {}}};
}

std::vector<ParamSpec> XAttentionConfig::params() {
  return {{"stride", "antidiagonal stride S (divides the block)", K::kInt, &stride, {}},
          {"tau", "T3 threshold", K::kDouble, &tau, {}},
          {"t3", "T3 flavour", K::kChoice, &t3, {"reference", "clean"}},
          {"chunk-size", "query tokens per chunk (0: the reference formula)", K::kInt, &chunk_size, {}},
          {"keep-sink", "set query-block row 0 (the reference's quirk)", K::kBool, &keep_sink, {}},
          {"keep-recent", "re-force the diagonal", K::kBool, &keep_recent, {}},
          passes_param(passes)};
}

std::vector<ParamSpec> FlexPrefillConfig::params() {
  return {{"gamma", "coverage threshold", K::kDouble, &gamma, {}},
          {"tau", "sqrt-JS divergence threshold for query-aware heads", K::kDouble, &tau, {}},
          {"min-budget", "minimum budget in tokens", K::kInt, &min_budget, {}},
          {"max-budget", "maximum budget in tokens (0: none)", K::kInt, &max_budget, {}}};
}

std::vector<ParamSpec> MInferenceConfig::params() {
  return {{"vertical-size", "vertical columns kept", K::kInt, &vertical_size, {}},
          {"slash-size", "slash diagonals kept", K::kInt, &slash_size, {}},
          {"last-q", "queries used for the estimate", K::kInt, &last_q, {}}};
}

std::vector<ParamSpec> OracleConfig::params() {
  return {{"p", "T1 threshold on the true block attention mass", K::kDouble, &p, {}}};
}

std::vector<ParamSpec> SelectorSettings::params(const std::string& method) {
  if (method == "prism") return prism.params();
  if (method == "rr") return rr.params();
  if (method == "pbs") return pbs.params();
  if (method == "meanpool") return meanpool.params();
  if (method == "xattn") return xattn.params();
  if (method == "flexprefill") return flexprefill.params();
  if (method == "minference") return minference.params();
  if (method == "oracle") return oracle.params();
  return {};
}

void SelectorSettings::set_threshold(const std::string& method, double value) {
  if (method == "prism") {
    prism.p_high = prism.p_low = value;
  } else if (method == "rr") {
    rr.tau = value;
  } else if (method == "pbs") {
    pbs.tau = value;
  } else if (method == "meanpool") {
    meanpool.threshold = value;
  } else if (method == "xattn") {
    xattn.tau = value;
  } else if (method == "flexprefill") {
    flexprefill.gamma = value;
  } else if (method == "oracle") {
    oracle.p = value;
  } else {
    throw Error("method", "'" + method + "' has no threshold to sweep");
  }
}

}  // namespace sparsefill
