// Per-head priors measured on real models, embedded from data/head-priors/ (MIT): MInference's vertical-slash
// budgets per (layer, head) and DuoAttention's per-(layer, KV head) retrieval gates.
#pragma once
#include <string>
#include <vector>

#include "sparsefill/scene.hpp"

namespace sparsefill {

struct PriorHead {
  int layer = 0, head = 0;
  int vertical_budget = 0, slash_budget = 0;
  double score = 0.0;  // share of the head's attention the searched pattern recovered
  HeadKind kind = HeadKind::kBroad;
};

// MInference classes: (3500, 100) vertical-dominant; (1000, 6096) broad; smaller slash budgets slash/local.
HeadKind classify_budgets(int vertical_budget, int slash_budget);

// "llama31" or "qwen25". Entries in (layer, head) order.
const std::vector<PriorHead>& minference_priors(const std::string& model);
// [layer][kv_head] gates in [0, 1] (Llama-3.1-8B only).
const std::vector<std::vector<double>>& duo_attention_gates();

}  // namespace sparsefill
