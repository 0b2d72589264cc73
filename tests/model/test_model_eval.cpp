// Perplexity and passkey retrieval on the real model (skipped without it), and the passkey prompt's geometry.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "real_model.hpp"
#include "sparsefill/error.hpp"
#include "sparsefill/model_eval.hpp"

namespace sparsefill {
namespace {

std::vector<std::int32_t> text_tokens(const testing::RealModel& m, std::size_t count) {
  std::string text;
  for (int i = 0; i < 60; ++i) text += "Sparse attention keeps the blocks that carry most of the mass. ";
  std::vector<std::int32_t> tokens = m.tokenizer.encode(text);
  tokens.resize(count);
  return tokens;
}

TEST(ModelEval, PerplexityIsTheMeanLikelihoodOfTheLastHalf) {
  SKIP_WITHOUT_MODEL();
  const testing::RealModel& m = *testing::real_model();
  const std::vector<std::int32_t> tokens = text_tokens(m, 200);
  const PerplexityResult dense = measure_perplexity(m.model, tokens, {});
  EXPECT_EQ(dense.scored, 100);
  EXPECT_TRUE(dense.layers.empty());
  EXPECT_EQ(dense.density, 1.0);
  // From the full logits, by hand.
  const HostTensor logits = m.model.forward(tokens, {});
  const std::int64_t vocab = m.model.config().vocab;
  double nll = 0;
  for (std::int64_t pos = 100; pos < 200; ++pos) {
    const float* row = logits.ptr<float>() + (pos - 1) * vocab;
    double sum = 0, max = *std::max_element(row, row + vocab);
    for (std::int64_t i = 0; i < vocab; ++i) sum += std::exp(row[i] - max);
    nll += max + std::log(sum) - row[tokens[pos]];
  }
  EXPECT_NEAR(dense.perplexity, std::exp(nll / 100), 1e-6 * dense.perplexity);
  // Every block selected: the same perplexity, density 1 and recall 1 in every layer.
  const auto every_block = make_selector("dense");
  const PerplexityResult full = measure_perplexity(m.model, tokens, {every_block.get(), 64});
  EXPECT_NEAR(full.perplexity, dense.perplexity, 1e-4 * dense.perplexity);
  ASSERT_EQ(full.layers.size(), 30u);
  EXPECT_NEAR(full.recall, 1.0, 1e-5);
  EXPECT_DOUBLE_EQ(full.density, 1.0);
  // A sparse mask loses mass, and its perplexity moves.
  SelectorSettings settings;
  settings.meanpool.threshold = 0.3;
  const auto sparse = make_selector("meanpool", settings);
  const PerplexityResult cut = measure_perplexity(m.model, tokens, {sparse.get(), 64});
  EXPECT_LT(cut.density, 0.9);
  EXPECT_LT(cut.recall, 1.0);
  EXPECT_NE(cut.perplexity, dense.perplexity);
}

TEST(ModelEval, PasskeyPromptHasItsLengthAndNeedleDepth) {
  SKIP_WITHOUT_MODEL();
  const testing::RealModel& m = *testing::real_model();
  for (double depth : {0.0, 0.5, 1.0}) {
    const PasskeyTask t = make_passkey_task(m.tokenizer, 1000, depth, 7);
    EXPECT_LE(t.prompt.size(), 1000u);
    EXPECT_GE(t.prompt.size(), 1000u - 30u);  // within one filler sentence
    EXPECT_EQ(t.key.size(), 5u);
    const std::string text = m.tokenizer.decode(t.prompt);
    const double at = static_cast<double>(text.find("The pass key is " + t.key)) / static_cast<double>(text.size());
    EXPECT_NEAR(at, depth, 0.08) << "needle at " << at;
    EXPECT_EQ(m.tokenizer.decode(t.answer), " " + t.key);
    const PasskeyTask again = make_passkey_task(m.tokenizer, 1000, depth, 7);
    EXPECT_EQ(again.prompt, t.prompt);
  }
  EXPECT_NE(make_passkey_task(m.tokenizer, 1000, 0.5, 7).key, make_passkey_task(m.tokenizer, 1000, 0.5, 8).key);
  EXPECT_THROW(make_passkey_task(m.tokenizer, 40, 0.5, 0), Error);
  EXPECT_THROW(make_passkey_task(m.tokenizer, 1000, 1.5, 0), Error);
}

TEST(ModelEval, DenseRetrievesThePasskey) {
  SKIP_WITHOUT_MODEL();
  const testing::RealModel& m = *testing::real_model();
  const PasskeyTask t = make_passkey_task(m.tokenizer, 500, 0.5, 3);
  const PasskeyResult r = run_passkey(m.model, m.tokenizer, t, {});
  EXPECT_TRUE(r.retrieved) << "key " << t.key << ", predicted '" << r.predicted << "'";
  EXPECT_EQ(r.predicted, " " + t.key);
}

}  // namespace
}  // namespace sparsefill
