// parallel_for: every item runs once, nested loops complete and spread over the pool, and an item's exception
// reaches the caller after the loop.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <set>
#include <stdexcept>
#include <thread>
#include <vector>

#include "core/parallel.hpp"

namespace sparsefill {
namespace {

TEST(ParallelFor, RunsEveryItemOnce) {
  for (const std::int64_t count : {0, 1, 2, 7, 10000}) {
    std::vector<std::atomic<int>> runs(static_cast<std::size_t>(count));
    parallel_for(count, [&](std::int64_t i) { ++runs[static_cast<std::size_t>(i)]; });
    for (std::int64_t i = 0; i < count; ++i) EXPECT_EQ(runs[static_cast<std::size_t>(i)].load(), 1) << i;
  }
}

// Three levels of loops, with more inner items than outer ones (a selector's few heads, each a loop over its
// query blocks): every innermost item runs once.
TEST(ParallelFor, NestedLoopsRunEveryItemOnce) {
  constexpr int kOuter = 2, kMiddle = 5, kInner = 300;
  std::vector<std::atomic<int>> runs(kOuter * kMiddle * kInner);
  parallel_for(kOuter, [&](std::int64_t a) {
    parallel_for(kMiddle, [&](std::int64_t b) {
      parallel_for(kInner,
                   [&](std::int64_t c) { ++runs[static_cast<std::size_t>((a * kMiddle + b) * kInner + c)]; });
    });
  });
  for (std::size_t i = 0; i < runs.size(); ++i) EXPECT_EQ(runs[i].load(), 1) << i;
}

// Nested loops share one pool: never more items run at once than there are workers (a loop that started
// threads of its own inside every outer item would run outer x inner).
TEST(ParallelFor, NestedLoopsRunAtMostAWorkerCountOfItemsAtOnce) {
  std::atomic<int> running{0}, most{0};
  parallel_for(4, [&](std::int64_t) {
    parallel_for(16, [&](std::int64_t) {
      const int now = ++running;
      for (int seen = most.load(); now > seen && !most.compare_exchange_weak(seen, now);) {
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
      --running;
    });
  });
  EXPECT_GE(most.load(), 1);
  EXPECT_LE(most.load(), worker_count());
}

// One outer item holds all the work (a selector's single long head): its inner loop runs on every worker, the
// one that took the light outer item included.
TEST(ParallelFor, AnInnerLoopUsesEveryWorker) {
  std::mutex mutex;
  std::set<std::thread::id> threads;
  parallel_for(2, [&](std::int64_t outer) {
    if (outer == 1) return;
    parallel_for(16 * worker_count(), [&](std::int64_t) {
      {
        std::lock_guard<std::mutex> lock(mutex);
        threads.insert(std::this_thread::get_id());
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    });
  });
  EXPECT_EQ(static_cast<int>(threads.size()), worker_count());
}

TEST(ParallelFor, AnItemsExceptionReachesTheCallerAfterTheLoop) {
  std::atomic<int> running{0};
  EXPECT_THROW(parallel_for(200,
                            [&](std::int64_t i) {
                              ++running;
                              if (i == 17) throw std::runtime_error("item 17");
                              --running;
                            }),
               std::runtime_error);
  EXPECT_EQ(running.load(),
            1);  // only the failed item left without finishing: nothing runs on after the throw
  EXPECT_THROW(parallel_for(3,
                            [&](std::int64_t) {
                              parallel_for(3, [](std::int64_t j) {
                                if (j == 2) throw std::invalid_argument("inner");
                              });
                            }),
               std::invalid_argument);
}

}  // namespace
}  // namespace sparsefill
