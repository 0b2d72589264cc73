#include "support/warp_emulator.hpp"

#include <ucontext.h>

#include <cstdio>
#include <cstdlib>
#include <vector>

EmulatedIndex threadIdx{0, 0, 0};

namespace sparsefill::testing::warp {
namespace {

constexpr int kLanes = 32;
constexpr std::size_t kStackBytes = 256 * 1024;

struct Warp {
  ucontext_t caller;
  ucontext_t lane[kLanes];
  std::vector<char> stack[kLanes];
  std::uint64_t slots[2][kLanes];
  std::uint64_t calls[kLanes];  // meetings each lane has entered
  bool done[kLanes];
  const std::function<void()>* body = nullptr;
  int current = 0;
};

Warp& warp() {
  static Warp w;
  return w;
}

[[noreturn]] void fail(const char* what) {
  std::fprintf(stderr, "warp emulator: %s (lane %d)\n", what, warp().current);
  std::abort();
}

// Hands the turn from the running lane to lane `next` (which must still run) and returns when the turn is back.
void hand_turn(int next) {
  Warp& w = warp();
  const int from = w.current;
  if (w.done[next]) fail("the lanes diverged: one left the body while another met its lanes");
  w.current = next;
  threadIdx.x = static_cast<unsigned>(next);
  swapcontext(&w.lane[from], &w.lane[next]);
}

void lane_main(int lane) {
  Warp& w = warp();
  (*w.body)();
  w.done[lane] = true;
  for (int other = 0; other < kLanes; ++other) {
    if (w.calls[other] != w.calls[lane] && w.done[other]) fail("the lanes met a different number of times");
  }
  if (lane == kLanes - 1) {
    for (int other = 0; other < kLanes; ++other)
      if (w.calls[other] != w.calls[lane]) fail("the lanes met a different number of times");
    setcontext(&w.caller);
  }
  hand_turn(lane + 1);
  fail("a finished lane was resumed");
}

}  // namespace

void run(const std::function<void()>& body) {
  Warp& w = warp();
  if (w.body != nullptr) fail("warp::run is not reentrant");
  w.body = &body;
  for (int lane = 0; lane < kLanes; ++lane) {
    w.stack[lane].resize(kStackBytes);
    w.calls[lane] = 0;
    w.done[lane] = false;
    getcontext(&w.lane[lane]);
    w.lane[lane].uc_stack.ss_sp = w.stack[lane].data();
    w.lane[lane].uc_stack.ss_size = kStackBytes;
    w.lane[lane].uc_link = nullptr;
    makecontext(&w.lane[lane], reinterpret_cast<void (*)()>(&lane_main), 1, lane);
  }
  w.current = 0;
  threadIdx.x = 0;
  swapcontext(&w.caller, &w.lane[0]);
  w.body = nullptr;
}

const std::uint64_t* meet(std::uint64_t value, unsigned mask) {
  Warp& w = warp();
  if (w.body == nullptr) fail("a warp intrinsic outside warp::run");
  if (mask != 0xffffffffu) fail("only the full mask is emulated");
  const int lane = w.current;
  const int set = static_cast<int>(w.calls[lane] % 2);
  w.slots[set][lane] = value;
  ++w.calls[lane];
  hand_turn((lane + 1) % kLanes);  // back here once every lane has left its value of this call
  for (int other = 0; other < kLanes; ++other) {
    const std::uint64_t ahead = w.calls[other] - w.calls[lane];  // lanes before this one may be one call on
    if (w.calls[other] < w.calls[lane] || ahead > (other < lane ? 1u : 0u)) fail("the lanes diverged between meetings");
  }
  return w.slots[set];
}

}  // namespace sparsefill::testing::warp
