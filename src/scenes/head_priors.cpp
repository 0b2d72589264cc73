#include "scenes/head_priors.hpp"

#include <nlohmann/json.hpp>
#include <sstream>
#include <string_view>

#include "sparsefill/error.hpp"

namespace sparsefill {
namespace embedded {
std::string_view llama31_minference();
std::string_view qwen25_minference();
std::string_view llama31_duo_gates();
}  // namespace embedded

namespace {

std::vector<PriorHead> parse_minference(std::string_view text) {
  const nlohmann::json layers = nlohmann::json::parse(text);
  std::vector<PriorHead> heads;
  for (std::size_t layer = 0; layer < layers.size(); ++layer) {
    for (const auto& [key, entry] : layers[layer].items()) {
      PriorHead h;
      h.layer = static_cast<int>(layer);
      h.head = std::stoi(key);
      h.vertical_budget = entry.at(1).get<int>();
      h.slash_budget = entry.at(2).get<int>();
      h.score = entry.at(3).get<double>();
      h.kind = classify_budgets(h.vertical_budget, h.slash_budget);
      heads.push_back(h);
    }
  }
  return heads;
}

}  // namespace

HeadKind classify_budgets(int vertical_budget, int slash_budget) {
  if (slash_budget >= 4000) return HeadKind::kBroad;
  if (vertical_budget >= 5 * slash_budget) return HeadKind::kVertical;
  return HeadKind::kSlash;
}

const std::vector<PriorHead>& minference_priors(const std::string& model) {
  static const std::vector<PriorHead> llama = parse_minference(embedded::llama31_minference());
  static const std::vector<PriorHead> qwen = parse_minference(embedded::qwen25_minference());
  if (model == "llama31") return llama;
  if (model == "qwen25") return qwen;
  throw Error("model", "no MInference priors for '" + model + "'");
}

const std::vector<std::vector<double>>& duo_attention_gates() {
  static const std::vector<std::vector<double>> gates = [] {
    std::vector<std::vector<double>> rows;
    std::istringstream lines{std::string(embedded::llama31_duo_gates())};
    std::string line;
    while (std::getline(lines, line)) {
      std::istringstream cells(line);
      std::vector<double> row;
      double gate;
      while (cells >> gate) row.push_back(gate);
      if (!row.empty()) rows.push_back(row);
    }
    return rows;
  }();
  return gates;
}

}  // namespace sparsefill
