#include "progress.hpp"

#include <fmt/core.h>

namespace sparsefill::cli {

void ProgressLine::update(const std::string& stage, double fraction) {
  const auto now = std::chrono::steady_clock::now();
  if (stage != stage_) {
    if (shown_) fmt::print(stderr, "\n");
    stage_ = stage;
    start_ = now;
    shown_ = false;
  }
  const double elapsed = std::chrono::duration<double>(now - start_).count();
  if (elapsed < 2.0) return;
  const double eta = fraction > 0 ? elapsed * (1.0 - fraction) / fraction : 0.0;
  fmt::print(stderr, "\r  {:<18} {:5.1f}%  {:6.1f} s elapsed, ~{:.0f} s left   ", stage, 100.0 * fraction,
             elapsed, eta);
  std::fflush(stderr);
  shown_ = true;
}

void ProgressLine::finish() {
  if (shown_) fmt::print(stderr, "\n");
  shown_ = false;
  stage_.clear();
}

}  // namespace sparsefill::cli
