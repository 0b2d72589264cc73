#include "support/random_tensors.hpp"

#include <cmath>
#include <filesystem>
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

std::string temp_path(const std::string& suffix) {
  return (std::filesystem::temp_directory_path() /
          ("sparsefill_test_" + std::to_string(fresh_seed()) + suffix))
      .string();
}

double relative_error(const std::vector<double>& got, const std::vector<double>& want) {
  double diff = 0, ref = 0;
  for (std::size_t i = 0; i < got.size(); ++i) {
    diff += (got[i] - want[i]) * (got[i] - want[i]);
    ref += want[i] * want[i];
  }
  return ref > 0 ? std::sqrt(diff / ref) : std::sqrt(diff);
}

}  // namespace sparsefill::testing
