// Small helpers shared by the benchmark programs.
#pragma once
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
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

// The median of the last `reps` of reps + 2 calls of sample() (two warm-ups), each returning milliseconds.
template <typename Sample>
double median_after_warmups(int reps, Sample&& sample) {
  std::vector<double> times;
  for (int r = 0; r < reps + 2; ++r) {
    const double ms = sample();
    if (r >= 2) times.push_back(ms);
  }
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

// Median time of `reps` runs of body(stream) after two warm-ups, CUDA events on `stream`.
template <typename F>
double median_ms_on(cudaStream_t stream, int reps, F&& body) {
  cudaEvent_t start, stop;
  cudaEventCreate(&start);
  cudaEventCreate(&stop);
  const double median = median_after_warmups(reps, [&] {
    cudaEventRecord(start, stream);
    body(stream);
    cudaEventRecord(stop, stream);
    check(cudaEventSynchronize(stop), "timed run");
    float ms = 0;
    cudaEventElapsedTime(&ms, start, stop);
    return static_cast<double>(ms);
  });
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  return median;
}

// Median time of `reps` runs of body() after two warm-ups, CUDA events on the default stream: the host work
// body() does before its first launch counts too.
template <typename F>
double median_ms(int reps, F&& body) {
  return median_ms_on(nullptr, reps, [&](cudaStream_t) { body(); });
}

// Median time of `reps` replays of one CUDA graph captured from body(stream), after two warm-up replays: the
// device time of body's launches, without its host work (as a serving stack that replays graphs sees it).
template <typename F>
double median_graph_ms(int reps, F&& body) {
  cudaStream_t stream;
  check(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), "graph stream");
  cudaGraph_t graph;
  check(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal), "begin capture");
  body(stream);
  check(cudaStreamEndCapture(stream, &graph), "end capture");
  cudaGraphExec_t exec;
  check(cudaGraphInstantiate(&exec, graph, 0), "instantiate graph");
  const double ms =
      median_ms_on(stream, reps, [&](cudaStream_t s) { check(cudaGraphLaunch(exec, s), "graph launch"); });
  cudaGraphExecDestroy(exec);
  cudaGraphDestroy(graph);
  cudaStreamDestroy(stream);
  return ms;
}

// Median host time of `reps` calls of body() after two warm-ups: from the call until it returns (its
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
