// What sparse prefill costs a real model (design note): perplexity of the last half of a long text, the
// per-layer density and recall of the masks the selector chose inside the model, and passkey retrieval (a
// number hidden at a depth of a long filler prompt, asked for at the end).
//
// Passkey answers are scored by teacher forcing: one forward over prompt + answer where the prompt is the
// (sparse) prefill and the answer tokens are decode steps (dense over everything before, as with a KV cache);
// the answer counts as retrieved when the argmax at every answer position is the answer's next token, which
// is exactly "greedy decoding produces the answer".
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "sparsefill/llama_model.hpp"
#include "sparsefill/tokenizer.hpp"

namespace sparsefill {

struct PerplexityResult {
  std::int64_t tokens = 0, scored = 0;  // scored: the last half, predicted from everything before
  double perplexity = 0.0;              // exp(mean negative log-likelihood of the scored tokens)
  double density = 0.0, recall = 0.0;   // means over layers (1 for dense)
  std::vector<LlamaModel::LayerStats> layers;  // empty for dense
  double seconds = 0.0;
};

// tokens: at least 4. attention.selector null = dense.
PerplexityResult measure_perplexity(const LlamaModel& model, const std::vector<std::int32_t>& tokens,
                                    const LlamaModel::AttentionChoice& attention);

struct PasskeyTask {
  std::int64_t length = 0;  // target prompt length in tokens (the prompt is within one filler sentence of it)
  double depth = 0.0;       // where the needle sits, as a fraction of the filler
  std::string key;          // five digits
  std::vector<std::int32_t> prompt, answer;
};

// A deterministic task for (length, depth, seed). Error "length" when the length cannot hold the intro,
// needle and question, "depth" outside [0, 1].
PasskeyTask make_passkey_task(const BpeTokenizer& tokenizer, std::int64_t length, double depth,
                              std::uint64_t seed);

struct PasskeyResult {
  bool retrieved = false;
  std::string predicted;  // the greedy predictions at the answer positions, decoded
};

PasskeyResult run_passkey(const LlamaModel& model, const BpeTokenizer& tokenizer, const PasskeyTask& task,
                          const LlamaModel::AttentionChoice& attention);

}  // namespace sparsefill
