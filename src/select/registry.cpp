#include <functional>
#include <utility>

#include "select/selectors.hpp"
#include "sparsefill/error.hpp"

namespace sparsefill {
namespace {

const std::vector<std::pair<std::string, std::function<std::unique_ptr<Selector>()>>>& registry() {
  static const std::vector<std::pair<std::string, std::function<std::unique_ptr<Selector>()>>> entries = {
      {"dense", make_dense_selector},
  };
  return entries;
}

}  // namespace

std::vector<std::string> selector_names() {
  std::vector<std::string> names;
  for (const auto& entry : registry()) names.push_back(entry.first);
  return names;
}

std::unique_ptr<Selector> make_selector(const std::string& method) {
  for (const auto& entry : registry()) {
    if (entry.first == method) return entry.second();
  }
  std::string known;
  for (const auto& name : selector_names()) known += (known.empty() ? "" : ", ") + name;
  throw Error("method", "unknown method '" + method + "' (known: " + known + ")");
}

}  // namespace sparsefill
