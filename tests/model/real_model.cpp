#include "real_model.hpp"

#include <fstream>
#include <string>

namespace sparsefill::testing {

const RealModel* real_model() {
  static const RealModel* model = [] {
    const std::string path = std::string(SPARSEFILL_SOURCE_DIR) + "/.deps/models/SmolLM2-135M-Instruct.Q4_1.gguf";
    if (!std::ifstream(path).good()) return static_cast<RealModel*>(nullptr);
    GgufFile file = GgufFile::read(path);
    BpeTokenizer tokenizer = BpeTokenizer::from_gguf(file);
    LlamaModel llama = LlamaModel::load(file);
    return new RealModel{std::move(file), std::move(tokenizer), std::move(llama)};
  }();
  return model;
}

}  // namespace sparsefill::testing
