// Small helpers shared by the benchmark programs.
#pragma once
#include <cuda_runtime.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

namespace sparsefill::bench {

// Benchmarks stop at the first CUDA error.
inline void check(cudaError_t status, const char* what) {
  if (status != cudaSuccess) {
    std::fprintf(stderr, "%s: %s\n", what, cudaGetErrorString(status));
    std::exit(1);
  }
}

// "a,b,c" -> {"a", "b", "c"}.
inline std::vector<std::string> split(const std::string& s, char separator = ',') {
  std::vector<std::string> out;
  std::size_t start = 0;
  for (std::size_t comma; (comma = s.find(separator, start)) != std::string::npos; start = comma + 1)
    out.push_back(s.substr(start, comma - start));
  out.push_back(s.substr(start));
  return out;
}

// Warm-up before timed calls: at least two calls and kWarmupMs of wall time, so that the clocks and power
// state that earlier work left have settled (right after the end-to-end reps, whose attention runs the GPU at
// its power limit, a Prism selection timed with two warm-ups took 1.23 ms and 1.10 ms ~40 ms later:
// docs/results/gpu-h200-2026-12-04f-eager-order).
inline constexpr double kWarmupMs = 100.0;

// Medians of interleaved timings: each round calls every sampler once, in order, so that every form timed
// sees the same state of the GPU; the warm-up rounds come first. samplers[i]() returns milliseconds; the
// result holds each one's median over `reps` timed rounds.
template <std::size_t N>
std::array<double, N> interleaved_medians(int reps, const std::array<std::function<double()>, N>& samplers) {
  if (reps < 1) {
    std::fprintf(stderr, "--reps must be at least 1, got %d\n", reps);
    std::exit(2);
  }
  const auto start = std::chrono::steady_clock::now();
  for (int round = 0;
       round < 2 ||
       std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count() <
           kWarmupMs;
       ++round)
    for (const auto& sample : samplers) sample();
  std::array<std::vector<double>, N> times;
  for (int r = 0; r < reps; ++r)
    for (std::size_t i = 0; i < N; ++i) times[i].push_back(samplers[i]());
  std::array<double, N> medians{};
  for (std::size_t i = 0; i < N; ++i) {
    std::sort(times[i].begin(), times[i].end());
    medians[i] = times[i][times[i].size() / 2];
  }
  return medians;
}

// The median of `reps` calls of sample() (milliseconds) after the warm-up.
template <typename Sample>
double median_after_warmups(int reps, Sample&& sample) {
  return interleaved_medians<1>(reps, {std::function<double()>(sample)})[0];
}

// Device time of one call of body(stream) between two CUDA events on `stream` (the host work body() does
// before its first launch counts too when the stream was idle).
class EventTimer {
 public:
  EventTimer() {
    check(cudaEventCreate(&start_), "timer event");
    check(cudaEventCreate(&stop_), "timer event");
  }
  ~EventTimer() {
    cudaEventDestroy(start_);
    cudaEventDestroy(stop_);
  }
  EventTimer(const EventTimer&) = delete;
  EventTimer& operator=(const EventTimer&) = delete;
  template <typename F>
  double time(cudaStream_t stream, F&& body) {
    check(cudaEventRecord(start_, stream), "timer start");
    body(stream);
    check(cudaEventRecord(stop_, stream), "timer stop");
    check(cudaEventSynchronize(stop_), "timed run");
    float ms = 0;
    check(cudaEventElapsedTime(&ms, start_, stop_), "timer elapsed");
    return static_cast<double>(ms);
  }

 private:
  cudaEvent_t start_ = nullptr, stop_ = nullptr;
};

// Median time of `reps` runs of body(stream) after the warm-up, CUDA events on `stream`.
template <typename F>
double median_ms_on(cudaStream_t stream, int reps, F&& body) {
  EventTimer timer;
  return median_after_warmups(reps, [&] { return timer.time(stream, body); });
}

// Median time of `reps` runs of body() after the warm-up, CUDA events on the default stream: the host work
// body() does before its first launch counts too.
template <typename F>
double median_ms(int reps, F&& body) {
  return median_ms_on(nullptr, reps, [&](cudaStream_t) { body(); });
}

// One CUDA graph captured from body(stream) on a stream of its own, replayed by launch(): the device time of
// body's launches without its host work (as a serving stack that replays graphs sees it).
class CapturedGraph {
 public:
  template <typename F>
  explicit CapturedGraph(F&& body) {
    check(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "graph stream");
    cudaGraph_t graph;
    check(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal), "begin capture");
    body(stream_);
    check(cudaStreamEndCapture(stream_, &graph), "end capture");
    check(cudaGraphInstantiate(&exec_, graph, 0), "instantiate graph");
    cudaGraphDestroy(graph);
  }
  ~CapturedGraph() {
    cudaGraphExecDestroy(exec_);
    cudaStreamDestroy(stream_);
  }
  CapturedGraph(const CapturedGraph&) = delete;
  CapturedGraph& operator=(const CapturedGraph&) = delete;
  cudaStream_t stream() const { return stream_; }
  void launch() const { check(cudaGraphLaunch(exec_, stream_), "graph launch"); }

 private:
  cudaStream_t stream_ = nullptr;
  cudaGraphExec_t exec_ = nullptr;
};

// Median host time of `reps` calls of body() after the warm-up: from the call until it returns (its
// launches queued, not run), the device idle before each call. What an eager caller's thread spends.
template <typename F>
double median_host_ms(int reps, F&& body) {
  const double median = median_after_warmups(reps, [&] {
    check(cudaDeviceSynchronize(), "before a host-timed call");
    const auto start = std::chrono::steady_clock::now();
    body();
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  });
  check(cudaDeviceSynchronize(), "after the host-timed calls");
  return median;
}

}  // namespace sparsefill::bench
