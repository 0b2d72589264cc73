// Perplexity and passkey retrieval on the real model (see model_eval.hpp).
#include "sparsefill/model_eval.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <random>

#include "sparsefill/error.hpp"

namespace sparsefill {
namespace {

// -log softmax(row)[target] in double (log-sum-exp).
double negative_log_likelihood(const float* row, std::int64_t vocab, std::int32_t target) {
  double max = row[0];
  for (std::int64_t i = 1; i < vocab; ++i) max = std::max(max, static_cast<double>(row[i]));
  double sum = 0;
  for (std::int64_t i = 0; i < vocab; ++i) sum += std::exp(static_cast<double>(row[i]) - max);
  return max + std::log(sum) - static_cast<double>(row[target]);
}

std::int32_t argmax(const float* row, std::int64_t vocab) {
  return static_cast<std::int32_t>(std::max_element(row, row + vocab) - row);
}

const char kIntro[] =
    "There is an important piece of information hidden inside a lot of irrelevant text. Find it and memorize "
    "it. I will quiz you about the important information there.\n";
const char kFiller[] = " The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again.";
const char kQuestion[] = "\nWhat is the pass key? The pass key is";

}  // namespace

PerplexityResult measure_perplexity(const LlamaModel& model, const std::vector<std::int32_t>& tokens,
                                    const LlamaModel::AttentionChoice& attention) {
  const auto start = std::chrono::steady_clock::now();
  const std::int64_t n = static_cast<std::int64_t>(tokens.size());
  require(n >= 4, "tokens", "perplexity needs at least 4 tokens, got " + std::to_string(n));
  PerplexityResult r;
  r.tokens = n;
  const std::int64_t half = n / 2;
  LlamaModel::ForwardOptions options;
  options.attention = attention;
  options.logits_from = half - 1;
  if (attention.selector) options.layer_stats = [&](const LlamaModel::LayerStats& s) { r.layers.push_back(s); };
  const HostTensor logits = model.forward(tokens, options);
  const std::int64_t vocab = model.config().vocab;
  double nll = 0;
  for (std::int64_t pos = half; pos < n; ++pos)
    nll += negative_log_likelihood(logits.ptr<float>() + (pos - half) * vocab, vocab, tokens[pos]);
  r.scored = n - half;
  r.perplexity = std::exp(nll / static_cast<double>(r.scored));
  r.density = r.recall = 1.0;
  if (!r.layers.empty()) {
    r.density = r.recall = 0.0;
    for (const auto& l : r.layers) {
      r.density += l.density / static_cast<double>(r.layers.size());
      r.recall += l.recall_mean / static_cast<double>(r.layers.size());
    }
  }
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return r;
}

PasskeyTask make_passkey_task(const BpeTokenizer& tokenizer, std::int64_t length, double depth,
                              std::uint64_t seed) {
  require(depth >= 0 && depth <= 1, "depth", "must be in [0, 1], got " + std::to_string(depth));
  PasskeyTask t;
  t.length = length;
  t.depth = depth;
  std::mt19937_64 rng(seed * 0x9E3779B97F4A7C15ULL + static_cast<std::uint64_t>(length) * 1000003ULL +
                      static_cast<std::uint64_t>(std::llround(depth * 1e6)));
  t.key = std::to_string(std::uniform_int_distribution<int>(10000, 99999)(rng));
  const std::vector<std::int32_t> intro = tokenizer.encode(kIntro), filler = tokenizer.encode(kFiller),
                                   question = tokenizer.encode(kQuestion),
                                   needle = tokenizer.encode(" The pass key is " + t.key + ". Remember it. " +
                                                             t.key + " is the pass key.");
  t.answer = tokenizer.encode(" " + t.key);
  const std::int64_t fixed = static_cast<std::int64_t>(intro.size() + needle.size() + question.size());
  const std::int64_t fillers = (length - fixed) / static_cast<std::int64_t>(filler.size());
  require(fillers >= 1, "length",
          std::to_string(length) + " tokens cannot hold the passkey prompt (needs more than " +
              std::to_string(fixed + static_cast<std::int64_t>(filler.size())) + ")");
  const std::int64_t before = std::llround(depth * static_cast<double>(fillers));
  t.prompt = intro;
  for (std::int64_t i = 0; i <= fillers; ++i) {
    if (i == before) t.prompt.insert(t.prompt.end(), needle.begin(), needle.end());
    if (i < fillers) t.prompt.insert(t.prompt.end(), filler.begin(), filler.end());
  }
  t.prompt.insert(t.prompt.end(), question.begin(), question.end());
  return t;
}

PasskeyResult run_passkey(const LlamaModel& model, const BpeTokenizer& tokenizer, const PasskeyTask& task,
                          const LlamaModel::AttentionChoice& attention) {
  std::vector<std::int32_t> tokens = task.prompt;
  tokens.insert(tokens.end(), task.answer.begin(), task.answer.end());
  LlamaModel::ForwardOptions options;
  options.attention = attention;
  options.prefill_tokens = static_cast<std::int64_t>(task.prompt.size());
  options.logits_from = options.prefill_tokens - 1;
  const HostTensor logits = model.forward(tokens, options);
  const std::int64_t vocab = model.config().vocab;
  PasskeyResult r;
  r.retrieved = true;
  std::vector<std::int32_t> predicted;
  for (std::size_t i = 0; i < task.answer.size(); ++i) {
    predicted.push_back(argmax(logits.ptr<float>() + static_cast<std::int64_t>(i) * vocab, vocab));
    r.retrieved = r.retrieved && predicted.back() == task.answer[i];
  }
  r.predicted = tokenizer.decode(predicted);
  return r;
}

}  // namespace sparsefill
