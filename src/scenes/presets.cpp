// Scene presets (design note).
//
// Realistic presets (llama31-like, qwen25-like) draw each query head's class, without replacement, from the
// MInference priors of the real model (vertical-dominant, slash/local or broad, with its layer), so a preset
// reproduces the model's head mixture; layers 0-1 get weak sinks, later layers a sink mass in 0.3-0.9 as real
// Llama-family heads do. Retrieval heads (needle queries) come from KV heads whose DuoAttention gate is 1,
// with probability kRetrievalChance, about 3% of heads as scenes.md asks. Stress presets give every head one
// pattern.
#include "scenes/presets.hpp"

#include <algorithm>

#include "scenes/head_priors.hpp"
#include "scenes/random.hpp"
#include "sparsefill/error.hpp"

namespace sparsefill {
namespace {

constexpr double kRetrievalChance = 0.15;
constexpr double kRetrievalGate = 0.999;
constexpr std::int64_t kBlock = 128;

// A token offset in [lo, hi] that is not a multiple of the block size (slashes must cross block edges).
std::int64_t unaligned_offset(RandomStream& rng, std::int64_t lo, std::int64_t hi) {
  std::int64_t offset = rng.integer(lo, hi);
  if (offset % kBlock == 0) offset += rng.integer(1, kBlock - 1);
  return offset;
}

HeadRecipe class_recipe(HeadKind kind, std::int64_t pairs, RandomStream& rng) {
  HeadRecipe r;
  r.kind = kind;
  switch (kind) {
    case HeadKind::kVertical:
      r.local_logit = rng.uniform(5.0, 7.0);
      r.window_pairs = pairs / 4;
      r.vertical_logit = rng.uniform(8.0, 10.0);
      r.noise = 1.0;
      break;
    case HeadKind::kSlash: {
      r.local_logit = rng.uniform(10.0, 13.0);
      r.window_pairs = rng.integer((pairs * 3) / 8, pairs / 2);
      const std::int64_t extra = rng.integer(0, 2);
      for (std::int64_t i = 0; i < extra; ++i) {
        r.slash_offsets.push_back(unaligned_offset(rng, 130, 3000));
        r.slash_logits.push_back(r.local_logit * rng.uniform(0.75, 0.95));
      }
      r.vertical_logit = rng.uniform(1.5, 3.0);
      r.noise = rng.uniform(0.5, 0.8);
      break;
    }
    case HeadKind::kBroad:
      r.local_logit = rng.uniform(3.0, 5.0);
      r.window_pairs = pairs / 4;
      r.topic_logit = rng.uniform(4.0, 6.0);
      r.vertical_logit = rng.uniform(2.0, 4.0);
      r.noise = 1.0;
      r.temperature = rng.uniform(0.8, 1.0);
      break;
    case HeadKind::kSink:
      r.noise = 1.0;
      r.sink_mass_target = rng.uniform(0.3, 0.9);
      break;
    case HeadKind::kTopic:
      r.topic_logit = rng.uniform(5.0, 7.0);
      r.local_logit = 2.0;
      r.window_pairs = pairs / 4;
      r.noise = 0.7;
      break;
    case HeadKind::kNeedle:
      r.retrieval = true;
      r.needle_logit = rng.uniform(11.0, 13.0);
      r.local_logit = 3.0;
      r.window_pairs = pairs / 4;
      r.noise = 1.0;
      break;
  }
  return r;
}

std::vector<HeadRecipe> realistic_recipes(const std::string& model, std::int64_t heads_q, std::int64_t pairs,
                                          std::uint64_t seed) {
  const std::vector<PriorHead>& priors = minference_priors(model);
  std::vector<std::size_t> order(priors.size());
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
  RandomStream shuffle({seed, 0x5EC0DE, 1});
  for (std::size_t i = order.size(); i > 1; --i) std::swap(order[i - 1], order[shuffle.integer(0, i - 1)]);

  const auto& gates = duo_attention_gates();
  std::vector<HeadRecipe> recipes;
  for (std::int64_t h = 0; h < heads_q; ++h) {
    const PriorHead& prior = priors[order[h % order.size()]];
    RandomStream rng({seed, 0x5EC0DE, 2, static_cast<std::uint64_t>(h)});
    HeadRecipe r = class_recipe(prior.kind, pairs, rng);
    r.prior_layer = prior.layer;
    r.prior_head = prior.head;
    r.sink_mass_target = prior.layer < 2 ? rng.uniform(0.0, 0.2) : rng.uniform(0.3, 0.9);
    const bool gate_open = model == "llama31" ? gates.at(prior.layer).at(prior.head / 4) >= kRetrievalGate
                                              : rng.uniform() < 0.22;
    if (gate_open && rng.uniform() < kRetrievalChance) {
      r.retrieval = true;
      r.needle_logit = rng.uniform(11.0, 13.0);
    }
    recipes.push_back(r);
  }
  return recipes;
}

}  // namespace

std::string head_kind_name(HeadKind kind) {
  switch (kind) {
    case HeadKind::kVertical:
      return "vertical";
    case HeadKind::kSlash:
      return "slash";
    case HeadKind::kBroad:
      return "broad";
    case HeadKind::kSink:
      return "sink";
    case HeadKind::kTopic:
      return "topic";
    case HeadKind::kNeedle:
      return "needle";
  }
  return "?";
}

const std::vector<ScenePreset>& scene_presets() {
  static const std::vector<ScenePreset> presets = {
      {"llama31-like",
       "Llama-3.1-8B heads: MInference mixture (15% vertical, 58% slash/local, 27% broad), sinks, "
       "~3% retrieval heads; 32/8 heads, d 128, theta 5e5",
       32, 8, 128, 500000.0},
      {"qwen25-like",
       "Qwen2.5-7B heads: MInference mixture (26% vertical, 21% slash/local, 52% broad), sinks, "
       "~3% retrieval heads; 28/4 heads, d 128, theta 1e6",
       28, 4, 128, 1000000.0},
      {"slash", "one sharp slash per head at an offset that is not a multiple of 128, no sink", 32, 8, 128,
       500000.0},
      {"slash-stress",
       "local window plus up to two high-frequency slashes at arbitrary offsets: mean pooling's blind "
       "spot",
       32, 8, 128, 500000.0},
      {"vertical", "vertical stripes on anchor keys not aligned to blocks", 32, 8, 128, 500000.0},
      {"sink", "attention sink on token 0 only (target mass 0.3-0.9 per head) over background noise", 32, 8,
       128, 500000.0},
      {"local-window", "local windows of varying width straddling block edges", 32, 8, 128, 500000.0},
      {"topic", "topic segments (64-2048 tokens) attended across the sequence: off-diagonal rectangles", 32,
       8, 128, 500000.0},
      {"needle", "retrieval heads: late queries attend to a few early key spans", 32, 8, 128, 500000.0},
  };
  return presets;
}

const ScenePreset& find_scene_preset(const std::string& name) {
  for (const auto& p : scene_presets()) {
    if (p.name == name) return p;
  }
  std::string known;
  for (const auto& p : scene_presets()) known += (known.empty() ? "" : ", ") + p.name;
  throw Error("preset", "unknown scene '" + name + "' (known: " + known + ")");
}

HeadMixture preset_prior_mixture(const std::string& preset) {
  const std::string model = preset == "llama31-like" ? "llama31" : preset == "qwen25-like" ? "qwen25" : "";
  require(!model.empty(), "preset", "'" + preset + "' is not a realistic preset");
  HeadMixture mixture;
  const auto& priors = minference_priors(model);
  for (const auto& p : priors) {
    (p.kind == HeadKind::kVertical ? mixture.vertical
     : p.kind == HeadKind::kSlash  ? mixture.slash
                                   : mixture.broad) += 1.0;
  }
  mixture.vertical /= priors.size();
  mixture.slash /= priors.size();
  mixture.broad /= priors.size();
  return mixture;
}

std::vector<HeadRecipe> build_head_recipes(const std::string& preset, std::int64_t heads_q,
                                           std::int64_t head_dim, std::uint64_t seed) {
  const std::int64_t pairs = head_dim / 2;
  if (preset == "llama31-like") return realistic_recipes("llama31", heads_q, pairs, seed);
  if (preset == "qwen25-like") return realistic_recipes("qwen25", heads_q, pairs, seed);
  find_scene_preset(preset);
  std::vector<HeadRecipe> recipes;
  for (std::int64_t h = 0; h < heads_q; ++h) {
    RandomStream rng({seed, 0x5EC0DE, 3, static_cast<std::uint64_t>(h)});
    HeadRecipe r;
    if (preset == "slash") {
      r = class_recipe(HeadKind::kSlash, pairs, rng);
      r.local_logit = 0.0;
      r.slash_offsets = {unaligned_offset(rng, 150, 1500)};
      r.slash_logits = {rng.uniform(12.0, 14.0)};
      r.window_pairs = pairs / 4;
      r.vertical_logit = 0.0;
    } else if (preset == "slash-stress") {
      // Slash energy in the dead and early transition zones (pairs below 3P/8), where block pooling nearly
      // cancels it and full-dimension pooling is dominated by semantic-zone content: the case Prism was made
      // for.
      r = class_recipe(HeadKind::kSlash, pairs, rng);
      r.window_pairs = rng.integer(pairs / 4 + 2, (pairs * 3) / 8);
      r.slash_offsets = {unaligned_offset(rng, 1, 2000), unaligned_offset(rng, 1, 2000)};
      r.slash_logits = {r.local_logit * rng.uniform(0.8, 1.0), r.local_logit * rng.uniform(0.8, 1.0)};
    } else if (preset == "vertical") {
      r = class_recipe(HeadKind::kVertical, pairs, rng);
    } else if (preset == "sink") {
      r = class_recipe(HeadKind::kSink, pairs, rng);
    } else if (preset == "local-window") {
      r = class_recipe(HeadKind::kSlash, pairs, rng);
      r.slash_offsets.clear();
      r.slash_logits.clear();
      r.vertical_logit = 0.0;
    } else if (preset == "topic") {
      r = class_recipe(HeadKind::kTopic, pairs, rng);
    } else {
      r = class_recipe(HeadKind::kNeedle, pairs, rng);
    }
    recipes.push_back(r);
  }
  return recipes;
}

}  // namespace sparsefill
