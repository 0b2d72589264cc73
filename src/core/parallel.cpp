// One pool of worker_count() - 1 threads, started on the first parallel loop, serves every loop. A loop is a
// job of `count` items: its caller takes items itself while the pool's idle workers take the rest, newest job
// first, and once its own are all taken the caller helps the other jobs until its last item finishes. A loop
// called from inside an item (nested) is a new job that its thread works on as a caller, so the inner loops
// of a few outer items spread over every worker. A thread waits only while no job has an unclaimed item, and
// each item it helps with runs to its end on top of its stack, so nesting cannot deadlock.
#include "core/parallel.hpp"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace sparsefill {
namespace {

struct Job {
  std::int64_t count;
  const std::function<void(std::int64_t)>* body;
  std::atomic<std::int64_t> next{0};      // the next unclaimed item
  std::atomic<std::int64_t> finished{0};  // items run, or skipped after a failure
  std::atomic<bool> failed{false};
  std::exception_ptr error;  // the first item's exception; written under the pool's mutex
};

class Pool {
 public:
  explicit Pool(int threads) {
    for (int t = 0; t < threads; ++t) workers_.emplace_back([this] { serve(nullptr); });
  }
  ~Pool() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopping_ = true;
    }
    changed_.notify_all();
    for (auto& worker : workers_) worker.join();
  }

  void run(Job& job) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      jobs_.push_back(&job);
    }
    changed_.notify_all();
    drain(job, job.next++);
    serve(&job);
    std::lock_guard<std::mutex> lock(mutex_);
    jobs_.erase(std::find(jobs_.begin(), jobs_.end(), &job));
  }

 private:
  // Runs claimed item i of `job`, then each item it claims next. A claimed, unfinished item keeps the job
  // alive (its caller waits for it), so the next item is claimed before this one counts as finished.
  void drain(Job& job, std::int64_t i) {
    const std::int64_t count = job.count;
    while (i < count) {
      if (!job.failed.load()) {
        try {
          (*job.body)(i);
        } catch (...) {
          std::lock_guard<std::mutex> lock(mutex_);
          if (!job.failed.exchange(true)) job.error = std::current_exception();
        }
      }
      const std::int64_t next = job.next++;
      if (job.finished.fetch_add(1) + 1 == count) {
        std::lock_guard<std::mutex> lock(mutex_);  // waiters test `finished` under it: no lost wake-up
        changed_.notify_all();
      }
      i = next;
    }
  }

  // The newest job with an unclaimed item (the caller holds the mutex), or null.
  Job* open_job() const {
    for (auto it = jobs_.rbegin(); it != jobs_.rend(); ++it)
      if ((*it)->next.load() < (*it)->count) return *it;
    return nullptr;
  }

  // Takes items of the open jobs, newest first, until `until` has finished (a caller waiting for its loop:
  // it helps the others meanwhile) or, with until = null, until the pool stops (a worker).
  void serve(const Job* until) {
    std::unique_lock<std::mutex> lock(mutex_);
    for (;;) {
      Job* job = nullptr;  // listed, so alive, while the mutex is held
      changed_.wait(lock, [&] {
        return (until != nullptr ? until->finished.load() == until->count : stopping_) ||
               (job = open_job()) != nullptr;
      });
      if (job == nullptr) return;
      const std::int64_t i = job->next++;
      if (i >= job->count) continue;  // another thread took the last item meanwhile
      lock.unlock();
      drain(*job, i);
      lock.lock();
    }
  }

  std::mutex mutex_;
  std::condition_variable changed_;  // a job listed or finished, or the pool stopping
  std::vector<Job*> jobs_;           // the running loops, oldest first
  bool stopping_ = false;
  std::vector<std::thread> workers_;
};

}  // namespace

int worker_count() {
  static const int count = [] {
    if (const char* env = std::getenv("SPARSEFILL_THREADS")) {
      const int n = std::atoi(env);
      if (n >= 1) return n;
    }
    return static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  }();
  return count;
}

void parallel_for(std::int64_t count, const std::function<void(std::int64_t)>& body) {
  const int workers = worker_count();
  if (workers <= 1 || count <= 1) {
    for (std::int64_t i = 0; i < count; ++i) body(i);
    return;
  }
  static Pool pool(workers - 1);
  Job job;
  job.count = count;
  job.body = &body;
  pool.run(job);
  if (job.error) std::rethrow_exception(job.error);
}

}  // namespace sparsefill
