// Deterministic, platform-independent random streams for scenes (splitmix64 + Box-Muller), so a scene is the
// same on every compiler and standard library.
#pragma once
#include <cmath>
#include <cstdint>
#include <initializer_list>

namespace sparsefill {

class RandomStream {
 public:
  // One independent stream per list of ids (seed, batch, head, purpose...).
  RandomStream(std::initializer_list<std::uint64_t> ids) {
    state_ = 0x9E3779B97F4A7C15ull;
    for (std::uint64_t id : ids) state_ = mix(state_ ^ (id + 0x632BE59BD9B4E019ull));
  }
  std::uint64_t next_u64() { return mix(state_ += 0x9E3779B97F4A7C15ull); }
  double uniform() { return static_cast<double>(next_u64() >> 11) * (1.0 / 9007199254740992.0); }  // [0, 1)
  double uniform(double lo, double hi) { return lo + (hi - lo) * uniform(); }
  std::int64_t integer(std::int64_t lo, std::int64_t hi) {  // [lo, hi]
    return lo + static_cast<std::int64_t>(next_u64() % static_cast<std::uint64_t>(hi - lo + 1));
  }
  double normal() {
    const double u1 = 1.0 - uniform(), u2 = uniform();
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
  }

 private:
  static std::uint64_t mix(std::uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  std::uint64_t state_;
};

}  // namespace sparsefill
