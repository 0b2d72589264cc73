#include "selector_flags.hpp"

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

}  // namespace sparsefill::cli
