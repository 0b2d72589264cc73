// RoPE-faithful synthetic attention inputs ("scenes").
//
// A scene builds pre-RoPE query/key vectors from components (sink, local window, slashes at offsets, vertical
// anchors, topic segments, retrieval needles, background noise), then applies real RoPE. Attention patterns
// come from RoPE and content alone; no mask is painted. Per-head mixtures of the realistic presets come from
// the head priors measured on real models (MInference budgets, DuoAttention gates), embedded in the library.
// Deterministic in (preset, geometry, seed).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "sparsefill/rope.hpp"
#include "sparsefill/tensor.hpp"

namespace sparsefill {

// The pattern family of one query head: MInference's three head classes (vertical-dominant, slash/local,
// broad) plus the single-pattern kinds of the stress presets.
enum class HeadKind { kVertical, kSlash, kBroad, kSink, kTopic, kNeedle };
std::string head_kind_name(HeadKind kind);

struct SceneConfig {
  std::string preset = "llama31-like";
  std::int64_t seqlen = 4096;
  std::int64_t batch = 1;
  // 0 = the preset's default geometry (and theta).
  std::int64_t heads_q = 0;
  std::int64_t heads_kv = 0;
  std::int64_t head_dim = 0;
  double rope_theta = 0.0;
  RopeLayout rope_layout = RopeLayout::kRotateHalf;
  std::uint64_t seed = 0;
  DType dtype = DType::kBF16;
};

// What one query head is built from. Logits are in natural-log units at temperature 1; the pre-RoPE query is
// scaled by `temperature` as a whole (the sink is calibrated after that scaling).
struct HeadRecipe {
  HeadKind kind = HeadKind::kBroad;
  bool retrieval = false;                   // carries needle queries (DuoAttention-style retrieval head)
  double sink_mass_target = 0.0;            // share of a query's attention on token 0 (0 = no sink)
  double sink_logit = 0.0;                  // calibrated by generate_scene to meet the target
  std::int64_t window_pairs = 0;            // highest-frequency pairs carrying the local/slash amplitude
  double local_logit = 0.0;                 // peak logit of the slash at offset 0 (the local window)
  std::vector<std::int64_t> slash_offsets;  // further slashes (token offsets) ...
  std::vector<double> slash_logits;         // ... and their peak logits
  double vertical_logit = 0.0;              // logit on anchor keys (times each anchor's log-normal strength)
  double topic_logit = 0.0;                 // logit on earlier keys of the query's topic
  double needle_logit = 0.0;                // logit of needle queries on their key span
  double noise = 1.0;                       // std of the background logit noise
  double temperature = 1.0;
  int prior_layer = -1, prior_head = -1;  // the head-prior entry the head was drawn from (-1: none)
};

struct Scene {
  SceneConfig config;  // with the preset's defaults filled in
  RopeConfig rope;
  HostTensor q;                   // [batch, seqlen, heads_q, head_dim]
  HostTensor k;                   // [batch, seqlen, heads_kv, head_dim]
  HostTensor v;                   // [batch, seqlen, heads_kv, head_dim]
  std::vector<HeadRecipe> heads;  // [heads_q]
};

struct ScenePreset {
  std::string name;
  std::string description;
  std::int64_t heads_q, heads_kv, head_dim;
  double rope_theta;
};

const std::vector<ScenePreset>& scene_presets();
const ScenePreset& find_scene_preset(const std::string& name);  // Error("preset") when unknown

// Throws Error naming the config field for an unknown preset, seqlen < 1 or > 2^22, heads not dividing, or an
// odd/unsupported head_dim.
Scene generate_scene(const SceneConfig& config);

// Fractions of vertical / slash / broad heads in a realistic preset's prior (over all layers and heads).
struct HeadMixture {
  double vertical = 0, slash = 0, broad = 0;
};
HeadMixture preset_prior_mixture(const std::string& preset);

}  // namespace sparsefill
