// The real SmolLM2 model for tests (fetched by scripts/fetch_model.sh; tests skip without it). Loaded once.
#pragma once
#include "sparsefill/gguf.hpp"
#include "sparsefill/llama_model.hpp"
#include "sparsefill/tokenizer.hpp"

namespace sparsefill::testing {

struct RealModel {
  GgufFile file;
  BpeTokenizer tokenizer;
  LlamaModel model;
};

// Null when the model file is absent.
const RealModel* real_model();

}  // namespace sparsefill::testing

#define SKIP_WITHOUT_MODEL() \
  if (!::sparsefill::testing::real_model()) GTEST_SKIP() << "model not fetched (scripts/fetch_model.sh)"
