// Scratch slots shared by the CTAs of one launch: bit i of `words` (zeroed before the launch) marks slot i
// taken. A CTA takes a slot at its start and gives it back at its end. The host sizes the slots to at least
// the CTAs that can be resident at once, so a CTA finds a free bit as soon as the CTA it replaced on its SM
// has released its own: no CTA waits on one that is not running.
#pragma once

namespace sparsefill::cuda::select {

// One thread of the CTA: a slot in [0, slots), taken.
__device__ inline int acquire_scratch_slot(unsigned* words, int slots) {
  const int count = (slots + 31) / 32;
  for (int w = static_cast<int>(blockIdx.x + blockIdx.y) % count;; w = w + 1 == count ? 0 : w + 1) {
    const int bits = min(32, slots - 32 * w);
    const unsigned usable = bits == 32 ? 0xffffffffu : (1u << bits) - 1;
    unsigned seen = *static_cast<volatile unsigned*>(&words[w]);
    for (unsigned free_bits = ~seen & usable; free_bits != 0; free_bits = ~seen & usable) {
      const unsigned bit = free_bits & (0u - free_bits);
      seen = atomicOr(&words[w], bit);
      if ((seen & bit) == 0) {
        __threadfence();  // the slot's previous holder read it before its release
        return 32 * w + __ffs(static_cast<int>(bit)) - 1;
      }
    }
  }
}

// One thread of the CTA, after every read and write of the slot by the CTA (a CTA barrier before).
__device__ inline void release_scratch_slot(unsigned* words, int slot) {
  __threadfence();
  atomicAnd(&words[slot / 32], ~(1u << (slot % 32)));
}

}  // namespace sparsefill::cuda::select
