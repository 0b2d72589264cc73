// Factories of the individual selectors (one file each), collected by the registry.
#pragma once
#include <memory>

#include "sparsefill/selector.hpp"

namespace sparsefill {

std::unique_ptr<Selector> make_dense_selector();

}  // namespace sparsefill
