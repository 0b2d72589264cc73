#include "support/device_emulator.hpp"

#include <ucontext.h>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <vector>

EmulatedIndex threadIdx{0, 0, 0}, blockIdx{0, 0, 0}, blockDim{1, 1, 1}, gridDim{1, 1, 1};

namespace sparsefill::testing::emulated {
namespace {

constexpr std::size_t kStackBytes = 128 * 1024;

enum class State { kRunnable, kAtWarp, kAtBlock, kDone };

struct Thread {
  ucontext_t context;
  std::unique_ptr<char[]> stack;
  State state = State::kRunnable;
  std::uint64_t warp_calls = 0;  // warp meetings entered
};

struct Block {
  ucontext_t caller;
  std::vector<Thread> threads;
  std::vector<std::uint64_t> slots;  // [warp][set][lane]
  std::vector<unsigned char> shared;
  const std::function<void()>* body = nullptr;
  int current = 0;
};

Block& block() {
  static Block b;
  return b;
}

[[noreturn]] void fail(const char* what) {
  std::fprintf(stderr, "device emulator: %s (block %u,%u,%u thread %d)\n", what, blockIdx.x, blockIdx.y, blockIdx.z,
               block().current);
  std::abort();
}

// Completes the meetings whose threads have all arrived: the running thread's warp, and the block barrier.
void complete_meetings(int warp) {
  Block& b = block();
  Thread* lanes = &b.threads[static_cast<std::size_t>(warp) * 32];
  bool warp_met = true;
  for (int lane = 0; lane < 32; ++lane) warp_met = warp_met && lanes[lane].state == State::kAtWarp;
  if (warp_met) {
    for (int lane = 0; lane < 32; ++lane) {
      if (lanes[lane].warp_calls != lanes[0].warp_calls) fail("the lanes of a warp met at different calls");
      lanes[lane].state = State::kRunnable;
    }
  }
  bool block_met = true, anyone_waits = false;
  for (const Thread& t : b.threads) {
    block_met = block_met && (t.state == State::kAtBlock || t.state == State::kDone);
    anyone_waits = anyone_waits || t.state == State::kAtBlock;
  }
  if (block_met && anyone_waits)
    for (Thread& t : b.threads)
      if (t.state == State::kAtBlock) t.state = State::kRunnable;
}

// Switches from the running thread to the next runnable one (or back to the caller when every thread is done).
void schedule() {
  Block& b = block();
  const int from = b.current, n = static_cast<int>(b.threads.size());
  complete_meetings(from / 32);
  for (int step = 1; step <= n; ++step) {
    const int next = (from + step) % n;
    if (b.threads[static_cast<std::size_t>(next)].state != State::kRunnable) continue;
    if (next == from) return;
    b.current = next;
    threadIdx.x = static_cast<unsigned>(next);
    swapcontext(&b.threads[static_cast<std::size_t>(from)].context, &b.threads[static_cast<std::size_t>(next)].context);
    return;
  }
  for (const Thread& t : b.threads)
    if (t.state != State::kDone) fail("deadlock: threads wait at meetings that cannot complete (a warp intrinsic after a lane exited?)");
  setcontext(&b.caller);
}

void thread_main(int index) {
  Block& b = block();
  (*b.body)();
  b.threads[static_cast<std::size_t>(index)].state = State::kDone;
  schedule();
  fail("an exited thread was resumed");
}

}  // namespace

void launch(EmulatedIndex grid, int threads, std::size_t smem_bytes, const std::function<void()>& body) {
  Block& b = block();
  if (b.body != nullptr) fail("launch is not reentrant");
  if (threads <= 0 || threads % 32 != 0) fail("threads must be a positive multiple of 32");
  b.body = &body;
  b.threads.resize(static_cast<std::size_t>(threads));
  b.slots.assign(static_cast<std::size_t>(threads) * 2, 0);
  gridDim = grid;
  blockDim = {static_cast<unsigned>(threads), 1, 1};
  for (unsigned z = 0; z < grid.z; ++z)
    for (unsigned y = 0; y < grid.y; ++y)
      for (unsigned x = 0; x < grid.x; ++x) {
        blockIdx = {x, y, z};
        b.shared.assign(smem_bytes + 16, 0xFF);  // poisoned (see launch)
        for (int i = 0; i < threads; ++i) {
          Thread& t = b.threads[static_cast<std::size_t>(i)];
          if (!t.stack) t.stack = std::make_unique<char[]>(kStackBytes);
          t.state = State::kRunnable;
          t.warp_calls = 0;
          getcontext(&t.context);
          t.context.uc_stack.ss_sp = t.stack.get();
          t.context.uc_stack.ss_size = kStackBytes;
          t.context.uc_link = nullptr;
          makecontext(&t.context, reinterpret_cast<void (*)()>(&thread_main), 1, i);
        }
        b.current = 0;
        threadIdx.x = 0;
        swapcontext(&b.caller, &b.threads[0].context);
      }
  b.body = nullptr;
}

unsigned char* dynamic_shared_memory() {
  auto address = reinterpret_cast<std::uintptr_t>(block().shared.data());
  return block().shared.data() + ((16 - address % 16) % 16);
}

const std::uint64_t* meet_warp(std::uint64_t value, unsigned mask) {
  Block& b = block();
  if (b.body == nullptr) fail("a warp intrinsic outside launch");
  if (mask != 0xffffffffu) fail("only the full mask is emulated");
  const int index = b.current, warp = index / 32, lane = index % 32;
  Thread& t = b.threads[static_cast<std::size_t>(index)];
  const std::size_t set = t.warp_calls % 2;
  std::uint64_t* slots = &b.slots[(static_cast<std::size_t>(warp) * 2 + set) * 32];
  slots[lane] = value;
  ++t.warp_calls;
  t.state = State::kAtWarp;
  schedule();  // back here once every lane of the warp has left its value of this call
  return slots;
}

void meet_block() {
  Block& b = block();
  if (b.body == nullptr) fail("__syncthreads outside launch");
  b.threads[static_cast<std::size_t>(b.current)].state = State::kAtBlock;
  schedule();
}

}  // namespace sparsefill::testing::emulated
