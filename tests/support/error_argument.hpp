// The argument a failing call names: Error::argument() of what `call` throws, "<no error>" when it returns.
#pragma once
#include <functional>
#include <string>

#include "sparsefill/error.hpp"

namespace sparsefill::testing {

inline std::string error_argument(const std::function<void()>& call) {
  try {
    call();
  } catch (const Error& e) {
    return e.argument();
  }
  return "<no error>";
}

}  // namespace sparsefill::testing
