// A one-line progress indicator on stderr that appears only once a stage has run for more than two seconds.
#pragma once
#include <chrono>
#include <string>

namespace sparsefill::cli {

class ProgressLine {
 public:
  void update(const std::string& stage, double fraction);
  void finish();

 private:
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
  std::string stage_;
  bool shown_ = false;
};

}  // namespace sparsefill::cli
