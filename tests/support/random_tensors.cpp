#include "support/random_tensors.hpp"

#include <limits>

namespace sparsefill::testing {

std::uint64_t fresh_seed() {
  std::random_device device;
  return (static_cast<std::uint64_t>(device()) << 32) ^ device();
}

HostTensor random_tensor(DType dtype, const std::vector<std::int64_t>& shape, std::mt19937_64& rng,
                         double scale) {
  HostTensor t(dtype, shape);
  std::normal_distribution<double> normal(0.0, scale);
  for (std::int64_t i = 0; i < t.numel(); ++i) store_from_double(t.data(), dtype, i, normal(rng));
  return t;
}

void poison(HostTensor& t) {
  for (std::int64_t i = 0; i < t.numel(); ++i) {
    store_from_double(t.data(), t.dtype(), i, std::numeric_limits<double>::quiet_NaN());
  }
}

}  // namespace sparsefill::testing
