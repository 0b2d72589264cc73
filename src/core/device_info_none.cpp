// Device queries for builds without CUDA: there is never a device.
#include "sparsefill/device.hpp"

namespace sparsefill {

bool built_with_cuda() {
  return false;
}
int cuda_device_count() {
  return 0;
}
std::string cuda_device_description() {
  return "none (built without CUDA)";
}
bool cuda_smoke_test(std::string* reason) {
  if (reason) *reason = "built without CUDA";
  return false;
}

}  // namespace sparsefill
