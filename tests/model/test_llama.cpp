// The Llama forward pass on the real SmolLM2 model (fetched by scripts/fetch_model.sh; skipped without it).
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>

#include "sparsefill/llama_model.hpp"
#include "sparsefill/tokenizer.hpp"

namespace sparsefill {
namespace {

struct Loaded {
  GgufFile file;
  BpeTokenizer tokenizer;
  LlamaModel model;
};

const Loaded* loaded() {
  static const Loaded* model = [] {
    const std::string path =
        std::string(SPARSEFILL_SOURCE_DIR) + "/.deps/models/SmolLM2-135M-Instruct.Q4_1.gguf";
    if (!std::ifstream(path).good()) return static_cast<Loaded*>(nullptr);
    GgufFile file = GgufFile::read(path);
    BpeTokenizer tokenizer = BpeTokenizer::from_gguf(file);
    LlamaModel llama = LlamaModel::load(file);
    return new Loaded{std::move(file), std::move(tokenizer), std::move(llama)};
  }();
  return model;
}

#define SKIP_WITHOUT_MODEL() \
  if (!loaded()) GTEST_SKIP() << "model not fetched (scripts/fetch_model.sh)"

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
  const HostTensor sparse = m.model.forward(tokens, {every_block.get(), 128});
  double max_diff = 0, max_abs = 0;
  for (std::int64_t i = 0; i < dense.numel(); ++i) {
    max_diff =
        std::max(max_diff, static_cast<double>(std::fabs(dense.ptr<float>()[i] - sparse.ptr<float>()[i])));
    max_abs = std::max(max_abs, static_cast<double>(std::fabs(dense.ptr<float>()[i])));
  }
  EXPECT_LE(max_diff, 1e-5 * max_abs) << "max |logit difference| " << max_diff << " of " << max_abs;
}

TEST(Llama, CapturesPostRopeQkvOfEveryLayer) {
  SKIP_WITHOUT_MODEL();
  const Loaded& m = *loaded();
  const std::vector<std::int32_t> tokens = m.tokenizer.encode("Sparse attention keeps the important blocks.");
  std::vector<std::int64_t> layers;
  m.model.forward(tokens, {}, [&](const LayerQkv& qkv) {
    layers.push_back(qkv.layer);
    const std::int64_t n = static_cast<std::int64_t>(tokens.size());
    EXPECT_EQ(qkv.q.shape(), (std::vector<std::int64_t>{1, n, 9, 64}));
    EXPECT_EQ(qkv.k.shape(), (std::vector<std::int64_t>{1, n, 3, 64}));
    EXPECT_EQ(qkv.v.shape(), (std::vector<std::int64_t>{1, n, 3, 64}));
    EXPECT_TRUE(all_finite(qkv.q.view()) && all_finite(qkv.k.view()) && all_finite(qkv.v.view()));
  });
  EXPECT_EQ(layers.size(), 30u);
}

}  // namespace
}  // namespace sparsefill
