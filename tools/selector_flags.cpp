#include "selector_flags.hpp"

#include <algorithm>
#include <sstream>

#include "sparsefill/error.hpp"

namespace sparsefill::cli {

void add_selector_flags(CLI::App* command, SelectorSettings& settings) {
  for (const std::string& method : selector_names()) {
    for (const ParamSpec& spec : settings.params(method)) {
      const std::string flag = "--" + method + "-" + spec.name;
      CLI::Option* option = nullptr;
      switch (spec.kind) {
        case ParamSpec::Kind::kDouble:
          option = command->add_option(flag, *static_cast<double*>(spec.target), spec.help);
          break;
        case ParamSpec::Kind::kInt:
          option = command->add_option(flag, *static_cast<std::int64_t*>(spec.target), spec.help);
          break;
        case ParamSpec::Kind::kBool:
          option = command->add_option(flag, *static_cast<bool*>(spec.target), spec.help);
          break;
        case ParamSpec::Kind::kChoice:
          option = command->add_option(flag, *static_cast<std::string*>(spec.target), spec.help)
                       ->check(CLI::IsMember(spec.choices));
          break;
      }
      option->capture_default_str()->group(method + " options");
    }
  }
}

void require_selector_flags_of(const CLI::App& command, const std::vector<std::string>& methods) {
  SelectorSettings settings;
  for (const std::string& method : selector_names()) {
    if (std::find(methods.begin(), methods.end(), method) != methods.end()) continue;
    for (const ParamSpec& spec : settings.params(method)) {
      const std::string flag = "--" + method + "-" + spec.name;
      require(command.count(flag) == 0, flag,
              "applies to method " + method + ", which this command does not run");
    }
  }
}

std::map<std::string, std::vector<double>> parse_sweeps(const std::vector<std::string>& sweeps,
                                                        const std::vector<std::string>& methods,
                                                        std::map<std::string, std::vector<double>> defaults) {
  for (const std::string& sweep : sweeps) {
    const auto eq = sweep.find('=');
    require(eq != std::string::npos, "--sweep", "expected METHOD=T1,T2,..., got '" + sweep + "'");
    const std::string method = sweep.substr(0, eq);
    require(std::find(methods.begin(), methods.end(), method) != methods.end(), "--sweep",
            "method '" + method + "' is not among --methods");
    try {
      SelectorSettings{}.set_threshold(method, 0.5);
    } catch (const Error&) {
      throw Error("--sweep", "method '" + method + "' has no threshold to sweep");
    }
    std::vector<double> values;
    std::stringstream list(sweep.substr(eq + 1));
    for (std::string item; std::getline(list, item, ',');) {
      try {
        values.push_back(std::stod(item));
      } catch (const std::exception&) {
        throw Error("--sweep", "'" + item + "' is not a number");
      }
      require(values.back() > 0 && values.back() <= 1, "--sweep", "thresholds must be in (0, 1]");
    }
    require(!values.empty(), "--sweep", "no thresholds for " + method);
    defaults[method] = values;
  }
  return defaults;
}

}  // namespace sparsefill::cli
