// A host stand-in for CUDA thread blocks, so that the selection kernels' device code (cuda/select) runs and is
// tested on machines without a GPU (CI): the warp rules of ranked_cut.cuh and whole kernels on small inputs.
//
// emulated::launch(grid, threads, smem, body) runs `body` once per thread of every block, block by block. The
// threads of a block are fibers (ucontext, one stack each) and one runs at a time; a thread runs until it meets
// other threads, at a warp intrinsic (its warp's 32 lanes) or at __syncthreads (the block), and the meeting
// completes when every thread it needs has arrived. Each warp keeps two alternating sets of meeting slots, so a
// lane that runs ahead never overwrites a value another lane has yet to read. The code must meet as CUDA
// requires: warp intrinsics with the full mask on every lane of the warp, __syncthreads reached by every
// thread that has not exited; otherwise the emulator aborts with a message. threadIdx, blockIdx, blockDim and
// gridDim are those of the running thread.
//
// Include this header only in test translation units, before the device code under test; tests/emulated holds
// the host forms of the few device headers that cannot compile for the host (dynamic shared memory, the mma),
// found first on the include path. The intrinsics keep their CUDA names (reserved identifiers in host C++).
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>

// Device code's `#pragma unroll` means nothing to the host compiler: quiet it for the rest of the test.
#pragma GCC diagnostic ignored "-Wunknown-pragmas"

#define __device__
#define __global__ inline  // kernels defined in headers, included by several tests
#define __forceinline__
#define __shared__ static
#define __launch_bounds__(...)
#define __grid_constant__

struct EmulatedIndex {
  unsigned x, y, z;
};
extern EmulatedIndex threadIdx, blockIdx, blockDim, gridDim;

namespace sparsefill::testing::emulated {

// Runs body on every thread (threads: a multiple of 32) of every block of grid, with `smem_bytes` of dynamic
// shared memory per block, 16-byte aligned and poisoned with 0xFF bytes (NaN doubles, -1 ints: a kernel that
// reads what it never wrote, as stale GPU memory would give it, shows). Not reentrant.
void launch(EmulatedIndex grid, int threads, std::size_t smem_bytes, const std::function<void()>& body);

// One block of 32 threads: a warp.
inline void run_warp(const std::function<void()>& body) { launch({1, 1, 1}, 32, 0, body); }

// The running block's dynamic shared memory.
unsigned char* dynamic_shared_memory();

// The meeting point of the warp intrinsics: leaves `value` and returns this call's 32 values, by lane.
const std::uint64_t* meet_warp(std::uint64_t value, unsigned mask);
// The meeting point of __syncthreads.
void meet_block();

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
  return value_of<T>(meet_warp(bits_of(value), mask)[source]);
}
inline int lane() { return static_cast<int>(threadIdx.x % 32); }

}  // namespace sparsefill::testing::emulated

template <typename T>
T __shfl_sync(unsigned mask, T value, int source) {
  return sparsefill::testing::emulated::read_lane(value, mask, source & 31);
}
template <typename T>
T __shfl_xor_sync(unsigned mask, T value, int lane_mask) {
  return sparsefill::testing::emulated::read_lane(value, mask, (sparsefill::testing::emulated::lane() ^ lane_mask) & 31);
}
template <typename T>
T __shfl_down_sync(unsigned mask, T value, int delta) {
  const int lane = sparsefill::testing::emulated::lane();
  return sparsefill::testing::emulated::read_lane(value, mask, lane + delta < 32 ? lane + delta : lane);
}
template <typename T>
T __shfl_up_sync(unsigned mask, T value, int delta) {
  const int lane = sparsefill::testing::emulated::lane();
  return sparsefill::testing::emulated::read_lane(value, mask, lane - delta >= 0 ? lane - delta : lane);
}
inline unsigned __ballot_sync(unsigned mask, int predicate) {
  const std::uint64_t* values = sparsefill::testing::emulated::meet_warp(predicate != 0, mask);
  unsigned ballot = 0;
  for (int lane = 0; lane < 32; ++lane) ballot |= values[lane] != 0 ? 1u << lane : 0u;
  return ballot;
}
inline int __any_sync(unsigned mask, int predicate) { return __ballot_sync(mask, predicate) != 0; }
inline unsigned __match_any_sync(unsigned mask, int value) {
  const std::uint64_t* values =
      sparsefill::testing::emulated::meet_warp(static_cast<std::uint32_t>(value), mask);
  const std::uint64_t mine = values[sparsefill::testing::emulated::lane()];
  unsigned same = 0;
  for (int lane = 0; lane < 32; ++lane) same |= (mask >> lane) & 1u && values[lane] == mine ? 1u << lane : 0u;
  return same;
}
inline void __syncthreads() { sparsefill::testing::emulated::meet_block(); }
inline void __syncwarp(unsigned mask = 0xffffffffu) { sparsefill::testing::emulated::meet_warp(0, mask); }
inline int __popc(unsigned x) { return __builtin_popcount(x); }
inline int __popcll(unsigned long long x) { return __builtin_popcountll(x); }
inline int __ffs(int x) {
  return __builtin_ffs(x);
}
inline int __ffsll(long long x) { return __builtin_ffsll(x); }
inline long long __double_as_longlong(double x) {
  return sparsefill::testing::emulated::value_of<long long>(sparsefill::testing::emulated::bits_of(x));
}
inline double __longlong_as_double(long long x) {
  return sparsefill::testing::emulated::value_of<double>(sparsefill::testing::emulated::bits_of(x));
}
// The host compiles without fused multiply-adds (no FMA in the baseline x86-64 target), as these intrinsics ask.
inline double __dadd_rn(double a, double b) { return a + b; }
inline double __dmul_rn(double a, double b) { return a * b; }
// One thread runs at a time: every write is seen by the next, and a wait never sleeps.
inline void __threadfence() {}
inline void __nanosleep(unsigned) {}
// A load through L2 (no host cache to bypass).
template <typename T>
T __ldcg(const T* address) {
  return *address;
}
// One thread runs at a time, so an atomic is a plain read-modify-write.
template <typename T>
T atomicAdd(T* address, T value) {
  const T old = *address;
  *address = old + value;
  return old;
}
template <typename T>
T atomicMin(T* address, T value) {
  const T old = *address;
  *address = value < old ? value : old;
  return old;
}
template <typename T>
T atomicOr(T* address, T value) {
  const T old = *address;
  *address = old | value;
  return old;
}
inline int min(int a, int b) { return a < b ? a : b; }
inline int max(int a, int b) { return a > b ? a : b; }
