// Errors: every public entry point validates its arguments and throws sparsefill::Error naming the offending
// argument. Nothing is written to outputs before validation passes.
#pragma once
#include <stdexcept>
#include <string>

namespace sparsefill {

class Error : public std::runtime_error {
 public:
  // `argument` names the parameter, file or flag at fault ("q", "mask.kv_indices", "--len").
  Error(std::string argument, const std::string& message);
  const std::string& argument() const { return argument_; }

 private:
  std::string argument_;
};

// Throws Error(argument, message) unless `condition` holds.
void require(bool condition, const std::string& argument, const std::string& message);

}  // namespace sparsefill
