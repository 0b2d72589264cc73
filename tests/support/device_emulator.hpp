// A host stand-in for one CUDA warp, so that the warp-level rule code of the GPU selectors
// (cuda/select/ranked_cut.cuh) runs and is tested on machines without a GPU (CI).
//
// warp::run(body) runs `body` on 32 lanes. Each lane is a fiber with its own stack (ucontext), and one runs at a
// time; the warp intrinsics below are the lanes' meeting points: a lane leaves its value and hands the turn to
// the next lane, so when lane 0 runs again all 32 values of that call are in place (two slot sets alternate, so
// a lane that runs ahead never overwrites a value another lane has yet to read). The device code must reach the
// same intrinsics in the same order on every lane with the full mask, as our kernels do; a partial mask or lanes
// that diverge abort with a message. threadIdx.x is the running lane.
//
// The intrinsics keep their CUDA names (reserved identifiers in host C++); include this header only in test
// translation units, before the device header under test.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>

#define __device__
#define __forceinline__

struct EmulatedIndex {
  unsigned x, y, z;
};
extern EmulatedIndex threadIdx;  // the running lane (x)

namespace sparsefill::testing::warp {

// Runs body on the 32 lanes of one emulated warp (not reentrant).
void run(const std::function<void()>& body);

// The meeting point of every intrinsic: leaves `value` and returns this call's 32 values, by lane.
const std::uint64_t* meet(std::uint64_t value, unsigned mask);

template <typename T>
std::uint64_t bits_of(T value) {
  static_assert(sizeof(T) <= sizeof(std::uint64_t), "warp values are at most 64 bits");
  std::uint64_t bits = 0;
  std::memcpy(&bits, &value, sizeof(T));
  return bits;
}
template <typename T>
T value_of(std::uint64_t bits) {
  T value;
  std::memcpy(&value, &bits, sizeof(T));
  return value;
}
template <typename T>
T read_lane(T value, unsigned mask, int source) {
  const std::uint64_t* values = meet(bits_of(value), mask);
  return value_of<T>(values[source]);
}

}  // namespace sparsefill::testing::warp

template <typename T>
T __shfl_sync(unsigned mask, T value, int source) {
  return sparsefill::testing::warp::read_lane(value, mask, source & 31);
}
template <typename T>
T __shfl_xor_sync(unsigned mask, T value, int lane_mask) {
  return sparsefill::testing::warp::read_lane(value, mask, static_cast<int>(threadIdx.x ^ lane_mask) & 31);
}
template <typename T>
T __shfl_down_sync(unsigned mask, T value, int delta) {
  const int lane = static_cast<int>(threadIdx.x);
  return sparsefill::testing::warp::read_lane(value, mask, lane + delta < 32 ? lane + delta : lane);
}
template <typename T>
T __shfl_up_sync(unsigned mask, T value, int delta) {
  const int lane = static_cast<int>(threadIdx.x);
  return sparsefill::testing::warp::read_lane(value, mask, lane - delta >= 0 ? lane - delta : lane);
}
inline unsigned __ballot_sync(unsigned mask, int predicate) {
  const std::uint64_t* values = sparsefill::testing::warp::meet(predicate != 0, mask);
  unsigned ballot = 0;
  for (int lane = 0; lane < 32; ++lane) ballot |= values[lane] != 0 ? 1u << lane : 0u;
  return ballot;
}
inline int __any_sync(unsigned mask, int predicate) { return __ballot_sync(mask, predicate) != 0; }
inline int __popc(unsigned x) { return __builtin_popcount(x); }
inline int __popcll(unsigned long long x) { return __builtin_popcountll(x); }
inline long long __double_as_longlong(double x) { return sparsefill::testing::warp::value_of<long long>(sparsefill::testing::warp::bits_of(x)); }
inline int min(int a, int b) { return a < b ? a : b; }
inline int max(int a, int b) { return a > b ? a : b; }
