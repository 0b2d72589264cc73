#include <functional>
#include <utility>

#include "select/selectors.hpp"
#include "sparsefill/error.hpp"

namespace sparsefill {
namespace {

using Factory = std::function<std::unique_ptr<Selector>(const SelectorSettings&)>;

const std::vector<std::pair<std::string, Factory>>& registry() {
  static const std::vector<std::pair<std::string, Factory>> entries = {
      {"prism", [](const SelectorSettings& s) { return make_prism_selector(s.prism); }},
      {"rr", [](const SelectorSettings& s) { return make_rr_selector(s.rr); }},
      {"pbs", [](const SelectorSettings& s) { return make_pbs_selector(s.pbs); }},
      {"xattn", [](const SelectorSettings& s) { return make_xattention_selector(s.xattn); }},
      {"flexprefill", [](const SelectorSettings& s) { return make_flexprefill_selector(s.flexprefill); }},
      {"minference", [](const SelectorSettings& s) { return make_minference_selector(s.minference); }},
      {"meanpool", [](const SelectorSettings& s) { return make_meanpool_selector(s.meanpool); }},
      {"oracle", [](const SelectorSettings& s) { return make_oracle_selector(s.oracle); }},
      {"dense", [](const SelectorSettings&) { return make_dense_selector(); }},
  };
  return entries;
}

}  // namespace

std::vector<std::string> selector_names() {
  std::vector<std::string> names;
  for (const auto& entry : registry()) names.push_back(entry.first);
  return names;
}

std::unique_ptr<Selector> make_selector(const std::string& method, const SelectorSettings& settings) {
  for (const auto& entry : registry()) {
    if (entry.first == method) return entry.second(settings);
  }
  std::string known;
  for (const auto& name : selector_names()) known += (known.empty() ? "" : ", ") + name;
  throw Error("method", "unknown method '" + method + "' (known: " + known + ")");
}

}  // namespace sparsefill
