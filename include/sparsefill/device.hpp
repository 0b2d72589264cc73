// GPU presence and build facts. The library works without a GPU; these calls never fail.
#pragma once
#include <string>

namespace sparsefill {

bool built_with_cuda();
// Number of usable CUDA devices (0 without a driver or device, or when built without CUDA).
int cuda_device_count();
// "NVIDIA H100 80GB HBM3 (sm_90)" or a reason there is none.
std::string cuda_device_description();
// Runs a tiny sm_90a kernel and checks its result; returns false (with `reason`) when it cannot run.
bool cuda_smoke_test(std::string* reason);

}  // namespace sparsefill
