// The BPE tokenizer: merge order on a tiny vocabulary written by the test, and ids derived from the real
// SmolLM2 vocabulary (looked up in the file, not remembered).
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <random>

#include "sparsefill/error.hpp"
#include "sparsefill/tokenizer.hpp"
#include "support/gguf_writer.hpp"
#include "support/random_tensors.hpp"

namespace sparsefill {
namespace {

using Ids = std::vector<std::int32_t>;

GgufFile tiny(const std::string& model = "gpt2") {
  testing::GgufWriter w;
  w.add_string("tokenizer.ggml.model", model);
  // ids: 0 a, 1 b, 2 c, 3 Ġ (space), 4 ab, 5 abc, 6 Ġab, 7 <s>
  w.add_string_array("tokenizer.ggml.tokens", {"a", "b", "c", "Ġ", "ab", "abc", "Ġab", "<s>"});
  w.add_int32_array("tokenizer.ggml.token_type", {1, 1, 1, 1, 1, 1, 1, 3});
  w.add_string_array("tokenizer.ggml.merges", {"a b", "Ġ ab", "ab c"});
  w.add_uint32("tokenizer.ggml.unknown_token_id", 2);
  const std::string path = testing::temp_path(".gguf");
  const auto bytes = w.bytes();
  std::ofstream(path, std::ios::binary)
      .write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  GgufFile f = GgufFile::read(path);
  std::remove(path.c_str());
  return f;
}

TEST(Tokenizer, MergesByRankOnATinyVocabulary) {
  const BpeTokenizer t = BpeTokenizer::from_gguf(tiny());
  EXPECT_EQ(t.encode("ab"), (Ids{4}));
  EXPECT_EQ(t.encode("abc"), (Ids{5}));          // a b -> ab (rank 0), ab c -> abc (rank 2)
  EXPECT_EQ(t.encode(" ab"), (Ids{6}));          // a b first, then Ġ ab (rank 1)
  EXPECT_EQ(t.encode(" abc"), (Ids{6, 2}));      // Ġ ab (rank 1) wins over ab c (rank 2): Ġab, c
  EXPECT_EQ(t.encode("ba"), (Ids{1, 0}));        // no merge applies
  EXPECT_EQ(t.encode("a<s>b"), (Ids{0, 7, 1}));  // special tokens split first
  EXPECT_EQ(t.encode("ad"), (Ids{0, 2}));        // 'd' has no symbol: the unknown token
  EXPECT_EQ(t.decode({6, 2, 7}), " abc<s>");
  EXPECT_THROW(t.decode({99}), Error);
  EXPECT_THROW(BpeTokenizer::from_gguf(tiny("llama")), Error);
}

std::string model_path() {
  return std::string(SPARSEFILL_SOURCE_DIR) + "/.deps/models/SmolLM2-135M-Instruct.Q4_1.gguf";
}

TEST(Tokenizer, SmolLM2KnownIdsAndRoundTrips) {
  if (!std::ifstream(model_path()).good()) GTEST_SKIP() << "model not fetched (scripts/fetch_model.sh)";
  const BpeTokenizer t = BpeTokenizer::from_gguf(GgufFile::read(model_path()));
  EXPECT_EQ(t.vocab_size(), 49152u);
  auto id = [&](const std::string& token) {
    const std::int32_t i = t.token_id(token);
    EXPECT_GE(i, 0) << token;
    return i;
  };
  EXPECT_EQ(t.bos_id(), id("<|im_start|>"));
  EXPECT_EQ(t.eos_id(), id("<|im_end|>"));
  EXPECT_EQ(t.encode("Hello world"), (Ids{id("Hello"), id("Ġworld")}));
  EXPECT_EQ(t.encode(" the quick brown fox"), (Ids{id("Ġthe"), id("Ġquick"), id("Ġbrown"), id("Ġfox")}));
  EXPECT_EQ(t.encode("<|im_start|>user\nHi<|im_end|>"),
            (Ids{id("<|im_start|>"), id("user"), id("Ċ"), id("Hi"), id("<|im_end|>")}));
  EXPECT_EQ(t.encode("x 123"), (Ids{id("x"), id("Ġ"), id("1"), id("2"), id("3")}));  // every digit alone
  EXPECT_EQ(t.encode("it's"), (Ids{id("it"), id("'s")}));
  std::mt19937_64 rng(testing::fresh_seed());
  std::uniform_int_distribution<int> ch(32, 126), len(1, 80);
  for (int trial = 0; trial < 50; ++trial) {
    std::string s;
    for (int n = len(rng); n > 0; --n) s += static_cast<char>(rng() % 10 == 0 ? '\n' : ch(rng));
    EXPECT_EQ(t.decode(t.encode(s)), s);
  }
  const std::string utf8 = "naïve café — 東京 🙂\t\n";
  EXPECT_EQ(t.decode(t.encode(utf8)), utf8);
}

}  // namespace
}  // namespace sparsefill
