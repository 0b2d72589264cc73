// Printing and JSON export of one `sparsefill run`.
#pragma once
#include <string>
#include <vector>

#include "sparsefill/evaluate.hpp"
#include "sparsefill/scene.hpp"

namespace sparsefill::cli {

struct RunDescription {
  std::string input;  // "scene llama31-like (seed 0)" or the q file
  std::string method;
  std::string dtype;
  std::string device;
  bool causal = true;
  std::int64_t block_size = 128;
  std::vector<StageTime> setup_times;              // scene generation / loading
  const std::vector<HeadRecipe>* heads = nullptr;  // scene head recipes, when the input is a scene
};

void print_run_report(const RunDescription& run, const DenseReference& dense, const Evaluation& e,
                      bool per_head);
void write_run_json(const std::string& path, const RunDescription& run, const DenseReference& dense,
                    const Evaluation& e);

}  // namespace sparsefill::cli
