#include "sparsefill/error.hpp"

namespace sparsefill {

Error::Error(std::string argument, const std::string& message)
    : std::runtime_error(argument + ": " + message), argument_(std::move(argument)) {}

void require(bool condition, const std::string& argument, const std::string& message) {
  if (!condition) throw Error(argument, message);
}

}  // namespace sparsefill
