// The Llama forward pass on the real SmolLM2 model (fetched by scripts/fetch_model.sh; skipped without it).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "real_model.hpp"

namespace sparsefill {
namespace {

using Loaded = testing::RealModel;
const Loaded* loaded() { return testing::real_model(); }

// max |a - b| / max |b| over `count` values.
double max_rel_diff(const float* a, const float* b, std::int64_t count) {
  double diff = 0, scale = 0;
  for (std::int64_t i = 0; i < count; ++i) {
    diff = std::max(diff, static_cast<double>(std::fabs(a[i] - b[i])));
    scale = std::max(scale, static_cast<double>(std::fabs(b[i])));
  }
  return diff / scale;
}

TEST(Llama, GreedyContinuationIsDeterministicAndAnswers) {
  SKIP_WITHOUT_MODEL();
  const Loaded& m = *loaded();
  EXPECT_EQ(m.model.config().layers, 30);
  EXPECT_EQ(m.model.config().head_dim, 64);
  const std::vector<std::int32_t> prompt = m.tokenizer.encode("The capital of France is");
  const std::vector<std::int32_t> first = m.model.generate(prompt, 4, {});
  EXPECT_EQ(m.model.generate(prompt, 4, {}), first);
  EXPECT_NE(m.tokenizer.decode(first).find("Paris"), std::string::npos) << m.tokenizer.decode(first);
}

TEST(Llama, SparseAttentionAtDensityOneEqualsDense) {
  SKIP_WITHOUT_MODEL();
  const Loaded& m = *loaded();
  // 300 tokens: three 128-blocks, so the sparse path walks several blocks per row.
  std::string text;
  for (int i = 0; i < 40; ++i) text += "The quick brown fox jumps over the lazy dog. ";
  std::vector<std::int32_t> tokens = m.tokenizer.encode(text);
  tokens.resize(300);
  const HostTensor dense = m.model.forward(tokens, {});
  const auto every_block = make_selector("dense");
  LlamaModel::ForwardOptions sparse_options;
  sparse_options.attention = {every_block.get(), 128};
  std::vector<LlamaModel::LayerStats> stats;
  sparse_options.layer_stats = [&](const LlamaModel::LayerStats& s) { stats.push_back(s); };
  const HostTensor sparse = m.model.forward(tokens, sparse_options);
  ASSERT_EQ(stats.size(), 30u);
  for (const auto& s : stats) {
    EXPECT_DOUBLE_EQ(s.density, 1.0) << "layer " << s.layer;
    EXPECT_NEAR(s.recall_mean, 1.0, 1e-5) << "layer " << s.layer;
  }
  const double diff = max_rel_diff(sparse.ptr<float>(), dense.ptr<float>(), dense.numel());
  EXPECT_LE(diff, 1e-5) << "max |logit difference| relative to the largest logit: " << diff;
}

TEST(Llama, DecodeTokensAttendDenselyOverEverythingBefore) {
  SKIP_WITHOUT_MODEL();
  const Loaded& m = *loaded();
  std::string text;
  for (int i = 0; i < 40; ++i) text += "Pack my box with five dozen liquor jugs. ";
  std::vector<std::int32_t> tokens = m.tokenizer.encode(text);
  tokens.resize(290);
  const std::int64_t prefill = 280, n = 290;
  const std::int64_t vocab = m.model.config().vocab;
  // Dense: splitting prefill from decode changes nothing; logits_from keeps the last rows.
  LlamaModel::ForwardOptions split;
  split.prefill_tokens = prefill;
  split.logits_from = prefill - 1;
  const HostTensor dense = m.model.forward(tokens, {});
  const HostTensor dense_split = m.model.forward(tokens, split);
  ASSERT_EQ(dense_split.shape(), (std::vector<std::int64_t>{n - prefill + 1, vocab}));
  EXPECT_LE(max_rel_diff(dense_split.ptr<float>(), dense.ptr<float>() + (prefill - 1) * vocab, dense_split.numel()), 1e-5);
  // Sparse prefill: the prefill rows do not see the decode tokens, and the decode rows differ from treating
  // every token as prefill (they attend densely).
  SelectorSettings settings;
  settings.meanpool.threshold = 0.5;
  const auto sparse = make_selector("meanpool", settings);
  split.attention = {sparse.get(), 64};
  const HostTensor with_decode = m.model.forward(tokens, split);
  LlamaModel::ForwardOptions prefill_only;
  prefill_only.attention = split.attention;
  prefill_only.logits_from = prefill - 1;
  const HostTensor alone =
      m.model.forward(std::vector<std::int32_t>(tokens.begin(), tokens.begin() + prefill), prefill_only);
  // Equal up to fp32 rounding: the BLAS may block a 290-row GEMM differently from a 280-row one (2.1e-6 on an
  // AMD EPYC host); a decode token leaking into the prefill rows would move the logits by far more.
  EXPECT_LE(max_rel_diff(with_decode.ptr<float>(), alone.ptr<float>(), vocab), 1e-5);
  LlamaModel::ForwardOptions all_sparse = prefill_only;
  const HostTensor sparse_everywhere = m.model.forward(tokens, all_sparse);
  EXPECT_GT(max_rel_diff(with_decode.ptr<float>() + vocab, sparse_everywhere.ptr<float>() + vocab,
                         (n - prefill) * vocab),
            1e-4)
      << "decode rows should attend densely, not through the prefill mask";
}

TEST(Llama, CapturesPostRopeQkvOfEveryLayer) {
  SKIP_WITHOUT_MODEL();
  const Loaded& m = *loaded();
  const std::vector<std::int32_t> tokens = m.tokenizer.encode("Sparse attention keeps the important blocks.");
  std::vector<std::int64_t> layers;
  LlamaModel::ForwardOptions options;
  options.capture = [&](const LayerQkv& qkv) {
    layers.push_back(qkv.layer);
    const std::int64_t n = static_cast<std::int64_t>(tokens.size());
    EXPECT_EQ(qkv.q.shape(), (std::vector<std::int64_t>{1, n, 9, 64}));
    EXPECT_EQ(qkv.k.shape(), (std::vector<std::int64_t>{1, n, 3, 64}));
    EXPECT_EQ(qkv.v.shape(), (std::vector<std::int64_t>{1, n, 3, 64}));
    EXPECT_TRUE(all_finite(qkv.q.view()) && all_finite(qkv.k.view()) && all_finite(qkv.v.view()));
  };
  m.model.forward(tokens, options);
  EXPECT_EQ(layers.size(), 30u);
}

}  // namespace
}  // namespace sparsefill
