// Fresh random inputs for tests: every run draws a new seed (printed on failure through the returned value).
#pragma once
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "sparsefill/tensor.hpp"

namespace sparsefill::testing {

// A new seed per call, from std::random_device.
std::uint64_t fresh_seed();

// Normal(0, scale) entries, rounded to `dtype`.
HostTensor random_tensor(DType dtype, const std::vector<std::int64_t>& shape, std::mt19937_64& rng,
                         double scale = 1.0);

// Fills every element of a floating tensor with NaN (poisoning outputs before a run).
void poison(HostTensor& t);

// A fresh path in the temporary directory ending with `suffix` (not created).
std::string temp_path(const std::string& suffix);

// ||got - want|| / ||want|| (the plain norm of the difference when want is all zero).
double relative_error(const std::vector<double>& got, const std::vector<double>& want);

}  // namespace sparsefill::testing
